"""Coverage and one-sided tail misses of every interval a verdict uses, by simulation (docs/statistics.md, item 12).

For each population (normal, lognormal, zero-inflated, rare binary, and per-level values of the shipped claims
when ``--real FILE.npz`` is given: resampled, so their mean is known) and each n, draws ``--reps`` samples and
runs the library's own bound code (:mod:`harness.stats.intervals`, vectorised over samples) for the mean: the
studentized bootstrap (the default of ``bootstrap``/``paired_bootstrap``), the BCa bootstrap, the t interval
(TOST), and for populations with known bounds the betting interval (``bounded_mean``, and McNemar's interval).
Prints per method: the two-sided coverage at 95%, and the one-sided misses below and above at the claims' real
level alpha/m (alpha 0.05, m = 8 and 16: nominal 0.3125% and 0.15625% a side), counting a sample the
method refuses (n too small for its skewness, no spread, an unbounded interval) as "refused", not as a miss.
A miss above twice nominal is marked ``!``.  Then the exact coverage of Wilson and Clopper-Pearson by enumeration
of every outcome, and McNemar's interval (betting, on the paired differences) by simulation.

Run: ``python bench/bench_coverage.py [--reps 20000] [--resamples 1999] [--real values.npz]`` (minutes).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harness.stats.intervals as intervals  # noqa: E402
from harness.claims.calibration import interval_misses, paired_differences, rate_misses  # noqa: E402

ALPHA = 0.05
FAMILIES = (8, 16)
LEVELS = {"95%": 0.95} | {f"a/{m}": 1 - ALPHA / m for m in FAMILIES}
NS = (16, 32, 64, 128, 256, 512)
METHODS = ("studentized", "bca", "t", "betting")


def populations(real: dict[str, np.ndarray]) -> dict:
    """name -> (draw(rng, shape), true mean, bounds the values cannot leave or None)."""
    found = {
        "normal": (lambda rng, shape: rng.normal(0.0, 1.0, shape), 0.0, None),
        "lognormal(0,1)": (lambda rng, shape: rng.lognormal(0.0, 1.0, shape), float(np.exp(0.5)), None),
        "zero-inflated 85%": (lambda rng, shape: (rng.random(shape) < 0.15) * rng.lognormal(0.0, 1.0, shape),
                              0.15 * float(np.exp(0.5)), None),
        "rare binary 5%": (lambda rng, shape: (rng.random(shape) < 0.05).astype(float), 0.05, (0.0, 1.0)),
        "beta(0.2, 4)": (lambda rng, shape: rng.beta(0.2, 4.0, shape), 0.2 / 4.2, (0.0, 1.0)),
    }
    for name, values in real.items():  # per-level changes of probability: within [-1, 1]
        found[f"{name} values"] = (lambda rng, shape, v=values: v[rng.integers(0, v.size, shape)], float(values.mean()),
                                   (-1.0, 1.0))
    return found


def simulate(draw, mean: float, bounds, n: int, reps: int, resamples: int, rng: np.random.Generator) -> dict:
    """(method, level) -> counts of [refused, miss below, miss above] over ``reps`` samples of size n (the
    betting interval only where the population has bounds)."""
    methods = METHODS if bounds is not None else METHODS[:-1]
    tally = {(m, level): np.zeros(3, dtype=int) for m in methods for level in LEVELS}
    batch = max(1, min(reps, 2_000_000 // (n * 8)))
    done = 0
    while done < reps:
        rows = min(batch, reps - done)
        x = draw(rng, (rows, n))
        counts = intervals.resample_counts(n, resamples, rng)
        for method in methods:
            for level, confidence in LEVELS.items():
                low, high = intervals.rows_bounds(method, x, counts, confidence, bounds=bounds)
                tally[method, level] += [np.isnan(low).sum(), (mean < low).sum(), (mean > high).sum()]
        done += rows
    return tally


def rate_table(reps: int) -> None:
    """Exact one-sided misses of the rate intervals by enumeration; McNemar's (betting) interval by simulation."""
    print("\nRates (exact, every outcome enumerated): truth below / above the interval, % (nominal a side: "
          + ", ".join(f"{level} {100 * (1 - c) / 2:.3g}" for level, c in LEVELS.items()) + ")")
    for n in (64, 128, 256, 512):
        for p in (0.5, 0.8, 0.9, 0.95, 0.99):
            cells = []
            for level, confidence in LEVELS.items():
                for name, method in (("W", "wilson"), ("CP", "clopper-pearson")):
                    misses = rate_misses(p, n, confidence, method=method)
                    flag = "!" if max(misses.truth_below, misses.truth_above) > 1 - confidence else " "
                    cells.append(f"{name} {level} {100 * misses.truth_below:5.2f}/{100 * misses.truth_above:5.2f}{flag}")
            print(f"  n={n:<4d} p={p:<5g} " + "  ".join(cells))
    print(f"\nMcNemar's interval (betting on the paired differences; {reps} samples a cell): truth below / above "
          "the interval, %")
    for n in (32, 64, 128, 256):
        for cells in ((0.4, 0.1, 0.1, 0.4), (0.3, 0.05, 0.2, 0.45), (0.45, 0.01, 0.1, 0.44), (0.9, 0.0, 0.05, 0.05)):
            shown = []
            for level, confidence in LEVELS.items():
                misses = interval_misses(paired_differences(cells), n, confidence, method="betting", bounds=(-1, 1),
                                         samples=reps)
                flag = "!" if max(misses.truth_below, misses.truth_above) > 1 - confidence else " "
                shown.append(f"{level} {100 * misses.truth_below:5.2f}/{100 * misses.truth_above:5.2f}{flag}")
            print(f"  n={n:<4d} cells={cells} " + "  ".join(shown))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20000)
    parser.add_argument("--resamples", type=int, default=1999)
    parser.add_argument("--ns", type=int, nargs="+", default=list(NS))
    parser.add_argument("--real", type=Path, help="an .npz of per-level values (one array per claim)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-rates", action="store_true")
    args = parser.parse_args()
    real = dict(np.load(args.real)) if args.real else {}
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    print(f"{args.reps} samples a cell, {args.resamples} resamples; one-sided nominal miss "
          + ", ".join(f"{level}: {100 * (1 - c) / 2:.4g}%" for level, c in LEVELS.items() if level != "95%")
          + "; cells: 95% coverage | miss below/above at each a/m, % | refused %")
    for name, (draw, mean, bounds) in populations(real).items():
        print(f"\n{name} (mean {mean:.4g})")
        for n in args.ns:
            tally = simulate(draw, mean, bounds, n, args.reps, args.resamples, rng)
            cells = []
            for method in sorted({method for method, _ in tally}, key=METHODS.index):
                refused95, below95, above95 = tally[method, "95%"]
                shown = [f"{100 * (1 - (below95 + above95) / max(1, args.reps - refused95)):5.1f}"]
                for level, confidence in LEVELS.items():
                    if level == "95%":
                        continue
                    refused, below, above = tally[method, level] / args.reps
                    flag = "!" if max(below, above) > 2 * (1 - confidence) / 2 else " "
                    shown.append(f"{100 * below:4.2f}/{100 * above:4.2f}{flag} r{100 * refused:3.0f}")
                cells.append(f"{method[:5]:5s} " + " ".join(shown))
            print(f"  n={n:<4d} " + " | ".join(cells), flush=True)
    if not args.no_rates:
        rate_table(args.reps)
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
