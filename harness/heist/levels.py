"""Heist levels as data: the engine's state bytes parsed exactly, validated, viewed and edited.

``HeistLevel.from_bytes(state)`` parses what ``env.callmethod("get_state")`` returns; ``level.to_bytes()``
writes it back byte-identically.  Every field of the engine state is kept (random-generator states and render
caches included), so an unedited level round-trips exactly and an edited one differs only where it was edited.

Coordinates, used everywhere in the harness: a cell is ``(x, y)`` in world units with **y pointing up**
(y = 0 is the bottom row of the image).  ``level.walls`` is a boolean array indexed ``walls[y, x]``, the same
row-major order as the engine's grid (index ``y * w + x``); its row 0 is the *bottom* of the picture.
``level.text()`` prints the top row first, as the image shows it.

Edits return a new level and check what they need (on a floor cell inside the maze, no overlap with another
entity).  Validation runs on every parse and before every serialisation: a malformed buffer raises
:class:`~harness.errors.LevelFormatError` instead of reaching the engine, whose own checks abort the process.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import struct
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from harness.errors import LevelEditError, LevelFormatError

AGENT, LOCK, KEY, GEM, KEY_ON_RING = 0, 1, 2, 9, 11
WALL, FLOOR = 51, 100
COLOURS = ("blue", "green", "red")
END_MARKER = 0xCAFECAFE
_ENTITY_STRUCT = struct.Struct("<6f6i3f6if3i6f")
_MAX_ENTITIES = 256
_MAX_STRING = 1 << 16
_MAX_WORLD = 64


@dataclass(frozen=True, kw_only=True)
class Entity:
    """One engine entity record (124 bytes).  ``(x, y)`` is the centre of its box in cells, y up."""

    x: float
    y: float
    vx: float
    vy: float
    rx: float
    ry: float
    type: int
    image_type: int
    image_theme: int
    render_z: int
    will_erase: int
    collides_with_entities: int
    collision_margin: float
    rotation: float
    vrot: float
    is_reflected: int
    fire_time: int
    spawn_time: int
    life_time: int
    expire_time: int
    use_abs_coords: int
    friction: float
    smart_step: int
    avoids_collisions: int
    auto_erase: int
    alpha: float
    health: float
    theta: float
    grow_rate: float
    alpha_decay: float
    climber_spawn_x: float

    @property
    def cell(self) -> tuple[int, int]:
        """The cell holding the entity's centre."""
        return (math.floor(self.x), math.floor(self.y))

    @property
    def colour(self) -> str:
        """Colour name of a key, lock or HUD icon (``image_theme`` 0, 1, 2)."""
        return COLOURS[self.image_theme]

    def moved_to(self, cell: tuple[int, int]) -> "Entity":
        """The entity moved to ``cell``, keeping its offset inside the cell, at rest."""
        fx, fy = self.x - math.floor(self.x), self.y - math.floor(self.y)
        return self.replace(x=cell[0] + fx, y=cell[1] + fy, vx=0.0, vy=0.0)

    def replace(self, **changes) -> "Entity":
        """A copy with ``changes`` (field names only), as ``dataclasses.replace`` but five times faster: edits sit on
        the rendering hot path."""
        if not _ENTITY_FIELD_SET.issuperset(changes):
            raise LevelEditError(f"entities have no field(s) {sorted(changes.keys() - _ENTITY_FIELD_SET)}")
        copy = object.__new__(Entity)
        state = self.__dict__.copy()
        state.pop("_packed", None)
        state.update(changes)
        object.__setattr__(copy, "__dict__", state)
        return copy

    def packed(self) -> bytes:
        """The engine's 124-byte record of this entity (cached: entities are immutable)."""
        if (data := self.__dict__.get("_packed")) is None:
            data = _ENTITY_STRUCT.pack(*_entity_values(self))
            object.__setattr__(self, "_packed", data)
        return data


_ENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(Entity))
_ENTITY_FIELD_SET = frozenset(_ENTITY_FIELDS)
_entity_values = operator.attrgetter(*_ENTITY_FIELDS)


@dataclass(frozen=True, kw_only=True)
class RandomState:
    """A serialised ``std::mt19937``: whether it was seeded and its text form (624 words and an index)."""

    is_seeded: int
    text: bytes


# Runs of fixed-size scalars, in file order, between the variable-length parts.
_RUNS = {
    "after_name": (struct.Struct("<12i5i"), (
        "options", "grid_step", "level_seed_low", "level_seed_high", "game_type", "game_n")),
    "after_rngs": (struct.Struct("<fii7if4ii"), (
        "reward", "done", "level_complete", "action", "timeout", "current_level_seed", "prev_level_seed",
        "episodes_remaining", "episode_done", "last_reward_timer", "last_reward", "default_action",
        "fixed_asset_seed", "cur_time", "is_waiting_for_step", "grid_size")),
    "after_entities": (struct.Struct("<2i3f3i8f3i"), (
        "use_procgen_background", "background_index", "bg_tile_ratio", "bg_pct_x", "char_dim",
        "last_move_action", "move_action", "special_action", "mixrate", "maxspeed", "max_jump", "action_vx",
        "action_vy", "action_vrot", "center_x", "center_y", "random_agent_start", "has_useful_vel_info",
        "step_rand_int")),
    "after_asset_rng": (struct.Struct("<3i6f"), (
        "main_width", "main_height", "out_of_bounds_object", "unit", "view_dim", "x_off", "y_off", "visibility",
        "min_visibility")),
}
_OPTION_COUNT = 12

# The serialised state as consecutive sections and the fields each is packed from.  An edit re-packs only the
# sections whose fields it changed.
_SECTIONS = (
    ("head", frozenset({"version", "game_name", "options", "grid_step", "level_seed_low", "level_seed_high",
                        "game_type", "game_n", "level_seed_rng", "rng"})),
    ("step", frozenset(_RUNS["after_rngs"][1])),
    ("entities", frozenset({"entities"})),
    ("world", frozenset({*_RUNS["after_entities"][1], "asset_rng", *_RUNS["after_asset_rng"][1]})),
    ("grid", frozenset({"grid_w", "grid_h", "cells"})),
    ("keys", frozenset({"num_keys", "world_dim", "has_keys"})),
)


class _Reader:
    """Bounds-checked little-endian reader that names what it was reading when the buffer runs out."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, size: int, what: str) -> int:
        start = self.pos
        if size < 0 or start + size > len(self.data):
            raise LevelFormatError(
                f"state buffer truncated while reading {what}: needs {size} bytes at offset {start}, "
                f"buffer has {len(self.data)} bytes; pass the bytes exactly as get_state returned them")
        self.pos = start + size
        return start

    def unpack(self, fmt: struct.Struct, what: str) -> tuple:
        return fmt.unpack_from(self.data, self.take(fmt.size, what))

    def int(self, what: str) -> int:
        return self.unpack(_INT, what)[0]

    def count(self, what: str, limit: int) -> int:
        n = self.int(what)
        if not 0 <= n <= limit:
            raise LevelFormatError(f"{what} is {n}, expected 0..{limit}; the buffer is corrupt or not a heist state")
        return n

    def string(self, what: str) -> bytes:
        n = self.count(f"length of {what}", _MAX_STRING)
        start = self.take(n, what)
        return self.data[start:start + n]

    def ints(self, n: int, what: str) -> tuple[int, ...]:
        return struct.unpack_from(f"<{n}i", self.data, self.take(4 * n, what))


_INT = struct.Struct("<i")


@dataclass(frozen=True, kw_only=True, eq=False)
class HeistLevel:
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

    # ----------------------------------------------------------------------------------------- bytes
    @classmethod
    def from_bytes(cls, data: bytes) -> "HeistLevel":
        """Parse engine state bytes; raise LevelFormatError naming the problem if they are not a valid level."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise LevelFormatError(f"expected the bytes of one engine state, got {type(data).__name__}")
        r = _Reader(bytes(data))
        bounds = [0]  # where each of _SECTIONS ends
        f: dict = {"version": r.int("serialize version"), "game_name": r.string("game name")}
        after_name = r.unpack(_RUNS["after_name"][0], "options and seed fields")
        f["options"] = after_name[:_OPTION_COUNT]
        f.update(zip(_RUNS["after_name"][1][1:], after_name[_OPTION_COUNT:]))
        f["level_seed_rng"] = RandomState(is_seeded=r.int("level seed rng"), text=r.string("level seed rng"))
        f["rng"] = RandomState(is_seeded=r.int("rng"), text=r.string("rng"))
        bounds.append(r.pos)
        f.update(zip(_RUNS["after_rngs"][1], r.unpack(_RUNS["after_rngs"][0], "step data")))
        bounds.append(r.pos)
        n_entities = r.count("entity count", _MAX_ENTITIES)
        start = r.take(n_entities * _ENTITY_STRUCT.size, "entities")
        f["entities"] = tuple(
            Entity(**dict(zip(_ENTITY_FIELDS, values)))
            for values in _ENTITY_STRUCT.iter_unpack(r.data[start:start + n_entities * _ENTITY_STRUCT.size]))
        bounds.append(r.pos)
        f.update(zip(_RUNS["after_entities"][1], r.unpack(_RUNS["after_entities"][0], "background and motion")))
        f["asset_rng"] = RandomState(is_seeded=r.int("asset rng"), text=r.string("asset rng"))
        f.update(zip(_RUNS["after_asset_rng"][1], r.unpack(_RUNS["after_asset_rng"][0], "world size")))
        bounds.append(r.pos)
        f["grid_w"], f["grid_h"] = r.int("grid width"), r.int("grid height")
        f["cells"] = r.ints(r.count("grid cell count", _MAX_WORLD * _MAX_WORLD), "grid cells")
        bounds.append(r.pos)
        f["num_keys"], f["world_dim"] = r.int("num_keys"), r.int("world_dim")
        f["has_keys"] = r.ints(r.count("has_keys count", len(COLOURS)), "has_keys")
        if (marker := r.unpack(struct.Struct("<I"), "end marker")[0]) != END_MARKER:
            raise LevelFormatError(f"end marker is {marker:#x}, expected {END_MARKER:#x}: not a complete engine state")
        if r.pos != len(r.data):
            raise LevelFormatError(f"{len(r.data) - r.pos} unexpected bytes after the end marker")
        bounds.append(len(r.data))
        level = cls(**f)
        level.validate()
        object.__setattr__(level, "_bytes", r.data)  # unedited levels serialise for free
        view = memoryview(r.data)  # sections share the buffer: no copy
        object.__setattr__(level, "_sections", tuple(view[a:b] for a, b in zip(bounds, bounds[1:])))
        return level

    def to_bytes(self, *, keep: bool = True) -> bytes:
        """Serialise exactly as the engine does.  Validates first, so the engine never sees a bad state.

        A level made by an edit re-packs and re-validates only the sections the edit changed (the rest comes from
        the bytes it was edited from); a move of a serialised level overwrites one entity record of its bytes; any
        other level is packed and validated whole.  The bytes (about 20 kB) are kept on the level unless ``keep`` is
        False, which is how :func:`harness.heist.engine.render` serialises: a batch of one-off edits then holds no
        copies, and each buffer is freed before the next is made (keeping them costs page faults, measured)."""
        if (cached := self.__dict__.get("_bytes")) is not None:
            return cached
        if (patch := self.__dict__.get("_patch")) is not None:
            data = self._patched(*patch)
        else:
            sections = list(self.__dict__.get("_sections") or (None,) * len(_SECTIONS))
            dirty = {name for (name, _), data in zip(_SECTIONS, sections) if data is None}
            self._validate(dirty, trusted=self.__dict__.get("_trusted", _NOTHING_TRUSTED)[1])
            for i, data in enumerate(sections):
                if data is None:
                    sections[i] = _PACKERS[i](self)
            data = b"".join(sections)
            if keep:
                object.__setattr__(self, "_sections", sections)
        if keep:
            object.__setattr__(self, "_bytes", data)
        return data

    def _patched(self, base: bytes, offset: int, entity: Entity) -> bytes:
        """The parent's bytes with one entity record overwritten: the serialisation of a level that differs from
        its (validated) parent in that entity alone, which keeps its type."""
        self._check_entity(entity)
        view = memoryview(base)
        return b"".join((view[:offset], entity.packed(), view[offset + _ENTITY_STRUCT.size:]))

    def _pack_head(self) -> bytes:
        return b"".join((_INT.pack(self.version), _string(self.game_name), _RUNS["after_name"][0].pack(
            *self.options, *(getattr(self, n) for n in _RUNS["after_name"][1][1:])),
            _rng(self.level_seed_rng), _rng(self.rng)))

    def _pack_step(self) -> bytes:
        return _pack_run("after_rngs", self)

    def _pack_entities(self) -> bytes:
        return b"".join((_INT.pack(len(self.entities)), *(e.packed() for e in self.entities)))

    def _pack_world(self) -> bytes:
        return _pack_run("after_entities", self) + _rng(self.asset_rng) + _pack_run("after_asset_rng", self)

    def _pack_grid(self) -> bytes:
        return struct.pack(f"<3i{len(self.cells)}i", self.grid_w, self.grid_h, len(self.cells), *self.cells)

    def _pack_keys(self) -> bytes:
        return struct.pack(f"<3i{len(self.has_keys)}iI", self.num_keys, self.world_dim, len(self.has_keys),
                           *self.has_keys, END_MARKER)

    def replace(self, **changes) -> "HeistLevel":
        """A copy with ``changes`` (raw fields, checked when serialised): what every edit returns.  Unlike
        ``dataclasses.replace`` it skips the 80-field ``__init__`` and remembers this level's serialised sections,
        so that the copy's ``to_bytes`` re-packs and re-validates only the sections the changes touch (this is what
        lets edited levels render near the engine's own speed; see bench/bench_render.py)."""
        if not _SECTION_OF.keys() >= changes.keys():
            raise LevelEditError(f"levels have no field(s) {sorted(changes.keys() - _SECTION_OF.keys())}")
        copy = object.__new__(HeistLevel)
        state = self.__dict__.copy()
        object.__setattr__(copy, "__dict__", state)
        state.pop("_bytes", None)
        state.pop("_patch", None)
        state.pop("_entity_ids", None)
        if "entities" in changes:
            state.pop("_occupants", None)
        if "cells" in changes or "grid_w" in changes or "grid_h" in changes:
            state.pop("maze_bounds", None)
        if (sections := state.get("_sections")) is not None:
            sections = list(sections)
            for field in changes:
                sections[_SECTION_OF[field]] = None
            state["_sections"] = sections
            if "_bytes" in self.__dict__:  # this level was validated: its entities need no second check
                if (trusted := self.__dict__.get("_entity_ids")) is None:  # the tuple keeps the ids valid
                    trusted = (self.entities, frozenset(map(id, self.entities)))
                    object.__setattr__(self, "_entity_ids", trusted)
                state["_trusted"] = trusted
        state.update(changes)
        return copy

    def validate(self) -> None:
        """Raise LevelFormatError if the engine would abort on this level or misbehave silently."""
        self._validate({name for name, _ in _SECTIONS}, trusted=frozenset())

    def _validate(self, sections: set[str], trusted: frozenset[int]) -> None:
        """The checks that read the given sections; entities whose id is in ``trusted`` (checked) are skipped."""
        if not sections.isdisjoint(("head", "step")):
            self._check_header()
        if not sections.isdisjoint(("step", "world", "grid", "keys")):
            self._check_sizes()
        if "world" in sections:
            self._check_world()
        if "grid" in sections and (bad := set(self.cells) - {WALL, FLOOR}):
            raise LevelFormatError(f"grid holds cell values {sorted(bad)}; heist grids hold only {WALL} and {FLOOR}")
        if "keys" in sections and (len(self.has_keys) > len(COLOURS) or any(v not in (0, 1) for v in self.has_keys)):
            raise LevelFormatError(f"has_keys {self.has_keys} must hold at most 3 flags of 0 or 1")
        if not sections.isdisjoint(("entities", "keys")):
            if not any(e.type == AGENT for e in self.entities):
                raise LevelFormatError("level has no agent entity (type 0); the engine would abort")
            known = frozenset() if "keys" in sections else trusted
            for e in self.entities:
                if id(e) not in known:
                    self._check_entity(e)

    def _check_header(self) -> None:
        if self.version != 0:
            raise LevelFormatError(f"serialize version is {self.version}, expected 0")
        if self.game_name != b"heist":
            raise LevelFormatError(f"game name is {self.game_name!r}, expected b'heist'")
        if len(self.options) != _OPTION_COUNT:
            raise LevelFormatError(f"{len(self.options)} options, expected {_OPTION_COUNT}")
        flags = self.options[:7] + self.options[8:]
        if self.options[1] != 0 or any(v not in (0, 1) for v in flags) or self.options[7] not in (0, 1, 10):
            raise LevelFormatError(f"options {self.options}: flags must be 0 or 1, use_generated_assets 0 (the engine "
                                   "asserts it) and distribution_mode 0, 1 or 10")
        if self.is_waiting_for_step != 0:
            raise LevelFormatError("is_waiting_for_step is set: the engine would wait forever for a step no thread runs")
        if not (self.level_seed_rng.is_seeded and self.rng.is_seeded and self.level_seed_low < self.level_seed_high):
            raise LevelFormatError(
                f"level seed range [{self.level_seed_low}, {self.level_seed_high}) must be non-empty and both level "
                "random generators seeded: the engine divides by the range and asserts seeding on the next step")

    def _check_sizes(self) -> None:
        w, h = self.grid_w, self.grid_h
        if not (0 < w <= _MAX_WORLD and 0 < h <= _MAX_WORLD) or w * h != len(self.cells) or w * h != self.grid_size:
            raise LevelFormatError(
                f"inconsistent grid: {w}x{h}, {len(self.cells)} cells, grid_size {self.grid_size}; all must agree")
        if w != h or w != self.world_dim or (self.main_width, self.main_height) != (w, h):
            raise LevelFormatError(f"grid {w}x{h} does not match world_dim {self.world_dim} and main size "
                                   f"{self.main_width}x{self.main_height}; the engine draws over the main size")

    def _check_world(self) -> None:
        if self.out_of_bounds_object != WALL:
            raise LevelFormatError(f"out_of_bounds_object is {self.out_of_bounds_object}, expected {WALL} (wall)")
        if not (0 <= self.background_index < _BACKGROUNDS and self.use_procgen_background == 0):
            raise LevelFormatError(
                f"background_index {self.background_index} (use_procgen_background {self.use_procgen_background}): "
                f"heist has {_BACKGROUNDS} fixed floor images; another index crashes the engine")
        if not (0 <= self.bg_tile_ratio <= _MAX_WORLD and 0 <= self.min_visibility <= self.visibility <= _MAX_WORLD
                and 0 <= self.mixrate <= 1 and 0 <= self.maxspeed <= 1):
            raise LevelFormatError(
                f"bg_tile_ratio {self.bg_tile_ratio}, visibility {self.visibility} (min {self.min_visibility}), mixrate "
                f"{self.mixrate}, maxspeed {self.maxspeed}: non-finite or out of range; they bound the engine's "
                "drawing and movement loops")

    def _check_entity(self, e: Entity) -> None:
        if _IMAGE_TYPES.get(e.type) != e.image_type:
            raise LevelFormatError(
                f"entity of type {e.type} drawn as image {e.image_type}; heist entities are (type: image) "
                f"{_IMAGE_TYPES}, other images crash the engine's asset lookup")
        if e.type in (LOCK, KEY, KEY_ON_RING) and not 0 <= e.image_theme < len(self.has_keys):
            raise LevelFormatError(
                f"{_TYPE_NAMES[e.type]} of colour index {e.image_theme} but has_keys has {len(self.has_keys)} "
                "entries; the engine indexes has_keys by colour without a bounds check")
        if e.type in (AGENT, GEM) and e.image_theme != 0:
            raise LevelFormatError(f"{_TYPE_NAMES[e.type]} has image_theme {e.image_theme}; its image has only theme 0")
        if not (-_MAX_WORLD <= e.x <= _MAX_WORLD and -_MAX_WORLD <= e.y <= _MAX_WORLD and -1 <= e.vx <= 1
                and -1 <= e.vy <= 1 and 0 <= e.rx <= 1 and 0 <= e.ry <= 1 and -1 <= e.friction <= 1
                and -1 <= e.grow_rate <= 1 and -_MAX_WORLD <= e.rotation <= _MAX_WORLD):
            raise LevelFormatError(
                f"{_TYPE_NAMES[e.type]} at ({e.x}, {e.y}), velocity ({e.vx}, {e.vy}), half-size ({e.rx}, {e.ry}), "
                f"friction {e.friction}, grow rate {e.grow_rate}, rotation {e.rotation}: non-finite or out of "
                "range; the engine's collision loops grow with speed and size")

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

    @functools.cached_property
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

    @functools.cached_property
    def _occupants(self) -> dict[tuple[int, int], Entity]:
        """Level entities by cell, the first in entity order where several share one (edits check many cells of
        the same level)."""
        occupants: dict[tuple[int, int], Entity] = {}
        for e in self.entities:
            if e.type in _LEVEL_TYPES:
                occupants.setdefault(e.cell, e)
        return occupants

    def text(self) -> str:
        """A text picture, top row first: ``#`` wall, ``.`` floor, ``A`` agent, ``*`` gem, ``b g r`` keys,
        ``B G R`` locks; a last line lists held keys."""
        rows = [["#" if wall else "." for wall in row] for row in self.walls]
        for e in self.entities:
            if e.type in _LEVEL_TYPES:
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

    # ----------------------------------------------------------------------------------------- edits
    def move_agent(self, cell: tuple[int, int]) -> "HeistLevel":
        """The agent at the centre of ``cell``, at rest."""
        agent = self.agent
        self._check_free(cell, moving=agent)
        return self._with_entity_replaced(agent, agent.replace(x=cell[0] + 0.5, y=cell[1] + 0.5, vx=0.0, vy=0.0))

    def move_gem(self, cell: tuple[int, int]) -> "HeistLevel":
        return self._move(self._require(self.gem, "gem"), cell)

    def move_key(self, colour: str, cell: tuple[int, int]) -> "HeistLevel":
        return self._move(self._require(self.keys.get(_colour(colour)), f"{colour} key"), cell)

    def move_lock(self, colour: str, cell: tuple[int, int]) -> "HeistLevel":
        return self._move(self._require(self.locks.get(_colour(colour)), f"{colour} lock"), cell)

    def remove_gem(self) -> "HeistLevel":
        return self._without(self._require(self.gem, "gem"))

    def remove_key(self, colour: str) -> "HeistLevel":
        return self._without(self._require(self.keys.get(_colour(colour)), f"{colour} key"))

    def remove_lock(self, colour: str) -> "HeistLevel":
        return self._without(self._require(self.locks.get(_colour(colour)), f"{colour} lock"))

    def add_key(self, colour: str, cell: tuple[int, int]) -> "HeistLevel":
        """A key of ``colour`` in ``cell`` (centred), with has_keys and the HUD icon extended if needed."""
        colour = _colour(colour)
        if colour in self.keys:
            raise LevelEditError(f"level already has a {colour} key at {self.keys[colour].cell}; move it instead")
        self._check_free(cell)
        level = self._with_colour(colour)
        key = _new_entity(KEY, COLOURS.index(colour), cell[0] + 0.5, cell[1] + 0.5, 0.375, _key_ry(0.375))
        return level._with_entities(level._level_entities() + (key,) + level._hud_entities())

    def add_lock(self, colour: str, cell: tuple[int, int]) -> "HeistLevel":
        """A locked door of ``colour`` in ``cell``, with has_keys and the HUD icon extended if needed."""
        colour = _colour(colour)
        if colour in self.locks:
            raise LevelEditError(f"level already has a {colour} lock at {self.locks[colour].cell}; move it instead")
        self._check_free(cell)
        level = self._with_colour(colour)
        lock = _new_entity(LOCK, COLOURS.index(colour), cell[0] + 0.5, cell[1] + 0.5, 0.5, 0.5)
        return level._with_entities(level._level_entities() + (lock,) + level._hud_entities())

    def add_wall(self, cell: tuple[int, int]) -> "HeistLevel":
        """A wall on an empty floor cell inside the maze."""
        self._check_inside(cell)
        if self.is_wall(cell):
            raise LevelEditError(f"cell {cell} is already a wall")
        if (e := self.occupant(cell)) is not None:
            raise LevelEditError(f"cell {cell} holds the {_describe(e)}; a wall there would bury it")
        return self._with_cell(cell, WALL)

    def clear_wall(self, cell: tuple[int, int]) -> "HeistLevel":
        """Floor on a wall cell inside the maze bounds."""
        self._check_inside(cell)
        if not self.is_wall(cell):
            raise LevelEditError(f"cell {cell} is already floor")
        return self._with_cell(cell, FLOOR)

    def give_key(self, colour: str) -> "HeistLevel":
        """The agent holds ``colour``'s key (the HUD shows it); the key entity, if any, stays in the level."""
        return self._set_held(_colour(colour), 1)

    def take_key(self, colour: str) -> "HeistLevel":
        """The agent no longer holds ``colour``'s key."""
        colour = _colour(colour)
        if colour not in self.held_keys:
            raise LevelEditError(f"the agent does not hold the {colour} key (held: {sorted(self.held_keys)})")
        return self._set_held(colour, 0)

    def as_episode_start(self) -> "HeistLevel":
        """The same level with the clock and step data reset, agent at rest, as at the start of an episode."""
        agent = self.agent
        return self._with_entity_replaced(agent, agent.replace(vx=0.0, vy=0.0)).replace(cur_time=0, reward=0.0, done=0, level_complete=0)

    # ----------------------------------------------------------------------------------------- helpers
    def _check_inside(self, cell: tuple[int, int]) -> None:
        x0, y0, x1, y1 = self.maze_bounds
        if not (isinstance(cell, tuple) and len(cell) == 2 and isinstance(cell[0], _INTEGERS)
                and isinstance(cell[1], _INTEGERS)):
            raise LevelEditError(f"a cell is an (x, y) tuple of ints, got {cell!r}")
        if not (x0 <= cell[0] <= x1 and y0 <= cell[1] <= y1):
            raise LevelEditError(f"cell {cell} is outside the maze, which spans x {x0}..{x1}, y {y0}..{y1}")

    def _check_free(self, cell: tuple[int, int], moving: Entity | None = None) -> None:
        self._check_inside(cell)
        if self.is_wall(cell):
            raise LevelEditError(f"cell {cell} is a wall; an entity there can never be reached")
        e = self.occupant(cell)
        if e is not None and e is not moving:
            raise LevelEditError(f"cell {cell} already holds the {_describe(e)}")

    def _require(self, entity: Entity | None, what: str) -> Entity:
        if entity is None:
            raise LevelEditError(f"level has no {what} (it holds: {self._inventory()})")
        return entity

    def _inventory(self) -> str:
        return ", ".join(_describe(e) for e in self.entities if e.type in _LEVEL_TYPES and e.type != AGENT) or "nothing"

    def _move(self, entity: Entity, cell: tuple[int, int]) -> "HeistLevel":
        self._check_free(cell, moving=entity)
        if entity.type == LOCK:
            moved = entity.replace(x=cell[0] + 0.5, y=cell[1] + 0.5)
        else:
            moved = entity.moved_to(cell)
        return self._with_entity_replaced(entity, moved)

    def _with_entity_replaced(self, old: Entity, new: Entity) -> "HeistLevel":
        entities = list(self.entities)
        for index, e in enumerate(entities):
            if e is old:
                break
        entities[index] = new
        level = self.replace(entities=tuple(entities))
        base, sections = self.__dict__.get("_bytes"), self.__dict__.get("_sections")
        if base is not None and new.type == old.type and sections[0] is not None and sections[1] is not None:
            # serialised later by overwriting the one record in this level's bytes (see _patched)
            offset = len(sections[0]) + len(sections[1]) + _INT.size + index * _ENTITY_STRUCT.size
            object.__setattr__(level, "_patch", (base, offset, new))
        return level

    def _without(self, entity: Entity) -> "HeistLevel":
        return self._with_entities(tuple(e for e in self.entities if e is not entity))

    def _with_entities(self, entities: Iterable[Entity]) -> "HeistLevel":
        return self.replace(entities=tuple(entities))

    def _level_entities(self) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities if e.type != KEY_ON_RING)

    def _hud_entities(self) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities if e.type == KEY_ON_RING)

    def _with_cell(self, cell: tuple[int, int], value: int) -> "HeistLevel":
        cells = list(self.cells)
        cells[cell[1] * self.grid_w + cell[0]] = value
        return self.replace(cells=tuple(cells))

    def _with_colour(self, colour: str) -> "HeistLevel":
        """has_keys (and num_keys, HUD icons) extended so that ``colour`` is a valid index."""
        index = COLOURS.index(colour)
        if index < len(self.has_keys):
            return self
        hud = list(self._hud_entities())
        has_keys = list(self.has_keys)
        for i in range(len(has_keys), index + 1):
            has_keys.append(0)
            if not any(e.image_theme == i for e in hud):
                hud.append(_hud_icon(i))
        return self.replace(has_keys=tuple(has_keys), num_keys=max(self.num_keys, index + 1),
                            entities=self._level_entities() + tuple(hud))

    def _set_held(self, colour: str, value: int) -> "HeistLevel":
        level = self._with_colour(colour)
        has_keys = list(level.has_keys)
        has_keys[COLOURS.index(colour)] = value
        return level.replace(has_keys=tuple(has_keys))


_INTEGERS = (int, np.integer)
_NOTHING_TRUSTED = ((), frozenset())
_SECTION_OF = {field: i for i, (_, fields) in enumerate(_SECTIONS) for field in fields}
_PACKERS = tuple(getattr(HeistLevel, f"_pack_{name}") for name, _ in _SECTIONS)
assert _SECTION_OF.keys() == {f.name for f in dataclasses.fields(HeistLevel)}, "every field belongs to one section"
_TYPE_NAMES = {AGENT: "agent", LOCK: "lock", KEY: "key", GEM: "gem", KEY_ON_RING: "HUD key icon"}
_IMAGE_TYPES = {AGENT: AGENT, LOCK: LOCK, KEY: KEY, GEM: GEM, KEY_ON_RING: KEY}  # what the engine draws each type as
_BACKGROUNDS = 9  # topdown_backgrounds in procgen's resources.cpp
_LEVEL_TYPES = (AGENT, LOCK, KEY, GEM)
_SYMBOLS = {AGENT: "A", GEM: "*"}
_KEY_ASPECT = 84 / 52  # width / height of the key image (misc_assets/keyBlue.png), as the engine matches it
_RING_KEY_R = float(np.float32(0.03))  # a C float in the engine, so HUD positions round as they do there


def _colour(colour: str) -> str:
    if colour not in COLOURS:
        raise LevelEditError(f"unknown colour {colour!r}; heist colours are {COLOURS}")
    return colour


def _describe(e: Entity) -> str:
    name = _TYPE_NAMES.get(e.type, f"entity of type {e.type}")
    return f"{e.colour} {name}" if e.type in (KEY, LOCK) else name


def _string(value: bytes) -> bytes:
    return _INT.pack(len(value)) + value


def _rng(state: RandomState) -> bytes:
    return _INT.pack(state.is_seeded) + _string(state.text)


def _pack_run(name: str, level: HeistLevel) -> bytes:
    fmt, names = _RUNS[name]
    return fmt.pack(*(getattr(level, n) for n in names))


# Field values the engine gives a freshly spawned static entity (read off generated levels).
_ENTITY_DEFAULTS = dict(
    x=0.0, y=0.0, vx=0.0, vy=0.0, rx=0.0, ry=0.0, type=0, image_type=0, image_theme=0, render_z=0, will_erase=0,
    collides_with_entities=0, collision_margin=0.0, rotation=0.0, vrot=0.0, is_reflected=0, fire_time=-1,
    spawn_time=-1, life_time=0, expire_time=-1, use_abs_coords=0, friction=1.0, smart_step=0, avoids_collisions=0,
    auto_erase=1, alpha=1.0, health=1.0, theta=-100.0, grow_rate=1.0, alpha_decay=1.0, climber_spawn_x=0.0)


def _new_entity(type_: int, theme: int, x: float, y: float, rx: float, ry: float, **extra) -> Entity:
    """A fresh entity with the engine's defaults for a spawned, static object."""
    return Entity(**{**_ENTITY_DEFAULTS, "x": x, "y": y, "rx": rx, "ry": ry, "type": type_, "image_type": type_,
                     "image_theme": theme, **extra})


def _key_ry(rx: float) -> float:
    """A key's half-height for half-width ``rx``, computed in float32 as the engine's match_aspect_ratio does."""
    return float(np.float32(rx) / np.float32(_KEY_ASPECT))


def _hud_icon(theme: int) -> Entity:
    """The top-right HUD icon the engine adds for each key colour (drawn only while that key is held)."""
    r = _RING_KEY_R
    return _new_entity(KEY_ON_RING, theme, 1 - r * (2 * theme + 1.25), r * 0.75, r, _key_ry(r),
                       image_type=KEY, rotation=math.pi / 2, render_z=1, use_abs_coords=1)
