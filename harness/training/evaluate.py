"""How well an agent plays: success rates on held-out levels with Wilson intervals, beside baselines.

    python -m harness.training.evaluate --policy fixtures/agents/customcnn_bc/policy.pt --n 500

plays ``n`` levels of the confirmation seed range four ways (the policy with sampled actions, with argmax
actions, uniformly random actions, the shortest-path oracle), prints a table and, with ``--json``, writes the
figures a training card quotes.  ``--range selection`` plays selection levels instead: choose between agents
there (``--compare a.pt b.pt ...`` plays each with sampled actions on the same levels, :func:`compare`), then report
the chosen one on confirmation levels.  It also measures how often the policy's argmax action
agrees with the oracle's on the oracle's own states (:func:`oracle_agreement`), by distance to the current target,
and where the policy fails (:func:`failures`): success by number of locks, and whether failed episodes wander or
loop over a few cells.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from torch import nn

from harness.errors import HarnessError
from harness.heist.levels import HeistLevel
from harness.policy.models import checkpoint_sha256, load_policy
from harness.heist.oracle import guide, oracle_action
from harness.policy.rollouts import Rollouts, oracle_chooser, play, random_chooser, rollout
from harness.policy.runner import run
from harness.heist.sampling import SEED_RANGES, sample_levels, seed_range
from harness.stats import Estimate, wilson_interval
from harness.training.flags import at_least, check_writable

DISTANCE_BANDS = ((1, 2), (3, 6), (7, None))
"""Bands of the agent's path distance to its current target, in cells (None: no upper end), for
:func:`oracle_agreement`."""


def oracle_agreement(policy: nn.Module, levels: list[HeistLevel], *, steps: int = 150, noise: float = 0.25,
                     seed: int = 0) -> dict:
    """Share of states where ``policy``'s argmax action is the oracle's, over the first ``steps`` steps of the
    oracle playing each level with a share ``noise`` of uniformly random moves (so that states off the shortest
    path count too).  Returns the overall share, the share within each band of :data:`DISTANCE_BANDS`, and the
    share of each oracle action among the states."""
    rng = np.random.default_rng(seed)
    agree, labels, bands = [], [], []

    def choose(frames: np.ndarray, states: list[HeistLevel]) -> np.ndarray:
        expert = np.array([oracle_action(s) for s in states])
        agree.extend(run(policy, frames).logits.argmax(1).numpy() == expert)
        labels.extend(expert)
        bands.extend(g.distance if (g := guide(s)) else 0 for s in states)
        random_moves = rng.integers(0, 9, size=len(states))
        return np.where(rng.random(len(states)) < noise, random_moves, expert)

    play(levels, choose, max_steps=steps)
    agree, labels, bands = np.array(agree), np.array(labels), np.array(bands)
    by_band = {}
    for lo, hi in DISTANCE_BANDS:
        inside = (bands >= lo) & (bands <= (bands.max() if hi is None else hi))
        by_band[f"{lo}+" if hi is None else f"{lo}-{hi}"] = {"agreement": float(agree[inside].mean()) if inside.any()
                                                              else None, "n": int(inside.sum())}
    return {"agreement": float(agree.mean()), "n": len(agree), "by_distance": by_band,
            "label_share": {int(a): float((labels == a).mean()) for a in np.unique(labels)},
            "how": f"first {steps} steps of the oracle with {noise:.0%} random moves, seed {seed}"}


LOOP_WINDOW = 100
"""Cells entered last in a failed episode, over which :func:`failures` counts distinct cells."""


def failures(levels: list[HeistLevel], result: Rollouts) -> dict:
    """Success by number of locks in the level, and for the failed episodes the number of distinct cells among the
    last :data:`LOOP_WINDOW` cells entered (a handful means the agent went back and forth over the same cells)."""
    locks = np.array([len(level.locks) for level in levels])
    by_locks = {}
    for k in np.unique(locks):
        rate = wilson_interval(int(result.success[locks == k].sum()), int((locks == k).sum()))
        by_locks[int(k)] = _rate_fields(rate)
    distinct = [len(set(e.cells[-LOOP_WINDOW:])) for e in result.episodes if not e.success]
    return {"by_locks": by_locks, "failed": len(distinct),
            "distinct_cells_at_the_end": {"median": float(np.median(distinct)), "max": max(distinct)} if distinct
            else None}


def evaluate(policy_path: Path, *, n: int, seed: int, mode: str = "easy", seeds: str = "confirmation") -> dict:
    """Success rates (with 95% Wilson intervals) and mean steps of the four players on the same levels."""
    policy = load_policy(policy_path)
    levels = sample_levels(seeds, n, seed=seed, mode=mode)
    players = {
        "policy (sampled actions)": lambda: rollout(policy, levels, sample=True, seed=seed),
        "policy (argmax actions)": lambda: rollout(policy, levels, sample=False),
        "random actions": lambda: play(levels, random_chooser(seed)),
        "shortest-path oracle": lambda: play(levels, oracle_chooser),
    }
    rows = {}
    for name, go in players.items():
        t0 = time.time()
        result = go()
        rate = wilson_interval(int(result.success.sum()), n)
        rows[name] = {**_rate_fields(rate), "mean_steps_when_successful": _mean_steps_when_successful(result),
                      "seconds": round(time.time() - t0, 1)}
        print(f"{name:28s} {rate.describe()}  ({rows[name]['seconds']} s)", flush=True)
        if name.startswith("policy"):
            rows[name]["failures"] = failed = failures(levels, result)
            ends = failed["distinct_cells_at_the_end"]
            print(" " * 29 + _by_locks_text(failed["by_locks"])
                  + (f"; {failed['failed']} failed, distinct cells among the last {LOOP_WINDOW} entered: median "
                     f"{ends['median']:g}, max {ends['max']}" if ends else ""), flush=True)
    agreement = oracle_agreement(policy, levels[:64], seed=seed)
    bands = ", ".join(f"{band} cells {b['agreement']:.3f}" for band, b in agreement["by_distance"].items()
                      if b["agreement"] is not None)
    print(f"argmax agrees with the oracle on its states: {agreement['agreement']:.3f} (n={agreement['n']}; {bands})")
    return {"policy": str(policy_path), "sha256": checkpoint_sha256(policy_path), "mode": mode,
            "levels": _levels_text(n, seeds, seed), "results": rows,
            "oracle_agreement": {"levels": f"the first {min(n, 64)} of those levels", **agreement}}


def compare(policy_paths: list[Path], *, n: int, seed: int, rollout_seed: int, mode: str = "easy",
            seeds: str = "selection", max_steps: int = 1000) -> dict:
    """Success (sampled actions, rollout seed ``rollout_seed``, episodes up to ``max_steps``) of each policy on the
    same ``n`` levels drawn with ``seed``, overall and by number of locks, and the mean steps of successful episodes:
    the figures to choose between agents by."""
    policies = {path: load_policy(path) for path in policy_paths}  # a bad path fails before any level is played
    levels = sample_levels(seeds, n, seed=seed, mode=mode)
    rows = {}
    for path, policy in policies.items():
        t0 = time.time()
        result = rollout(policy, levels, sample=True, seed=rollout_seed, max_steps=max_steps)
        rate = wilson_interval(int(result.success.sum()), n)
        by_locks = failures(levels, result)["by_locks"]
        rows[str(path)] = {"sha256": checkpoint_sha256(path), **_rate_fields(rate), "by_locks": by_locks,
                           "mean_steps_when_successful": _mean_steps_when_successful(result),
                           "seconds": round(time.time() - t0, 1)}
        print(f"{str(path):40s} {rate.describe()}  {_by_locks_text(by_locks)}", flush=True)
    return {"mode": mode, "levels": _levels_text(n, seeds, seed), "rollout_seed": rollout_seed, "results": rows}


def _rate_fields(rate: Estimate) -> dict:
    """A rate with its interval, as the JSON figures hold it."""
    return {"success": rate.estimate, "ci_low": rate.ci_low, "ci_high": rate.ci_high, "n": rate.n}


def _mean_steps_when_successful(result: Rollouts) -> float | None:
    return float(result.steps[result.success].mean()) if result.success.any() else None


def _by_locks_text(by_locks: dict) -> str:
    """One printed line of success by number of locks (the ``by_locks`` of :func:`failures`)."""
    return "by locks: " + ", ".join(f"{k}: {v['success']:.3f} (n={v['n']})" for k, v in by_locks.items())


def _levels_text(n: int, seeds: str, seed: int) -> str:
    return f"{n} levels of {seed_range(seeds)}, drawn with seed {seed}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Success rates of an agent beside random and oracle baselines.")
    players = parser.add_mutually_exclusive_group(required=True)
    players.add_argument("--policy", type=Path, help="evaluate this agent beside the baselines")
    players.add_argument("--compare", type=Path, nargs="+", metavar="POLICY",
                         help="play each of these agents (sampled actions) on the same levels, to choose between them")
    parser.add_argument("--n", type=at_least(1), default=500)
    parser.add_argument("--seed", type=at_least(0), default=0, help="seed of the level draw (and of the rollouts)")
    parser.add_argument("--rollout-seed", type=at_least(0), help="seed of the sampled actions with --compare (default --seed)")
    parser.add_argument("--mode", default="easy", choices=("easy", "hard"))
    parser.add_argument("--range", default="confirmation", choices=sorted(SEED_RANGES),
                        help="the seed range the levels are drawn from")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.rollout_seed is not None and not args.compare:
        parser.error("--rollout-seed goes with --compare; a full evaluation seeds its rollouts with --seed")
    try:
        if args.json:
            check_writable(args.json, "--json")
        if args.compare:
            rollout_seed = args.seed if args.rollout_seed is None else args.rollout_seed
            figures = compare(args.compare, n=args.n, seed=args.seed, rollout_seed=rollout_seed, mode=args.mode,
                              seeds=args.range)
        else:
            figures = evaluate(args.policy, n=args.n, seed=args.seed, mode=args.mode, seeds=args.range)
    except HarnessError as exc:  # a bad path, seed or n: say what is wrong, not a traceback
        parser.error(str(exc))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
