"""Probe claim: where the current target lies is linearly decodable from conv3a.

P1. A linear probe (ridge, one-vs-rest) on conv3a's pre-ReLU map, fit on selection levels, tells on confirmation
    levels in which quadrant around the agent the current target (next key, its lock, or the gem) lies, with
    accuracy above 0.40 (four classes), and above what the same probe reaches when fit on shuffled labels.

The frames are mid-episode states of the oracle playing (a random 0-39 steps in), so the current target varies
(keys held, doors open) and the probe must follow which entity is current, not only where the gem is drawn.
"""

import numpy as np
import pytest

from harness import render
from harness.lenses.measures import target_quadrant
from harness.lenses.probes import fit_probe, shuffled_label_scores
from harness.policy.rollouts import oracle_chooser, play
from harness.policy.runner import run
from harness.heist.sampling import sample_levels as draw_levels
from harness.stats import permutation_test_against_null, wilson_interval

SITE = "conv3a"
MIN_ACCURACY = 0.40
TRAIN_LEVELS = 1024
SHUFFLES = 200
L2 = 10.0
MAX_SNAPSHOT_STEP = 40


def states_with_targets(levels, seed):
    """Mid-episode states of the oracle playing each level, and their target quadrants (levels without a
    reachable target are dropped)."""
    steps = np.random.default_rng(seed).integers(0, MAX_SNAPSHOT_STEP, size=len(levels))
    states = [e.snapshot for e in play(levels, oracle_chooser, snapshot_at=steps).episodes]
    labelled = [(s, target_quadrant(s)) for s in states if target_quadrant(s) is not None]
    return [s for s, _ in labelled], np.array([q for _, q in labelled])


def conv3a(policy, states):
    return run(policy, render(states), cache=[SITE]).activations[SITE].numpy()


@pytest.mark.claim(
    id="P1-target-quadrant-probe",
    statement=f"A linear probe on conv3a tells in which quadrant around the agent the current target lies, with "
              f"held-out accuracy above {MIN_ACCURACY} and above shuffled-label probes.",
    sites=[SITE], metric="held-out probe accuracy", lower_bound_above=MIN_ACCURACY, seeds="confirmation", n=512,
)
def test_target_quadrant_probe(claim, policy, sample_levels):
    train_states, train_labels = states_with_targets(draw_levels("selection", TRAIN_LEVELS, seed=0), seed=0)
    test_states, test_labels = states_with_targets(sample_levels(n=claim.spec.n + 32), seed=1)
    test_states, test_labels = test_states[:claim.spec.n], test_labels[:claim.spec.n]
    if len(test_states) < claim.spec.n:
        pytest.fail(f"only {len(test_states)} confirmation states had a reachable target; raise the oversampling")
    train_x, test_x = conv3a(policy, train_states), conv3a(policy, test_states)
    probe = fit_probe(train_x, train_labels, l2=L2)
    accuracy = wilson_interval(int(probe.correct(test_x, test_labels).sum()), len(test_labels),
                               confidence=claim.confidence)
    null = shuffled_label_scores(train_x, train_labels, test_x, test_labels, m=SHUFFLES, seed=0, l2=L2)
    claim.attach(render(test_states[:1])[0], "a mid-episode confirmation state")
    claim.check(permutation_test_against_null(accuracy, null))
