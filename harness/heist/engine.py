"""Levels to pixels and episodes through the real procgen engine (made by :mod:`harness.heist.procgen_env`).

An :class:`EnginePool` owns a fixed number of engine instances of one distribution mode and reuses them:
setting a state re-renders it at once (no step needed), so rendering N levels is N ``set_state`` calls and one
``observe``.  The pool also generates the level of any seed (by pointing the engine's seed range at that one
seed and forcing a reset) and runs :class:`Episodes` that start on given levels and stop, for good, when they
end: the engine regenerates the level from its seed at an episode's end, and the edit would be gone.
The engine renders on the calling thread and holds the GIL, so a pool made with ``render_worker=True`` (the shared
observation pools, given two cores) shares large renders with a second process (:mod:`harness.heist.engine_worker`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections import deque
from typing import Iterable, Sequence

import numpy as np

from harness.errors import ActionError, EngineError, LevelFormatError, RenderWorkerError
from harness.heist.actions import FORCE_RESET, Action
from harness.heist.codec import RandomState
from harness.heist.engine_worker import CHUNK, SLOTS, RenderWorker
from harness.heist.levels import HeistLevel
from harness.heist.procgen_env import HIRES_SIZE, MODES, OBS_SIZE, make_env

WORKER_MIN_LEVELS = 256  # the render worker takes about a second to start; it pays off from a few hundred levels


class EnginePool:
    """``size`` engine instances of one distribution mode, reused for rendering, generation and episodes."""

    def __init__(self, *, mode: str = "easy", size: int = 64, hires: bool = False, render_worker: bool = False):
        """``render_worker``: share renders of ``WORKER_MIN_LEVELS`` or more levels with a second process
        (:mod:`harness.heist.engine_worker`), started on first use; worth it with two or more free cores."""
        if mode not in MODES:
            raise EngineError(f"mode must be one of {MODES}, got {mode!r}")
        if not 1 <= size <= 1024:
            raise EngineError(f"size must be in 1..1024, got {size}")
        if hires and render_worker:
            raise EngineError("the render worker renders 64x64 observations only; pass hires=False or render_worker=False")
        self.mode, self.size, self.hires, self.render_worker = mode, size, hires, render_worker
        self.env = make_env(size, mode, hires=hires)
        self._worker: RenderWorker | None = None

    # ------------------------------------------------------------------------------------- states
    def _set(self, index: int, state: bytes) -> None:
        self.env.call_c_func("set_state", index, state, len(state))

    def _check_mode(self, levels: Sequence[HeistLevel]) -> None:
        for i, level in enumerate(levels):
            if not isinstance(level, HeistLevel):
                raise EngineError(f"levels[{i}] is a {type(level).__name__}, expected a HeistLevel")
            if level.distribution_mode != self.mode:
                raise LevelFormatError(f"levels[{i}] is a {level.distribution_mode} level; this pool renders {self.mode}")

    def _chunks(self, items: Sequence):
        for start in range(0, len(items), self.size):
            yield start, items[start:start + self.size]

    def render(self, levels: Sequence[HeistLevel]) -> np.ndarray:
        """uint8 (N, 64, 64, 3) observations, exactly what the agent would see on each level."""
        self._check_mode(levels)
        out = np.empty((len(levels), OBS_SIZE, OBS_SIZE, 3), dtype=np.uint8)
        if self.render_worker and len(levels) >= WORKER_MIN_LEVELS:
            try:
                self._render_shared(((start, [level.to_bytes(keep=False) for level in levels[start:start + CHUNK]])
                                     for start in range(0, len(levels), CHUNK)), out)
            except RenderWorkerError:
                self._worker = None  # the next render starts a fresh one
                raise
        else:
            for start, chunk in self._chunks(levels):  # serialised chunk by chunk: a state is about 22 KB
                self._render_states([level.to_bytes(keep=False) for level in chunk], out[start:start + len(chunk)])
        return out

    def _render_states(self, states: Sequence[bytes], out: np.ndarray) -> None:
        for start, chunk in self._chunks(states):
            for i, state in enumerate(chunk):
                self._set(i, state)
            out[start:start + len(chunk)] = self.env.observe()[1]["rgb"][:len(chunk)]

    def _render_shared(self, chunks: Iterable[tuple[int, list[bytes]]], out: np.ndarray) -> None:
        """Render ``(start, states)`` chunks of at most ``CHUNK`` states into ``out[start:]``: a chunk goes to the
        worker while it has a free slot, else it is rendered here, so that each process takes as much as it can
        keep up with.  The states of a chunk are made (serialised) only when it is its turn."""
        if self._worker is None:
            self._worker = RenderWorker(self.mode)
        worker, sent, free = self._worker, deque(), list(range(SLOTS))

        def receive() -> None:
            slot, start, n = sent.popleft()
            worker.receive(slot, out[start:start + n])
            free.append(slot)

        for start, states in chunks:
            while sent and worker.ready():
                receive()
            if free and worker.fits(states):
                slot = free.pop()
                worker.submit(slot, states)
                sent.append((slot, start, len(states)))
            else:
                self._render_states(states, out[start:start + len(states)])
        while sent:
            receive()

    def render_hires(self, levels: Sequence[HeistLevel]) -> np.ndarray:
        """uint8 (N, 512, 512, 3) pictures for reports (needs a pool made with ``hires=True``)."""
        if not self.hires:
            raise EngineError("this pool was made without hires=True; use render_hires(levels) from harness.heist.engine")
        self._check_mode(levels)
        out = np.empty((len(levels), HIRES_SIZE, HIRES_SIZE, 3), dtype=np.uint8)
        for start, chunk in self._chunks(levels):
            for i, level in enumerate(chunk):
                self._set(i, level.to_bytes(keep=False))
            info = self.env.get_info()
            for i in range(len(chunk)):
                out[start + i] = info[i]["rgb"]
        return out

    def generate(self, seeds: Sequence[int]) -> list[HeistLevel]:
        """The freshly generated level of each seed, as a new episode would start on it."""
        bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int | np.integer)]
        if bad:
            raise EngineError(f"level seeds must be integers, got {bad[:3]} (a float is never rounded to a seed)")
        seeds = [int(s) for s in seeds]
        if any(not 0 <= s < 2**31 - 1 for s in seeds):
            raise EngineError("level seeds must lie in 0 .. 2**31 - 2")
        levels: list[HeistLevel] = []
        template = HeistLevel.from_bytes(self.env.callmethod("get_state")[0])
        for _, chunk in self._chunks(seeds):
            for i, seed in enumerate(chunk):
                pinned = dataclasses.replace(template, level_seed_low=seed, level_seed_high=seed + 1,
                                             episodes_remaining=0)
                self._set(i, pinned.to_bytes())
            self.env.act(np.full(self.size, FORCE_RESET, dtype=np.int32))
            states = self.env.callmethod("get_state")
            levels += [_without_history(HeistLevel.from_bytes(s)) for s in states[:len(chunk)]]
        for seed, level in zip(seeds, levels):
            assert level.current_level_seed == seed, "engine did not regenerate the requested seed"
        return levels

    def episodes(self, levels: Sequence[HeistLevel]) -> "Episodes":
        """Start one episode per level (at most ``size``) on this pool's engines."""
        return Episodes(self, levels)


def _without_history(level: HeistLevel) -> HeistLevel:
    """The fields that record the engine slot's past (its level-seed generator, the previous seed, the last step's
    random draw) set as for a slot that never played, so that the same seed always gives the same bytes.  None of
    them affects play: the seed range is pinned and the draw is redrawn on every step."""
    _, words, index, *_ = np.random.RandomState(level.current_level_seed).get_state()  # std::mt19937(seed)
    rng = RandomState(is_seeded=1, text=" ".join(map(str, [*words.tolist(), index])).encode())
    level = level.replace(level_seed_rng=rng, prev_level_seed=0, step_rand_int=0)
    level.to_bytes()  # packed once here, so that edits of it re-pack only what they change
    return level


class Episodes:
    """A batch of episodes started on given levels.  Each runs until the gem is reached or it times out; after
    that it is finished and its (regenerated) level is never observed again."""

    def __init__(self, pool: EnginePool, levels: Sequence[HeistLevel]):
        pool._check_mode(levels)
        if not 1 <= len(levels) <= pool.size:
            raise EngineError(f"a pool of {pool.size} engines runs 1..{pool.size} episodes at once, got {len(levels)}")
        self.pool, self.n = pool, len(levels)
        for i, level in enumerate(levels):
            pool._set(i, level.as_episode_start().to_bytes())
        self.active = np.ones(self.n, dtype=bool)
        self.success = np.zeros(self.n, dtype=bool)
        self.steps = np.zeros(self.n, dtype=np.int64)
        self._obs = pool.env.observe()[1]["rgb"][:self.n].copy()

    def restart(self, index: int, level: HeistLevel) -> None:
        """Start a new episode on ``level`` in slot ``index`` (to stream many levels through one pool)."""
        self.pool._check_mode([level])
        self.pool._set(index, level.as_episode_start().to_bytes())
        self.active[index], self.success[index], self.steps[index] = True, False, 0
        self._obs[index] = self.pool.env.observe()[1]["rgb"][index]

    def observe(self) -> np.ndarray:
        """Current frames (n, 64, 64, 3); rows of finished episodes hold their last frame."""
        return self._obs

    def states(self) -> list[HeistLevel | None]:
        """The live level of each active episode (None for finished ones)."""
        raw = self.pool.env.callmethod("get_state")
        return [HeistLevel.from_bytes(raw[i]) if self.active[i] else None for i in range(self.n)]

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Act in every active episode; returns the boolean mask of episodes that ended on this step."""
        actions = np.asarray(actions)
        if actions.shape != (self.n,) or not np.issubdtype(actions.dtype, np.integer):
            raise ActionError(f"actions must be an int array of shape ({self.n},), got {actions.dtype} {actions.shape}")
        if ((actions < 0) | (actions >= len(Action))).any():
            raise ActionError(f"actions must lie in 0..{len(Action) - 1}")
        full = np.full(self.pool.size, Action.NOOP, dtype=np.int32)  # slots past n, and finished episodes, idle
        full[:self.n] = np.where(self.active, actions, Action.NOOP)
        self.pool.env.act(full)
        reward, obs, first = self.pool.env.observe()
        ended = self.active & first[:self.n]
        self.steps += self.active
        self.success |= ended & (reward[:self.n] > 0)
        live = self.active & ~ended
        self._obs[live] = obs["rgb"][:self.n][live]
        self.active &= ~ended
        return ended


@functools.lru_cache(maxsize=None)
def shared_pool(mode: str = "easy", hires: bool = False) -> EnginePool:
    """One process-wide pool per (mode, resolution), created on first use; observation pools share large renders
    with a worker process when this process may use two or more cores."""
    return EnginePool(mode=mode, size=16 if hires else 64, hires=hires,
                      render_worker=not hires and len(os.sched_getaffinity(0)) >= 2)


def _by_mode(levels: Sequence[HeistLevel], hires: bool) -> np.ndarray:
    size = HIRES_SIZE if hires else OBS_SIZE
    out = np.empty((len(levels), size, size, 3), dtype=np.uint8)
    for mode in MODES:
        idx = [i for i, level in enumerate(levels) if getattr(level, "distribution_mode", None) == mode]
        if idx:
            pool = shared_pool(mode, hires)
            out[idx] = (pool.render_hires if hires else pool.render)([levels[i] for i in idx])
    covered = sum(1 for level in levels if getattr(level, "distribution_mode", None) in MODES)
    if covered != len(levels):
        EnginePool._check_mode(shared_pool("easy", hires), levels)  # raises, naming the first bad entry
    return out


def render(levels: Sequence[HeistLevel]) -> np.ndarray:
    """uint8 (N, 64, 64, 3) observations of any mix of easy and hard levels, through shared engine pools."""
    return _by_mode(list(levels), hires=False)


def render_hires(levels: Sequence[HeistLevel]) -> np.ndarray:
    """uint8 (N, 512, 512, 3) pictures for reports."""
    return _by_mode(list(levels), hires=True)


def generate(seeds: Sequence[int], *, mode: str = "easy") -> list[HeistLevel]:
    """The generated level of each seed (same seed, same level, on any machine)."""
    return shared_pool(mode).generate(seeds)
