"""Rollout throughput: frames/s and episodes/s of ``rollout`` with the shipped policy, beside its parts (the
policy's forward pass and the engine's step and state reads, per frame), and the episode lengths.

Levels come from the ``selection`` range, so episode lengths read here may inform a claim's episode cap without
touching confirmation levels.  CPU seconds are reported beside wall seconds because a shared machine's load moves
wall time.  Run: ``python bench/bench_rollouts.py [--levels 64] [--max-steps 1000] [--threads 1]``.
"""

import argparse
import time

import numpy as np
import torch

from harness.heist.engine import shared_pool
from harness.heist.levels import HeistLevel
from harness.heist.sampling import sample_levels
from harness.policy.models import load_policy
from harness.policy.rollouts import rollout
from harness.policy.runner import run

POLICY = "fixtures/agents/customcnn_bc/policy.pt"


def timed(work) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = work()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (claims under -n 2 get one core each)")
    parser.add_argument("--trace", action="store_true", help="record per-step traces too")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = load_policy(POLICY)
    levels = sample_levels("selection", args.levels, seed=0)

    pool = shared_pool("easy")
    episodes = pool.episodes(levels[:pool.size])
    frames = episodes.observe().copy()
    idle = np.full(episodes.n, 4, dtype=np.int32)
    _, _, forward = timed(lambda: [run(policy, frames) for _ in range(5)])
    _, _, engine = timed(lambda: [episodes.step(idle) for _ in range(20)])
    _, _, states = timed(lambda: [[HeistLevel.from_bytes(s) for s in pool.env.callmethod("get_state")]
                                  for _ in range(20)])
    per_frame = {"policy forward": forward / (5 * len(frames)), "engine step": engine / (20 * episodes.n),
                 "state read": states / (20 * episodes.n)}

    result, wall, cpu = timed(lambda: rollout(policy, levels, seed=0, max_steps=args.max_steps, trace=args.trace))
    n_frames = int(result.steps.sum())
    print(f"{len(levels)} episodes, {n_frames} frames, torch threads {args.threads}, trace {args.trace}")
    print(f"rollout: {n_frames / wall:8.0f} frames/s  {len(levels) / wall:6.2f} episodes/s  (wall {wall:.1f} s)")
    print(f"         {n_frames / cpu:8.0f} frames/CPU-s  {len(levels) / cpu:6.2f} episodes/CPU-s  (CPU {cpu:.1f} s)")
    for part, seconds in per_frame.items():
        print(f"  {part:15s} {1 / seconds:8.0f} frames/CPU-s")
    solved = result.steps[result.success]
    print(f"success {result.success.mean():.3f}; steps of solved episodes: median {np.median(solved):.0f}, "
          f"90% {np.quantile(solved, 0.9):.0f}, 99% {np.quantile(solved, 0.99):.0f}, max {solved.max()}")


if __name__ == "__main__":
    main()
