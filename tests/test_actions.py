"""The ``Action`` enum agrees with the engine: one step of each move, from rest, moves the agent that way (diagonals
included) and the no-ops leave it where it was; the names, vectors and lookups agree with each other."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ActionError
from harness.heist.actions import CARDINAL, DIRECTIONS, Action
from harness.heist.engine import shared_pool
from harness.heist.levels import HeistLevel
from harness.heist.oracle import MOVES
from harness.heist.strategies import pool_level


def open_room() -> HeistLevel:
    """A pool level with the walls around an inner cell cleared and the agent at rest on it: every action has room
    (heist mazes have no open 2x2 block, so diagonals need the edit)."""
    level = pool_level(0)
    x0, y0, x1, y1 = level.maze_bounds
    for centre in ((x, y) for y in range(y0 + 1, y1) for x in range(x0 + 1, x1)):
        block = [(centre[0] + dx, centre[1] + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
        if all(level.occupant(c) in (None, level.agent) for c in block):
            for cell in block:
                if level.is_wall(cell):
                    level = level.clear_wall(cell)
            return level.move_agent(centre)
    raise AssertionError("pool level 0 has no inner cell free of entities around it")


def test_each_action_moves_the_agent_in_the_engine_as_its_vector_says():
    actions, start = list(Action), open_room()
    episodes = shared_pool("easy").episodes([start] * len(actions))
    episodes.step(np.array(actions, dtype=np.int32))
    for action, after in zip(actions, episodes.states()):
        moved = (after.agent.x - start.agent.x, after.agent.y - start.agent.y)
        assert tuple(int(np.sign(round(d, 6))) for d in moved) == action.vector, (action.name, moved)


def test_names_vectors_and_lookups_agree():
    assert [a.direction for a in CARDINAL] == list(MOVES) == ["up", "down", "left", "right"]
    assert [a.vector for a in CARDINAL] == list(MOVES.values())
    assert {a.direction: int(a) for a in CARDINAL} == {"up": 5, "down": 3, "left": 1, "right": 7}
    assert len(DIRECTIONS) == 8 and Action.toward("up-left") is Action.UP_LEFT
    assert all(Action.toward(a.direction) is a and Action.of_vector(*a.vector) is a for a in Action if a.is_move)
    assert Action.of_vector(0, 0) is Action.NOOP and not any(a.is_move for a in Action if a >= Action.NOOP_9)


@pytest.mark.parametrize("call", [lambda: Action.toward("north"), lambda: Action.of_vector(2, 0)])
def test_unknown_directions_and_vectors_are_refused_by_name(call):
    with pytest.raises(ActionError, match="north|-1, 0 or 1"):
        call()


def test_the_engine_refuses_actions_outside_the_enum():
    episodes = shared_pool("easy").episodes([pool_level(0)])
    with pytest.raises(ActionError, match="0..14"):
        episodes.step(np.array([len(Action)]))
