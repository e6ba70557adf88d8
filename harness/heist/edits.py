"""The edits of a Heist level, each returning a new level: the counterfactuals claims compare.

:class:`LevelEdits` is a base class of :class:`harness.heist.levels.HeistLevel`, so the edits read as methods
(``level.move_gem(cell)``).  Each checks what it needs (a floor cell inside the maze, no overlap with another
entity) and raises :class:`~harness.errors.LevelEditError` naming what is wrong; the result is built with
``HeistLevel.replace``, so it serialises by re-packing only what the edit changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import numpy as np

from harness.errors import LevelEditError
from harness.heist.codec import FLOOR, WALL
from harness.heist.entities import (AGENT, COLOURS, KEY, KEY_ON_RING, LEVEL_TYPES, LOCK, Entity, describe, hud_icon,
                                    key_ry, new_entity)

if TYPE_CHECKING:
    from harness.heist.levels import HeistLevel

Cell = tuple[int, int]


class LevelEdits:
    """Edits of a :class:`~harness.heist.levels.HeistLevel`, each returning a new level.  They read the level
    through its views (``agent``, ``occupant``, ``maze_bounds``, ...) and build the result with its ``replace`` and
    ``_with_entity_replaced``."""

    def move_agent(self, cell: Cell) -> "HeistLevel":
        """The agent at the centre of ``cell``, at rest."""
        agent = self.agent
        self._check_free(cell, moving=agent)
        return self._with_entity_replaced(agent, agent.replace(x=cell[0] + 0.5, y=cell[1] + 0.5, vx=0.0, vy=0.0))

    def move_gem(self, cell: Cell) -> "HeistLevel":
        return self._move(self._require(self.gem, "gem"), cell)

    def move_key(self, colour: str, cell: Cell) -> "HeistLevel":
        return self._move(self._require(self.keys.get(_colour(colour)), f"{colour} key"), cell)

    def move_lock(self, colour: str, cell: Cell) -> "HeistLevel":
        return self._move(self._require(self.locks.get(_colour(colour)), f"{colour} lock"), cell)

    def remove_gem(self) -> "HeistLevel":
        return self._without(self._require(self.gem, "gem"))

    def remove_key(self, colour: str) -> "HeistLevel":
        return self._without(self._require(self.keys.get(_colour(colour)), f"{colour} key"))

    def remove_lock(self, colour: str) -> "HeistLevel":
        return self._without(self._require(self.locks.get(_colour(colour)), f"{colour} lock"))

    def add_key(self, colour: str, cell: Cell) -> "HeistLevel":
        """A key of ``colour`` in ``cell`` (centred), with has_keys and the HUD icon extended if needed."""
        return self._add(KEY, colour, cell, rx=0.375, ry=key_ry(0.375))

    def add_lock(self, colour: str, cell: Cell) -> "HeistLevel":
        """A locked door of ``colour`` in ``cell``, with has_keys and the HUD icon extended if needed."""
        return self._add(LOCK, colour, cell, rx=0.5, ry=0.5)

    def add_wall(self, cell: Cell) -> "HeistLevel":
        """A wall on an empty floor cell inside the maze."""
        self._check_inside(cell)
        if self.is_wall(cell):
            raise LevelEditError(f"cell {cell} is already a wall")
        if (e := self.occupant(cell)) is not None:
            raise LevelEditError(f"cell {cell} holds the {describe(e)}; a wall there would bury it")
        return self._with_cell(cell, WALL)

    def clear_wall(self, cell: Cell) -> "HeistLevel":
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
        at_rest = self._with_entity_replaced(agent, agent.replace(vx=0.0, vy=0.0))
        return at_rest.replace(cur_time=0, reward=0.0, done=0, level_complete=0)

    # ----------------------------------------------------------------------------------------- helpers
    def _check_inside(self, cell: Cell) -> None:
        x0, y0, x1, y1 = self.maze_bounds
        if not (isinstance(cell, tuple) and len(cell) == 2 and isinstance(cell[0], _INTEGERS)
                and isinstance(cell[1], _INTEGERS)):
            raise LevelEditError(f"a cell is an (x, y) tuple of ints, got {cell!r}")
        if not (x0 <= cell[0] <= x1 and y0 <= cell[1] <= y1):
            raise LevelEditError(f"cell {cell} is outside the maze, which spans x {x0}..{x1}, y {y0}..{y1}")

    def _check_free(self, cell: Cell, moving: Entity | None = None) -> None:
        self._check_inside(cell)
        if self.is_wall(cell):
            raise LevelEditError(f"cell {cell} is a wall; an entity there can never be reached")
        e = self.occupant(cell)
        if e is not None and e is not moving:
            raise LevelEditError(f"cell {cell} already holds the {describe(e)}")

    def _add(self, type_: int, colour: str, cell: Cell, *, rx: float, ry: float) -> "HeistLevel":
        """A new key or lock of ``colour`` centred in ``cell``, among the level entities (before the HUD icons)."""
        colour = _colour(colour)
        present, name = (self.keys, "key") if type_ == KEY else (self.locks, "lock")
        if colour in present:
            raise LevelEditError(f"level already has a {colour} {name} at {present[colour].cell}; move it instead")
        self._check_free(cell)
        level = self._with_colour(colour)
        entity = new_entity(type_, COLOURS.index(colour), cell[0] + 0.5, cell[1] + 0.5, rx, ry)
        return level._with_entities(level._level_entities() + (entity,) + level._hud_entities())

    def _require(self, entity: Entity | None, what: str) -> Entity:
        if entity is None:
            raise LevelEditError(f"level has no {what} (it holds: {self._inventory()})")
        return entity

    def _inventory(self) -> str:
        return ", ".join(describe(e) for e in self.entities if e.type in LEVEL_TYPES and e.type != AGENT) or "nothing"

    def _move(self, entity: Entity, cell: Cell) -> "HeistLevel":
        self._check_free(cell, moving=entity)
        if entity.type == LOCK:
            moved = entity.replace(x=cell[0] + 0.5, y=cell[1] + 0.5)
        else:
            moved = entity.moved_to(cell)
        return self._with_entity_replaced(entity, moved)

    def _without(self, entity: Entity) -> "HeistLevel":
        return self._with_entities(tuple(e for e in self.entities if e is not entity))

    def _with_entities(self, entities: Iterable[Entity]) -> "HeistLevel":
        return self.replace(entities=tuple(entities))

    def _level_entities(self) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities if e.type != KEY_ON_RING)

    def _hud_entities(self) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities if e.type == KEY_ON_RING)

    def _with_cell(self, cell: Cell, value: int) -> "HeistLevel":
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
                hud.append(hud_icon(i))
        return self.replace(has_keys=tuple(has_keys), num_keys=max(self.num_keys, index + 1),
                            entities=self._level_entities() + tuple(hud))

    def _set_held(self, colour: str, value: int) -> "HeistLevel":
        level = self._with_colour(colour)
        has_keys = list(level.has_keys)
        has_keys[COLOURS.index(colour)] = value
        return level.replace(has_keys=tuple(has_keys))


_INTEGERS = (int, np.integer)


def _colour(colour: str) -> str:
    if colour not in COLOURS:
        raise LevelEditError(f"unknown colour {colour!r}; heist colours are {COLOURS}")
    return colour
