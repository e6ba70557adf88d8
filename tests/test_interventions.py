"""Each intervention against the same edit done by hand with a plain torch forward hook."""

import numpy as np
import pytest
import torch

from harness.errors import InterventionError
from harness.policy.interventions import AddDirection, Cache, Clamp, Mean, Patch, Resample, Zero, mean_difference
from harness.policy.models import preprocess
from harness.policy.runner import reference_mean, run
from harness.policy.sites import Site, select


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def other_frames():
    return np.random.default_rng(1).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)


def by_hand(model, frames, module_name, edit):
    """Logits with ``edit(output) -> output`` applied to one module's output by a raw torch hook."""
    handle = model.get_submodule(module_name).register_forward_hook(lambda _m, _a, out: edit(out.clone()))
    try:
        with torch.no_grad():
            return model(preprocess(frames))[0]
    finally:
        handle.remove()


def cached(model, frames, name):
    return run(model, frames, cache=[name]).activations[name]


def test_zero_one_channel_equals_zeroing_it_by_hand(model, frames):
    def edit(out):
        out[:, 5] = 0
        return out

    result = run(model, frames, interventions=[Zero(site=Site("conv4a", channels=[5]))])
    torch.testing.assert_close(result.logits, by_hand(model, frames, "conv4a", edit))
    assert not torch.allclose(result.logits, run(model, frames).logits)


def test_zero_channels_at_positions(model, frames):
    def edit(out):
        for c in (1, 7):
            for r, col in ((0, 0), (3, 5)):
                out[:, c, r, col] = 0
        return out

    site = Site("conv3a.relu", channels=(1, 7), positions=((0, 0), (3, 5)))
    result = run(model, frames, interventions=[Zero(site=site)])
    torch.testing.assert_close(result.logits, by_hand(model, frames, "conv3a_relu", edit))


def test_clamp_flat_features(model, frames):
    def edit(out):
        out[:, [3, 4]] = 2.5
        return out

    result = run(model, frames, interventions=[Clamp(site=Site("fc1.relu", channels=[3, 4]), value=2.5)])
    torch.testing.assert_close(result.logits, by_hand(model, frames, "fc1_relu", edit))


def test_mean_replaces_with_reference_mean(model, frames, other_frames):
    mean = cached(model, other_frames, "pool3").mean(0)

    def edit(out):
        out[:, 2] = mean[2]
        return out

    ablation = reference_mean(model, other_frames, site=Site("pool3", channels=[2]))
    torch.testing.assert_close(ablation.mean, mean)
    result = run(model, frames, interventions=[ablation])
    torch.testing.assert_close(result.logits, by_hand(model, frames, "pool3", edit))


def test_patch_full_site_reproduces_source_logits_across_chunks(model, frames, other_frames):
    source = run(model, other_frames, cache=["conv3a"])
    patch = Patch(site="conv3a", source=source.activations["conv3a"])
    patched = run(model, frames, interventions=[patch], batch_size=4)
    torch.testing.assert_close(patched.logits, source.logits)
    torch.testing.assert_close(patched.value, source.value)


def test_patch_selected_channels_clean_to_corrupt_and_back(model, frames, other_frames):
    clean, corrupt = cached(model, frames, "conv2b"), cached(model, other_frames, "conv2b")
    site = Site("conv2b", channels=[0, 9])

    def edit(out):
        out[:, [0, 9]] = corrupt[:, [0, 9]]
        return out

    to_corrupt = run(model, frames, interventions=[Patch(site=site, source=corrupt)], batch_size=4)
    torch.testing.assert_close(to_corrupt.logits, by_hand(model, frames, "conv2b", edit))
    back = run(model, frames, interventions=[Patch(site=site, source=corrupt), Patch(site=site, source=clean)])
    torch.testing.assert_close(back.logits, run(model, frames).logits)


def test_resample_takes_seeded_rows_of_the_source(model, frames, other_frames):
    source = cached(model, other_frames, "pool2")
    resample = Resample(site="pool2", source=source, seed=3)
    rows = resample.indices(len(frames))
    assert torch.equal(rows, Resample(site="pool2", source=source, seed=3).indices(len(frames)))
    assert not torch.equal(rows, Resample(site="pool2", source=source, seed=4).indices(len(frames)))

    result = run(model, frames, interventions=[resample], cache=["pool2"], batch_size=4)
    torch.testing.assert_close(result.activations["pool2"], source[rows])
    torch.testing.assert_close(result.logits, by_hand(model, frames, "pool2", lambda out: source[rows]))


@pytest.mark.parametrize("full_map", [False, True])
def test_add_direction_channel_vector_or_full_map(model, frames, full_map):
    direction = torch.linspace(-1, 1, 32)
    if full_map:
        direction = direction[:, None, None].expand(32, 8, 8) * torch.rand(8, 8)
    added = direction if full_map else direction[:, None, None]

    result = run(model, frames, interventions=[AddDirection(site="conv4a.relu", direction=direction, coefficient=2.0)])
    torch.testing.assert_close(result.logits, by_hand(model, frames, "conv4a_relu", lambda out: out + 2.0 * added))


def test_add_direction_only_on_selected_positions(model, frames):
    def edit(out):
        out[:, :, 1, 2] += 0.5
        return out

    site = Site("pool4", positions=[(1, 2)])
    result = run(model, frames, interventions=[AddDirection(site=site, direction=torch.full((32,), 0.5))])
    torch.testing.assert_close(result.logits, by_hand(model, frames, "pool4", edit))


def set_fc2_unit0(value):
    def edit(out):
        out[:, 0] = value
        return out

    return edit


def test_interventions_at_one_site_apply_in_order(model, frames):
    site, ones = Site("fc2", channels=[0]), torch.ones(512)
    zero_then_add = run(model, frames, interventions=[Zero(site=site), AddDirection(site=site, direction=ones)])
    add_then_zero = run(model, frames, interventions=[AddDirection(site=site, direction=ones), Zero(site=site)])
    torch.testing.assert_close(zero_then_add.logits, by_hand(model, frames, "fc2", set_fc2_unit0(1.0)))
    torch.testing.assert_close(add_then_zero.logits, by_hand(model, frames, "fc2", set_fc2_unit0(0.0)))


def test_cache_records_at_its_place_in_the_order(model, frames):
    site = Site("fc2", channels=[0])
    result = run(model, frames, interventions=[Zero(site=site), Cache(site=site), Clamp(site=site, value=3.0)])
    assert torch.equal(result.activations["fc2"], torch.zeros(len(frames), 1))
    torch.testing.assert_close(result.logits, by_hand(model, frames, "fc2", set_fc2_unit0(3.0)))


def test_cache_with_selection_is_compact(model, frames):
    full = cached(model, frames, "conv3a")
    site = Site("conv3a", channels=[4, 1], positions=[(2, 3), (0, 0), (5, 5)])
    part = run(model, frames, cache=[site]).activations["conv3a"]
    assert part.shape == (6, 2, 3)
    torch.testing.assert_close(part[:, 0, 0], full[:, 4, 2, 3])
    torch.testing.assert_close(part[:, 1, 2], full[:, 1, 5, 5])
    assert select(Site("conv3a", positions=[(1, 1)]), full).shape == (6, 32, 1)
    assert select(Site("fc1", channels=[0, 2]), torch.zeros(6, 256)).shape == (6, 2)


def test_mean_difference_is_difference_of_means():
    a, b = torch.randn(5, 3, 2, 2), torch.randn(7, 3, 2, 2)
    torch.testing.assert_close(mean_difference(a, b), a.mean(0) - b.mean(0))
    with pytest.raises(InterventionError, match="one per-example shape"):
        mean_difference(a, torch.randn(7, 3))


def test_site_names_are_accepted_as_strings_and_selections_normalised():
    assert Zero(site="conv3a").site == Site("conv3a")
    assert Site("conv3a", channels=[1, 2], positions=[[0, 1]]) == Site("conv3a", channels=(1, 2), positions=((0, 1),))


@pytest.mark.parametrize(
    ("intervention", "needle"),
    [
        (Zero(site=Site("conv4a", channels=[32])), "has 32 channels; channel 32 is out of range"),
        (Zero(site=Site("pool4", positions=[(4, 0)])), "is 4x4; positions [(4, 0)] are outside it"),
        (Zero(site=Site("fc1", positions=[(0, 0)])), "is flat"),
        (Mean(site="conv3a", mean=torch.zeros(32, 8, 8)), "mean for site 'conv3a' is shaped (32, 8, 8)"),
        (Patch(site="pool4", source=torch.zeros(6, 32, 8, 8)), "Patch source for site 'pool4' is shaped (32, 8, 8)"),
        (Patch(site="pool4", source=torch.zeros(5, 32, 4, 4)), "5 source rows for a run of 6 examples"),
        (Resample(site="fc1", source=torch.zeros(9, 255), seed=0), "Resample source for site 'fc1'"),
        (AddDirection(site="conv3a", direction=torch.zeros(16)), "vector (32,) or the full map (32, 16, 16)"),
    ],
)
def test_invalid_interventions_raise_clear_errors(model, frames, intervention, needle):
    with pytest.raises(InterventionError) as info:
        run(model, frames, interventions=[intervention])
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: Site("conv3a", channels=[-1]), "distinct non-negative"),
        (lambda: Site("conv3a", channels=5), "channels must be a sequence, e.g. channels=(5,)"),
        (lambda: Site("conv3a", channels=[1, 1]), "distinct non-negative"),
        (lambda: Site("conv3a", positions=[(0, 0), (0, 0)]), "distinct (row, col)"),
        (lambda: Zero(site=3), "Site or a site name"),
        (lambda: Mean(site="conv3a", mean=[1.0]), "tensor or numpy array"),
        (lambda: Resample(site="conv3a", source=torch.zeros(0, 32, 16, 16), seed=0), "M >= 1"),
        (lambda: Mean.from_activations(torch.zeros(0, 4), site="fc1"), "M >= 1"),
    ],
)
def test_malformed_declarations_raise_at_construction(make, needle):
    with pytest.raises(InterventionError) as info:
        make()
    assert needle in str(info.value)


def test_interventions_are_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        Clamp("conv3a", 1.0)
    with pytest.raises(AttributeError):
        Zero(site="conv3a").site = Site("conv4a")
