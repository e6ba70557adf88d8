"""Decision squares: the agent placed where the shortest paths to two entities part.

In the maze "go up" channel study (``../shared/seeds/``, the goal-misgeneralisation post) a *decision square* is
a cell where one direction leads to the cheese and another to the top-right corner; the Heist goal-selection
project asks the same of Heist's entities: standing where the way to the current target and the way to another
entity (a key, a lock, the gem) part, which way does the agent go?

For each other entity reachable from the agent, :func:`harness.heist.oracle.decision_cells` gives the last cell
the two shortest paths share.  :func:`decision_squares` moves the agent there (the ``move_agent`` edit; keys held
and doors stay as they are, so the current target is unchanged) and keeps the square when the fork is clean: from
that cell the first step toward the target and the first step toward the other entity differ, and neither step
is also a shortest step toward the other entity (so "toward the target" and "toward the other" are two distinct,
unambiguous directions).  :func:`sample_decision_squares` draws exactly n of them, one per level, from a named
seed range.  :func:`moves_toward` lists the actions, diagonals included, that move along a direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from harness.errors import ActionError, SamplingError
from harness.heist.actions import Action
from harness.heist.levels import HeistLevel
from harness.heist.oracle import MOVES, current_target, decision_cells, distances_from, guide, shortest_path
from harness.heist.sampling import sample_levels

Cell = tuple[int, int]


@dataclass(frozen=True, kw_only=True)
class DecisionSquare:
    """The agent on a cell where the shortest ways to the current target and to another entity part.

    ``level`` is the level with the agent moved to ``cell``; ``target`` and ``other`` name the two entities as
    rollouts do ("gem", "blue key", "red lock"); ``toward_target`` and ``toward_other`` are the first steps (cardinal
    actions) of the shortest paths from ``cell`` to each.
    """

    level: HeistLevel
    cell: Cell
    target: str
    other: str
    toward_target: Action
    toward_other: Action

    @property
    def seed(self) -> int:
        return self.level.current_level_seed


def moves_toward(action: Action) -> tuple[Action, ...]:
    """The moves with a component along ``action``'s direction: for ``Action.UP``, UP, UP_LEFT and UP_RIGHT; for a
    diagonal, itself and its two cardinal parts.  Use it to sum a policy's probability of moving that way:
    ``probs[:, moves_toward(Action.UP)].sum(1)``."""
    dx, dy = Action(action).vector
    if (dx, dy) == (0, 0):
        raise ActionError(f"{Action(action).name} moves nowhere; pass a move such as Action.UP")
    return tuple(a for a in Action if a.vector[0] * dx + a.vector[1] * dy > 0)


def decision_squares(level: HeistLevel) -> list[DecisionSquare]:
    """Every clean decision square of ``level`` (one per other entity at most, in the order of
    :func:`~harness.heist.oracle.decision_cells`: keys, locks, gem); empty without a reachable target.

    ``squares = decision_squares(level); squares[0].level.agent.cell == squares[0].cell``
    """
    target = current_target(level)
    squares = []
    for other, cell in decision_cells(level).items():
        if level.occupant(cell) not in (None, level.agent):
            continue  # the paths part on an entity's cell: the agent cannot be put there
        moved = level if cell == level.agent.cell else level.move_agent(cell)
        square = _fork(moved, cell, target.name, other, _entity_cell(level, other))
        if square is not None:
            squares.append(square)
    return squares


def sample_decision_squares(seeds: str, n: int, *, seed: int, where: Callable[[DecisionSquare], bool] | None = None,
                            mode: str = "easy", max_draws: int | None = None) -> list[DecisionSquare]:
    """Exactly ``n`` decision squares, one per level, from levels of the named seed range (drawn as
    :func:`~harness.heist.sampling.sample_levels` draws them) that have a square satisfying ``where``; where a level
    has several, one is chosen with a generator seeded by ``seed``.  Raises SamplingError when the draw budget runs
    out first.

    ``squares = sample_decision_squares("confirmation", 64, seed=0, where=lambda s: s.other.endswith("key"))``
    """
    def keep(sq: DecisionSquare) -> bool:
        return where is None or bool(where(sq))

    try:
        levels = sample_levels(seeds, n, seed=seed, mode=mode, max_draws=max_draws,
                               where=lambda lv: any(keep(sq) for sq in decision_squares(lv)))
    except SamplingError as exc:
        raise SamplingError(f"not enough levels with a decision square: {exc}") from None
    rng = np.random.default_rng([seed, n])
    out = []
    for level in levels:
        candidates = [sq for sq in decision_squares(level) if keep(sq)]
        out.append(candidates[int(rng.integers(len(candidates)))])
    return out


def _entity_cell(level: HeistLevel, name: str) -> Cell:
    if name == "gem":
        return level.gem.cell
    colour, kind = name.split()
    return (level.keys if kind == "key" else level.locks)[colour].cell


def _fork(level: HeistLevel, cell: Cell, target: str, other: str, other_cell: Cell) -> DecisionSquare | None:
    """The square at ``cell`` if the first steps toward the target and toward ``other`` differ and neither is a
    shortest step toward the other entity too."""
    guidance = guide(level)
    path = shortest_path(level, cell, other_cell)
    if guidance is None or guidance.target.name != target or path is None or len(path) < 2 or guidance.distance < 1:
        return None
    step_target, step_other = guidance.path[1], path[1]
    if step_target == step_other:
        return None
    to_target, to_other = distances_from(level, guidance.target.cell), distances_from(level, other_cell)
    x, y = cell
    if to_target[step_other[1], step_other[0]] == to_target[y, x] - 1:
        return None  # stepping toward the other entity is also a shortest way to the target
    if to_other[step_target[1], step_target[0]] == to_other[y, x] - 1:
        return None
    return DecisionSquare(level=level, cell=cell, target=target, other=other,
                          toward_target=_action(cell, step_target), toward_other=_action(cell, step_other))


def _action(cell: Cell, step: Cell) -> Action:
    direction = next(d for d, v in MOVES.items() if v == (step[0] - cell[0], step[1] - cell[1]))
    return Action.toward(direction)
