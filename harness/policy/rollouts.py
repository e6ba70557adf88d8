"""The policy playing real Heist episodes, batched, on chosen levels, optionally under interventions.

Levels stream through one engine pool: each slot plays one level until the gem is reached or the episode times
out (1000 steps), then takes the next level.  An episode that ends is recorded and never continued on the
regenerated level.  Per episode we record success, steps, the cells visited and the order in which keys, locks
and the gem were reached (read from the engine state after every step); with ``trace=True`` also a
:class:`~harness.policy.traces.Trace` (actions, positions, the step each entity was reached).

``rollout(policy, levels, ...)`` runs a network through :func:`harness.policy.runner.run` (so interventions apply, and
must fire, at every step); :func:`play` runs any action chooser, e.g. the random and oracle baselines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from torch import nn

from harness.errors import InterventionError, RolloutError
from harness.heist.actions import Action
from harness.heist.engine import EnginePool, shared_pool
from harness.heist.levels import HeistLevel
from harness.heist.oracle import oracle_action
from harness.policy.interventions import Intervention, Patch, Resample
from harness.policy.runner import run
from harness.policy.traces import Trace, TraceRecorder

Cell = tuple[int, int]
ActionChooser = Callable[[np.ndarray, list[HeistLevel]], np.ndarray]
"""(frames (n, 64, 64, 3), live levels) -> actions (n,), for the n active episodes."""
StopRule = Callable[[list["Episode"]], bool]
"""(finished episodes of the first k levels, in order) -> whether to stop now (see :func:`play`)."""


@dataclass(frozen=True, kw_only=True)
class Episode:
    """One finished episode on one level."""

    seed: int
    success: bool
    steps: int
    cells: tuple[Cell, ...]
    """Cells the agent occupied, in order, without repeats of consecutive cells."""
    reached: tuple[str, ...]
    """Keys, locks and gem in the order they were reached, e.g. ("blue key", "blue lock", "gem")."""
    snapshot: HeistLevel | None = None
    """The live level at the step asked for with ``snapshot_at`` (the last one seen if the episode ended first)."""
    trace: Trace | None = None
    """Per-step actions, positions and reach steps, with ``trace=True``."""


@dataclass(frozen=True, kw_only=True)
class Rollouts:
    """Episodes in the order of the levels given."""

    episodes: tuple[Episode, ...]

    @property
    def success(self) -> np.ndarray:
        return np.array([e.success for e in self.episodes], dtype=bool)

    @property
    def steps(self) -> np.ndarray:
        return np.array([e.steps for e in self.episodes], dtype=np.int64)


def play(levels: Sequence[HeistLevel], choose: ActionChooser, *, max_steps: int = 1000,
         pool: EnginePool | None = None, snapshot_at: Sequence[int] | None = None, trace: bool = False,
         stop_when: StopRule | None = None) -> Rollouts:
    """Play one episode per level with ``choose`` picking the actions; episodes end at the gem or at
    ``max_steps`` (the engine's own timeout is 1000).  With ``snapshot_at`` (one step count per level), each
    episode also keeps its live level at that step: mid-episode states with keys held and doors open.  With
    ``trace``, each episode carries a :class:`~harness.policy.traces.Trace`.

    ``stop_when(episodes)`` (for sequential tests) is asked whenever the longest run of levels, from the first,
    whose episodes have all finished grows; when it says True, play stops and returns those episodes only.  It
    sees episodes in the levels' order, never in the order they finish (short episodes finish first, so stopping
    on them would favour quick successes)::

        play(levels, oracle_chooser, stop_when=lambda episodes: len(episodes) >= 10)  # the first 10 levels
    """
    levels = list(levels)
    if not levels:
        raise RolloutError("levels is empty; pass at least one HeistLevel")
    at = [-1] * len(levels) if snapshot_at is None else [int(k) for k in snapshot_at]
    if len(at) != len(levels) or min(at, default=0) < -1:
        raise RolloutError("snapshot_at needs one non-negative step count per level")
    if not 1 <= max_steps <= 1000:
        raise RolloutError(f"max_steps must be in 1..1000 (the engine times out at 1000), got {max_steps}")
    pool = pool or shared_pool(levels[0].distribution_mode)
    width = min(pool.size, len(levels))
    episodes = pool.episodes(levels[:width])
    slot_level = list(range(width))
    next_level = width
    tracks = [_Track(levels[i], at[i], trace) for i in range(width)]
    done: dict[int, Episode] = {}
    prefix = 0
    while prefix < len(levels):
        active = np.nonzero(episodes.active)[0]
        states = episodes.states()
        live = [states[i] for i in active]
        for i in active:
            tracks[i].see(states[i])
        actions = np.full(width, Action.NOOP, dtype=np.int32)  # finished slots idle
        actions[active] = np.asarray(choose(episodes.observe()[active], live), dtype=np.int32)
        if trace:
            for i in active:
                tracks[i].recorder.act(int(actions[i]))
        ended = episodes.step(actions)
        timed_out = episodes.active & (episodes.steps >= max_steps)
        for slot in np.nonzero(ended | timed_out)[0]:
            done[slot_level[slot]] = tracks[slot].finish(bool(ended[slot] and episodes.success[slot]),
                                                         int(episodes.steps[slot]))
            if next_level < len(levels):
                episodes.restart(int(slot), levels[next_level])
                slot_level[slot], tracks[slot] = next_level, _Track(levels[next_level], at[next_level], trace)
                next_level += 1
            else:
                episodes.active[slot] = False
        grown = prefix
        while prefix in done:
            prefix += 1
        if stop_when is not None and prefix > grown and prefix < len(levels) \
                and stop_when([done[i] for i in range(prefix)]):
            break
    return Rollouts(episodes=tuple(done[i] for i in range(prefix)))


def rollout(policy: nn.Module, levels: Sequence[HeistLevel], *, interventions: Sequence[Intervention] = (),
            sample: bool = True, seed: int = 0, max_steps: int = 1000, pool: EnginePool | None = None,
            trace: bool = False, stop_when: StopRule | None = None) -> Rollouts:
    """Let ``policy`` play each level, with ``interventions`` applied at every step; sampled actions are drawn
    from a generator seeded with ``seed`` (argmax when ``sample`` is False); ``trace`` and ``stop_when`` as in
    :func:`play`."""
    per_example = [iv for iv in interventions if isinstance(iv, (Patch, Resample))]
    if per_example:
        raise InterventionError(
            f"{per_example[0]} carries per-example source data, which cannot follow an episode's changing frames; "
            "use Zero, Mean, Clamp or AddDirection in rollouts")
    rng = np.random.default_rng(seed)

    def choose(frames: np.ndarray, _: list[HeistLevel]) -> np.ndarray:
        probs = run(policy, frames, interventions=interventions).probs.double().numpy()
        if not sample:
            return probs.argmax(1)
        return sample_actions(probs, rng)

    return play(levels, choose, max_steps=max_steps, pool=pool, trace=trace, stop_when=stop_when)


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row of ``probs`` by inverse-CDF sampling."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random((len(probs), 1)) * cdf[:, -1:]
    return np.minimum((u > cdf).sum(1), probs.shape[1] - 1)


def random_chooser(seed: int = 0) -> ActionChooser:
    """Uniformly random actions over all 15 (the usual Procgen random baseline)."""
    rng = np.random.default_rng(seed)
    return lambda frames, _: rng.integers(0, len(Action), size=len(frames))


def oracle_chooser(frames: np.ndarray, states: list[HeistLevel]) -> np.ndarray:
    """The shortest-path controller of :mod:`harness.heist.oracle`, reading the engine state."""
    return np.array([oracle_action(s) for s in states])


class _Track:
    """Cells visited and entities reached in one episode, from consecutive engine states."""

    def __init__(self, level: HeistLevel, snapshot_at: int = -1, trace: bool = False):
        self.seed = level.current_level_seed
        self.cells: list[Cell] = []
        self.reached: list[str] = []
        self.present = _collectables(level)
        self.snapshot_at, self.snapshot, self.seen = snapshot_at, None, 0
        self.recorder = TraceRecorder() if trace else None

    def see(self, state: HeistLevel) -> None:
        """Read the state after ``self.seen`` steps."""
        if self.seen <= self.snapshot_at:
            self.snapshot = state
        agent = state.agent
        cell = agent.cell
        if not self.cells or self.cells[-1] != cell:
            self.cells.append(cell)
        now = _collectables(state)
        gone = sorted(self.present - now, key=_ORDER.index)
        self.reached += gone
        self.present = now
        if self.recorder is not None:
            self.recorder.see(agent.x, agent.y)
            self.recorder.reach(gone, self.seen)
        self.seen += 1

    def finish(self, success: bool, steps: int) -> Episode:
        reached = self.reached + (["gem"] if success else [])
        if self.recorder is not None and success:
            self.recorder.reach(["gem"], steps)
        return Episode(seed=self.seed, success=success, steps=steps, cells=tuple(self.cells), reached=tuple(reached),
                       snapshot=self.snapshot, trace=None if self.recorder is None else self.recorder.finish())


_ORDER = ["blue key", "blue lock", "green key", "green lock", "red key", "red lock"]


def _collectables(level: HeistLevel) -> set[str]:
    return {f"{c} key" for c in level.keys} | {f"{c} lock" for c in level.locks}
