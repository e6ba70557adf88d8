"""One entity of a Heist level (the agent, a key, a lock, the gem, a HUD key icon) as the engine's 124-byte record.

The record layout is ``docs/heist-state.md`` section 2; what each type means is section 3.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import struct
from dataclasses import dataclass

import numpy as np

from harness.errors import LevelEditError

AGENT, LOCK, KEY, GEM, KEY_ON_RING = 0, 1, 2, 9, 11
LEVEL_TYPES = (AGENT, LOCK, KEY, GEM)
"""The types that sit in the maze (a HUD icon does not)."""
COLOURS = ("blue", "green", "red")
TYPE_NAMES = {AGENT: "agent", LOCK: "lock", KEY: "key", GEM: "gem", KEY_ON_RING: "HUD key icon"}
ENTITY_RECORD = struct.Struct("<6f6i3f6if3i6f")


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
            data = ENTITY_RECORD.pack(*_entity_values(self))
            object.__setattr__(self, "_packed", data)
        return data


ENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(Entity))
"""The fields of a record, in record order."""
_ENTITY_FIELD_SET = frozenset(ENTITY_FIELDS)
_entity_values = operator.attrgetter(*ENTITY_FIELDS)

# Field values the engine gives a freshly spawned static entity (read off generated levels).
_DEFAULTS = dict(
    x=0.0, y=0.0, vx=0.0, vy=0.0, rx=0.0, ry=0.0, type=0, image_type=0, image_theme=0, render_z=0, will_erase=0,
    collides_with_entities=0, collision_margin=0.0, rotation=0.0, vrot=0.0, is_reflected=0, fire_time=-1,
    spawn_time=-1, life_time=0, expire_time=-1, use_abs_coords=0, friction=1.0, smart_step=0, avoids_collisions=0,
    auto_erase=1, alpha=1.0, health=1.0, theta=-100.0, grow_rate=1.0, alpha_decay=1.0, climber_spawn_x=0.0)
_KEY_ASPECT = 84 / 52  # width / height of the key image (misc_assets/keyBlue.png), as the engine matches it
_RING_KEY_R = float(np.float32(0.03))  # a C float in the engine, so HUD positions round as they do there


def new_entity(type_: int, theme: int, x: float, y: float, rx: float, ry: float, **extra) -> Entity:
    """A fresh entity with the engine's defaults for a spawned, static object."""
    return Entity(**{**_DEFAULTS, "x": x, "y": y, "rx": rx, "ry": ry, "type": type_, "image_type": type_,
                     "image_theme": theme, **extra})


def key_ry(rx: float) -> float:
    """A key's half-height for half-width ``rx``, computed in float32 as the engine's match_aspect_ratio does."""
    return float(np.float32(rx) / np.float32(_KEY_ASPECT))


def hud_icon(theme: int) -> Entity:
    """The top-right HUD icon the engine adds for each key colour (drawn only while that key is held)."""
    r = _RING_KEY_R
    return new_entity(KEY_ON_RING, theme, 1 - r * (2 * theme + 1.25), r * 0.75, r, key_ry(r),
                      image_type=KEY, rotation=math.pi / 2, render_z=1, use_abs_coords=1)


def describe(e: Entity) -> str:
    """``"blue key"``, ``"gem"``, ``"agent"``: how messages name an entity."""
    name = TYPE_NAMES.get(e.type, f"entity of type {e.type}")
    return f"{e.colour} {name}" if e.type in (KEY, LOCK) else name
