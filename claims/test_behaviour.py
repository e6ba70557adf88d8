"""Behavioural claims: what the agent does in the real game, on held-out levels and on counterfactual ones.

B1. The agent solves most held-out easy levels: it reaches the gem (sampled actions, the engine's 1000-step
    limit) in more than 80% of confirmation levels.
B2. Where the gem lies does not matter to whether the agent finds it: on levels with no locks, moving the gem to
    another free cell of the maze changes the rate of reaching it within 300 steps by less than 10 points
    (paired: the same levels, clean and with the gem moved; exact McNemar, Newcombe interval).
B3. The agent takes keys and locks in the order the maze requires and only then the gem: on levels with at
    least one lock, it reaches the gem having reached the entities in exactly the oracle's order (blue key, blue
    lock, green key, ...) on more than 75% of levels.  Levels it fails count against the claim; an order other
    than the oracle's means a detour to a key whose lock is not yet next.
"""

import numpy as np
import pytest

from harness import render_hires
from harness.policy.rollouts import rollout
from harness.stats import mcnemar_exact, wilson_interval

MIN_SUCCESS = 0.80
GEM_MOVE_MARGIN = 0.10
GEM_MOVE_STEPS = 300
MIN_IN_ORDER = 0.75
ROLLOUT_SEED = 0


# The science, as plain functions the tests below call with the policy under test.


def solved(policy, levels, *, max_steps: int = 1000) -> np.ndarray:
    """Per level: whether the agent (sampled actions, seed ROLLOUT_SEED) reaches the gem within ``max_steps``."""
    return rollout(policy, levels, sample=True, seed=ROLLOUT_SEED, max_steps=max_steps).success


def with_gem_moved(levels) -> list:
    """Each level with its gem moved to a random free cell (seeded by ROLLOUT_SEED, drawn in the levels' order)."""
    rng = np.random.default_rng(ROLLOUT_SEED)
    return [level.move_gem(_random_free_cell(level, rng)) for level in levels]


def solved_in_oracle_order(policy, levels) -> np.ndarray:
    """Per level: whether the agent reaches the gem having reached keys and locks in exactly the oracle's order."""
    episodes = rollout(policy, levels, sample=True, seed=ROLLOUT_SEED).episodes
    return np.array([e.success and e.reached == _oracle_order(level) for e, level in zip(episodes, levels)],
                    dtype=bool)


def _oracle_order(level):
    """Keys and locks colour by colour, then the gem: the only order the maze's doors allow without detours."""
    return tuple(f"{c} {kind}" for c in level.colours if c in level.locks for kind in ("key", "lock")) + ("gem",)


def _random_free_cell(level, rng):
    free = [(x, y) for y in range(level.grid_h) for x in range(level.grid_w)
            if not level.is_wall((x, y)) and level.occupant((x, y)) is None]
    return free[rng.integers(len(free))]


@pytest.mark.claim(
    id="B1-solves-held-out-levels",
    statement=f"The agent reaches the gem in more than {MIN_SUCCESS:.0%} of held-out easy levels (sampled actions).",
    sites=["policy"], metric="success rate", lower_bound_above=MIN_SUCCESS, seeds="confirmation", n=512,
)
def test_agent_solves_held_out_levels(claim, policy, sample_levels):
    levels = sample_levels()
    success = solved(policy, levels)
    claim.attach(render_hires(levels[:1])[0], "a confirmation level")
    claim.check(wilson_interval(int(success.sum()), len(levels), confidence=claim.confidence))


@pytest.mark.claim(
    id="B2-gem-position-does-not-matter",
    statement=f"On levels with no locks, moving the gem to another free cell changes the rate of reaching it within "
              f"{GEM_MOVE_STEPS} steps by less than {GEM_MOVE_MARGIN:.0%} points.",
    sites=["policy"], metric="change in success rate (gem moved - clean)", equivalent_within=GEM_MOVE_MARGIN,
    seeds="confirmation", n=256,
)
def test_gem_position_does_not_matter(claim, policy, sample_levels):
    levels = sample_levels(where=lambda level: not level.locks and level.gem is not None)
    moved = with_gem_moved(levels)
    clean, edited = solved(policy, levels, max_steps=GEM_MOVE_STEPS), solved(policy, moved, max_steps=GEM_MOVE_STEPS)
    claim.attach(render_hires(levels[:1])[0], "clean level")
    claim.attach(render_hires(moved[:1])[0], "same level, gem moved")
    claim.check(mcnemar_exact(clean, edited, confidence=claim.confidence))


@pytest.mark.claim(
    id="B3-keys-in-order",
    statement=f"On levels with locks, the agent reaches the gem after the keys and locks in the oracle's order on "
              f"more than {MIN_IN_ORDER:.0%} of levels.",
    sites=["policy"], metric="rate of levels solved in the oracle's order", lower_bound_above=MIN_IN_ORDER,
    seeds="confirmation", n=256,
)
def test_keys_in_order(claim, policy, sample_levels):
    levels = sample_levels(where=lambda level: bool(level.locks))
    in_order = solved_in_oracle_order(policy, levels)
    claim.check(wilson_interval(int(in_order.sum()), len(levels), confidence=claim.confidence))
