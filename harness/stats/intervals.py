"""Bounds of an interval for a mean, and the smallest n at which each method keeps its level on skewed data.

Vectorised over leading rows (one row per sample), so that ``bench/bench_coverage.py`` and the calibration tests
run exactly this code on thousands of simulated samples at once; :mod:`~harness.stats.resampling` and
:mod:`~harness.stats.equivalence` call it on one sample.

Why a minimum n: an interval for a mean from n values misses more often than nominal when the population is
skewed, and the miss grows in the far tail that a claim decides at (``1 - alpha/m``).  The one-sided error of the
t interval is, to first order (Hall 1992, the Edgeworth expansion of the studentized mean),
``gamma (2 z^2 + 1) phi(z) / (6 sqrt(n))`` for skewness ``gamma`` at the normal quantile ``z`` of the tail; it
stays below the nominal tail (so the miss stays below twice nominal) once
``n >= ((2 z^2 + 1) phi(z) / (6 tail))^2 gamma^2``.  The studentized bootstrap removes that first-order term, and
measured on lognormal, zero-inflated and rare-binary populations (``bench/bench_coverage.py``,
docs/statistics.md) it needs :data:`STUDENTIZED_SHARE` of that n; BCa is held to the same n.  ``gamma`` is estimated by the sample's
adjusted skewness G1; a sample whose values are all equal has no spread to resample and is refused at any n.

The betting interval (:func:`betting_bounds`, for values within known bounds) needs no minimum n: its level holds
for every population within the bounds (Ville's inequality), which no interval from the sample's own moments can
promise on unbounded data at a fixed n (Bahadur & Savage 1956).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

MIN_N = {"t": 8, "studentized": 16, "bca": 16}
"""Smallest n each method accepts whatever the data."""
FAR_TAIL, FAR_TAIL_MIN_N = 0.005, 64
"""Below a one-sided tail of FAR_TAIL (confidence above 99%, where claims decide at alpha/m), every method needs
n >= FAR_TAIL_MIN_N: at n = 16 and 32, lognormal samples that pass the skewness rule still miss 0.7-1.1% at
alpha/8 against 0.625% allowed (bench/bench_coverage.py)."""
STUDENTIZED_SHARE = 0.5
"""The studentized bootstrap's minimum n as a share of the t interval's: the smallest share of 0.25, 0.5 and 1 at
which lognormal(0, 1) samples keep the miss below twice nominal at alpha/8 and alpha/16 for n = 64..512
(bench/bench_coverage.py; 0.25 let 0.6-1.1% through at alpha/8 against 0.625% allowed)."""
METHOD_NAMES = {"t": "t interval", "studentized": "studentized bootstrap", "bca": "BCa bootstrap"}
BETTING_SHARE = 0.75
"""The betting interval's largest stake: a bet that the mean exceeds m risks at most this share of the capital on
a value at the lower bound (Waudby-Smith & Ramdas's c; they use 1/2 or 3/4).  Below 1, so capital stays
positive."""
BETTING_STAKE_CONFIDENCE = 0.99
"""The confidence the betting interval's stakes are sized for, whatever confidence is asked: fixed, so that
intervals at every confidence come from the same bets (nested, and the same as a fresh call at that confidence).
Claims decide at 0.95 to 0.997, where stakes sized for their own level would be 0.83 to 1.10 times these, which
costs a few percent of width (a stake r times the best one grows the capital 2r - r^2 times as fast)."""
BISECTION_STEPS = 48
"""Halvings of [0, 1] when searching a betting bound (to 2^-48 of the declared range)."""


def tail_of(confidence: float) -> float:
    """One-sided tail of a two-sided interval at ``confidence``."""
    return (1 - confidence) / 2


def skewness(values: np.ndarray) -> np.ndarray:
    """Adjusted sample skewness G1 of each row (0 for a row without spread)."""
    n = values.shape[-1]
    centred = values - values.mean(-1, keepdims=True)
    m2 = np.mean(centred**2, -1)
    m3 = np.mean(centred**3, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g1 = np.where(m2 > 0, m3 / np.maximum(m2, np.finfo(float).tiny) ** 1.5, 0.0)
    return g1 * np.sqrt(n * (n - 1)) / (n - 2) if n > 2 else g1


def required_n(values: np.ndarray, confidence: float, method: str) -> np.ndarray:
    """The n ``method`` needs for a sample as skewed as each row of ``values`` at ``confidence`` (ints)."""
    tail = tail_of(confidence)
    z = special.ndtri(1 - tail)
    factor = ((2 * z**2 + 1) * np.exp(-(z**2) / 2) / np.sqrt(2 * np.pi) / (6 * tail)) ** 2
    if method != "t":
        factor *= STUDENTIZED_SHARE
    minimum = max(MIN_N[method], FAR_TAIL_MIN_N) if tail < FAR_TAIL else MIN_N[method]
    return np.maximum(minimum, np.ceil(factor * skewness(values) ** 2)).astype(int)


def refused(values: np.ndarray, confidence: float, method: str) -> np.ndarray:
    """Per row of ``values``: whether ``method`` refuses it at ``confidence`` (no spread, or n too small)."""
    flat = np.all(values == values[..., :1], -1)
    return flat | (values.shape[-1] < required_n(values, confidence, method))


def refusal(values: np.ndarray, confidence: float, method: str) -> str | None:
    """Why ``method`` cannot give a mean's interval at ``confidence`` from the 1-D ``values``, or None."""
    if not refused(values, confidence, method):
        return None
    n, name = values.size, METHOD_NAMES[method]
    if np.all(values == values[0]):
        return (f"all {n} values equal {values[0]:.6g}: the {name} cannot bound the mean of a population it saw no "
                "spread of (at any n); for outcomes that are mostly one value, count the units that differ and "
                "use harness.stats.proportion")
    needed = int(required_n(values, confidence, method))
    return (f"the {name} needs n >= {needed} at confidence {confidence:.6g} for a sample this skewed (skewness "
            f"{float(skewness(values)):.3g}), got n={n}; below that its interval misses the mean more than twice "
            "as often as nominal (docs/statistics.md, item 12): collect more units")


def mean_acceleration(values: np.ndarray) -> np.ndarray:
    """BCa acceleration of the mean per row: its jackknife formula, sum(d^3) / (6 sum(d^2)^1.5), d the deviations."""
    deviation = values - values.mean(-1, keepdims=True)
    scale = np.sum(deviation**2, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, np.sum(deviation**3, -1) / (6 * np.maximum(scale, np.finfo(float).tiny) ** 1.5),
                        0.0)


def _linear_quantiles(ordered: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Per row, the quantile at ``levels`` (rows, k) of the sorted rows of ``ordered``, as numpy's 'linear'."""
    count = ordered.shape[-1]
    position = np.clip(levels, 0, 1) * (count - 1)
    below = np.clip(np.floor(position).astype(int), 0, count - 1)
    above = np.minimum(below + 1, count - 1)
    a = np.take_along_axis(ordered, below, -1)
    b = np.take_along_axis(ordered, above, -1)
    t = position - below
    return np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)


def bca_bounds(theta: np.ndarray, ordered: np.ndarray, acceleration: np.ndarray,
               confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """BCa bounds per row (Efron & Tibshirani 1993, 14.3; as scipy.stats.bootstrap) from sorted resampled
    statistics ``ordered`` (rows, B).  Where the acceleration folds the level mapping over (far tails), the bound
    is the extreme resample; bounds are widened to contain ``theta``, so they are monotone in ``confidence``."""
    count = ordered.shape[-1]
    theta = np.asarray(theta, dtype=float)[..., None]
    below = (np.sum(ordered < theta, -1) + np.sum(ordered <= theta, -1)) / (2 * count)
    # keep the bias correction finite when theta lies outside every resample (tiny or heavily tied samples)
    bias = special.ndtri(np.clip(below, 0.5 / count, 1 - 0.5 / count))[..., None]
    z = special.ndtri(np.array([tail_of(confidence), 1 - tail_of(confidence)]))
    denominator = 1 - np.asarray(acceleration, dtype=float)[..., None] * (bias + z)
    with np.errstate(divide="ignore"):
        levels = special.ndtr(bias + (bias + z) / denominator)
    levels = np.where(denominator > 0, levels, [0.0, 1.0])
    low, high = np.moveaxis(_linear_quantiles(ordered, levels), -1, 0)
    return np.minimum(low, theta[..., 0]), np.maximum(high, theta[..., 0])


def studentized_bounds(theta: np.ndarray, se: np.ndarray, ordered_t: np.ndarray,
                       confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap-t bounds per row: ``theta - t*[1 - tail] se`` and ``theta - t*[tail] se`` from sorted studentized
    resamples ``ordered_t`` (rows, B), taking the outer order statistic (conservative; an infinite t* from a
    resample without spread gives an infinite bound).  Widened to contain ``theta``."""
    count = ordered_t.shape[-1]
    tail = tail_of(confidence)
    inner = np.clip(np.floor(tail * (count + 1) + 1e-9).astype(int) - 1, 0, count - 1)  # 1e-9: (1 - 0.9) / 2 < 0.05
    t_low, t_high = ordered_t[..., inner], ordered_t[..., count - 1 - inner]
    with np.errstate(invalid="ignore"):
        low, high = theta - t_high * se, theta - t_low * se
    low = np.where(t_high == np.inf, -np.inf, low)
    high = np.where(t_low == -np.inf, np.inf, high)
    return np.minimum(low, theta), np.maximum(high, theta)


def studentized(boot: np.ndarray, boot_se: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Sorted studentized resamples ``(boot - theta) / boot_se`` per row; a resample without spread counts as
    +-inf (0 where it equals theta)."""
    theta = np.asarray(theta, dtype=float)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (boot - theta) / boot_se
    t = np.where(boot_se > 0, t, np.where(boot > theta, np.inf, np.where(boot < theta, -np.inf, 0.0)))
    return np.sort(np.nan_to_num(t, nan=0.0, posinf=np.inf, neginf=-np.inf), -1)


def t_bounds(mean: np.ndarray, se: np.ndarray, df: int, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The t interval ``mean -+ t(df) se`` per row."""
    half = stats.t.isf(tail_of(confidence), df) * se
    return mean - half, mean + half


def resample_counts(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of n units appears in each of ``resamples`` bootstrap resamples, shape (resamples, n)."""
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.arange(resamples)[:, None], rng.integers(0, n, (resamples, n))), 1)
    return counts


def rows_bounds(method: str, values: np.ndarray, counts: np.ndarray | None, confidence: float, *,
                bounds: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The interval ``method`` gives the mean of each row of ``values`` (rows, n) at ``confidence``, resampling
    every row by ``counts`` (:func:`resample_counts`; None for "betting", which takes the values' ``bounds``); NaN
    where the method refuses the row (no spread, n too small for its skewness, an unbounded interval).  The
    statistics' own code, for simulating many samples at once."""
    if method == "betting":
        return betting_bounds(values, bounds, confidence)
    n = values.shape[-1]
    theta, se = values.mean(-1), values.std(-1, ddof=1) / np.sqrt(n)
    if method == "t":
        low, high = t_bounds(theta, se, n - 1, confidence)
    else:
        boot = values @ counts.T / n
        if method == "bca":
            low, high = bca_bounds(theta, np.sort(boot, -1), mean_acceleration(values), confidence)
        else:
            square = (values**2) @ counts.T / n
            boot_se = np.sqrt(np.maximum(square - boot**2, 0) * n / (n - 1)) / np.sqrt(n)
            low, high = studentized_bounds(theta, se, studentized(boot, boot_se, theta), confidence)
    bad = refused(values, confidence, method) | ~np.isfinite(low) | ~np.isfinite(high)
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def _betting_floor(y: np.ndarray, tail: float) -> np.ndarray:
    """Per row of ``y`` (rows, n; values in [0, 1], in sample order): the smallest m at which a bettor on "the mean
    exceeds m" never reaches capital 1/tail.  Every m it reaches it for is excluded, which errs with probability
    at most ``tail`` when m is the mean (Ville's inequality; Waudby-Smith & Ramdas 2024, one side of their
    hedged capital process, with predictable plug-in stakes).  The stake on unit t uses only the units before it:
    sqrt(2 log(1/s) / (n var_{t-1})) with s the tail of BETTING_STAKE_CONFIDENCE, at most BETTING_SHARE / m.  The
    capital falls as m rises, so a bisection finds the bound; the lower end of its last bracket is returned (never
    above the exact bound)."""
    rows, n = y.shape
    seen = np.arange(1, n + 1)
    mean_after = (0.5 + np.cumsum(y, -1)) / (seen + 1)
    mean_before = np.concatenate([np.full((rows, 1), 0.5), mean_after[:, :-1]], -1)
    var_after = (0.25 + np.cumsum((y - mean_before) ** 2, -1)) / (seen + 1)
    var_before = np.concatenate([np.full((rows, 1), 0.25), var_after[:, :-1]], -1)
    stake = np.sqrt(2 * np.log(1 / tail_of(BETTING_STAKE_CONFIDENCE)) / (n * var_before))
    low, high = np.zeros(rows), np.ones(rows)
    for _ in range(BISECTION_STEPS):
        m = (low + high) / 2
        bet = np.minimum(stake, BETTING_SHARE / m[:, None])
        wealth = np.cumsum(np.log1p(bet * (y - m[:, None])), -1).max(-1)
        excluded = wealth >= np.log(1 / tail)
        low, high = np.where(excluded, m, low), np.where(excluded, high, m)
    return low


def betting_bounds(values: np.ndarray, bounds: tuple[float, float],
                   confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The betting interval for the mean of each row of ``values`` (rows, n), every value within ``bounds``
    (low, high): each side misses with probability at most (1 - confidence) / 2 for ANY population within the
    bounds and any n (no skewness or minimum n rule needed), given units independent and in random order.
    Widened to contain the sample mean."""
    low, high = bounds
    width = high - low
    y = np.clip((values - low) / width, 0.0, 1.0)
    floor = low + width * _betting_floor(y, tail_of(confidence))
    ceiling = high - width * _betting_floor(1.0 - y, tail_of(confidence))
    mean = values.mean(-1)
    return np.minimum(floor, mean), np.maximum(ceiling, mean)
