"""Hypothesis strategies for Heist levels, edited levels and counterfactual pairs (single-factor pairs, and the pair
families of :mod:`harness.heist.pairs` through :func:`pairs`).

Levels come from a fixed pool of real generated levels: the first :data:`POOL_SIZE` seeds of the ``calibration``
range (see :mod:`harness.heist.sampling`), generated once per process and cached, so examples are cheap and shrink
toward low seeds.  Edits draw their target cell from the candidates sorted by distance from the thing they move
(or from the agent, for walls), so shrinking moves toward the nearest, smallest edit.

The first example of a run creates an engine pool (a few seconds): use these strategies with ``deadline=None``.
Hypothesis hunts for failures and does not sample levels representatively; estimate effects on
:func:`harness.heist.sampling.sample_levels` instead.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from harness.errors import LevelEditError
from harness.heist.levels import AGENT, COLOURS, GEM, KEY, KEY_ON_RING, LOCK, Entity, HeistLevel
from harness.heist.engine import MODES, generate
from harness.heist.pairs import FAMILIES, Pair, cells_near, free_cells
from harness.heist.sampling import seed_range

Cell = tuple[int, int]
SEED_RANGE = "calibration"
POOL_SIZE = 256
_BLOCK = 64  # seeds generated together (one engine batch)


@functools.lru_cache(maxsize=None)
def _block(mode: str, block: int) -> tuple[HeistLevel, ...]:
    start = seed_range(SEED_RANGE).start + block * _BLOCK
    return tuple(generate(range(start, start + _BLOCK), mode=mode))


def pool_level(index: int, mode: str = "easy") -> HeistLevel:
    """The generated level of the ``index``-th seed of the calibration range (cached per process)."""
    if not 0 <= index < POOL_SIZE:
        raise InvalidArgument(f"pool index must be in 0..{POOL_SIZE - 1}, got {index}")
    return _block(mode, index // _BLOCK)[index % _BLOCK]


def _check_modes(modes: tuple[str, ...]) -> None:
    if not modes or any(m not in MODES for m in modes):
        raise InvalidArgument(f"modes must be a non-empty tuple drawn from {MODES}, got {modes!r}")


def levels(*, modes: tuple[str, ...] = ("easy",), pool_size: int = POOL_SIZE) -> st.SearchStrategy[HeistLevel]:
    """Real generated levels from the first ``pool_size`` calibration seeds; shrinks toward seed 0 and ``modes[0]``."""
    _check_modes(modes)
    if not 1 <= pool_size <= POOL_SIZE:
        raise InvalidArgument(f"pool_size must be in 1..{POOL_SIZE}, got {pool_size}")
    return st.tuples(st.integers(0, pool_size - 1), st.sampled_from(modes)).map(lambda im: pool_level(*im))


# ------------------------------------------------------------------------------------------------- cells
def _draw_cell(draw, cells: list[Cell]) -> Cell:
    """One of ``cells``; shrinks toward the first (the nearest)."""
    assume(cells)  # callers check applicability; this only rejects levels left with no room by earlier edits
    return cells[draw(st.integers(0, len(cells) - 1))]


def _empty_floor(level: HeistLevel, cell: Cell) -> bool:
    return not level.is_wall(cell) and level.occupant(cell) is None


# ------------------------------------------------------------------------------------------------- edits
# Each edit draws its arguments and returns (edited level, what was done).
def _move_gem(draw, level):
    cell = _draw_cell(draw, free_cells(level, level.gem))
    return level.move_gem(cell), f"gem {level.gem.cell} -> {cell}"


def _move_key(draw, level):
    colour = draw(st.sampled_from(sorted(level.keys, key=COLOURS.index)))
    cell = _draw_cell(draw, free_cells(level, level.keys[colour]))
    return level.move_key(colour, cell), f"{colour} key {level.keys[colour].cell} -> {cell}"


def _remove_lock(draw, level):
    colour = draw(st.sampled_from(sorted(level.locks, key=COLOURS.index)))
    return level.remove_lock(colour), f"{colour} lock at {level.locks[colour].cell} removed"


def _toggle_wall(draw, level):
    agent = level.agent.cell
    if draw(st.booleans()):
        cell = _draw_cell(draw, cells_near(level, agent, level.is_wall))
        return level.clear_wall(cell), f"wall at {cell} cleared"
    cell = _draw_cell(draw, cells_near(level, agent, lambda c: _empty_floor(level, c)))
    return level.add_wall(cell), f"wall added at {cell}"


def _move_agent(draw, level):
    cell = _draw_cell(draw, free_cells(level, level.agent))
    return level.move_agent(cell), f"agent {level.agent.cell} -> {cell}"


def _toggle_held_key(draw, level):
    colour = draw(st.sampled_from(COLOURS[:len(level.has_keys)]))
    if colour in level.held_keys:
        return level.take_key(colour), f"{colour} key taken"
    return level.give_key(colour), f"{colour} key given"


def _remove_key(draw, level):
    colour = draw(st.sampled_from(sorted(level.keys, key=COLOURS.index)))
    return level.remove_key(colour), f"{colour} key removed"


def _add_colour(draw, level):
    """The next colour's key and lock on empty floor cells near the agent."""
    colour = COLOURS[len(level.has_keys)]
    near = cells_near(level, level.agent.cell, lambda c: _empty_floor(level, c))
    key_cell = _draw_cell(draw, near)
    level = level.add_key(colour, key_cell)
    lock_cell = _draw_cell(draw, [c for c in near if c != key_cell])
    return level.add_lock(colour, lock_cell), f"{colour} key at {key_cell} and lock at {lock_cell} added"


# name: (whether it applies to a level, the edit).  Each factor's edit changes exactly that factor.
_FACTOR_EDITS: dict[str, tuple[Callable[[HeistLevel], bool], Callable]] = {
    "gem_cell": (lambda lv: lv.gem is not None, _move_gem),
    "key_cell": (lambda lv: bool(lv.keys), _move_key),
    "lock": (lambda lv: bool(lv.locks), _remove_lock),
    "wall": (lambda lv: True, _toggle_wall),
    "agent_cell": (lambda lv: True, _move_agent),
    "held_key": (lambda lv: bool(lv.has_keys), _toggle_held_key),
}
FACTORS = tuple(_FACTOR_EDITS)
_EDITS = {**_FACTOR_EDITS,
          "remove_key": (lambda lv: bool(lv.keys), _remove_key),
          "remove_gem": (lambda lv: lv.gem is not None, lambda draw, lv: (lv.remove_gem(), "gem removed")),
          "add_colour": (lambda lv: len(lv.has_keys) < len(COLOURS), _add_colour)}


@st.composite
def edited_levels(draw, *, modes: tuple[str, ...] = ("easy",), max_edits: int = 3) -> HeistLevel:
    """A generated level with 0..``max_edits`` random valid edits (moves, removals, walls, held keys, a new
    colour); shrinks toward fewer and nearer edits on lower seeds."""
    if not 0 <= max_edits <= 10:
        raise InvalidArgument(f"max_edits must be in 0..10, got {max_edits}")
    level = draw(levels(modes=modes))
    for _ in range(draw(st.integers(0, max_edits))):
        applicable = [name for name, (applies, _) in _EDITS.items() if applies(level)]
        level, _ = _EDITS[draw(st.sampled_from(applicable))][1](draw, level)
    return level


# ------------------------------------------------------------------------------------------------- pairs
# Parts of a level (see differing_parts) each factor may change.
_FACTOR_PARTS = {"gem_cell": "gem", "key_cell": "key", "lock": "lock", "wall": "cells", "agent_cell": "agent",
                 "held_key": "has_keys"}


def _entity_part(e: Entity) -> str:
    if e.type in (KEY, LOCK, KEY_ON_RING):
        return f"{e.colour} {'HUD icon' if e.type == KEY_ON_RING else 'key' if e.type == KEY else 'lock'}"
    return {AGENT: "agent", GEM: "gem"}.get(e.type, f"entity type {e.type}")


_SCALAR_FIELDS = tuple(f.name for f in dataclasses.fields(HeistLevel) if f.name != "entities")


def differing_parts(a: HeistLevel, b: HeistLevel) -> frozenset[str]:
    """Where two levels differ: entity parts ("agent", "gem", "blue key", "red lock", "green HUD icon") and the
    names of other differing fields ("cells", "has_keys", "num_keys", "cur_time", ...)."""
    def groups(level: HeistLevel) -> dict[str, list[Entity]]:
        out: dict[str, list[Entity]] = {}
        for e in level.entities:
            out.setdefault(_entity_part(e), []).append(e)
        return out

    ga, gb = groups(a), groups(b)
    parts = {p for p in ga.keys() | gb.keys() if ga.get(p) != gb.get(p)}
    return frozenset(parts | {f for f in _SCALAR_FIELDS if getattr(a, f) != getattr(b, f)})


def check_single_factor(factor: str, base: HeistLevel, edited: HeistLevel) -> None:
    """Raise LevelEditError unless ``edited`` differs from ``base`` in ``factor`` and nothing else."""
    if factor not in FACTORS:
        raise LevelEditError(f"unknown factor {factor!r}; factors are {sorted(FACTORS)}")
    parts = differing_parts(base, edited)
    allowed = _FACTOR_PARTS[factor]
    matching = {p for p in parts if p == allowed or p.endswith(f" {allowed}")}
    if len(matching) != 1 or parts != matching:
        raise LevelEditError(
            f"a {factor} pair must differ in one {allowed!r} part and nothing else; it differs in {sorted(parts)}")
    if factor.endswith("_cell"):
        (part,) = matching
        cells = [next(e.cell for e in lv.entities if _entity_part(e) == part) for lv in (base, edited)]
        if cells[0] == cells[1]:
            raise LevelEditError(f"a {factor} pair must move the {part} to another cell; both have it at {cells[0]}")


@st.composite
def counterfactual_pairs(draw, *, factors: tuple[str, ...] = FACTORS,
                         modes: tuple[str, ...] = ("easy",)) -> Pair:
    """A generated level and the same level with one factor changed (checked with :func:`check_single_factor`):
    the gem or a key moved, a lock removed, a wall added or cleared, the agent moved, a key given or taken."""
    if not factors or any(f not in FACTORS for f in factors):
        raise InvalidArgument(f"factors must be a non-empty tuple drawn from {sorted(FACTORS)}, got {factors!r}")
    factor = draw(st.sampled_from(factors))
    applies, edit = _FACTOR_EDITS[factor]
    base = draw(levels(modes=modes).filter(applies))
    edited, detail = edit(draw, base)
    check_single_factor(factor, base, edited)
    return Pair.between(factor, detail, base, edited)


class _Drawn:
    """Hypothesis's ``draw`` as a family's chooser: ``integers(high)`` draws from 0..high-1, shrinking toward 0 (the
    nearest edit)."""

    def __init__(self, draw) -> None:
        self.draw = draw

    def integers(self, high: int) -> int:
        return self.draw(st.integers(0, high - 1))


def pairs(family: str, *, modes: tuple[str, ...] = ("easy",), pool_size: int = POOL_SIZE) -> st.SearchStrategy[Pair]:
    """Pairs of the named family (:data:`harness.heist.pairs.FAMILIES`) on pooled levels, shrinking toward the
    lowest seed and the nearest edit, so a failing property reports the simplest pair:
    ``@given(pair=pairs("distractor_key"))``.  Levels where the family has no edit are rejected."""
    if family not in FAMILIES:
        raise InvalidArgument(f"unknown pair family {family!r}; families are {sorted(FAMILIES)}")
    make = FAMILIES[family]

    @st.composite
    def draw_pair(draw) -> Pair:
        pair = make(draw(levels(modes=modes, pool_size=pool_size)), _Drawn(draw))
        assume(pair is not None)
        return pair

    return draw_pair()
