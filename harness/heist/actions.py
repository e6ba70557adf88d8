"""Heist's 15 actions by name, with the direction each one moves the agent.

Procgen maps actions 0..8 to a velocity ``(a // 3 - 1, a % 3 - 1)`` in world units, y up (``docs/heist-state.md``
section 5); 9..14 are the other games' special keys and act as no-ops in Heist.  Use ``Action.UP`` rather than
``5`` wherever an action index is meant: ``probs[:, Action.UP]`` reads as what it is.
"""

from __future__ import annotations

from enum import IntEnum

from harness.errors import ActionError


class Action(IntEnum):
    """An action index of the policy's output and of the engine (an ``int``: it indexes tensors directly)."""

    DOWN_LEFT = 0
    LEFT = 1
    UP_LEFT = 2
    DOWN = 3
    NOOP = 4
    UP = 5
    DOWN_RIGHT = 6
    RIGHT = 7
    UP_RIGHT = 8
    NOOP_9 = 9
    NOOP_10 = 10
    NOOP_11 = 11
    NOOP_12 = 12
    NOOP_13 = 13
    NOOP_14 = 14

    @property
    def vector(self) -> tuple[int, int]:
        """``(dx, dy)`` in cells, y up: ``(0, 1)`` for UP, ``(1, 1)`` for UP_RIGHT, ``(0, 0)`` for the no-ops."""
        return (self // 3 - 1, self % 3 - 1) if self <= 8 else (0, 0)

    @property
    def direction(self) -> str | None:
        """``"up"``, ``"down"``, ``"left"``, ``"right"``, a diagonal such as ``"up-left"``, or None for a no-op."""
        dx, dy = self.vector
        vertical, horizontal = {1: "up", -1: "down", 0: ""}[dy], {1: "right", -1: "left", 0: ""}[dx]
        return "-".join(part for part in (vertical, horizontal) if part) or None

    @property
    def is_move(self) -> bool:
        """Whether the action moves the agent (the nine no-op indices do not)."""
        return self.vector != (0, 0)

    @classmethod
    def toward(cls, direction: str) -> "Action":
        """The action moving in ``direction`` (``"up"``, ``"down-right"``, ...)."""
        for action in cls:
            if action.direction == direction:
                return action
        raise ActionError(f"unknown direction {direction!r}; use one of {DIRECTIONS}")

    @classmethod
    def of_vector(cls, dx: int, dy: int) -> "Action":
        """The action whose velocity is ``(dx, dy)``, each of -1, 0, 1 (``(0, 0)`` is NOOP)."""
        if dx not in (-1, 0, 1) or dy not in (-1, 0, 1):
            raise ActionError(f"an action moves by -1, 0 or 1 cell per axis, got ({dx}, {dy})")
        return cls(3 * (dx + 1) + dy + 1)


CARDINAL = (Action.UP, Action.DOWN, Action.LEFT, Action.RIGHT)
"""The four moves along one axis, in the oracle's order."""
DIRECTIONS = tuple(a.direction for a in Action if a.is_move)
"""Every direction an action moves in: four cardinal, four diagonal."""
FORCE_RESET = -1
"""Not an action of the policy: the engine's step treats -1 as "end the episode now" (how pools regenerate a level)."""
