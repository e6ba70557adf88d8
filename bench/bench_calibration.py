"""Calibration of the shipped claims on planted mechanisms (docs/statistics.md item 9), full version.

Runs the claims' own functions (CH1, CH3, P1, and a McNemar design; see tests/calibration.py) on planted and null
models for ``--reps`` repetitions, each on fresh calibration levels and model seeds, and prints per template and
model the supported rate with its 95% Clopper-Pearson interval, separately over the repetitions where the claim is
true (power) and false (false-positive rate); see tests/test_calibration.py for how truth is established.
Run: ``python bench/bench_calibration.py [--reps 40]`` (about 10-15 s a repetition on one core).
"""

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the claim suite (claims/) and its calibration (tests/calibration.py)

from calibration import ALPHA, Design, calibrate, true_by_construction  # noqa: E402

from harness.claims.calibration import false_positive_rate, power  # noqa: E402

MIN_POWER = 0.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--first-rep", type=int, default=0, help="repetition r draws its levels with seeds 2r, 2r+1")
    parser.add_argument("--selection", type=int, default=32, help="target-up levels the channels are ranked on")
    parser.add_argument("--n", type=int, default=64, help="levels each claim is tested on")
    parser.add_argument("--null-sets", type=int, default=19, help="random channel sets in CH3's null")
    parser.add_argument("--train", type=int, default=128, help="levels P1's probe is fit on")
    parser.add_argument("--shuffles", type=int, default=19, help="shuffled-label probes in P1's null")
    parser.add_argument("--truth", type=int, default=256, help="fresh levels the null networks' truth is measured on")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    design = Design(selection=args.selection, n=args.n, null_sets=args.null_sets, train=args.train,
                    shuffles=args.shuffles, truth=args.truth)
    reps = range(args.first_rep, args.first_rep + args.reps)
    start = time.perf_counter()

    def progress(rep: int) -> None:
        done = rep - reps.start + 1
        elapsed = time.perf_counter() - start
        print(f"repetition {done}/{len(reps)}  {elapsed:.0f} s  (~{elapsed / done * (len(reps) - done):.0f} s left)",
              flush=True)

    cells = calibrate(reps, design, progress=progress)
    print(f"\n{design}, alpha {ALPHA} (family of one), {len(reps)} repetitions, "
          f"{time.perf_counter() - start:.0f} s\n")
    print(f"{'template':28s} {'model':16s} {'claim true':>10s}  {'power (supported | true)':31s}  "
          f"{'FPR (supported | false)':31s}")
    for (template, model), outcomes in sorted(cells.items()):
        true = sum(o.true for o in outcomes)
        columns = []
        for estimate, flag in ((power(outcomes), lambda e: e.ci_high < MIN_POWER and true_by_construction(template, model)),
                               (false_positive_rate(outcomes), lambda e: e.ci_low > ALPHA)):
            if estimate is None:
                columns.append(f"{'-':31s}")
            else:
                columns.append(f"{estimate.estimate:5.3f} [{estimate.ci_low:.3f}, {estimate.ci_high:.3f}] "
                               f"{'!' if flag(estimate) else ' ':<9s}")
        print(f"{template:28s} {model:16s} {true:>4d}/{len(outcomes):<4d}  " + "  ".join(columns))
    print(f"\n! marks a power below {MIN_POWER} on a planted mechanism, or a false-positive rate above alpha "
          "(95% Clopper-Pearson intervals).")


if __name__ == "__main__":
    main()
