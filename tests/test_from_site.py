"""run_from: the layers after a site only, giving exactly what a full run gives, and refusing what it cannot do."""

import numpy as np
import pytest
import torch

from harness import Site, Zero, run, run_from
from harness.errors import InterventionError
from harness.policy.interventions import Mean
from harness.policy.models import CustomCNN, ImpalaCNN

FRAMES = np.random.default_rng(0).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize(("architecture", "site"), [
    (CustomCNN, "conv4a"), (CustomCNN, "conv3a.relu"), (CustomCNN, "fc2.relu"), (CustomCNN, "last_conv"),
    (ImpalaCNN, "stack3.res2"), (ImpalaCNN, "stack2.res2"), (ImpalaCNN, "fc.relu"),
])  # fmt: skip
def test_from_a_site_gives_exactly_the_full_run_clean_and_intervened(architecture, site):
    torch.manual_seed(0)
    policy = architecture().eval()
    full = run(policy, FRAMES, cache=[site])
    acts = full.activations[site]
    assert torch.equal(run_from(policy, site, acts).logits, full.logits)  # same batches: bit for bit
    torch.testing.assert_close(run_from(policy, site, acts, batch_size=5).logits, full.logits, rtol=1e-5, atol=1e-6)
    zero = Zero(site=Site(site, channels=(1, 3)) if acts.ndim == 4 else Site(site))
    expected = run(policy, FRAMES, interventions=[zero])
    found = run_from(policy, site, acts, interventions=[zero])
    assert torch.equal(found.logits, expected.logits) and torch.equal(found.value, expected.value)


def test_later_sites_can_be_intervened_and_cached_and_the_model_is_left_as_it_was():
    policy = CustomCNN().eval()
    before = run(policy, FRAMES, cache=["conv3a"])
    acts = before.activations["conv3a"]
    later = [Zero(site=Site("conv4a", channels=(0,))), Mean(site=Site("fc1.relu"), mean=torch.full((256,), 0.1))]
    found = run_from(policy, "conv3a", acts, interventions=later, cache=["conv4a"])
    expected = run(policy, FRAMES, interventions=later, cache=["conv4a"])
    assert torch.equal(found.logits, expected.logits)
    assert torch.equal(found.activations["conv4a"], expected.activations["conv4a"])
    assert not any("forward" in vars(m) for m in policy.modules())  # every stub removed
    assert torch.equal(run(policy, FRAMES).logits, before.logits)  # a plain run afterwards is the plain run before


def test_a_site_before_the_start_is_refused_by_name():
    policy = CustomCNN().eval()
    acts = run(policy, FRAMES, cache=["conv4a"]).activations["conv4a"]
    with pytest.raises(InterventionError, match="site 'conv3a' does not run after 'conv4a'"):
        run_from(policy, "conv4a", acts, interventions=[Zero(site=Site("conv3a"))])
    with pytest.raises(InterventionError, match="site 'conv2a' does not run after 'conv4a'"):
        run_from(policy, "conv4a", acts, cache=["conv2a"])
    with pytest.raises(InterventionError, match="pass activations cached at 'conv4a'"):
        run_from(policy, "conv4a", acts[:, :, :2])  # not the site's shape


@pytest.mark.parametrize("site", ["stack3.res2.conv0", "stack2.res1.conv1"])
def test_a_site_inside_a_residual_block_is_refused_as_the_skip_bypasses_it(site):
    policy = ImpalaCNN().eval()
    acts = run(policy, FRAMES, cache=[site]).activations[site]
    with pytest.raises(InterventionError, match=f"values computed before '{site}' reach the outputs"):
        run_from(policy, site, acts)


def test_an_sae_latent_site_with_its_error_term_is_refused_and_without_it_runs_exactly():
    from harness.lenses.sae import ConvSAEConfig, build_sae, spliced

    torch.manual_seed(0)
    policy, sae = CustomCNN().eval(), build_sae(ConvSAEConfig(site="conv4a", channels=32)).eval()
    with spliced(policy, sae, error_term=True):
        acts = run(policy, FRAMES, cache=[sae.latent_site]).activations[sae.latent_site]
        with pytest.raises(InterventionError, match="reach the outputs without passing through it"):
            run_from(policy, sae.latent_site, acts)
        with pytest.raises(InterventionError, match="site 'conv4a' already has forward hooks"):
            run_from(policy, "conv4a", run(policy, FRAMES, cache=["conv4a"]).activations["conv4a"])
    with spliced(policy, sae, error_term=False):
        full = run(policy, FRAMES, cache=[sae.latent_site])
        found = run_from(policy, sae.latent_site, full.activations[sae.latent_site])
        zero = Zero(site=Site(sae.latent_site, channels=(0,)))  # an SAE latent downstream of the start: fine
        earlier = run_from(policy, "conv3a", run(policy, FRAMES, cache=["conv3a"]).activations["conv3a"],
                           interventions=[zero])
        assert torch.equal(earlier.logits, run(policy, FRAMES, interventions=[zero]).logits)
    assert torch.equal(found.logits, full.logits)
