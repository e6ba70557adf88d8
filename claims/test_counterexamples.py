"""Universal claims about single levels, tested as counterexample searches (harness/claims/counterexamples.py).

CX1. The policy never walks into a wall it faces: with the agent at rest on any free floor cell of an easy level
     from which its current target can be reached, its most likely action is never a move every component of
     which points into an adjacent wall (a cardinal move into a wall cell, or a diagonal with walls on both of its
     axes), although the shortest path to its target always leaves through open floor.  Source: issue 21 part B,
     built on the maze-agent "go up" channel study (../shared/seeds/004_*.txt), which reads direction channels as
     "you should go X" and finds the agent moves where they point; a policy whose directions were read off the
     path would never point into a wall.
CX2. Removing a key that the current shortest path does not need never changes the policy's first (argmax)
     action: on an easy level with a key other than the current target's, removing that key (the oracle's target
     and path stay exactly the same) leaves the most likely action unchanged.  Source: the Heist goal-selection
     project (../shared/seeds/000_*.txt: does the agent represent which entity is its goal?) and the side finding
     of issue 21 that the clean agent picks up an unneeded key before the gem on about 60% of lock-free levels.

Both are "for every level of family X, P holds".  No finite search proves that, and one counterexample refutes
it, so (see the module docstring of harness.claims.counterexamples) the verdict is decided by the failure rate of
P on a seeded representative sample of N = 512 family members from the confirmation range, with its exact
Clopper-Pearson interval, against a pre-registered upper bound; a seeded hypothesis search (the calibration pool,
at most MAX_EXAMPLES examples) then looks for the smallest counterexample, which the report shows with its edit
path, or says "no counterexample in N examples".

Thresholds, fixed before any data: MAX_FAILURE_RATE = 0.05 for both.  A property that fails on one level in
twenty is not a rule of the policy; below that we accept it as one (as "the agent solves 80%" does for B1).  The
two claims are exploratory: their property and bound were set from what would matter, not from a number
reported in a source study.
"""

from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import assume
from hypothesis import strategies as st

from harness import Action, render, run
from harness.claims.counterexamples import Case, check_universal, failure_rate, search
from harness.heist import strategies
from harness.heist.oracle import current_target, distances_from, guide

MAX_FAILURE_RATE = 0.05
N = 512
MAX_EXAMPLES = 200
SEARCH_SEED = 0
EDIT_SEED = 0

Choose = Callable[[int], int]
"""How an edit picks one of k candidates: a seeded numpy draw in the sample, hypothesis's draw in the search."""


# The science, as plain functions the tests below call with the policy under test.


def first_actions(policy, levels) -> np.ndarray:
    """The policy's most likely action on each level."""
    return run(policy, render(levels)).probs.argmax(dim=1).numpy()


def _free_cells(level):
    """Empty floor cells other than the agent's, nearest to the agent first (so the search shrinks toward near)."""
    x0, y0, x1, y1 = level.maze_bounds
    ax, ay = level.agent.cell
    cells = [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)
             if not level.is_wall((x, y)) and level.occupant((x, y)) is None]  # fmt: skip
    return sorted(cells, key=lambda c: (abs(c[0] - ax) + abs(c[1] - ay), c[1], c[0]))


def agent_placed(level, choose: Choose) -> Case | None:
    """Family X1: ``level`` with the agent at rest on one of its empty floor cells from which the current target
    can be reached (None: no such cell)."""
    target = current_target(level)  # keys, locks and held keys decide it, not where the agent stands
    if target is None:
        return None
    steps = distances_from(level, target.cell)
    cells = [(x, y) for x, y in _free_cells(level) if steps[y, x] > 0]
    if not cells:
        return None
    cell = cells[choose(len(cells))]
    return Case(path=(level, level.move_agent(cell)), edits=(f"agent {level.agent.cell} -> {cell}",))


def unneeded_key_removed(level, choose: Choose) -> Case | None:
    """Family X2: ``level`` without one key that is not the current target, the oracle's target and path unchanged
    (None: no such key)."""
    before = guide(level)
    if before is None:
        return None
    colours = [c for c, key in sorted(level.keys.items()) if key is not before.target.entity]
    candidates = [c for c in colours if guide(level.remove_key(c)) == before]
    if not candidates:
        return None
    colour = candidates[choose(len(candidates))]
    return Case(path=(level, level.remove_key(colour)), edits=(f"{colour} key at {level.keys[colour].cell} removed",))


def walks_into_wall(policy) -> Callable[[Sequence[Case]], list]:
    """P1 on a batch: None where the argmax action is not a move into walls, else what it did."""

    def check(cases):
        reasons = []
        for case, action in zip(cases, first_actions(policy, [c.level for c in cases])):
            level, action = case.level, Action(int(action))
            (x, y), (dx, dy) = level.agent.cell, action.vector
            blocked = ([level.is_wall((x + dx, y))] if dx else []) + ([level.is_wall((x, y + dy))] if dy else [])
            if blocked and all(blocked):
                reasons.append(f"argmax {action.name} into the wall from {(x, y)}, where the shortest path to the "
                               f"{guide(level).target.name} starts {guide(level).first_step}")
            else:
                reasons.append(None)
        return reasons

    return check


def first_action_changes(policy) -> Callable[[Sequence[Case]], list]:
    """P2 on a batch: None where the argmax action is the same with and without the key, else the change."""

    def check(cases):
        before = first_actions(policy, [c.path[0] for c in cases])
        after = first_actions(policy, [c.level for c in cases])
        return [None if a == b else f"argmax {Action(int(a)).name} -> {Action(int(b)).name}"
                for a, b in zip(before, after)]  # fmt: skip

    return check


def sampled_cases(sample_levels, make: Callable, n: int) -> list[Case]:
    """Exactly ``n`` cases of a family on the claim's seed range: each level's candidate drawn with a generator
    seeded by EDIT_SEED and the level's seed (so the sample is the same on every run)."""
    made: list[Case] = []

    def keep(level) -> bool:
        rng = np.random.default_rng([EDIT_SEED, level.current_level_seed])
        case = make(level, lambda k: int(rng.integers(k)))
        if case is not None:
            made.append(case)
        return case is not None

    sample_levels(n=n, where=keep)
    return made


def case_strategy(make: Callable) -> st.SearchStrategy[Case]:
    """Cases of a family on the hypothesis pool of generated levels (harness.heist.strategies.levels)."""

    @st.composite
    def cases(draw):
        level = draw(strategies.levels())
        case = make(level, lambda k: draw(st.integers(0, k - 1)))
        assume(case is not None)
        return case

    return cases()


@pytest.mark.claim(
    id="CX1-never-walks-into-a-wall",
    statement="With the agent at rest on any free cell of an easy level from which its target can be reached, its "
    f"most likely action is never a move into adjacent walls (failure rate below {MAX_FAILURE_RATE:.0%}; "
    "hypothesis hunts for a counterexample).",
    sites=["policy"], metric="rate of argmax moves into a wall", upper_bound_below=MAX_FAILURE_RATE,
    seeds="confirmation", n=N, family="exploratory",
)  # fmt: skip
def test_never_walks_into_a_wall(claim, policy, sample_levels):
    check = walks_into_wall(policy)
    sample = failure_rate(sampled_cases(sample_levels, agent_placed, N), check, confidence=claim.confidence)
    found = search(case_strategy(agent_placed), check, max_examples=MAX_EXAMPLES, seed=SEARCH_SEED)
    check_universal(claim, sample, found)


@pytest.mark.claim(
    id="CX2-unneeded-key-keeps-first-action",
    statement="Removing a key that the current shortest path does not need never changes the agent's most likely "
    f"first action (change rate below {MAX_FAILURE_RATE:.0%}; hypothesis hunts for a counterexample).",
    sites=["policy"], metric="rate of changed argmax actions", upper_bound_below=MAX_FAILURE_RATE,
    seeds="confirmation", n=N, unit="pairs", family="exploratory",
)  # fmt: skip
def test_unneeded_key_keeps_first_action(claim, policy, sample_levels):
    check = first_action_changes(policy)
    cases = sampled_cases(sample_levels, unneeded_key_removed, N)
    sample = failure_rate(cases, check, confidence=claim.confidence, unit="pairs")
    found = search(case_strategy(unneeded_key_removed), check, max_examples=MAX_EXAMPLES, seed=SEARCH_SEED)
    check_universal(claim, sample, found)
