"""Heist's engine state as bytes: the layout, a bounds-checked reader, section packers and the checks on raw fields.

The layout is the table of ``docs/heist-state.md`` section 2.  :func:`read_state` parses what
``env.callmethod("get_state")`` returns into raw field values; the ``PACKERS`` write each section back exactly;
:func:`check_state` refuses what the engine would abort on (its own checks kill the process) or loop on.  The level
model, :mod:`harness.heist.levels`, gives these fields their meaning.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from harness.errors import LevelFormatError
from harness.heist.entities import AGENT, COLOURS, ENTITY_RECORD, GEM, KEY, KEY_ON_RING, LOCK, TYPE_NAMES

WALL, FLOOR = 51, 100
END_MARKER = 0xCAFECAFE
_IMAGE_TYPES = {AGENT: AGENT, LOCK: LOCK, KEY: KEY, GEM: GEM, KEY_ON_RING: KEY}  # what the engine draws each type as
_BACKGROUNDS = 9  # topdown_backgrounds in procgen's resources.cpp
_MAX_WORLD = 64
_MAX_ENTITIES = 256
_MAX_STRING = 1 << 16
_INT = struct.Struct("<i")


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

SECTIONS = (
    ("head", frozenset({"version", "game_name", "options", "grid_step", "level_seed_low", "level_seed_high",
                        "game_type", "game_n", "level_seed_rng", "rng"})),
    ("step", frozenset(_RUNS["after_rngs"][1])),
    ("entities", frozenset({"entities"})),
    ("world", frozenset({*_RUNS["after_entities"][1], "asset_rng", *_RUNS["after_asset_rng"][1]})),
    ("grid", frozenset({"grid_w", "grid_h", "cells"})),
    ("keys", frozenset({"num_keys", "world_dim", "has_keys"})),
)
"""The serialised state as consecutive sections and the fields each is packed from: an edit re-packs only the
sections whose fields it changed."""
SECTION_NAMES = tuple(name for name, _ in SECTIONS)
STATE_FIELDS = frozenset().union(*(fields for _, fields in SECTIONS))


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

    def random_state(self, what: str) -> RandomState:
        return RandomState(is_seeded=self.int(what), text=self.string(what))


def read_state(data: bytes) -> tuple[dict[str, Any], dict[str, memoryview]]:
    """The raw fields of engine state bytes (``entities`` as one tuple of record values each) and each of
    :data:`SECTIONS` as a view of ``data``.  Raises LevelFormatError naming what does not fit the layout; the
    values themselves are checked by :func:`check_state`."""
    r = _Reader(data)
    ends = []  # where each section ends
    f: dict[str, Any] = {"version": r.int("serialize version"), "game_name": r.string("game name")}
    after_name = r.unpack(_RUNS["after_name"][0], "options and seed fields")
    f["options"] = after_name[:_OPTION_COUNT]
    f.update(zip(_RUNS["after_name"][1][1:], after_name[_OPTION_COUNT:]))
    f["level_seed_rng"], f["rng"] = r.random_state("level seed rng"), r.random_state("rng")
    ends.append(r.pos)
    f.update(zip(_RUNS["after_rngs"][1], r.unpack(_RUNS["after_rngs"][0], "step data")))
    ends.append(r.pos)
    size = r.count("entity count", _MAX_ENTITIES) * ENTITY_RECORD.size
    start = r.take(size, "entities")
    f["entities"] = tuple(ENTITY_RECORD.iter_unpack(data[start:start + size]))
    ends.append(r.pos)
    f.update(zip(_RUNS["after_entities"][1], r.unpack(_RUNS["after_entities"][0], "background and motion")))
    f["asset_rng"] = r.random_state("asset rng")
    f.update(zip(_RUNS["after_asset_rng"][1], r.unpack(_RUNS["after_asset_rng"][0], "world size")))
    ends.append(r.pos)
    f["grid_w"], f["grid_h"] = r.int("grid width"), r.int("grid height")
    f["cells"] = r.ints(r.count("grid cell count", _MAX_WORLD * _MAX_WORLD), "grid cells")
    ends.append(r.pos)
    f["num_keys"], f["world_dim"] = r.int("num_keys"), r.int("world_dim")
    f["has_keys"] = r.ints(r.count("has_keys count", len(COLOURS)), "has_keys")
    if (marker := r.unpack(struct.Struct("<I"), "end marker")[0]) != END_MARKER:
        raise LevelFormatError(f"end marker is {marker:#x}, expected {END_MARKER:#x}: not a complete engine state")
    if r.pos != len(data):
        raise LevelFormatError(f"{len(data) - r.pos} unexpected bytes after the end marker")
    ends.append(len(data))
    view = memoryview(data)  # sections share the buffer: no copy
    return f, {name: view[a:b] for name, a, b in zip(SECTION_NAMES, [0, *ends], ends)}


# ------------------------------------------------------------------------------------------------ packing
# Each packer takes an object with the state's field names as attributes (a HeistLevel); entities need ``packed()``.

def _string(value: bytes) -> bytes:
    return _INT.pack(len(value)) + value


def _rng(state: RandomState) -> bytes:
    return _INT.pack(state.is_seeded) + _string(state.text)


def _run(name: str, state) -> bytes:
    fmt, names = _RUNS[name]
    return fmt.pack(*(getattr(state, n) for n in names))


def _pack_head(s) -> bytes:
    return b"".join((_INT.pack(s.version), _string(s.game_name), _RUNS["after_name"][0].pack(
        *s.options, *(getattr(s, n) for n in _RUNS["after_name"][1][1:])), _rng(s.level_seed_rng), _rng(s.rng)))


def _pack_entities(s) -> bytes:
    return b"".join((_INT.pack(len(s.entities)), *(e.packed() for e in s.entities)))


def _pack_grid(s) -> bytes:
    return struct.pack(f"<3i{len(s.cells)}i", s.grid_w, s.grid_h, len(s.cells), *s.cells)


def _pack_keys(s) -> bytes:
    return struct.pack(f"<3i{len(s.has_keys)}iI", s.num_keys, s.world_dim, len(s.has_keys), *s.has_keys, END_MARKER)


PACKERS: dict[str, Callable[[Any], bytes]] = {
    "head": _pack_head,
    "step": lambda s: _run("after_rngs", s),
    "entities": _pack_entities,
    "world": lambda s: _run("after_entities", s) + _rng(s.asset_rng) + _run("after_asset_rng", s),
    "grid": _pack_grid,
    "keys": _pack_keys,
}
ENTITY_OFFSET = _INT.size
"""Where the first entity record starts inside the ``entities`` section (after the count)."""


# ------------------------------------------------------------------------------------------------ checks
def check_state(s, sections: Iterable[str], checked: Iterable[Any] = ()) -> None:
    """Raise LevelFormatError for anything in the named sections of ``s`` (or read with them) that the engine would
    abort on or misbehave with silently; the entities in ``checked`` (the same objects, already checked against the
    same has_keys) are skipped."""
    sections = set(sections)
    if not sections.isdisjoint(("head", "step")):
        _check_header(s)
    if not sections.isdisjoint(("step", "world", "grid", "keys")):
        _check_sizes(s)
    if "world" in sections:
        _check_world(s)
    if "grid" in sections and (bad := set(s.cells) - {WALL, FLOOR}):
        raise LevelFormatError(f"grid holds cell values {sorted(bad)}; heist grids hold only {WALL} and {FLOOR}")
    if "keys" in sections and (len(s.has_keys) > len(COLOURS) or any(v not in (0, 1) for v in s.has_keys)):
        raise LevelFormatError(f"has_keys {s.has_keys} must hold at most 3 flags of 0 or 1")
    if not sections.isdisjoint(("entities", "keys")):
        if not any(e.type == AGENT for e in s.entities):
            raise LevelFormatError("level has no agent entity (type 0); the engine would abort")
        if len(s.entities) > _MAX_ENTITIES:
            raise LevelFormatError(f"level has {len(s.entities)} entities; the engine reads at most {_MAX_ENTITIES}")
        trusted = set(map(id, checked))
        for e in s.entities:
            if id(e) not in trusted:
                check_entity(e, len(s.has_keys))


def _check_header(s) -> None:
    if s.version != 0:
        raise LevelFormatError(f"serialize version is {s.version}, expected 0")
    if s.game_name != b"heist":
        raise LevelFormatError(f"game name is {s.game_name!r}, expected b'heist'")
    if len(s.options) != _OPTION_COUNT:
        raise LevelFormatError(f"{len(s.options)} options, expected {_OPTION_COUNT}")
    flags = s.options[:7] + s.options[8:]
    if s.options[1] != 0 or any(v not in (0, 1) for v in flags) or s.options[7] not in (0, 1, 10):
        raise LevelFormatError(f"options {s.options}: flags must be 0 or 1, use_generated_assets 0 (the engine "
                               "asserts it) and distribution_mode 0, 1 or 10")
    if s.is_waiting_for_step != 0:
        raise LevelFormatError("is_waiting_for_step is set: the engine would wait forever for a step no thread runs")
    if not (s.level_seed_rng.is_seeded and s.rng.is_seeded and s.level_seed_low < s.level_seed_high):
        raise LevelFormatError(
            f"level seed range [{s.level_seed_low}, {s.level_seed_high}) must be non-empty and both level "
            "random generators seeded: the engine divides by the range and asserts seeding on the next step")


def _check_sizes(s) -> None:
    w, h = s.grid_w, s.grid_h
    if not (0 < w <= _MAX_WORLD and 0 < h <= _MAX_WORLD) or w * h != len(s.cells) or w * h != s.grid_size:
        raise LevelFormatError(
            f"inconsistent grid: {w}x{h}, {len(s.cells)} cells, grid_size {s.grid_size}; all must agree")
    if w != h or w != s.world_dim or (s.main_width, s.main_height) != (w, h):
        raise LevelFormatError(f"grid {w}x{h} does not match world_dim {s.world_dim} and main size "
                               f"{s.main_width}x{s.main_height}; the engine draws over the main size")


def _check_world(s) -> None:
    if s.out_of_bounds_object != WALL:
        raise LevelFormatError(f"out_of_bounds_object is {s.out_of_bounds_object}, expected {WALL} (wall)")
    if not (0 <= s.background_index < _BACKGROUNDS and s.use_procgen_background == 0):
        raise LevelFormatError(
            f"background_index {s.background_index} (use_procgen_background {s.use_procgen_background}): "
            f"heist has {_BACKGROUNDS} fixed floor images; another index crashes the engine")
    if not (0 <= s.bg_tile_ratio <= _MAX_WORLD and 0 <= s.min_visibility <= s.visibility <= _MAX_WORLD
            and 0 <= s.mixrate <= 1 and 0 <= s.maxspeed <= 1):
        raise LevelFormatError(
            f"bg_tile_ratio {s.bg_tile_ratio}, visibility {s.visibility} (min {s.min_visibility}), mixrate "
            f"{s.mixrate}, maxspeed {s.maxspeed}: non-finite or out of range; they bound the engine's "
            "drawing and movement loops")


def check_entity(e, colours: int) -> None:
    """Raise LevelFormatError if the engine would crash on entity ``e`` of a level with ``colours`` has_keys flags."""
    if _IMAGE_TYPES.get(e.type) != e.image_type:
        raise LevelFormatError(
            f"entity of type {e.type} drawn as image {e.image_type}; heist entities are (type: image) "
            f"{_IMAGE_TYPES}, other images crash the engine's asset lookup")
    if e.type in (LOCK, KEY, KEY_ON_RING) and not 0 <= e.image_theme < colours:
        raise LevelFormatError(
            f"{TYPE_NAMES[e.type]} of colour index {e.image_theme} but has_keys has {colours} "
            "entries; the engine indexes has_keys by colour without a bounds check")
    if e.type in (AGENT, GEM) and e.image_theme != 0:
        raise LevelFormatError(f"{TYPE_NAMES[e.type]} has image_theme {e.image_theme}; its image has only theme 0")
    if not (-_MAX_WORLD <= e.x <= _MAX_WORLD and -_MAX_WORLD <= e.y <= _MAX_WORLD and -1 <= e.vx <= 1
            and -1 <= e.vy <= 1 and 0 <= e.rx <= 1 and 0 <= e.ry <= 1 and -1 <= e.friction <= 1
            and -_MAX_WORLD <= e.rotation <= _MAX_WORLD):
        raise LevelFormatError(
            f"{TYPE_NAMES[e.type]} at ({e.x}, {e.y}), velocity ({e.vx}, {e.vy}), half-size ({e.rx}, {e.ry}), "
            f"friction {e.friction}, grow rate {e.grow_rate}, rotation {e.rotation}: non-finite or out of "
            "range; the engine's collision loops grow with speed and size")
    _check_survives_play(e)


EPISODE_STEPS = 1000
"""The engine's episode length: the bound on how far a per-step change can carry a field within one episode."""


def _check_survives_play(e) -> None:
    """Fields that parse but make the engine emit, within an episode, a state the harness must refuse (measured:
    each of these failed a few steps into a rollout): the agent erased (``will_erase``) or expiring
    (``expire_time`` > 0) leaves a level without an agent; a negative ``grow_rate`` multiplies the half-size
    negative on the first step; ``vrot`` turns the entity past the rotation bound within an episode."""
    if e.type == AGENT and (e.will_erase != 0 or e.expire_time > 0):
        raise LevelFormatError(
            f"agent has will_erase {e.will_erase}, expire_time {e.expire_time}: the engine would erase it during "
            "the episode, leaving a level without an agent; use will_erase 0 and expire_time -1")
    if not 0 <= e.grow_rate <= 1:
        raise LevelFormatError(f"{TYPE_NAMES[e.type]} has grow_rate {e.grow_rate}: the engine multiplies its "
                               "half-size by it every step, so it must lie in [0, 1]")
    if abs(e.rotation) + EPISODE_STEPS * abs(e.vrot) > _MAX_WORLD:
        raise LevelFormatError(
            f"{TYPE_NAMES[e.type]} has rotation {e.rotation} and vrot {e.vrot}: within {EPISODE_STEPS} steps it "
            f"would turn past ±{_MAX_WORLD}; heist entities do not turn (vrot 0)")
