"""Decision squares against a breadth-first search written from the rules alone, on real and edited levels; the
sampler's count, seeding and errors; the diagonal-aware direction map."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings

from harness.errors import ActionError, SamplingError
from harness.heist.actions import Action
from harness.heist.decisions import decision_squares, moves_toward, sample_decision_squares
from harness.heist.levels import HeistLevel
from harness.heist.oracle import current_target
from harness.heist.strategies import edited_levels


def distances(level: HeistLevel, goal) -> dict:
    """Steps from every cell to ``goal`` (4-neighbours; walls and closed locks other than the goal block)."""
    closed = {e.cell for c, e in level.locks.items() if c not in level.held_keys} - {goal}
    dist, queue = {goal: 0}, deque([goal])
    while queue:
        x, y = queue.popleft()
        for nxt in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if nxt not in dist and not level.is_wall(nxt) and nxt not in closed:
                dist[nxt] = dist[(x, y)] + 1
                queue.append(nxt)
    return dist


def cell_of(level: HeistLevel, name: str):
    if name == "gem":
        return level.gem.cell
    colour, kind = name.split()
    return (level.keys if kind == "key" else level.locks)[colour].cell


def step(cell, action: Action):
    return cell[0] + action.vector[0], cell[1] + action.vector[1]


@settings(deadline=None, max_examples=60)
@given(level=edited_levels())
def test_squares_are_clean_forks_toward_two_entities(level):
    target = current_target(level)
    for square in decision_squares(level):
        moved, cell = square.level, square.cell
        assert moved.agent.cell == cell and moved.held_keys == level.held_keys
        assert target.name == square.target == current_target(moved).name and square.other != square.target
        assert square.toward_target != square.toward_other
        assert square.toward_target in (Action.UP, Action.DOWN, Action.LEFT, Action.RIGHT)
        to_target, to_other = distances(moved, cell_of(moved, square.target)), distances(moved, cell_of(moved, square.other))
        assert to_target[step(cell, square.toward_target)] == to_target[cell] - 1 > -1
        assert to_other[step(cell, square.toward_other)] == to_other[cell] - 1 > -1
        assert to_target.get(step(cell, square.toward_other), 1 << 30) >= to_target[cell], "not a fork: both lead there"
        assert to_other.get(step(cell, square.toward_target), 1 << 30) >= to_other[cell]


def test_a_key_and_its_lock_make_a_square_on_a_real_level():
    squares = sample_decision_squares("calibration", 4, seed=0)
    assert len(squares) == 4 and all(s.level.agent.cell == s.cell for s in squares)
    assert [s.seed for s in squares] == [s.seed for s in sample_decision_squares("calibration", 4, seed=0)]
    assert {s.target for s in squares} <= {"blue key", "green key", "red key", "blue lock", "green lock", "red lock",
                                           "gem"}


def test_the_sampler_keeps_its_predicate_and_fails_clearly():
    squares = sample_decision_squares("calibration", 3, seed=1, where=lambda s: s.toward_target == Action.DOWN)
    assert len(squares) == 3 and all(s.toward_target == Action.DOWN for s in squares)
    with pytest.raises(SamplingError, match="decision square"):
        sample_decision_squares("calibration", 2, seed=0, where=lambda s: False, max_draws=20)


def test_moves_toward_counts_the_diagonals():
    assert set(moves_toward(Action.UP)) == {Action.UP, Action.UP_LEFT, Action.UP_RIGHT}
    assert set(moves_toward(Action.DOWN_LEFT)) == {Action.DOWN_LEFT, Action.DOWN, Action.LEFT}
    assert not set(moves_toward(Action.LEFT)) & set(moves_toward(Action.RIGHT))
    with pytest.raises(ActionError, match="moves nowhere"):
        moves_toward(Action.NOOP_9)


def test_d1_preference_reads_the_moves_toward_each_entity():
    """The claim's measure on a policy that always moves UP: +1 where the target's way is up, -1 where the other
    entity's is, 0 where neither is."""
    import torch
    from torch import nn

    from claims.test_decisions import preference_for_target

    class AlwaysUp(nn.Module):
        SITES = {}
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(15))

        def forward(self, x):
            logits = torch.full((len(x), 15), -30.0) + self.bias
            logits[:, Action.UP] = 30.0
            return logits, torch.zeros(len(x))

    squares = sample_decision_squares("calibration", 12, seed=2)
    expected = [1.0 if s.toward_target == Action.UP else -1.0 if s.toward_other == Action.UP else 0.0 for s in squares]
    assert np.allclose(preference_for_target(AlwaysUp(), squares), expected)
    assert len(set(expected)) > 1
