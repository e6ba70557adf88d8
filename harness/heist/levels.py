"""Heist levels as data: a parsed engine state, viewed and edited.

``HeistLevel.from_bytes(state)`` parses what ``env.callmethod("get_state")`` returns; ``level.to_bytes()``
writes it back byte-identically (the byte layout and its checks are :mod:`harness.heist.codec`).  Every field of
the engine state is kept (random-generator states and render caches included), so an unedited level round-trips
exactly and an edited one differs only where it was edited.

Coordinates, used everywhere in the harness: a cell is ``(x, y)`` in world units with **y pointing up**
(y = 0 is the bottom row of the image).  ``level.walls`` is a boolean array indexed ``walls[y, x]``, the same
row-major order as the engine's grid (index ``y * w + x``); its row 0 is the *bottom* of the picture.
``level.text()`` prints the top row first, as the image shows it (``docs/heist-state.md`` section 4).

Edits return a new level and check what they need (on a floor cell inside the maze, no overlap with another
entity).  Validation runs on every parse and before every serialisation: a malformed buffer raises
:class:`~harness.errors.LevelFormatError` instead of reaching the engine, whose own checks abort the process.

Everything a level derives from its fields (its serialised sections and bytes, maze bounds, occupants) is kept in
one per-level dict, each value under a name declared in ``_INPUTS`` with the fields it is computed from; ``replace``
carries over exactly the values whose inputs it leaves unchanged, so no derived value can outlive its inputs.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from harness.errors import LevelEditError, LevelFormatError
from harness.heist.codec import (ENTITY_OFFSET, FLOOR, PACKERS, SECTION_NAMES, SECTIONS, STATE_FIELDS, WALL,
                                 RandomState, check_entity, check_state, read_state)
from harness.heist.edits import LevelEdits
from harness.heist.entities import (AGENT, COLOURS, ENTITY_FIELDS, ENTITY_RECORD, GEM, KEY, KEY_ON_RING, LEVEL_TYPES,
                                    LOCK, Entity)

__all__ = ["AGENT", "COLOURS", "FLOOR", "GEM", "KEY", "KEY_ON_RING", "LOCK", "WALL", "Entity", "HeistLevel",
           "RandomState"]

_INPUTS: dict[str, frozenset[str]] = {
    **dict(SECTIONS),  # each section's packed bytes, checked against the rest of the level
    "bytes": STATE_FIELDS,
    "checked_entities": frozenset({"has_keys"}),  # entities known to pass check_entity with this many colours
    "maze_bounds": frozenset({"cells", "grid_w", "grid_h"}),
    "occupants": frozenset({"entities"}),
}
"""Every value a level derives from its fields, by name, with the fields it depends on."""


class _Splice(NamedTuple):
    """A packed section given as another one (``base``) with the entity record at ``start`` replaced by ``entity``'s.
    It stays a recipe until serialised (only the entities section is ever one), so that a batch of one-off moves
    allocates no copy of the section."""

    base: bytes | memoryview | _Splice
    start: int
    entity: Entity


def _pieces(section: bytes | memoryview | _Splice) -> tuple[bytes | memoryview, ...]:
    """Buffers whose concatenation is ``section``."""
    if type(section) is not _Splice:
        return (section,)
    base = memoryview(b"".join(_pieces(section.base)) if isinstance(section.base, _Splice) else section.base)
    end = section.start + ENTITY_RECORD.size
    return (base[:section.start], section.entity.packed(), base[end:])


_ENTITIES = SECTION_NAMES.index("entities")
_SECTIONS_OF = operator.itemgetter(*SECTION_NAMES)


@functools.lru_cache(maxsize=None)
def _derived_from(fields: frozenset[str]) -> tuple[str, ...]:
    """The derived values that read any of ``fields``: what a change of them leaves stale."""
    return tuple(name for name, inputs in _INPUTS.items() if not inputs.isdisjoint(fields))


def _derived_value(compute: Callable[["HeistLevel"], object]) -> property:
    """A read-only property computed once per level and kept among its derived values (see ``_INPUTS``)."""
    name = compute.__name__.lstrip("_")
    assert name in _INPUTS, f"declare the inputs of derived value {name!r} in _INPUTS"

    def get(self: "HeistLevel"):
        derived = self._derived
        if name not in derived:
            derived[name] = compute(self)
        return derived[name]

    return property(get, doc=compute.__doc__)


@dataclass(frozen=True, kw_only=True, eq=False)
class HeistLevel(LevelEdits):
    """A parsed Heist engine state.  Immutable: edits return new levels.  Fields follow the engine's order."""

    version: int
    game_name: bytes
    options: tuple[int, ...]
    grid_step: int
    level_seed_low: int
    level_seed_high: int
    game_type: int
    game_n: int
    level_seed_rng: RandomState
    rng: RandomState
    reward: float
    done: int
    level_complete: int
    action: int
    timeout: int
    current_level_seed: int
    prev_level_seed: int
    episodes_remaining: int
    episode_done: int
    last_reward_timer: int
    last_reward: float
    default_action: int
    fixed_asset_seed: int
    cur_time: int
    is_waiting_for_step: int
    grid_size: int
    entities: tuple[Entity, ...]
    use_procgen_background: int
    background_index: int
    bg_tile_ratio: float
    bg_pct_x: float
    char_dim: float
    last_move_action: int
    move_action: int
    special_action: int
    mixrate: float
    maxspeed: float
    max_jump: float
    action_vx: float
    action_vy: float
    action_vrot: float
    center_x: float
    center_y: float
    random_agent_start: int
    has_useful_vel_info: int
    step_rand_int: int
    asset_rng: RandomState
    main_width: int
    main_height: int
    out_of_bounds_object: int
    unit: float
    view_dim: float
    x_off: float
    y_off: float
    visibility: float
    min_visibility: float
    grid_w: int
    grid_h: int
    cells: tuple[int, ...]
    num_keys: int
    world_dim: int
    has_keys: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_derived", {})

    # ----------------------------------------------------------------------------------------- bytes
    @classmethod
    def from_bytes(cls, data: bytes) -> "HeistLevel":
        """Parse engine state bytes; raise LevelFormatError naming the problem if they are not a valid level."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise LevelFormatError(f"expected the bytes of one engine state, got {type(data).__name__}")
        data = bytes(data)
        fields, sections = read_state(data)
        fields["entities"] = tuple(Entity(**dict(zip(ENTITY_FIELDS, values))) for values in fields["entities"])
        level = cls(**fields)
        level.validate()
        level._derived.update(sections, bytes=data, checked_entities=level.entities)  # unedited levels serialise free
        return level

    def to_bytes(self, *, keep: bool = True) -> bytes:
        """Serialise exactly as the engine does.  Validates first, so the engine never sees a bad state.

        A level made by an edit re-packs and re-validates only the sections the edit changed (the rest comes from
        the level it was edited from, and a move of one entity rewrites that entity's record alone); any other
        level is packed and validated whole.  The bytes (about 20 kB) and sections are kept on the level unless
        ``keep`` is False, which is how :func:`harness.heist.engine.render` serialises: a batch of one-off edits
        then holds no copies, and each buffer is freed before the next is made (keeping them costs page faults,
        measured)."""
        derived = self._derived
        if (data := derived.get("bytes")) is not None:
            return data
        try:
            sections = _SECTIONS_OF(derived)
        except KeyError:  # validate what changed, then pack it
            check_state(self, [name for name in SECTION_NAMES if name not in derived],
                        checked=derived.get("checked_entities", ()))
            sections = [derived[name] if name in derived else PACKERS[name](self) for name in SECTION_NAMES]
        data = b"".join((*sections[:_ENTITIES], *_pieces(sections[_ENTITIES]), *sections[_ENTITIES + 1:]))
        if keep:
            derived.update(zip(SECTION_NAMES, sections), bytes=data, checked_entities=self.entities)
        return data

    def replace(self, **changes) -> "HeistLevel":
        """A copy with ``changes`` (raw fields, checked when serialised): what every edit returns.  Unlike
        ``dataclasses.replace`` it skips the 60-field ``__init__`` and keeps the derived values (see ``_INPUTS``)
        that the changes leave valid, so that the copy's ``to_bytes`` re-packs and re-validates only the sections
        the changes touch (this is what lets edited levels render near the engine's own speed; see
        bench/bench_render.py)."""
        if not STATE_FIELDS >= changes.keys():
            raise LevelEditError(f"levels have no field(s) {sorted(changes.keys() - STATE_FIELDS)}")
        copy = object.__new__(HeistLevel)
        state = self.__dict__.copy()
        state.update(changes)
        state["_derived"] = derived = self._derived.copy()
        for name in _derived_from(frozenset(changes)):
            derived.pop(name, None)
        object.__setattr__(copy, "__dict__", state)
        return copy

    def _with_entity_replaced(self, old: Entity, new: Entity) -> "HeistLevel":
        """The level with entity ``old`` (by identity) replaced by ``new``: what every move returns.  When this
        level's entities section is packed and ``new`` keeps the type, the copy's section is that one with one
        record overwritten (a :class:`_Splice`), so a move packs 124 bytes and copies nothing until serialised."""
        entities = list(self.entities)
        for index, e in enumerate(entities):
            if e is old:
                break
        entities[index] = new
        level = self.replace(entities=tuple(entities))
        if (section := self._derived.get("entities")) is not None and new.type == old.type:
            check_entity(new, len(self.has_keys))
            level._derived["entities"] = _Splice(section, ENTITY_OFFSET + index * ENTITY_RECORD.size, new)
        return level

    def validate(self) -> None:
        """Raise LevelFormatError if the engine would abort on this level or misbehave silently."""
        check_state(self, SECTION_NAMES)

    # ----------------------------------------------------------------------------------------- view
    @property
    def walls(self) -> np.ndarray:
        """Boolean (h, w) array, ``walls[y, x]`` with y up (row 0 is the bottom of the image)."""
        return np.asarray(self.cells, dtype=np.int32).reshape(self.grid_h, self.grid_w) == WALL

    def is_wall(self, cell: tuple[int, int]) -> bool:
        """Whether a cell is a wall; outside the grid counts as wall."""
        x, y = cell
        return not (0 <= x < self.grid_w and 0 <= y < self.grid_h) or self.cells[y * self.grid_w + x] == WALL

    @property
    def agent(self) -> Entity:
        """The agent: the engine takes the last type-0 entity."""
        return next(e for e in reversed(self.entities) if e.type == AGENT)

    @property
    def gem(self) -> Entity | None:
        return next((e for e in self.entities if e.type == GEM), None)

    @property
    def keys(self) -> dict[str, Entity]:
        """Keys still lying in the level, by colour."""
        return {e.colour: e for e in self.entities if e.type == KEY}

    @property
    def locks(self) -> dict[str, Entity]:
        """Locked doors still closed, by colour."""
        return {e.colour: e for e in self.entities if e.type == LOCK}

    @property
    def held_keys(self) -> frozenset[str]:
        return frozenset(COLOURS[i] for i, held in enumerate(self.has_keys) if held)

    @property
    def colours(self) -> tuple[str, ...]:
        """Colours in play (keys, locks or held keys), in collection order."""
        present = {e.colour for e in self.entities if e.type in (KEY, LOCK)} | self.held_keys
        return tuple(c for c in COLOURS if c in present)

    @_derived_value
    def maze_bounds(self) -> tuple[int, int, int, int]:
        """(x_min, y_min, x_max, y_max), inclusive, of the floor cells."""
        ys, xs = np.nonzero(~self.walls)
        return (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))

    @property
    def distribution_mode(self) -> str:
        return {0: "easy", 1: "hard", 10: "memory"}.get(self.options[7], str(self.options[7]))

    def occupant(self, cell: tuple[int, int]) -> Entity | None:
        """The level entity (agent, key, lock, gem) whose centre lies in ``cell``, if any."""
        return self._occupants.get(cell)

    @_derived_value
    def _occupants(self) -> dict[tuple[int, int], Entity]:
        """Level entities by cell, the first in entity order where several share one (edits check many cells of
        the same level)."""
        occupants: dict[tuple[int, int], Entity] = {}
        for e in self.entities:
            if e.type in LEVEL_TYPES:
                occupants.setdefault(e.cell, e)
        return occupants

    def text(self) -> str:
        """A text picture, top row first: ``#`` wall, ``.`` floor, ``A`` agent, ``*`` gem, ``b g r`` keys,
        ``B G R`` locks; a last line lists held keys."""
        rows = [["#" if wall else "." for wall in row] for row in self.walls]
        for e in self.entities:
            if e.type in LEVEL_TYPES:
                x, y = e.cell
                if 0 <= x < self.grid_w and 0 <= y < self.grid_h:
                    rows[y][x] = _SYMBOLS[e.type] if e.type in (AGENT, GEM) else (
                        e.colour[0].upper() if e.type == LOCK else e.colour[0])
        lines = ["".join(r) for r in reversed(rows)]
        return "\n".join(lines + [f"held: {', '.join(sorted(self.held_keys)) or 'none'}"])

    def __repr__(self) -> str:
        return f"HeistLevel(seed={self.current_level_seed}, {self.distribution_mode}, t={self.cur_time})\n{self.text()}"

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """Hypothesis prints falsifying levels as the short repr, not field by field (about 50 kB)."""
        printer.text(repr(self))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HeistLevel) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __reduce__(self):
        """Pickled as its state bytes (validated again when loaded)."""
        return HeistLevel.from_bytes, (bytes(self.to_bytes()),)


_SYMBOLS = {AGENT: "A", GEM: "*"}
