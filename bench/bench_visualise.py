"""Seconds per restart of feature visualisation on the shipped agent, by batch of restarts.

For each batch size, ``visualise`` (default parameterisation and robustness, 256 steps unless told) maximises one
conv4a channel's mean; the figure is wall-clock seconds divided by the number of restarts, median over rounds.
The colour transform is computed (and cached) before timing.  The ascent itself runs on one intra-op thread
(see harness.lenses.visualise); the final measurements through ``run`` use the environment's threads.
Run: ``python bench/bench_visualise.py [--steps 256] [--batches 1 4 16] [--rounds 3]``.
"""

import argparse
import os
import statistics
import time
from pathlib import Path


from harness import load_policy
from harness.lenses.visualise import Objective, heist_colour_transform, visualise

POLICY = Path(__file__).resolve().parents[1] / "fixtures" / "agents" / "customcnn_bc" / "policy.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--channel", type=int, default=6)
    args = parser.parse_args()
    policy = load_policy(POLICY)
    heist_colour_transform()
    print(f"{args.steps} steps, conv4a:{args.channel} (mean), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for batch in args.batches:
        times = []
        for round_ in range(args.rounds):
            start = time.perf_counter()
            visualise(policy, Objective(site="conv4a", channel=args.channel), restarts=batch, steps=args.steps,
                      seed=round_)
            times.append((time.perf_counter() - start) / batch)
        print(f"restarts per batch {batch:3d}: {statistics.median(times):7.2f} s per restart "
              f"({statistics.median(times) / args.steps * 1000:6.1f} ms per image-step)")


if __name__ == "__main__":
    main()
