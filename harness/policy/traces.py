"""Per-step traces of rollouts, and which entity an episode reached first or before another.

``rollout(policy, levels, trace=True)`` (or ``play(..., trace=True)``) gives each :class:`~harness.policy.rollouts.
Episode` a :class:`Trace`: the action taken at every step, the agent's position (world units, y up) when it was
taken, and the step at which each key, lock and the gem was reached.  Entity names are those of
``Episode.reached``: "blue key", "blue lock", ..., "gem".

The order helpers read the reach order only, so they accept an Episode with or without a trace, or a Trace::

    result = rollout(policy, levels, trace=True)
    first_reached(result.episodes[0])                        # e.g. "blue key"
    reached_before_all(result.episodes, "green key", "gem")  # bool per episode
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Protocol, Sequence

import numpy as np

from harness.errors import RolloutError

ENTITY_NAMES = ("blue key", "blue lock", "green key", "green lock", "red key", "red lock", "gem")
"""Every name an episode can reach, in the order ties within one step are listed."""


@dataclass(frozen=True, kw_only=True, eq=False)
class Trace:
    """What happened at each step of one episode (``steps`` of them)."""

    actions: np.ndarray
    """int8 ``(steps,)``: the action taken at each step."""
    positions: np.ndarray
    """float32 ``(steps, 2)``: the agent's ``(x, y)`` when each action was chosen (cell ``(int(x), int(y))``)."""
    reached_at: Mapping[str, int] = field(default_factory=dict)
    """Entity name -> the step count (1 = after the first action) at which it was reached."""

    @property
    def steps(self) -> int:
        return len(self.actions)

    @property
    def reached(self) -> tuple[str, ...]:
        """The entities reached, in order (ties in :data:`ENTITY_NAMES` order), as ``Episode.reached``."""
        return tuple(sorted(self.reached_at, key=lambda name: (self.reached_at[name], ENTITY_NAMES.index(name))))


class _Reaches(Protocol):
    @property
    def reached(self) -> tuple[str, ...]: ...


def first_reached(episode: _Reaches, among: Iterable[str] | None = None) -> str | None:
    """The first entity the episode (or trace) reached, of ``among`` if given; None if it reached none of them.

    ``first_reached(episode, among=("green key", "gem"))``
    """
    wanted = _names(among) if among is not None else None
    return next((name for name in episode.reached if wanted is None or name in wanted), None)


def reached_before(episode: _Reaches, a: str, b: str) -> bool:
    """Whether the episode reached ``a``, and reached it before ``b`` (or never reached ``b``).

    ``reached_before(episode, "green key", "gem")``
    """
    _names((a, b))
    if a == b:
        raise RolloutError(f"reached_before needs two different entities, got {a!r} twice")
    order = episode.reached
    return a in order and (b not in order or order.index(a) < order.index(b))


def first_reached_all(episodes: Sequence[_Reaches], among: Iterable[str] | None = None) -> np.ndarray:
    """:func:`first_reached` for each episode: an object array of names (None where none was reached)."""
    wanted = tuple(among) if among is not None else None
    names = [first_reached(e, wanted) for e in _episodes(episodes)]
    out = np.empty(len(names), dtype=object)
    out[:] = names
    return out


def reached_before_all(episodes: Sequence[_Reaches], a: str, b: str) -> np.ndarray:
    """:func:`reached_before` for each episode, as a bool array."""
    return np.array([reached_before(e, a, b) for e in _episodes(episodes)], dtype=bool)


def reach_steps(episodes: Sequence, names: Sequence[str]) -> np.ndarray:
    """int64 ``(episodes, names)``: the step at which each episode reached each entity, -1 where it never did.
    Needs traces (``trace=True``).

    ``reach_steps(result.episodes, ["blue key", "gem"])[:, 1]`` is the step count to the gem where solved.
    """
    names, episodes = list(_names(names)), _episodes(episodes)
    out = np.full((len(episodes), len(names)), -1, dtype=np.int64)
    for i, episode in enumerate(episodes):
        trace = getattr(episode, "trace", episode)
        if not isinstance(trace, Trace):
            raise RolloutError("reach_steps needs traces: run rollout(..., trace=True)")
        for j, name in enumerate(names):
            out[i, j] = trace.reached_at.get(name, -1)
    return out


def _names(names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(names)
    unknown = [n for n in names if n not in ENTITY_NAMES]
    if unknown or not names:
        raise RolloutError(f"unknown entity name(s) {unknown or names!r}; use some of {ENTITY_NAMES}")
    return names


def _episodes(episodes) -> Sequence:
    return episodes.episodes if hasattr(episodes, "episodes") else episodes


class TraceRecorder:
    """Collects one episode's actions, positions and reach steps (used by the rollout loop)."""

    def __init__(self) -> None:
        self.actions: list[int] = []
        self.positions: list[tuple[float, float]] = []
        self.reached_at: dict[str, int] = {}

    def see(self, x: float, y: float) -> None:
        self.positions.append((x, y))

    def act(self, action: int) -> None:
        self.actions.append(action)

    def reach(self, names: Iterable[str], step: int) -> None:
        for name in names:
            self.reached_at.setdefault(name, step)

    def finish(self) -> Trace:
        return Trace(actions=np.array(self.actions, dtype=np.int8),
                     positions=np.array(self.positions, dtype=np.float32).reshape(-1, 2), reached_at=dict(self.reached_at))
