"""Forward throughput of ``run`` against bare torch (CustomCNN, fp32, batch 256, random uint8 frames).

Variants are interleaved round by round so that load from other processes hits them alike; each figure is the
median over rounds.  Run: ``python bench/bench_runner.py [--rounds 10]`` (about a minute on 2 cores).
"""

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from harness.policy.interventions import Zero
from harness.policy.models import CustomCNN, preprocess
from harness.policy.runner import run

BATCH = 256
SITE = "conv3a"


def frames_per_second(forward: Callable[[], object], batches: int) -> float:
    start = time.perf_counter()
    for _ in range(batches):
        forward()
    return batches * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batches", type=int, default=2, help="batches per variant per round")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = CustomCNN().eval()
    frames = np.random.default_rng(0).integers(0, 256, (BATCH, 64, 64, 3), dtype=np.uint8)

    def bare() -> None:
        with torch.no_grad():
            model(preprocess(frames))

    variants = {
        "bare torch": bare,
        f"run + Zero({SITE})": lambda: run(model, frames, interventions=[Zero(site=SITE)]),
        f"run + Cache({SITE})": lambda: run(model, frames, cache=[SITE]),
    }
    for forward in variants.values():  # warm-up
        forward()
    figures: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, forward in variants.items():
            figures[name].append(frames_per_second(forward, args.batches))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, fp32, channels_last")
    base = statistics.median(figures["bare torch"])
    for name, values in figures.items():
        median = statistics.median(values)
        print(f"{name:<22} {median:7.0f} frames/s  (min {min(values):.0f}, max {max(values):.0f})"
              f"  ratio {median / base:.3f}")


if __name__ == "__main__":
    main()
