import numpy as np
import pytest
import torch

from harness.errors import InterventionError
from harness.lenses.probes import fit_probe
from harness.lenses.sae import TopKSAE, TopKSAEConfig
from harness.lenses.steering import coefficient_sweep, decoder_direction, difference_direction, probe_direction
from harness.policy.interventions import AddDirection
from harness.policy.runner import run


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8), rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)


def test_a_difference_direction_moves_one_set_onto_the_others_mean(model, frames):
    a, b = frames
    spatial = difference_direction(model, a, b, site="conv4a", spatial=True, batch_size=4)
    acts_a = run(model, a, cache=["conv4a"]).activations["conv4a"]
    acts_b = run(model, b, cache=["conv4a"]).activations["conv4a"]
    torch.testing.assert_close(spatial, acts_a.mean(0) - acts_b.mean(0))
    channels = difference_direction(model, a, b, site="conv4a")
    torch.testing.assert_close(channels, (acts_a.mean(0) - acts_b.mean(0)).mean((1, 2)))
    steered = run(model, b, interventions=[AddDirection(site="conv4a", direction=spatial)], cache=["conv4a"])
    torch.testing.assert_close(steered.activations["conv4a"].mean(0), acts_a.mean(0), atol=1e-5, rtol=1e-5)
    assert difference_direction(model, a, b, site="fc1").shape == (256,)


def _score_gap(probe, x, k):
    scores = probe.decision(x[None])[0]
    return scores[k] - np.delete(scores, k).mean()


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_a_probe_direction_is_the_input_gradient_of_its_score(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2, 3, 3)) * rng.uniform(0.5, 3, size=(2, 3, 3))  # unequal spreads: scale matters
    signal = x[:, 0, 1, 1] - 2 * x[:, 1, 0, 2]
    labels = np.where(signal > 0.5, "key", np.where(signal < -0.5, "gem", "lock")) if kind == "classification" \
        else np.stack([signal, x[:, 0, 0, 0]], 1)
    probe = fit_probe(x, labels, kind=kind)
    toward = "key" if kind == "classification" else 0
    k = list(probe.classes).index("key") if kind == "classification" else 0
    direction = probe_direction(probe, (2, 3, 3), toward=toward)
    assert direction.shape == (2, 3, 3) and float(direction.norm()) == pytest.approx(1.0, rel=1e-6)
    gap = _score_gap if kind == "classification" else (lambda p, v, j: p.decision(v[None])[0, j])
    base = x[0]
    gradient = np.array([gap(probe, base + np.eye(18)[i].reshape(2, 3, 3), k) - gap(probe, base, k)
                         for i in range(18)])  # finite differences: exact for a linear score
    np.testing.assert_allclose(direction.numpy().ravel(), gradient / np.linalg.norm(gradient), atol=1e-5)
    with pytest.raises(InterventionError, match="holds 12"):
        probe_direction(probe, (2, 2, 3), toward=toward)
    with pytest.raises(InterventionError, match="no class 'dragon'|target columns"):
        probe_direction(probe, (2, 3, 3), toward="dragon" if kind == "classification" else 5)


def test_a_decoder_direction_is_what_raising_the_latent_adds():
    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(site="conv4a", channels=8, expansion=2, k=2, scale=0.25))
    with torch.no_grad():
        sae.conv_dec.weight.normal_()
        z = torch.rand(1, 16, 2, 2)
        bump = torch.zeros_like(z)
        bump[:, 5] = 0.7
        added = (sae.decode(z + bump) - sae.decode(z))[0, :, 0, 0]
    direction = decoder_direction(sae, 5)
    torch.testing.assert_close(direction, added / added.norm())
    with pytest.raises(InterventionError, match="0..15"):
        decoder_direction(sae, 16)


def test_the_sweep_chooses_the_best_coefficient_first_on_ties():
    sweep = coefficient_sweep([0.5, 1, 2, 4], lambda c: -(c - 1.5) ** 2 if c < 4 else -0.25)
    assert sweep.chosen == 1.0 and sweep.curve == [(0.5, -1.0), (1.0, -0.25), (2.0, -0.25), (4.0, -0.25)]
    with pytest.raises(InterventionError, match="non-finite.*2.0"):
        coefficient_sweep([1, 2], lambda c: np.nan if c == 2 else 0.0)
    with pytest.raises(InterventionError, match="non-empty"):
        coefficient_sweep([], lambda c: 0.0)
