"""Steering claim: adding a "go for a key" direction to the last conv block changes which entity the agent reaches
first.

The last conv block is the site role ``last_conv`` (harness.policy.roles): conv4a in CustomCNN, the output of
IMPALA's third stack (``stack3.res2``), before the ReLU.

Source: the Heist goal-selection project (../shared/seeds/000_77e42c2f625ff90c.txt) asks how the agent
identifies which entity is its current goal; if the last conv block holds a direction for "the goal is a key", adding it should
move the agent's behaviour toward keys (as steering vectors do for the maze agent's cheese, the maze "go up"
study in ../shared/seeds/004_46561d323bf2ab4c.txt).  Issue 21 found that the clean agent already takes an
unneeded key before the gem on many lock-free levels with a distractor key; steering should move that rate.

ST1. (exploratory, heavy) On lock-free levels with a distractor key (a key of an unused colour on a floor cell off
     the route to the gem: the ``distractor_key`` pair family's edited level, the cell drawn with a generator
     seeded by the level's seed rather than the nearest one, which sits next to the agent), adding the steering
     direction at the coefficient chosen on the selection seeds raises the share of episodes that reach the key
     before the gem by more than 10 points over the clean agent (same levels, same action sampling seed; paired
     binary outcome, exact McNemar test with the betting interval of the paired difference; Newcombe's
     interval before, replaced as it misses its level when discordance is lopsided).
     Direction: the mean activation of the last conv block (averaged over positions, a channel vector added at every position)
     on first frames of selection levels whose current target is a key, minus on those whose target is the gem.
     Coefficient: of COEFFICIENTS, the one that most raises P(first step toward the distractor key) minus
     P(first step toward the gem) on the first frames of selection distractor levels where the two differ (a
     one-forward-pass proxy; rollouts per coefficient would take minutes).  Threshold 10 points: a change in
     which entity is reached first on one level in ten is the smallest behavioural effect worth calling steering.
     Episodes are cut at MAX_STEPS; an episode that reaches neither counts as "not key first".
"""

import numpy as np
import pytest

from harness import render, render_hires
from harness.heist.actions import Action
from harness.heist.oracle import MOVES, current_target, shortest_path
from harness.heist.pairs import distractor_key
from harness.lenses.steering import coefficient_sweep, difference_direction
from harness.policy.interventions import AddDirection
from harness.policy.rollouts import rollout
from harness.policy.runner import run
from harness.policy.traces import reached_before
from harness.stats import mcnemar_exact

SITE = "last_conv"
DIRECTION_LEVELS = 256
SWEEP_LEVELS = 64
COEFFICIENTS = (0.5, 1.0, 2.0, 4.0, 8.0)
MIN_SHIFT = 0.10
MAX_STEPS = 150
ROLLOUT_SEED = 0


def lock_free_with_distractor(level):
    return not level.locks and not level.keys and distractor_key(level) is not None


def with_distractor(level):
    """The ``distractor_key`` pair of ``level``, its cell drawn by a generator seeded with the level's seed."""
    return distractor_key(level, np.random.default_rng(level.current_level_seed))


def target_kind(level):
    target = current_target(level)
    return None if target is None else target.kind


# The science, as plain functions the tests below call with the policy under test.


def added_key(pair):
    """The name and entity of the key a ``distractor_key`` pair adds, e.g. ("blue key", Entity(...))."""
    (colour,) = set(pair.edited.keys) - set(pair.base.keys)
    return f"{colour} key", pair.edited.keys[colour]


def key_direction(policy, levels):
    """The last conv block's mean activation (over positions) on ``levels`` whose current target is a key, minus on those whose
    target is the gem."""
    kinds = [target_kind(level) for level in levels]
    keys = [lv for lv, k in zip(levels, kinds) if k == "key"]
    gems = [lv for lv, k in zip(levels, kinds) if k == "gem"]
    return difference_direction(policy, render(keys), render(gems), site=SITE)


def first_step_action(level, cell):
    """The action of the first step of the oracle's shortest path from the agent to ``cell`` (None: none)."""
    path = shortest_path(level, level.agent.cell, cell)
    if path is None or len(path) < 2:
        return None
    step = (path[1][0] - path[0][0], path[1][1] - path[0][1])
    return Action.toward(next(name for name, move in MOVES.items() if move == step))


def pull_toward_key(policy, pairs, direction, coefficient: float) -> float:
    """The sweep's score: over the distractor levels where the first steps toward key and gem differ, the mean of
    P(step toward the key) minus P(step toward the gem) on the first frame, steered with ``coefficient``."""
    steps = [(first_step_action(p.edited, added_key(p)[1].cell), first_step_action(p.edited, p.edited.gem.cell))
             for p in pairs]
    keep = [i for i, (k, g) in enumerate(steps) if k is not None and g is not None and k != g]
    steer = AddDirection(site=SITE, direction=direction, coefficient=coefficient)
    probs = run(policy, render([pairs[i].edited for i in keep]), interventions=[steer]).probs.double().numpy()
    rows = np.arange(len(keep))
    return float((probs[rows, [steps[i][0] for i in keep]] - probs[rows, [steps[i][1] for i in keep]]).mean())


def key_first(policy, pairs, interventions=()) -> np.ndarray:
    """Per distractor level: whether the agent (sampled actions, seed ROLLOUT_SEED) reaches the added key before
    the gem within MAX_STEPS, under ``interventions``."""
    episodes = rollout(policy, [p.edited for p in pairs], interventions=interventions, seed=ROLLOUT_SEED,
                       max_steps=MAX_STEPS).episodes
    return np.array([reached_before(e, added_key(p)[0], "gem") for e, p in zip(episodes, pairs)], dtype=bool)


# Selection (selection seeds only), then the claim (confirmation seeds).


@pytest.fixture(scope="module")
def steering(policy, level_sampler):
    """The selection step: the key-minus-gem direction and the coefficient sweep, both on selection seeds."""
    direction = key_direction(policy, level_sampler("selection", DIRECTION_LEVELS,
                                                    where=lambda lv: target_kind(lv) in ("key", "gem")))
    pairs = [with_distractor(lv) for lv in level_sampler("selection", SWEEP_LEVELS, where=lock_free_with_distractor)]
    return direction, coefficient_sweep(COEFFICIENTS, lambda c: pull_toward_key(policy, pairs, direction, c))


@pytest.mark.heavy
@pytest.mark.claim(
    id="ST1-conv4a-steer-toward-key",
    statement=f"Adding the last conv block's key-minus-gem direction (coefficient chosen on the selection seeds) raises the "
              f"share of distractor-key levels where the agent reaches the key before the gem by more than "
              f"{MIN_SHIFT:.0%}.",
    sites=[f"{SITE}:key-direction"], metric="key reached before gem, steered minus clean",
    lower_bound_above=MIN_SHIFT, seeds="confirmation", selected_on="selection", n=128, family="exploratory",
)
def test_steering_toward_key(claim, policy, sample_levels, steering):
    direction, sweep = steering
    claim.select(coefficient=sweep.chosen, curve=sweep.curve, direction_norm=float(direction.norm()))
    pairs = [with_distractor(lv) for lv in sample_levels(where=lock_free_with_distractor)]
    claim.attach(render_hires([pairs[0].edited])[0], f"a confirmation level: {pairs[0].edit}")
    steer = AddDirection(site=SITE, direction=direction, coefficient=sweep.chosen)
    clean, steered = key_first(policy, pairs), key_first(policy, pairs, [steer])
    claim.check(mcnemar_exact(clean, steered, confidence=claim.confidence))
