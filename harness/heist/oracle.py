"""Ground truth for claims: shortest paths, the current target under Heist's rules, and the way to it.

Paths run over cells ``(x, y)`` (y up, see :mod:`harness.heist.levels`) between 4-neighbours; walls block, and a
closed lock blocks unless the agent holds its key.  Keys and the gem never block.

The current target follows the game's order of colours (blue, green, red): for the first colour whose lock is
still closed, the key if it is not held, else the lock; when no lock is closed, the gem.  A closed lock whose
key is neither held nor lying in the level can never open; then there is no reachable target (``None``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from harness.heist.actions import CARDINAL, Action
from harness.heist.levels import COLOURS, Entity, HeistLevel

Cell = tuple[int, int]
MOVES: dict[str, Cell] = {action.direction: action.vector for action in CARDINAL}
"""The step between 4-neighbours in each direction, in the tie order of every path: up, down, left, right."""
ALIGNMENT_SLACK = 0.2
"""How far off the waypoint the agent may be before the expert corrects diagonally.  The agent (0.75 wide) passes a
1-wide corridor within 0.125 of its centre line and rests exactly 0.125 off it against a wall, so a slack below
0.125 makes labels flicker (64% diagonal moves at 0.1, 8% at 0.2; both solve 192/192 easy levels, measured)."""


@dataclass(frozen=True, kw_only=True)
class Target:
    """What the agent should reach next: ``kind`` is "key", "lock" or "gem"; ``colour`` is None for the gem."""

    kind: str
    colour: str | None
    entity: Entity

    @property
    def cell(self) -> Cell:
        return self.entity.cell

    @property
    def name(self) -> str:
        return self.kind if self.colour is None else f"{self.colour} {self.kind}"


@dataclass(frozen=True, kw_only=True)
class Guidance:
    """The current target and the shortest way to it from the agent's cell (``path`` includes both ends)."""

    target: Target
    path: tuple[Cell, ...]

    @property
    def distance(self) -> int:
        return len(self.path) - 1

    @property
    def first_step(self) -> str | None:
        """"up", "down", "left" or "right" from the agent's cell; None when the agent is on the target's cell."""
        if len(self.path) < 2:
            return None
        (x0, y0), (x1, y1) = self.path[0], self.path[1]
        return next(d for d, (dx, dy) in MOVES.items() if (dx, dy) == (x1 - x0, y1 - y0))


def passable(level: HeistLevel, held: frozenset[str] | None = None) -> np.ndarray:
    """Boolean ``[y, x]`` map of cells a path may enter, given the held keys (default: the level's)."""
    held = level.held_keys if held is None else held
    free = ~level.walls
    for colour, lock in level.locks.items():
        if colour not in held:
            x, y = lock.cell
            free[y, x] = False
    return free


def distances_from(level: HeistLevel, start: Cell, held: frozenset[str] | None = None) -> np.ndarray:
    """BFS distance ``[y, x]`` from ``start`` to every cell (-1 where unreachable)."""
    free = passable(level, held)
    h, w = free.shape
    x, y = start
    if not (0 <= x < w and 0 <= y < h):
        return np.full((h, w), -1, dtype=np.int32)
    open_cells, dist = free.tolist(), [[-1] * w for _ in range(h)]  # lists: numpy scalar indexing is slow here
    dist[y][x] = 0
    queue = deque([start])
    while queue:
        x, y = queue.popleft()
        for dx, dy in MOVES.values():
            nx, ny = x + dx, y + dy
            if 0 <= nx < w and 0 <= ny < h and open_cells[ny][nx] and dist[ny][nx] < 0:
                dist[ny][nx] = dist[y][x] + 1
                queue.append((nx, ny))
    return np.array(dist, dtype=np.int32)


def shortest_path(level: HeistLevel, start: Cell, goal: Cell,
                  held: frozenset[str] | None = None) -> tuple[Cell, ...] | None:
    """A shortest path of cells from ``start`` to ``goal`` inclusive, or None if ``goal`` is unreachable.
    Ties are broken in the fixed order up, down, left, right, so the path is deterministic.  A closed lock may be
    the goal (the path ends on it, as the agent reaching the lock does) but is never passed through; a wall is
    never a goal, e.g. ``shortest_path(level, level.agent.cell, level.locks["blue"].cell)[-1]`` is the lock's cell.
    """
    dist = distances_from(level, goal, held)  # walk downhill from the start towards the goal
    x, y = start
    if not (0 <= y < dist.shape[0] and 0 <= x < dist.shape[1]) or dist[y, x] < 0:
        return None
    if level.is_wall(goal):  # the search starts at the goal even if it cannot be entered
        return None
    h, w = dist.shape
    dist = dist.tolist()
    path = [start]
    while dist[y][x] > 0:
        x, y = next((x + dx, y + dy) for dx, dy in MOVES.values()
                    if 0 <= x + dx < w and 0 <= y + dy < h and dist[y + dy][x + dx] == dist[y][x] - 1)
        path.append((x, y))
    return tuple(path)


def current_target(level: HeistLevel) -> Target | None:
    """The next key, the lock it opens, or the gem, by the rules in the module docstring."""
    keys, locks, held = level.keys, level.locks, level.held_keys
    for colour in COLOURS:
        if colour not in locks:
            continue
        if colour in held:
            return Target(kind="lock", colour=colour, entity=locks[colour])
        if colour in keys:
            return Target(kind="key", colour=colour, entity=keys[colour])
        return None
    gem = level.gem
    return None if gem is None else Target(kind="gem", colour=None, entity=gem)


def guide(level: HeistLevel) -> Guidance | None:
    """The current target and a shortest path to it from the agent, or None if there is none reachable."""
    target = current_target(level)
    if target is None:
        return None
    path = shortest_path(level, level.agent.cell, target.cell)
    return None if path is None else Guidance(target=target, path=path)


STEP_CLASSES = tuple(MOVES)
"""Class indices of :func:`first_steps`: 0 up, 1 down, 2 left, 3 right; 4 means "on the target"."""
ON_TARGET, NO_STEP = 4, -1


def first_steps(level: HeistLevel) -> np.ndarray:
    """The first step toward the current target from every cell, as an int8 ``[y, x]`` map of the world: a class
    of :data:`STEP_CLASSES`, ``ON_TARGET`` on the target's cell, ``NO_STEP`` where the target cannot be reached
    (walls, closed locks, other parts of the maze; everywhere when there is no target).  From the agent's cell it
    agrees with ``guide(level).first_step`` (same tie order)."""
    target = current_target(level)
    steps = np.full(level.walls.shape, NO_STEP, dtype=np.int8)
    if target is None or not passable(level)[target.cell[1], target.cell[0]]:
        return steps
    dist = distances_from(level, target.cell)
    padded = np.pad(dist, 1, constant_values=-1)
    h, w = dist.shape
    steps[dist == 0] = ON_TARGET
    for index, (dx, dy) in enumerate(MOVES.values()):
        neighbour = padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        downhill = (dist > 0) & (neighbour == dist - 1) & (steps == NO_STEP)
        steps[downhill] = index
    return steps


def decision_cells(level: HeistLevel) -> dict[str, Cell]:
    """For each other entity (keys, locks, gem) reachable from the agent, the cell where the shortest path to
    it leaves the shortest path to the current target: the last cell the two paths share."""
    guidance = guide(level)
    if guidance is None:
        return {}
    start = level.agent.cell
    others = [(f"{e.colour} key", e) for e in level.keys.values()] + \
             [(f"{e.colour} lock", e) for e in level.locks.values()]
    if level.gem is not None:
        others.append(("gem", level.gem))
    out = {}
    for name, entity in others:
        if entity is guidance.target.entity:
            continue
        path = shortest_path(level, start, entity.cell)
        if path is None:
            continue
        shared = 0
        while shared < min(len(path), len(guidance.path)) and path[shared] == guidance.path[shared]:
            shared += 1
        out[name] = path[shared - 1]
    return out


def oracle_action(level: HeistLevel) -> Action:
    """An expert action (a move, or NOOP without a reachable target) for the continuous-motion agent: steer toward the centre of the next cell on the
    shortest path (the target entity itself on the last cell), correcting alignment diagonally on the way.

    It reads positions only, never velocities, so the same frame always gets the same action: a network that
    sees one frame (velocity is not drawn in heist) can imitate it exactly.
    """
    guidance = guide(level)
    if guidance is None:
        return Action.NOOP
    agent = level.agent
    if len(guidance.path) >= 2:
        tx, ty = guidance.path[1][0] + 0.5, guidance.path[1][1] + 0.5
    else:
        tx, ty = guidance.target.entity.x, guidance.target.entity.y
    return Action.of_vector(_axis(tx - agent.x), _axis(ty - agent.y))


def _axis(delta: float, slack: float = ALIGNMENT_SLACK) -> int:
    """-1, 0 or 1 along one axis: push toward the waypoint unless already within ``slack`` of it."""
    return 0 if abs(delta) <= slack else int(math.copysign(1, delta))
