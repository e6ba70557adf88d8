"""Cost of the bilinear tools on a BilinearCNN (one 512 -> 512 layer, random weights, 1 torch thread): building the
UP-minus-DOWN interaction matrix, its eigendecomposition, and a run of 256 random frames clean against one under
KeepTopEigen (k = 8).  Variants are interleaved round by round so that load from other processes hits them alike;
each figure is the median over rounds.  Run: ``python bench/bench_bilinear.py [--rounds 5]``.
"""

import argparse
import statistics
import time

import numpy as np
import torch

from harness.heist.actions import Action
from harness.lenses.bilinear import interaction, logit_difference
from harness.policy.models import BilinearCNN
from harness.policy.runner import run

BATCH = 256
TOP_K = 8


def seconds(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = BilinearCNN().eval()
    frames = np.random.default_rng(0).integers(0, 256, (BATCH, 64, 64, 3), dtype=np.uint8)
    direction = logit_difference(Action.UP, Action.DOWN)
    form = interaction(model, logits=direction)
    keep = form.keep_top(TOP_K)
    variants = {
        "interaction matrix (512 x 512)": lambda: interaction(model, logits=direction),
        "eigendecomposition": form.eigen,
        f"run, {BATCH} frames, clean": lambda: run(model, frames),
        f"run, {BATCH} frames, KeepTopEigen k={TOP_K}": lambda: run(model, frames, interventions=[keep]),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, work in variants.items():
            times[name].append(seconds(work))
    for name, measured in times.items():
        print(f"{name:45s} {statistics.median(measured) * 1000:9.1f} ms (median of {args.rounds})")


if __name__ == "__main__":
    main()
