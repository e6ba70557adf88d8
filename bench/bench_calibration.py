"""Calibration of the shipped claims (docs/statistics.md items 9, 12, 13), full version.

First the statistics at the claims' own level: each statistic a shipped verdict uses, at confidence 1 - alpha/m
(m = 8 and 16) and the claim's n, on populations shaped like the claims' per-level values with the mean placed
exactly on the claim's bound, prints the supported rate there (size) on both sides, the refused share and the
95% coverage on the unshifted values; the same for the Clopper-Pearson claims (exact) and B2's betting interval.
``--per-level-values OUT.npz`` instead recomputes those per-level values from the shipped policy and SAE.

Then the planted models: runs the claims' own functions (CH1, CH3, P1, and a McNemar design; see tests/calibration.py) on planted and null
models for ``--reps`` repetitions, each on fresh calibration levels and model seeds, and prints per template and
model the supported rate with its 95% Clopper-Pearson interval, separately over the repetitions where the claim is
true (power) and false (false-positive rate); see tests/test_calibration.py for how truth is established.
Run: ``python bench/bench_calibration.py [--reps 40]`` (about a minute a repetition on one core at the claims' own n).
"""

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the claim suite (claims/) and its calibration (tests/calibration.py)

import numpy as np  # noqa: E402
from calibration import (ALPHA, B2, MEAN_CLAIMS, RATE_CLAIMS, Design, at_bound,  # noqa: E402
                         calibrate, claim_values, true_by_construction)

from harness.claims.calibration import (false_positive_rate, interval_misses, paired_differences,  # noqa: E402
                                        power, rate_misses)

FAMILIES = (8, 16)


def per_level_values(path: Path) -> None:
    """The per-level values of CH1, CH3 and S2 on their confirmation levels (sampling seed 0), saved to ``path``."""
    from claims import test_channels as channels
    from claims import test_sae as sae_claims
    from harness import render
    from harness.heist.sampling import sample_levels
    from harness.lenses.sae import load_sae
    from harness.policy.models import load_policy

    policy = load_policy(ROOT / "fixtures/agents/customcnn_bc/policy.pt")
    frames = render(sample_levels("confirmation", 256, seed=0, where=channels.target_is_up))
    found = {"CH1": channels.excess_drop(policy, frames, 6), "CH3": channels.up_drops(policy, frames, [6, 17, 5])}
    sae = load_sae(ROOT / "fixtures/saes/customcnn_bc_conv4a/sae.pt", site="conv4a")
    levels = sample_levels("confirmation", 256, seed=0, where=sae_claims.has_direction)
    found["S2"] = sae_claims.drop_toward_target(policy, sae, render(levels), sae_claims.oracle_moves(levels), 15)
    np.savez(path, **found)
    print(f"saved {', '.join(found)} to {path}")


def size_tables(samples: int) -> None:
    """Size at the bound of every shipped verdict's statistic, at alpha/m for each m in FAMILIES."""
    def pct(x: float, nominal: float) -> str:
        return f"{100 * x:6.3f}{'!' if x > 2 * nominal else ' '}"

    print(f"Size at the bound (% of samples supported with the truth exactly on the bound; ! above twice nominal), "
          f"{samples} samples a cell")
    print(f"{'claim':6s} {'n':>4s} {'m':>3s} {'nominal':>8s}  {'own side':>8s} {'other':>8s} {'refused':>8s}  "
          f"{'95% coverage of the unshifted values':>8s}")
    for name, (bound, n) in sorted(MEAN_CLAIMS.items()):
        values = claim_values(name)
        coverage = interval_misses(values, n, 0.95, method="betting", bounds=(-1, 1), samples=samples).coverage
        for m in FAMILIES:
            nominal = ALPHA / m / 2
            misses = interval_misses(at_bound(values, bound), n, 1 - ALPHA / m, method="betting", bounds=(-1, 1),
                                     samples=samples)
            print(f"{name:6s} {n:4d} {m:3d} {100 * nominal:8.4f}  {pct(misses.truth_below, nominal)} "
                  f"{pct(misses.truth_above, nominal)} {100 * misses.refused:7.1f}%  {100 * coverage:6.2f}")
    for name, (bound, n) in sorted(RATE_CLAIMS.items()):
        for m in FAMILIES:
            nominal = ALPHA / m / 2
            exact = rate_misses(bound, n, 1 - ALPHA / m)
            wilson = rate_misses(bound, n, 1 - ALPHA / m, method="wilson")
            print(f"{name:6s} {n:4d} {m:3d} {100 * nominal:8.4f}  {pct(exact.truth_below, nominal)} "
                  f"{pct(exact.truth_above, nominal)}  (Clopper-Pearson, exact; Wilson, which a verdict refuses: "
                  f"{100 * wilson.truth_below:.3f} / {100 * wilson.truth_above:.3f})")
    margin, n = B2
    for m in FAMILIES:
        nominal = ALPHA / m / 2
        for cells in [(0.75, 0.02, 0.02 + margin, 0.21 - margin), (0.70, 0.05 + margin, 0.05, 0.20 - margin)]:
            misses = interval_misses(paired_differences(cells), n, 1 - ALPHA / m, method="betting", bounds=(-1, 1),
                                     samples=samples)
            size = misses.truth_above if cells[2] > cells[1] else misses.truth_below
            print(f"{'B2':6s} {n:4d} {m:3d} {100 * nominal:8.4f}  {pct(size, nominal)} (betting interval, "
                  f"cells {tuple(round(c, 4) for c in cells)})")
    print()

MIN_POWER = 0.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--first-rep", type=int, default=0, help="repetition r draws its levels with seeds 2r, 2r+1")
    parser.add_argument("--selection", type=int, default=32, help="target-up levels the channels are ranked on")
    parser.add_argument("--n", type=int, default=None,
                        help="levels each claim is tested on (default: each claim's own declared n)")
    parser.add_argument("--null-sets", type=int, default=19, help="random channel sets in CH3's null")
    parser.add_argument("--train", type=int, default=128, help="levels P1's probe is fit on")
    parser.add_argument("--shuffles", type=int, default=19, help="shuffled-label probes in P1's null")
    parser.add_argument("--truth", type=int, default=256, help="fresh levels the null networks' truth is measured on")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size-samples", type=int, default=20000, help="samples a cell of the size tables")
    parser.add_argument("--sizes-only", action="store_true", help="print the size tables, skip the planted models")
    parser.add_argument("--per-level-values", type=Path, help="recompute the claims' per-level values, save, exit")
    args = parser.parse_args()
    if args.per_level_values:
        per_level_values(args.per_level_values)
        return
    size_tables(args.size_samples)
    if args.sizes_only:
        return
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
