import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from harness.errors import InterventionError, ModelOutputError, ObservationError, UnknownSiteError
from harness.policy.interventions import Cache, Patch, Zero
from harness.policy.models import CustomCNN, ImpalaCNN, preprocess
from harness.policy.runner import RunResult, run
from harness.policy.sites import HookPoint, Site, hooked, site_modules, sites


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)


def no_hooks_left(model: nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


def test_result_shapes_and_agreement_with_bare_forward(model, frames):
    result = run(model, frames)
    with torch.no_grad():
        logits, value = model(preprocess(frames))
    assert isinstance(result, RunResult) and dict(result.activations) == {}
    torch.testing.assert_close(result.logits, logits)
    torch.testing.assert_close(result.value, value)
    assert result.value.shape == (5,) and result.logits.shape == result.probs.shape == (5, 15)
    torch.testing.assert_close(result.probs.sum(-1), torch.ones(5))
    assert torch.equal(result.actions_argmax, logits.argmax(-1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.logits = logits


def test_chunking_and_input_type_do_not_change_results(model, frames):
    whole = run(model, frames, cache=["conv3a"])
    chunked = run(model, torch.from_numpy(frames), cache=["conv3a"], batch_size=2)
    torch.testing.assert_close(chunked.logits, whole.logits)
    torch.testing.assert_close(chunked.activations["conv3a"], whole.activations["conv3a"])


def test_runs_in_eval_mode_and_restores_training_mode(frames):
    torch.manual_seed(0)
    model = CustomCNN().train()
    first, second = run(model, frames), run(model, frames)
    torch.testing.assert_close(first.logits, second.logits)  # dropout off
    assert model.training
    assert not first.logits.requires_grad


def test_impala_runs_with_interventions(frames):
    model = ImpalaCNN().eval()
    result = run(model, frames, interventions=[Zero(site="stack2.res1")], cache=["fc.relu"])
    assert result.activations["fc.relu"].shape == (5, 256)


def test_unknown_site_suggests_near_names(model, frames):
    with pytest.raises(UnknownSiteError, match="unknown site 'conv3'; did you mean 'conv3a', ") as info:
        run(model, frames, interventions=[Zero(site="conv3")], cache=["pool1"])
    assert isinstance(info.value, KeyError) and str(info.value).startswith("unknown")
    assert no_hooks_left(model)


@pytest.mark.parametrize(("module", "site"), [("fc3", "logits"), ("value_fc", "value"), ("conv3a_relu", "conv3a.relu")])
def test_module_path_suggests_its_site_name(model, frames, module, site):
    with pytest.raises(UnknownSiteError, match=f"did you mean '{site}'\\?"):
        run(model, frames, cache=[module])


def test_hooks_are_removed_when_the_forward_raises(model, frames):
    bad_patch = Patch(site="conv4a", source=torch.zeros(5, 32, 2, 2))  # fails inside the forward pass
    with pytest.raises(InterventionError):
        run(model, frames, interventions=[Zero(site="conv1a"), bad_patch], cache=["pool1"])
    assert no_hooks_left(model)

    def boom(out):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), hooked(model, [("fc1", boom)]), torch.no_grad():
        model(preprocess(frames))
    assert no_hooks_left(model)


class WithUnusedHookPoint(CustomCNN):
    def __init__(self):
        super().__init__()
        self.unused = HookPoint("unused.site")


class CallsHookPointTwice(CustomCNN):
    def __init__(self):
        super().__init__()
        self.twice = HookPoint("twice")

    def forward(self, obs):
        return super().forward(self.twice(self.twice(obs)))


def test_intervention_that_never_fires_raises(frames):
    model = WithUnusedHookPoint().eval()
    with pytest.raises(InterventionError, match="Zero at Site.*never fired.*'unused.site'"):
        run(model, frames, interventions=[Zero(site="unused.site")])
    assert no_hooks_left(model)
    assert "unused.site" in site_modules(model) and "unused.site" not in sites(model)


def test_site_called_twice_per_forward_raises(frames):
    with pytest.raises(InterventionError, match="fired 2 times"):
        run(CallsHookPointTwice().eval(), frames, cache=["twice"])


def test_spliced_module_adds_its_own_sites(frames):
    """How the SAE work extends sites: a registered submodule owning HookPoints, spliced in by a hook."""

    class Splice(nn.Module):
        def __init__(self):
            super().__init__()
            self.latents = HookPoint("conv3a.sae.latents")

        def forward(self, x):
            return self.latents(x * 2) / 2

    model = CustomCNN().eval()
    model.add_module("conv3a_sae", Splice())
    model.conv3a.register_forward_hook(lambda _m, _a, out: model.conv3a_sae(out))
    assert sites(model)["conv3a.sae.latents"] == (32, 16, 16)
    result = run(model, frames, cache=["conv3a.sae.latents", "conv3a"])
    torch.testing.assert_close(result.activations["conv3a.sae.latents"], 2 * result.activations["conv3a"])


def test_sites_lists_every_named_activation_in_forward_order(model):
    listed = sites(model)
    assert list(listed)[:3] == ["conv1a", "conv1a.relu", "pool1"]
    assert list(listed)[-2:] == ["logits", "value"]
    assert listed["conv3a"] == (32, 16, 16) and listed["pool4"] == (32, 4, 4) and listed["fc2.relu"] == (512,)
    assert len(listed) == 20


def test_duplicate_cache_and_non_interventions_are_refused(model, frames):
    with pytest.raises(InterventionError, match="cached twice"):
        run(model, frames, interventions=[Cache(site="fc1")], cache=[Site("fc1", channels=[0])])
    with pytest.raises(InterventionError, match="Intervention instances"):
        run(model, frames, interventions=["conv3a"])


@pytest.mark.parametrize(
    ("observations", "batch_size", "needle"),
    [
        (np.zeros((0, 64, 64, 3), np.uint8), 256, "empty"),
        (np.zeros((2, 64, 64, 3), np.uint8), 0, "batch_size"),
        (np.zeros((2, 64, 64, 3), np.float32), 256, "uint8"),
    ],
)
def test_bad_observations_or_batch_size(model, observations, batch_size, needle):
    with pytest.raises(ObservationError, match=needle):
        run(model, observations, batch_size=batch_size)


def test_non_finite_outputs_are_refused_not_turned_into_actions(frames):
    model = CustomCNN().eval()
    with torch.no_grad():
        model.fc3.bias[3] = float("nan")
    with pytest.raises(ModelOutputError, match="NaN or infinite logits or values for 5 observations .* no interv"):
        run(model, frames)


def test_an_intervention_that_injects_nan_is_named(frames):
    model = CustomCNN().eval()
    patch = Patch(site="conv4a", source=torch.full((5, 32, 8, 8), 3e38))  # finite, but overflows downstream
    with pytest.raises(ModelOutputError, match="under .*conv4a"):
        run(model, frames, interventions=[patch])


def test_intervention_data_must_be_finite():
    with pytest.raises(InterventionError, match="source holds NaN or infinite values"):
        Patch(site="conv4a", source=torch.full((5, 32, 8, 8), float("nan")))


@pytest.mark.parametrize("kwargs", [{"channels": (1.7,)}, {"channels": (True,)}, {"positions": ((1, 2.5),)}])
def test_site_indices_are_never_rounded(kwargs):
    with pytest.raises(InterventionError, match="must be integer indices"):
        Site("conv3a", **kwargs)


def test_site_accepts_numpy_integers():
    assert Site("conv3a", channels=np.array([3, 1])).channels == (3, 1)
