"""Calibration of the claim templates on planted mechanisms (docs/statistics.md item 9), full version.

Runs every template (CH1, CH3, McNemar, P1; see :mod:`harness.planted`) on planted and null models for ``--reps``
repetitions, each on fresh calibration levels and model seeds, and prints per template and model the supported
rate with its 95% Clopper-Pearson interval: a false-positive rate on null rows, power on planted rows.  A null row
is flagged ``FPR > alpha`` when its interval lies above alpha, a planted row ``power < 0.8`` when its interval
lies below 0.8.  Run: ``python bench/bench_calibration.py [--reps 40]`` (about 5-10 s a repetition on one core).
"""

import argparse
import time

import torch

from harness.planted import ALPHA, Design, calibrate, is_null, rate

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
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    design = Design(selection=args.selection, n=args.n, null_sets=args.null_sets, train=args.train,
                    shuffles=args.shuffles)
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
    print(f"{'template':50s} {'model':16s} {'measures':6s} {'supported':>9s} {'rate':>6s} {'95% CP interval':>16s}"
          f"  {'inconcl.':>8s} {'refuted':>7s}")
    for (template, model), verdicts in sorted(cells.items(), key=lambda item: (is_null(*item[0]), item[0])):
        null = is_null(template, model)
        estimate = rate(verdicts)
        flag = ""
        if null and estimate.ci_low > ALPHA:
            flag = "  FPR > alpha"
        elif not null and estimate.ci_high < MIN_POWER:
            flag = f"  power < {MIN_POWER}"
        print(f"{template:50s} {model:16s} {'FPR' if null else 'power':6s} "
              f"{verdicts.count('supported'):>4d}/{len(verdicts):<4d} {estimate.estimate:6.3f} "
              f"[{estimate.ci_low:.3f}, {estimate.ci_high:.3f}]  {verdicts.count('inconclusive'):>8d} "
              f"{verdicts.count('refuted'):>7d}{flag}")


if __name__ == "__main__":
    main()
