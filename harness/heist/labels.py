"""Labels of every entity of a level for probes: its cell, its offset and quadrant from the agent, its colour, and
whether it is the next entity (the oracle's current target) or a non-next one.

A probe for "where is the next entity" and one for "where is a non-next entity" need the same labels for any
entity; the key colour comes with each, since colour confounds next versus non-next (the blue key is next before
the green one in every level: docs/heist-state.md section 3).  Quadrants are those of
:func:`harness.lenses.measures.target_quadrant`, for any entity::

    labels = entity_labels(level)
    next_one = next((l for l in labels if l.next), None)
    green_key = labels_by_name(level).get("green key")   # None once picked up
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.heist.entities import Entity, describe
from harness.heist.levels import HeistLevel
from harness.heist.oracle import current_target

Cell = tuple[int, int]
QUADRANTS = ("up-left", "up-right", "down-left", "down-right")
"""Quadrant names by index.  Centres decide: dy >= 0 is up, dx >= 0 is right, so an entity exactly level with the
agent counts as up, one exactly above it as right."""


@dataclass(frozen=True, kw_only=True)
class EntityLabel:
    """One key, lock or gem of a level, seen from the agent."""

    name: str
    """"blue key", "green lock", "gem": as messages and rollouts name it."""
    kind: str
    """"key", "lock" or "gem"."""
    colour: str | None
    """The key's or lock's colour; None for the gem."""
    cell: Cell
    offset: tuple[float, float]
    """(dx, dy) from the agent's centre to the entity's, in cells, y up."""
    quadrant: int
    """Index into :data:`QUADRANTS`."""
    next: bool
    """Whether this is the current target (:func:`harness.heist.oracle.current_target`); False for all when the
    level has no reachable target."""


def quadrant(level: HeistLevel, entity: Entity) -> int:
    """Where ``entity``'s centre lies from the agent's: 0 up-left, 1 up-right, 2 down-left, 3 down-right (see
    :data:`QUADRANTS` for ties)::

        quadrant(level, level.gem)  # 1 when the gem is up and to the right
    """
    dx, dy = entity.x - level.agent.x, entity.y - level.agent.y
    return (0 if dy >= 0 else 2) + (1 if dx >= 0 else 0)


def entity_labels(level: HeistLevel) -> tuple[EntityLabel, ...]:
    """Labels of every key, lock and gem lying in ``level``: keys, then locks (each in colour order), then the
    gem; held keys and opened locks are gone from the level, so they have none."""
    target = current_target(level)
    entities = [*_by_colour(level.keys), *_by_colour(level.locks), *([level.gem] if level.gem is not None else [])]
    agent = level.agent
    return tuple(EntityLabel(name=describe(e), kind=describe(e).split()[-1], colour=_colour(e), cell=e.cell,
                             offset=(e.x - agent.x, e.y - agent.y), quadrant=quadrant(level, e),
                             next=target is not None and e is target.entity)
                 for e in entities)


def labels_by_name(level: HeistLevel) -> dict[str, EntityLabel]:
    """:func:`entity_labels` keyed by name, e.g. ``labels_by_name(level)["green key"]``."""
    return {label.name: label for label in entity_labels(level)}


def _by_colour(entities: dict[str, Entity]) -> list[Entity]:
    return sorted(entities.values(), key=lambda e: e.image_theme)


def _colour(entity: Entity) -> str | None:
    return None if describe(entity) == "gem" else entity.colour
