"""Counterfactual pair families: a level and the same level with one edit, named, with the oracle's change.

A :class:`Pair` holds ``base`` and ``edited`` levels, the family that made it (``factor``), the edit in words
(``edit``, e.g. "wall cleared at (5, 3)", a caption and an edit path), the cells the edit touched, and what the
oracle (:func:`harness.heist.oracle.guide`) says before and after: the current target and the first step.

Each family is a function ``level, rng=None -> Pair | None``.  It lists every valid edit of its kind on the level,
nearest first (to the agent for walls, to the moved entity for moves), and returns the first without ``rng``, else
``rng.integers(len(candidates))``-th; ``None`` when the level has none.  The same functions feed
:func:`sample_pairs` (seeded, exactly ``n``, from a named seed range) and the hypothesis strategy
:func:`harness.heist.strategies.pairs`, which shrinks toward the nearest edit on the lowest seed.  Families by
name, in :data:`FAMILIES`:

- ``wall_flip_first_step`` (``_on_line``): one wall added or cleared so that the first step changes while the
  current target stays the same (on the straight line between the agent's and the target's cell centres);
- ``wall_flip_same_step_on_line`` / ``_off_line``: one wall flipped on (off) that line, target and first step
  unchanged: a wall between the agent and its target that the path does not need;
- ``gem_moved``, ``key_moved``, ``agent_moved``: the entity on another free floor cell;
- ``key_removed``, ``lock_removed``: one key or lock gone (the target may change or become unreachable);
- ``distractor_key``: a key of a colour with neither lock nor key in the level, on an empty cell off the oracle's
  whole route to the gem; target and first step unchanged;
- ``euclidean_closer`` / ``path_closer``: the current target (gem or key) moved so that its straight-line distance
  to the agent shrinks while its path distance grows, or the other way round; the target stays the same entity.

Distances are between cell centres (entities sit at offsets inside their cells).  Example::

    pair = wall_flip_first_step(level)            # nearest such wall, or None
    pair.edit, pair.step_before, pair.step_after  # ("wall cleared at (4, 5)", "left", "up")
    pairs = sample_pairs("distractor_key", "selection", 64, seed=0, where=lambda p: p.target_before == "gem")
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from harness.errors import LevelEditError, SamplingError
from harness.heist.levels import COLOURS, Entity, HeistLevel
from harness.heist.oracle import MOVES, Guidance, distances_from, guide
from harness.heist.sampling import sample_levels

Cell = tuple[int, int]


class Chooser(Protocol):
    """What a family draws its candidate with: a numpy ``Generator``, or hypothesis's ``draw`` in the strategy."""

    def integers(self, high: int) -> int: ...


@dataclass(frozen=True, kw_only=True)
class Pair:
    """Two levels differing by one edit, and the oracle's current target and first step on each (None: no reachable
    target, or the agent on it).  Build with :meth:`between`, which reads the oracle."""

    factor: str
    edit: str
    base: HeistLevel
    edited: HeistLevel
    cells: tuple[Cell, ...]
    target_before: str | None
    target_after: str | None
    step_before: str | None
    step_after: str | None

    @classmethod
    def between(cls, factor: str, edit: str, base: HeistLevel, edited: HeistLevel,
                cells: tuple[Cell, ...] = ()) -> "Pair":
        """The pair with the oracle's view of both levels, e.g.
        ``Pair.between("gem_moved", "gem (3, 4) -> (4, 4)", level, level.move_gem((4, 4)), ((3, 4), (4, 4)))``."""
        return _make(factor, edit, base, edited, cells, guide(base), guide(edited))

    @property
    def step_changed(self) -> bool:
        """Whether the oracle's first step differs between the two levels."""
        return self.step_before != self.step_after


def _make(factor: str, edit: str, base: HeistLevel, edited: HeistLevel, cells: tuple[Cell, ...],
          before: Guidance | None, after: Guidance | None) -> Pair:
    """The pair, given the oracle's guidance on each level (computed once by families that build many pairs)."""
    return Pair(factor=factor, edit=edit, base=base, edited=edited, cells=tuple(cells),
                target_before=None if before is None else before.target.name,
                target_after=None if after is None else after.target.name,
                step_before=None if before is None else before.first_step,
                step_after=None if after is None else after.first_step)


def cells_near(level: HeistLevel, origin: Cell, ok: Callable[[Cell], bool]) -> list[Cell]:
    """Cells inside the maze bounds satisfying ``ok``, nearest to ``origin`` first (Manhattan; ties: bottom row, left
    first), e.g. ``cells_near(level, level.agent.cell, level.is_wall)``."""
    x0, y0, x1, y1 = level.maze_bounds
    cells = [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1) if ok((x, y))]
    return sorted(cells, key=lambda c: (abs(c[0] - origin[0]) + abs(c[1] - origin[1]), c[1], c[0]))


def on_segment(a: Cell, b: Cell, cell: Cell) -> bool:
    """Whether the straight segment between the centres of cells ``a`` and ``b`` passes through the inside of
    ``cell`` (touching a corner does not count): ``on_segment((0, 0), (2, 2), (1, 1))`` is True."""
    (ax, ay), (bx, by) = (a[0] + 0.5, a[1] + 0.5), (b[0] + 0.5, b[1] + 0.5)
    low, high = 0.0, 1.0
    for start, delta, lo in ((ax, bx - ax, cell[0]), (ay, by - ay, cell[1])):
        if delta == 0:
            if not lo < start < lo + 1:
                return False
            continue
        t0, t1 = sorted(((lo - start) / delta, (lo + 1 - start) / delta))
        low, high = max(low, t0), min(high, t1)
    return low < high


def _pick(options: list, rng: Chooser | None) -> Pair | None:
    """The first option, or one chosen by ``rng``; options that are functions are called only when chosen."""
    if not options:
        return None
    chosen = options[0] if rng is None else options[int(rng.integers(len(options)))]
    return chosen() if callable(chosen) else chosen


def _line_name(on_line: bool | None) -> str:
    return {None: "", True: "_on_line", False: "_off_line"}[on_line]


# ----------------------------------------------------------------------------------------------------- walls
def _wall_flips(level: HeistLevel, factor: str, on_line: bool | None, step_changes: bool) -> list:
    """The one-cell wall flips inside the maze (nearest the agent first) that keep the current target and a path
    to it, and change the first step (``step_changes``) or leave it and the gem's reachability as they were: walls
    cleared; empty floor cells walled, off the oracle's route to the gem when the step must stay.  The oracle is
    run on the edited level only where the edit can change the path: a wall cleared where a path through it would
    be no longer than the current one, or added on the current path.  Any other flip provably leaves the target,
    path and first step as they were; those pairs are built only when chosen."""
    g = guide(level)
    if g is None or g.first_step is None:
        return []
    agent, target, distance = level.agent.cell, g.target.cell, g.distance
    via = _nearest_neighbour(distances_from(level, agent)) + 2 + _nearest_neighbour(distances_from(level, target))
    shortcut = (via <= distance).tolist()  # [y][x]: a path through this cell would be no longer than the current
    route = None if step_changes else route_cells(level)

    def flip(cell: Cell, after: Guidance | None) -> Pair:
        edit, edited = (f"wall cleared at {cell}", level.clear_wall(cell)) if level.is_wall(cell) \
            else (f"wall added at {cell}", level.add_wall(cell))
        return _make(factor, edit, level, edited, (cell,), g, guide(edited) if after is None else after)

    out: list = []
    for cell in cells_near(level, agent, lambda c: level.is_wall(c) or level.occupant(c) is None):
        if on_line is not None and on_segment(agent, target, cell) != on_line:
            continue
        if level.is_wall(cell):
            may_change = shortcut[cell[1]][cell[0]]
        else:
            may_change = cell in g.path
            if not step_changes and (route is None or cell in route):
                continue
        if not may_change:
            if not step_changes:
                out.append(lambda cell=cell: flip(cell, g))
            continue
        pair = flip(cell, None)
        if pair.target_after == g.target.name and pair.step_after is not None and pair.step_changed == step_changes:
            out.append(pair)
    return out


def _nearest_neighbour(dist: np.ndarray) -> np.ndarray:
    """``[y, x]``: the smallest distance among a cell's reachable 4-neighbours (a large number if none)."""
    far = 1 << 20
    padded = np.pad(np.where(dist >= 0, dist, far), 1, constant_values=far)
    h, w = dist.shape
    return np.min([padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dx, dy in MOVES.values()], axis=0)


def wall_flip_first_step(level: HeistLevel, rng: Chooser | None = None, *, on_line: bool | None = None) -> Pair | None:
    """One wall added or cleared so that the oracle's first step changes and the current target stays the same
    (both steps defined).  ``on_line=True``: the cell lies on the straight line between the centres of the agent's
    and the target's cells (:func:`on_segment`); False: off it.
    ``wall_flip_first_step(level, np.random.default_rng(0), on_line=True)``."""
    return _pick(_wall_flips(level, f"wall_flip_first_step{_line_name(on_line)}", on_line, True), rng)


def wall_flip_same_step(level: HeistLevel, rng: Chooser | None = None, *, on_line: bool | None = None) -> Pair | None:
    """One wall added or cleared that leaves the current target and the first step as they were, and the gem
    reachable (a wall the route does not need); ``on_line`` as in :func:`wall_flip_first_step`.
    ``wall_flip_same_step(level, on_line=True)``."""
    return _pick(_wall_flips(level, f"wall_flip_same_step{_line_name(on_line)}", on_line, False), rng)


# ----------------------------------------------------------------------------------------------------- entities
def free_cells(level: HeistLevel, moving: Entity) -> list[Cell]:
    """Floor cells, other than its own, where ``moving`` may go (no other entity there), nearest first:
    ``free_cells(level, level.gem)``."""
    return cells_near(level, moving.cell, lambda c: c != moving.cell and not level.is_wall(c)
                      and level.occupant(c) in (None, moving))


def _moves(level: HeistLevel, factor: str, what: str, entity: Entity, move: Callable[[Cell], HeistLevel],
           cells: list[Cell] | None = None) -> list[Callable[[], Pair]]:
    """The pairs moving ``entity`` to each of ``cells`` (default: every free cell), unbuilt."""
    return [lambda cell=cell: Pair.between(factor, f"{what} {entity.cell} -> {cell}", level, move(cell),
                                           (entity.cell, cell))
            for cell in (free_cells(level, entity) if cells is None else cells)]


def gem_moved(level: HeistLevel, rng: Chooser | None = None) -> Pair | None:
    """The gem on another free floor cell: ``gem_moved(level, np.random.default_rng(0))``."""
    return None if level.gem is None else _pick(_moves(level, "gem_moved", "gem", level.gem, level.move_gem), rng)


def key_moved(level: HeistLevel, rng: Chooser | None = None) -> Pair | None:
    """One key (any colour) on another free floor cell: ``key_moved(level)``."""
    return _pick([p for colour in sorted(level.keys, key=COLOURS.index)
                  for p in _moves(level, "key_moved", f"{colour} key", level.keys[colour],
                                  lambda cell, c=colour: level.move_key(c, cell))], rng)


def agent_moved(level: HeistLevel, rng: Chooser | None = None) -> Pair | None:
    """The agent, at rest, on another free floor cell: ``agent_moved(level)``."""
    return _pick(_moves(level, "agent_moved", "agent", level.agent, level.move_agent), rng)


def key_removed(level: HeistLevel, rng: Chooser | None = None) -> Pair | None:
    """One key removed from the level (its lock may then never open): ``key_removed(level)``."""
    return _pick([lambda c=c, e=e: Pair.between("key_removed", f"{c} key at {e.cell} removed", level,
                                                level.remove_key(c), (e.cell,))
                  for c, e in sorted(level.keys.items(), key=lambda ce: COLOURS.index(ce[0]))], rng)


def lock_removed(level: HeistLevel, rng: Chooser | None = None) -> Pair | None:
    """One lock (a closed door) removed: ``lock_removed(level)``."""
    return _pick([lambda c=c, e=e: Pair.between("lock_removed", f"{c} lock at {e.cell} removed", level,
                                                level.remove_lock(c), (e.cell,))
                  for c, e in sorted(level.locks.items(), key=lambda ce: COLOURS.index(ce[0]))], rng)


def route_cells(level: HeistLevel) -> frozenset[Cell] | None:
    """Every cell of the oracle's route from the agent through each key and lock to the gem (the agent picks up
    each key and opens each lock on the way); None if the gem cannot be reached: ``route_cells(level)``."""
    cells: set[Cell] = set()
    for _ in range(2 * len(COLOURS) + 1):
        g = guide(level)
        if g is None:
            return None
        cells.update(g.path)
        target = g.target
        if target.kind == "gem":
            return frozenset(cells)
        level = level.remove_key(target.colour).give_key(target.colour) if target.kind == "key" \
            else level.remove_lock(target.colour)
        level = level.move_agent(target.cell)
    return None


def distractor_key(level: HeistLevel, rng: Chooser | None = None) -> Pair | None:
    """A key the level does not need (the first colour with neither lock nor key in the level) on an empty floor
    cell off the oracle's whole route to the gem.  A key of a colour without a lock is never a target and never
    blocks, so the target and the path stay as they were.  None when every colour is in use or the gem is
    unreachable.  ``distractor_key(level, np.random.default_rng(1))``."""
    colour = next((c for c in COLOURS if c not in level.locks and c not in level.keys), None)
    route = route_cells(level)
    if colour is None or route is None:
        return None
    cells = cells_near(level, level.agent.cell,
                       lambda c: c not in route and not level.is_wall(c) and level.occupant(c) is None)
    return _pick([lambda c=c: Pair.between("distractor_key", f"{colour} key added at {c}", level,
                                           level.add_key(colour, c), (c,)) for c in cells], rng)


def euclidean_vs_path(level: HeistLevel, rng: Chooser | None = None, *, closer: str = "euclidean") -> Pair | None:
    """The current target (a gem or key; None for a lock) moved to a free cell where, from the agent's cell, its
    Euclidean distance is smaller and its path distance larger (``closer="euclidean"``), or the reverse
    (``closer="path"``).  It stays the current target (keys and the gem never block, and the target follows colour
    order, not position).  ``euclidean_vs_path(level, closer="path")``."""
    if closer not in ("euclidean", "path"):
        raise LevelEditError(f"closer must be 'euclidean' or 'path', got {closer!r}")
    g = guide(level)
    if g is None or g.target.kind == "lock" or g.distance == 0:
        return None
    target, agent = g.target, level.agent.cell
    paths = distances_from(level, agent)  # moving a key or the gem leaves every path distance as it was
    sign = 1 if closer == "euclidean" else -1

    def wanted(cell: Cell) -> bool:
        d_path = int(paths[cell[1], cell[0]])
        return d_path > 0 and sign * (math.dist(agent, cell) - math.dist(agent, target.cell)) < 0 \
            and sign * (d_path - g.distance) > 0

    move = level.move_gem if target.kind == "gem" else lambda cell: level.move_key(target.colour, cell)
    cells = [c for c in free_cells(level, target.entity) if wanted(c)]
    return _pick(_moves(level, f"{closer}_closer", target.name, target.entity, move, cells), rng)


def gem_moved_pair(level: HeistLevel, first: str, second: str) -> tuple[HeistLevel, HeistLevel] | None:
    """The level twice, with the gem moved to the nearest free cells from which the agent's shortest path to
    it starts ``first`` and ``second`` respectively (only for levels whose current target is the gem); None if
    no such cells exist.  Everything else is the same level.  ``up, down = gem_moved_pair(level, "up", "down")``."""
    g = guide(level)
    if g is None or g.target.kind != "gem":
        return None
    moved = []
    for direction in (first, second):
        candidate = _nearest_gem_cell(level, direction)
        if candidate is None:
            return None
        moved.append(level.move_gem(candidate))
    return moved[0], moved[1]


def _nearest_gem_cell(level: HeistLevel, direction: str) -> Cell | None:
    agent, gem = level.agent.cell, level.gem
    cells = [(x, y) for y in range(level.grid_h) for x in range(level.grid_w)
             if not level.is_wall((x, y)) and (level.occupant((x, y)) in (None, gem)) and (x, y) != agent]
    cells.sort(key=lambda c: (abs(c[0] - agent[0]) + abs(c[1] - agent[1]), c))
    for cell in cells:
        g = guide(level.move_gem(cell))
        if g is not None and g.first_step == direction:
            return cell
    return None


def render_pairs(pairs: list[Pair], *, hires: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The base and the edited frames of ``pairs`` (64x64 as the agent sees them, or 512x512 with ``hires``), from
    one render call: ``base_frames, edited_frames = render_pairs(pairs)``."""
    from harness.heist.engine import render, render_hires  # the engine is imported only when drawing

    if not pairs or not all(isinstance(p, Pair) for p in pairs):
        raise SamplingError(f"render_pairs needs a non-empty list of Pair, got {type(pairs).__name__} "
                            f"of {len(pairs) if hasattr(pairs, '__len__') else '?'}")
    frames = (render_hires if hires else render)([p.base for p in pairs] + [p.edited for p in pairs])
    return frames[:len(pairs)], frames[len(pairs):]


Family = Callable[..., "Pair | None"]
FAMILIES: dict[str, Family] = {
    "wall_flip_first_step": wall_flip_first_step,
    "wall_flip_first_step_on_line": lambda level, rng=None: wall_flip_first_step(level, rng, on_line=True),
    "wall_flip_same_step_on_line": lambda level, rng=None: wall_flip_same_step(level, rng, on_line=True),
    "wall_flip_same_step_off_line": lambda level, rng=None: wall_flip_same_step(level, rng, on_line=False),
    "gem_moved": gem_moved, "key_moved": key_moved, "agent_moved": agent_moved,
    "key_removed": key_removed, "lock_removed": lock_removed, "distractor_key": distractor_key,
    "euclidean_closer": lambda level, rng=None: euclidean_vs_path(level, rng, closer="euclidean"),
    "path_closer": lambda level, rng=None: euclidean_vs_path(level, rng, closer="path"),
}
"""Each family by the name its pairs carry in ``factor``: a function ``level, rng=None -> Pair | None``."""


def family(name: str) -> Family:
    """The family called ``name`` (see :data:`FAMILIES`); raises SamplingError listing the names.
    ``family("distractor_key")(level, np.random.default_rng(0))``."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise SamplingError(f"unknown pair family {name!r}; families are {sorted(FAMILIES)}") from None


def sample_pairs(name: str, seeds: str, n: int, *, seed: int, where: Callable[[Pair], bool] | None = None,
                 mode: str = "easy", max_draws: int | None = None) -> list[Pair]:
    """Exactly ``n`` pairs of the family ``name`` on levels drawn from the seed range ``seeds`` (as
    :func:`harness.heist.sampling.sample_levels` draws them, ``max_draws`` default ``50 * n``), keeping those
    ``where`` accepts.  Each level's candidate is chosen by a generator seeded with ``seed`` and the level's engine
    seed, so the sample is the same on every run.  Raises SamplingError naming the family when the draws run out.
    ``sample_pairs("wall_flip_first_step", "selection", 128, seed=0, where=lambda p: p.step_after == "up")``."""
    make = family(name)
    kept: list[Pair] = []

    def keep(level: HeistLevel) -> bool:
        pair = make(level, np.random.default_rng([seed, level.current_level_seed]))
        if pair is None or (where is not None and not where(pair)):
            return False
        kept.append(pair)
        return True

    try:
        sample_levels(seeds, n, seed=seed, where=keep, mode=mode, max_draws=max_draws)
    except SamplingError as exc:
        raise SamplingError(f"pair family {name!r}: {exc}") from None
    return kept
