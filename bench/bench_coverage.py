"""Coverage and one-sided tail misses of every interval a verdict uses, by simulation (docs/statistics.md, item 12).

For each population (normal, lognormal, zero-inflated, rare binary, and per-level values of the shipped claims
when ``--real FILE.npz`` is given: resampled, so their mean is known) and each n, draws ``--reps`` samples and
runs the library's own bound code (:mod:`harness.stats.intervals`, vectorised over samples) for the mean: the
studentized bootstrap (the default of ``bootstrap``/``paired_bootstrap``), the BCa bootstrap and the t interval
(TOST).  Prints per method: the two-sided coverage at 95%, and the one-sided misses below and above at the
claims' real level alpha/m (alpha 0.05, m = 8 and 16: nominal 0.3125% and 0.15625% a side), counting a sample the
method refuses (n too small for its skewness, no spread, an unbounded interval) as "refused", not as a miss.
A miss above twice nominal is marked ``!``.  Then the exact coverage of Wilson, Clopper-Pearson and Newcombe's
McNemar interval by enumeration of every outcome.

Run: ``python bench/bench_coverage.py [--reps 20000] [--resamples 1999] [--real values.npz]`` (minutes).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harness.stats.intervals as intervals  # noqa: E402
from harness.claims.calibration import paired_rate_misses, rate_misses  # noqa: E402

ALPHA = 0.05
FAMILIES = (8, 16)
LEVELS = {"95%": 0.95} | {f"a/{m}": 1 - ALPHA / m for m in FAMILIES}
NS = (16, 32, 64, 128, 256, 512)
METHODS = ("studentized", "bca", "t")


def populations(real: dict[str, np.ndarray]) -> dict:
    """name -> (draw(rng, shape), true mean)."""
    found = {
        "normal": (lambda rng, shape: rng.normal(0.0, 1.0, shape), 0.0),
        "lognormal(0,1)": (lambda rng, shape: rng.lognormal(0.0, 1.0, shape), float(np.exp(0.5))),
        "zero-inflated 85%": (lambda rng, shape: (rng.random(shape) < 0.15) * rng.lognormal(0.0, 1.0, shape),
                              0.15 * float(np.exp(0.5))),
        "rare binary 5%": (lambda rng, shape: (rng.random(shape) < 0.05).astype(float), 0.05),
    }
    for name, values in real.items():
        found[f"{name} values"] = (lambda rng, shape, v=values: v[rng.integers(0, v.size, shape)], float(values.mean()))
    return found


def simulate(draw, mean: float, n: int, reps: int, resamples: int, rng: np.random.Generator) -> dict:
    """(method, level) -> counts of [refused, miss below, miss above] over ``reps`` samples of size n."""
    tally = {(m, level): np.zeros(3, dtype=int) for m in METHODS for level in LEVELS}
    batch = max(1, min(reps, 2_000_000 // (n * 8)))
    done = 0
    while done < reps:
        rows = min(batch, reps - done)
        x = draw(rng, (rows, n))
        counts = intervals.resample_counts(n, resamples, rng)
        for method in METHODS:
            for level, confidence in LEVELS.items():
                low, high = intervals.rows_bounds(method, x, counts, confidence)
                tally[method, level] += [np.isnan(low).sum(), (mean < low).sum(), (mean > high).sum()]
        done += rows
    return tally


def rate_table() -> None:
    """Exact one-sided misses of the rate intervals and Newcombe's paired interval, by enumeration."""
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
    print("\nMcNemar / Newcombe (exact over every 2x2 table): truth below / above the interval, %")
    for n in (32, 64, 128):
        for cells in ((0.4, 0.1, 0.1, 0.4), (0.3, 0.05, 0.2, 0.45), (0.85, 0.02, 0.03, 0.10), (0.9, 0.0, 0.05, 0.05)):
            shown = []
            for level, confidence in LEVELS.items():
                misses = paired_rate_misses(cells, n, confidence)
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
    for name, (draw, mean) in populations(real).items():
        print(f"\n{name} (mean {mean:.4g})")
        for n in args.ns:
            tally = simulate(draw, mean, n, args.reps, args.resamples, rng)
            cells = []
            for method in METHODS:
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
        rate_table()
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
