"""States the policy actually visits: mid-episode levels taken from its own episodes, filtered by a predicate.

A probe or a measurement "at mid-episode states" should read the states the agent really reaches (keys held,
doors open, the agent partway along its path), not generated levels.  :func:`visited_states` plays the policy
(sampled actions, seeded) on levels drawn from a named seed range, batched through one engine pool, and keeps
states from every episode:

- each episode runs for at most ``max_step`` steps; the states after 0, ``every``, 2 ``every``, ... actions are the
  candidates, and those satisfying ``where`` qualify;
- up to ``per_episode`` qualifying states of each episode are taken, at random (seeded by the call's ``seed``
  and the level's seed); episodes are used in the order their seeds are drawn, until exactly ``n`` states;
- a :class:`~harness.errors.SamplingError` says so when ``max_episodes`` episodes do not yield ``n``.

:func:`visited_together` takes one qualifying state per predicate from the same episode (e.g. a state before
the blue door opens and one after): matched states of one level, for paired comparisons.

Every :class:`Visit` carries the actions that led to it, so replaying them from the seed's generated level
reaches the same state (``tests/test_visits.py`` checks this).  The same call gives the same visits on the same
machine and pool size: the actions are drawn from one generator seeded with ``seed`` as in
:func:`~harness.policy.rollouts.rollout`, in the pool's batch order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from torch import nn

from harness.errors import SamplingError
from harness.heist.actions import Action
from harness.heist.engine import generate
from harness.heist.levels import HeistLevel
from harness.heist.sampling import Predicate, draw_seeds
from harness.policy.rollouts import play, sample_actions
from harness.policy.runner import run

CHUNKS = (16, 32, 64, 128)
"""Episodes played per batch before checking whether ``n`` is reached: small batches first, so that a small
request plays few episodes, then 128 at a time (two pools' worth of 64 engines)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class Visit:
    """The live level after ``step`` actions of the episode started on the generated level of ``seed``."""

    seed: int
    step: int
    level: HeistLevel
    actions: tuple[int, ...]
    """The ``step`` actions taken from the episode's start to this state."""


def visited_states(policy: nn.Module, seeds: str, n: int, *, seed: int, where: Predicate | None = None,
                   every: int = 1, per_episode: int = 4, max_step: int = 256, max_episodes: int | None = None,
                   on_levels: Predicate | None = None, until: Predicate | None = None, sample: bool = True,
                   mode: str = "easy") -> list[Visit]:
    """Exactly ``n`` states visited by ``policy`` on levels of the seed range ``seeds`` that satisfy ``where``
    (all if None), at most ``per_episode`` from one episode (see the module docstring).

    ``max_episodes`` (default ``10 * n``) caps the levels drawn; only those satisfying ``on_levels`` (all if None,
    e.g. "has a green lock") are played.  An episode stops at the first state satisfying ``until`` (checked at
    every step; e.g. "the green key is gone", after which nothing qualifies): the policy no longer runs on it and
    none of its later states are candidates.  ``sample=False`` plays the argmax action::

        visits = visited_states(policy, "selection", 64, seed=0, where=lambda s: "blue" in s.held_keys)
        frames = render([v.level for v in visits])
    """
    _check(n, every, per_episode, max_step, max_episodes)
    picked: list[Visit] = []
    for episode_seed, actions, candidates in _episodes(policy, seeds, n, seed=seed, where=[where or _always],
                                                       every=every, max_step=max_step, max_episodes=max_episodes,
                                                       on_levels=on_levels, until=until, sample=sample,
                                                       mode=mode):
        (steps,) = candidates
        chosen = sorted(_choose(steps, per_episode, seed, episode_seed, 0))
        picked += [_visit(episode_seed, actions, steps[i]) for i in chosen][:n - len(picked)]
        if len(picked) == n:
            return picked
    raise SamplingError(f"only {len(picked)} visited states of {_budget(n, max_episodes)} episodes on range "
                        f"{seeds!r} satisfy the predicate; {n} were requested: loosen it, lower n, raise "
                        "per_episode or max_episodes")


def visited_together(policy: nn.Module, seeds: str, n: int, *, seed: int, where: Sequence[Predicate],
                     every: int = 1, max_step: int = 256, max_episodes: int | None = None,
                     on_levels: Predicate | None = None, until: Predicate | None = None, sample: bool = True,
                     mode: str = "easy") -> list[tuple[Visit, ...]]:
    """Exactly ``n`` tuples of states from one episode each, the i-th state satisfying ``where[i]`` (one taken at
    random among that episode's qualifying states); episodes lacking any of them are skipped.  The other parameters
    are :func:`visited_states`'s::

        before, after = lambda s: "blue" in s.locks, lambda s: "blue" not in s.locks
        pairs = visited_together(policy, "confirmation", 128, seed=0, where=[before, after])
    """
    _check(n, every, 1, max_step, max_episodes)
    where = list(where)
    if not where or not all(callable(w) for w in where):
        raise SamplingError(f"where must be a non-empty sequence of predicates (level -> bool), got {where!r}")
    tuples: list[tuple[Visit, ...]] = []
    for episode_seed, actions, candidates in _episodes(policy, seeds, n, seed=seed, where=where, every=every,
                                                       max_step=max_step, max_episodes=max_episodes,
                                                       on_levels=on_levels, until=until, sample=sample,
                                                       mode=mode):
        if all(candidates):
            tuples.append(tuple(_visit(episode_seed, actions, steps[_choose(steps, 1, seed, episode_seed, i)[0]])
                                for i, steps in enumerate(candidates)))
            if len(tuples) == n:
                return tuples
    raise SamplingError(f"only {len(tuples)} of {_budget(n, max_episodes)} episodes on range {seeds!r} visit a "
                        f"state satisfying each of the {len(where)} predicates; {n} were requested: loosen them, "
                        "lower n, raise max_step or max_episodes")


_Steps = list[tuple[int, HeistLevel]]


def _episodes(policy: nn.Module, seeds: str, n: int, *, seed: int, where: list[Predicate], every: int,
              max_step: int, max_episodes: int | None, on_levels: Predicate | None, until: Predicate | None,
              sample: bool,
              mode: str) -> Iterator[tuple[int, list[int], list[_Steps]]]:
    """Per episode, in draw order: its level seed, its actions, and per predicate the (step, state) candidates."""
    drawn = draw_seeds(seeds, _budget(n, max_episodes), seed=seed)
    rng = np.random.default_rng(seed)
    start = 0
    for size in (*CHUNKS, *[CHUNKS[-1]] * (len(drawn) // CHUNKS[-1])):
        batch, start = drawn[start:start + size], start + size
        if not len(batch):
            return
        levels = [level for level in generate(batch, mode=mode) if on_levels is None or on_levels(level)]
        if not levels:
            continue
        chunk = [level.current_level_seed for level in levels]
        actions: dict[int, list[int]] = {s: [] for s in chunk}
        candidates: dict[int, list[_Steps]] = {s: [[] for _ in where] for s in chunk}
        stopped: set[int] = set()

        def choose(frames: np.ndarray, live: list[HeistLevel]) -> np.ndarray:
            if until is not None:
                stopped.update(level.current_level_seed for level in live if until(level))
            playing = np.array([level.current_level_seed not in stopped for level in live], dtype=bool)
            chosen = np.full(len(live), Action.NOOP, dtype=np.int64)  # stopped episodes idle to the end
            if playing.any():
                probs = run(policy, frames[playing]).probs.double().numpy()
                chosen[playing] = sample_actions(probs, rng) if sample else probs.argmax(1)
            for level, action, acting in zip(live, chosen, playing):
                if not acting:
                    continue
                taken = actions[level.current_level_seed]
                if len(taken) % every == 0:
                    for steps, predicate in zip(candidates[level.current_level_seed], where):
                        if predicate(level):
                            steps.append((len(taken), level))
                taken.append(int(action))
            return chosen

        play(levels, choose, max_steps=max_step + 1)  # the state after max_step is seen
        for s in chunk:
            yield s, actions[s], candidates[s]


def _choose(steps: _Steps, k: int, seed: int, episode_seed: int, which: int) -> list[int]:
    """Indices of ``k`` candidates (all if fewer), drawn by a generator of this call, episode and predicate."""
    if len(steps) <= k:
        return list(range(len(steps)))
    return np.random.default_rng([seed, episode_seed, which]).choice(len(steps), size=k, replace=False).tolist()


def _visit(episode_seed: int, actions: list[int], candidate: tuple[int, HeistLevel]) -> Visit:
    step, level = candidate
    return Visit(seed=episode_seed, step=step, level=level, actions=tuple(actions[:step]))


def _budget(n: int, max_episodes: int | None) -> int:
    return 10 * n if max_episodes is None else max_episodes


def _check(n: int, every: int, per_episode: int, max_step: int, max_episodes: int | None) -> None:
    for name, value, low in (("n", n, 1), ("every", every, 1), ("per_episode", per_episode, 1),
                             ("max_step", max_step, 0), ("max_episodes", max_episodes or 1, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise SamplingError(f"{name} must be an int of at least {low}, got {value!r}")
    if max_step > 999:
        raise SamplingError(f"max_step must be at most 999 (episodes time out at 1000 steps), got {max_step}")


def _always(level: HeistLevel) -> bool:
    return True

