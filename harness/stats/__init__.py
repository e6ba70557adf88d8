"""Estimates and tests behind claim verdicts (docs/statistics.md), in plain numpy/scipy.

Every estimate or test returns an :class:`Estimate` (or a subclass that only adds fields): a point estimate, its
interval, the number of independent units ``n`` (levels or pairs), the method in words, and a p-value where a
test was run.  The unit is always the level: paired inputs hold one value per level, in the same level order.

Sections: intervals for rates; paired binary outcomes (exact McNemar); paired continuous outcomes (BCa bootstrap
and sign-flip test); null baselines and their samplers; equivalence (TOST); multiplicity (Holm, BH); planning
(power and sample size); sequential testing (SPRT with an anytime-valid interval).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import optimize, special, stats

from harness.errors import StatisticsError

__all__ = [
    "BernoulliSPRT",
    "Equivalence",
    "Estimate",
    "SequentialResult",
    "benjamini_hochberg",
    "clopper_pearson_interval",
    "confidence_sequence_interval",
    "holm",
    "matched_firing_rate_latents",
    "mcnemar_exact",
    "paired_binary_power",
    "paired_binary_sample_size",
    "paired_bootstrap",
    "paired_mean_power",
    "paired_mean_sample_size",
    "permutation_test_against_null",
    "random_channel_sets",
    "random_directions_like",
    "tost",
    "two_proportion_power",
    "two_proportion_sample_size",
    "wilson_interval",
]

Alternative = Literal["two-sided", "greater", "less"]
Decision = Literal["continue", "accept H1", "accept H0", "inconclusive"]

_ALTERNATIVES = ("two-sided", "greater", "less")
_STATISTICS: dict[str, Callable[..., np.ndarray]] = {"mean": np.mean, "median": np.median}
_BATCH_ELEMENTS = 2**22  # resampled values held in memory at once (32 MiB of float64)
_TIE_TOLERANCE = 100 * np.finfo(float).eps  # relative; values this close count as ties, as in scipy.stats
_MAX_PLANNED_N = 10**6  # planning beyond this many levels means the effect is too small to test


# --------------------------------------------------------------------------------------------- result types


def _fmt(value: float) -> str:
    return f"{value:.3g}"


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """A point estimate with its interval, sample size, method and (for tests) p-value.

    ``distribution`` keeps the raw bootstrap or null distribution (read-only) where one was drawn;
    ``null_quantile`` is the estimate's mid-rank quantile in a null baseline, where one was compared.
    """

    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int
    method: str
    p_value: float | None = None
    null_quantile: float | None = None
    distribution: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.distribution is not None:
            kept = np.array(self.distribution, dtype=float)
            kept.setflags(write=False)
            object.__setattr__(self, "distribution", kept)

    def describe(self) -> str:
        """One line, e.g. ``0.04 [0.01, 0.07] (n=512, paired BCa bootstrap), p=0.003``."""
        interval = "" if math.isnan(self.ci_low) else f" [{_fmt(self.ci_low)}, {_fmt(self.ci_high)}]"
        level = "" if self.confidence == 0.95 or not interval else f", {100 * self.confidence:g}% CI"
        text = f"{_fmt(self.estimate)}{interval} (n={self.n}, {self.method}{level})"
        if self.p_value is not None:
            text += f", p={self.p_value:.2g}"
        if self.null_quantile is not None:
            text += f", null quantile={self.null_quantile:.3g}"
        return text


@dataclass(frozen=True, kw_only=True)
class Equivalence(Estimate):
    """TOST result: ``p_value`` is the larger one-sided p; the interval has confidence 1 - 2 * alpha."""

    margin: float
    alpha: float
    p_lower: float  # H0: effect <= -margin
    p_upper: float  # H0: effect >= +margin
    equivalent: bool

    def describe(self) -> str:
        shown = "shown" if self.equivalent else "not shown"
        return f"{super().describe()}; equivalence within ±{_fmt(self.margin)} {shown} at alpha={self.alpha:g}"


@dataclass(frozen=True, kw_only=True)
class SequentialResult(Estimate):
    """State of a :class:`BernoulliSPRT`: the rate with an anytime-valid interval and the stopping decision."""

    decision: Decision
    successes: int
    max_n: int
    log_likelihood_ratio: float

    def describe(self) -> str:
        return f"{super().describe()}; {self.decision} after {self.n} of at most {self.max_n}"


# ------------------------------------------------------------------------------------------------ validation


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_int(value: object, name: str, *, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise StatisticsError(f"{name} must be an int, got {value!r} ({type(value).__name__}); pass a whole number")
    if value < minimum:
        raise StatisticsError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _check_real(value: object, name: str, *, positive: bool = False) -> float:
    if not _is_number(value) or not math.isfinite(value) or (positive and value <= 0):
        kind = "a positive finite number" if positive else "a finite number"
        raise StatisticsError(f"{name} must be {kind}, got {value!r}")
    return float(value)


def _check_unit(value: object, name: str, *, example: str, closed: bool = False) -> float:
    """A number in (0, 1), or in [0, 1] when ``closed``."""
    inside = _is_number(value) and ((0 <= value <= 1) if closed else (0 < value < 1))
    if not inside:
        bounds = "in [0, 1]" if closed else "strictly between 0 and 1"
        raise StatisticsError(f"{name} must be a number {bounds}, got {value!r}; e.g. {name}={example}")
    return float(value)


def _check_confidence(confidence: object) -> float:
    return _check_unit(confidence, "confidence", example="0.95")


def _check_alpha(alpha: object) -> float:
    return _check_unit(alpha, "alpha", example="0.05")


def _check_power(power: object) -> float:
    return _check_unit(power, "power", example="0.8")


def _check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise StatisticsError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value  # type: ignore[return-value]


def _as_vector(values: object, name: str, *, min_size: int = 1) -> np.ndarray:
    """A 1-D array of finite floats, one value per unit."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise StatisticsError(f"{name} must be one-dimensional (one value per level), got shape {array.shape}")
    if array.size < min_size:
        raise StatisticsError(f"{name} has {array.size} values but needs at least {min_size}; collect more levels")
    if array.dtype.kind not in "iuf":
        raise StatisticsError(f"{name} must hold numbers, got dtype {array.dtype}; pass floats, one per level")
    array = array.astype(float)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise StatisticsError(f"{name} holds NaN or infinite values (first at index {bad[0]}); drop or fix those")
    return array


def _as_binary(values: object, name: str) -> np.ndarray:
    """A non-empty 1-D boolean array; 0/1 numbers are accepted."""
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise StatisticsError(f"{name} must be a non-empty 1-D array, one outcome per level; got shape {array.shape}")
    if array.dtype == bool:
        return array
    if array.dtype.kind in "iuf" and np.all((array == 0) | (array == 1)):
        return array.astype(bool)
    raise StatisticsError(f"{name} must hold booleans or 0/1 (one outcome per level); found other values or NaN")


def _as_indices(values: object, name: str, *, size: int, min_size: int) -> np.ndarray:
    """Distinct integer indices in [0, size)."""
    array = np.asarray(values)
    if array.size == 0 and min_size == 0:
        return np.empty(0, dtype=np.intp)
    if array.ndim != 1 or array.size < min_size or array.dtype.kind not in "iu":
        raise StatisticsError(f"{name} must be a 1-D sequence of at least {min_size} int indices, got {values!r}")
    if array.min() < 0 or array.max() >= size:
        raise StatisticsError(f"{name} must lie in [0, {size}), got {values!r}")
    if np.unique(array).size != array.size:
        raise StatisticsError(f"{name} must not repeat an index, got {values!r}")
    return array.astype(np.intp)


def _rng(seed: object) -> np.random.Generator:
    if seed is None or isinstance(seed, (bool, float)):
        raise StatisticsError(f"seed must be an int or a numpy Generator, got {seed!r}; pass a fixed int, e.g. seed=0")
    try:
        return np.random.default_rng(seed)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise StatisticsError(f"seed must be a non-negative int or a numpy Generator, got {seed!r}") from error


# -------------------------------------------------------------------------------------------- rates (item 2)


def _check_counts(successes: object, n: object) -> tuple[int, int]:
    n = _check_int(n, "n", minimum=1)
    successes = _check_int(successes, "successes", minimum=0)
    if successes > n:
        raise StatisticsError(f"successes must be at most n={n}, got {successes}")
    return successes, n


def _z(confidence: float) -> float:
    """Two-sided normal critical value for ``confidence``."""
    return float(special.ndtri(0.5 + confidence / 2))


def _wilson_bounds(successes, n, z):
    """Wilson score bounds; vectorised over arrays of counts."""
    rate = successes / n
    shrink = 1 + z**2 / n
    centre = (rate + z**2 / (2 * n)) / shrink
    half = z * np.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2)) / shrink
    return np.where(successes == 0, 0.0, centre - half), np.where(successes == n, 1.0, centre + half)


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> Estimate:
    """Rate successes/n with its Wilson score interval."""
    successes, n = _check_counts(successes, n)
    confidence = _check_confidence(confidence)
    low, high = _wilson_bounds(successes, n, _z(confidence))
    return Estimate(
        estimate=successes / n, ci_low=float(low), ci_high=float(high), confidence=confidence, n=n, method="Wilson"
    )


def clopper_pearson_interval(successes: int, n: int, *, confidence: float = 0.95) -> Estimate:
    """Rate successes/n with its exact (Clopper-Pearson) interval."""
    successes, n = _check_counts(successes, n)
    confidence = _check_confidence(confidence)
    tail = (1 - confidence) / 2
    low = stats.beta.ppf(tail, successes, n - successes + 1) if successes > 0 else 0.0
    high = stats.beta.isf(tail, successes + 1, n - successes) if successes < n else 1.0
    return Estimate(
        estimate=successes / n, ci_low=float(low), ci_high=float(high), confidence=confidence, n=n,
        method="Clopper-Pearson",
    )


def confidence_sequence_interval(successes: int, n: int, *, confidence: float = 0.95) -> Estimate:
    """Rate with an anytime-valid interval: it keeps its coverage under any data-dependent stopping.

    The interval is {p : p^s (1-p)^(n-s) > (1 - confidence) * B(s+1, n-s+1)}, the confidence sequence of the
    uniform-prior (beta-binomial) mixture martingale via Ville's inequality.  Wider than Wilson; use it when
    the number of outcomes was not fixed in advance.
    """
    successes, n = _check_counts(successes, n)
    confidence = _check_confidence(confidence)
    low = _sequence_lower_bound(successes, n - successes, 1 - confidence)
    high = 1 - _sequence_lower_bound(n - successes, successes, 1 - confidence)
    return Estimate(
        estimate=successes / n, ci_low=low, ci_high=high, confidence=confidence, n=n,
        method="beta-binomial mixture confidence sequence (anytime-valid)",
    )


def _sequence_lower_bound(successes: int, failures: int, alpha: float) -> float:
    if successes == 0:
        return 0.0
    threshold = special.betaln(successes + 1, failures + 1) + math.log(alpha)

    def excess(p: float) -> float:
        return special.xlogy(successes, p) + special.xlog1py(failures, -p) - threshold

    return optimize.brentq(excess, np.finfo(float).tiny, successes / (successes + failures), xtol=1e-14)


# ------------------------------------------------------------------------------------- paired binary (item 1)


def _newcombe_paired_bounds(both, before_only, after_only, neither, z):
    """Newcombe's (1998) method 10 interval for P(after) - P(before) in paired data; vectorised."""
    n = both + before_only + after_only + neither
    p_after, p_before = (both + after_only) / n, (both + before_only) / n
    low_after, high_after = _wilson_bounds(both + after_only, n, z)
    low_before, high_before = _wilson_bounds(both + before_only, n, z)
    margins = (both + after_only) * (before_only + neither) * (both + before_only) * (after_only + neither)
    cross = both * neither - before_only * after_only
    corrected = np.where(cross > n / 2, cross - n / 2, np.minimum(cross, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(margins > 0, corrected / np.sqrt(margins), 0.0)
    down_after, up_before = p_after - low_after, high_before - p_before
    up_after, down_before = high_after - p_after, p_before - low_before
    difference = p_after - p_before
    low = difference - np.sqrt(down_after**2 - 2 * phi * down_after * up_before + up_before**2)
    high = difference + np.sqrt(up_after**2 - 2 * phi * up_after * down_before + down_before**2)
    return low, high


def mcnemar_exact(before: object, after: object, *, confidence: float = 0.95) -> Estimate:
    """Paired binary outcomes on the same levels: risk difference mean(after) - mean(before).

    The p-value is the exact two-sided McNemar test (binomial on the discordant pairs); the interval is
    Newcombe's hybrid score interval for paired proportions (method 10, Newcombe 1998).
    """
    before, after = _as_binary(before, "before"), _as_binary(after, "after")
    if before.size != after.size:
        raise StatisticsError(
            "before and after must hold one outcome per level for the same levels; "
            f"got lengths {before.size} and {after.size}"
        )
    confidence = _check_confidence(confidence)
    both = int(np.sum(before & after))
    before_only = int(np.sum(before & ~after))
    after_only = int(np.sum(~before & after))
    neither = before.size - both - before_only - after_only
    p_value = min(1.0, 2 * float(stats.binom.cdf(min(before_only, after_only), before_only + after_only, 0.5)))
    low, high = _newcombe_paired_bounds(both, before_only, after_only, neither, _z(confidence))
    return Estimate(
        estimate=(after_only - before_only) / before.size, ci_low=float(low), ci_high=float(high),
        confidence=confidence, n=before.size, method="exact McNemar, Newcombe paired score CI", p_value=p_value,
    )


# ---------------------------------------------------------------------------------- paired continuous (item 1)


def _in_batches(compute: Callable[[int, int], np.ndarray], rows: int, width: int) -> np.ndarray:
    """Concatenate ``compute(start, stop)`` over row ranges holding about _BATCH_ELEMENTS values each."""
    step = max(1, _BATCH_ELEMENTS // width)
    return np.concatenate([compute(start, min(start + step, rows)) for start in range(0, rows, step)])


def _tail_p_value(null: np.ndarray, observed: float, alternative: str, *, exact: bool) -> float:
    """P-value of ``observed`` against null draws: (b+1)/(m+1) for sampled nulls, b/m for an enumerated one.

    Two-sided is twice the smaller tail, capped at 1 (as in scipy.stats.permutation_test).
    """
    slack = _TIE_TOLERANCE * abs(observed)
    extra = 0 if exact else 1
    greater = (np.count_nonzero(null >= observed - slack) + extra) / (null.size + extra)
    less = (np.count_nonzero(null <= observed + slack) + extra) / (null.size + extra)
    return {"greater": greater, "less": less, "two-sided": min(1.0, 2 * min(greater, less))}[alternative]


def _bca_bounds(theta: float, boot: np.ndarray, jackknife: np.ndarray, confidence: float) -> tuple[float, float]:
    """Bias-corrected and accelerated percentile interval (Efron & Tibshirani 1993, 14.3), as scipy.stats.bootstrap."""
    share_below = (np.count_nonzero(boot < theta) + np.count_nonzero(boot <= theta)) / (2 * boot.size)
    # keep the bias correction finite when theta lies outside every resample (tiny or heavily tied samples)
    bias = special.ndtri(np.clip(share_below, 0.5 / boot.size, 1 - 0.5 / boot.size))
    spread = jackknife.mean() - jackknife
    scale = np.sum(spread**2)
    acceleration = np.sum(spread**3) / (6 * scale**1.5) if scale > 0 else 0.0
    z = special.ndtri(np.array([(1 - confidence) / 2, (1 + confidence) / 2]))
    levels = special.ndtr(bias + (bias + z) / (1 - acceleration * (bias + z)))
    low, high = np.quantile(boot, levels)
    return float(low), float(high)


def paired_bootstrap(
    differences: object,
    *,
    statistic: Literal["mean", "median"] = "mean",
    alternative: Alternative = "two-sided",
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int | np.random.Generator = 0,
) -> Estimate:
    """Paired continuous outcome: ``statistic`` of per-level differences (e.g. intervened minus clean; the
    caller picks the sign and declares the bound to match).

    Resamples levels (never frames): BCa interval from ``n_resamples`` bootstrap resamples (kept in
    ``distribution``).  The p-value tests "no effect" (differences symmetric about 0) by flipping the sign of
    each level's difference: over all 2^n patterns when that is at most ``n_resamples``, else over
    ``n_resamples`` random patterns with p = (b+1)/(m+1).  The fixed default ``seed`` keeps reruns identical.
    """
    d = _as_vector(differences, "differences", min_size=2)
    summary = _STATISTICS[_check_choice(statistic, "statistic", _STATISTICS)]
    alternative = _check_choice(alternative, "alternative", _ALTERNATIVES)
    confidence = _check_confidence(confidence)
    n_resamples = _check_int(n_resamples, "n_resamples", minimum=99)
    rng = _rng(seed)
    n = d.size
    theta = float(summary(d))

    boot = _in_batches(lambda start, stop: summary(d[rng.integers(0, n, (stop - start, n))], axis=-1), n_resamples, n)
    positions = np.arange(n - 1)
    jackknife = _in_batches(
        lambda start, stop: summary(d[positions + (positions >= np.arange(start, stop)[:, None])], axis=-1), n, n
    )
    low, high = _bca_bounds(theta, boot, jackknife, confidence)

    exact = 2**n <= n_resamples
    bits = np.arange(n)

    def flipped(start: int, stop: int) -> np.ndarray:
        if exact:  # pattern k flips the levels where the bits of k are set
            signs = 1 - 2 * ((np.arange(start, stop)[:, None] >> bits) & 1)
        else:
            signs = 1 - 2 * rng.integers(0, 2, (stop - start, n))
        return summary(d * signs, axis=-1)

    null = _in_batches(flipped, 2**n if exact else n_resamples, n)
    p_value = _tail_p_value(null, theta, alternative, exact=exact)
    sidedness = "" if alternative == "two-sided" else f" ({alternative})"
    return Estimate(
        estimate=theta, ci_low=low, ci_high=high, confidence=confidence, n=n, p_value=p_value, distribution=boot,
        method=f"paired BCa bootstrap of the {statistic}, {'exact' if exact else 'Monte-Carlo'} sign-flip p{sidedness}",
    )


# --------------------------------------------------------------------------------------- null baselines (item 4)


def permutation_test_against_null(
    observed: float | Estimate, null_values: object, *, alternative: Alternative = "greater"
) -> Estimate:
    """Compare a claim's effect with the same effect under m null interventions (random channels, features, vectors).

    Returns the observed value with ``null_quantile`` (its mid-rank quantile among the null values),
    ``p_value`` = (b+1)/(m+1) where b counts null values at least as extreme (two-sided: twice the smaller tail),
    and the null values in ``distribution``.  Pass the claim's :class:`Estimate` to keep its interval and n;
    for a bare float the interval is NaN and n is the number of null draws m.
    """
    null = _as_vector(null_values, "null_values")
    alternative = _check_choice(alternative, "alternative", _ALTERNATIVES)
    if isinstance(observed, Estimate):
        value = _check_real(observed.estimate, "observed.estimate")
        low, high, confidence, n = observed.ci_low, observed.ci_high, observed.confidence, observed.n
        base = f"{observed.method}; "
    else:
        value = _check_real(observed, "observed")
        low = high = confidence = math.nan
        n, base = null.size, ""
    quantile = (np.count_nonzero(null < value) + 0.5 * np.count_nonzero(null == value)) / null.size
    return Estimate(
        estimate=value, ci_low=low, ci_high=high, confidence=confidence, n=n,
        method=f"{base}permutation p against {null.size} null draws ({alternative})",
        p_value=_tail_p_value(null, value, alternative, exact=False), null_quantile=float(quantile), distribution=null,
    )


def random_channel_sets(
    n_channels: int, size: int, m: int, *, seed: int | np.random.Generator, exclude: Iterable[int] = ()
) -> np.ndarray:
    """``m`` distinct random sets of ``size`` channels, shape (m, size), each row sorted.

    Channels in ``exclude`` are never drawn (pass the claimed channels to draw only other ones).
    """
    n_channels = _check_int(n_channels, "n_channels", minimum=1)
    size = _check_int(size, "size", minimum=1)
    m = _check_int(m, "m", minimum=1)
    pool = np.setdiff1d(np.arange(n_channels), _as_indices(exclude, "exclude", size=n_channels, min_size=0))
    if size > pool.size:
        raise StatisticsError(f"size={size} exceeds the {pool.size} channels left after exclude; lower size")
    total = math.comb(pool.size, size)
    if m > total:
        raise StatisticsError(f"m={m} exceeds the {total} distinct sets of {size} among {pool.size} channels; lower m")
    rng = _rng(seed)
    if total <= 2 * m:  # most sets are needed: choose among all of them
        every = np.array(list(itertools.combinations(pool, size)), dtype=np.intp)
        return every[rng.choice(total, m, replace=False)]
    drawn: dict[tuple[int, ...], None] = {}  # ordered set; rejection keeps at least half of the draws
    while len(drawn) < m:
        drawn[tuple(np.sort(rng.choice(pool, size, replace=False)))] = None
    return np.array(list(drawn), dtype=np.intp)


def matched_firing_rate_latents(
    firing_rates: object,
    target_latents: object,
    m: int,
    *,
    seed: int | np.random.Generator,
    tolerance: float = 0.1,
    exclude: Iterable[int] = (),
) -> np.ndarray:
    """``m`` random latent sets matched to ``target_latents`` by firing rate, shape (m, len(target_latents)).

    Column j holds latents whose rate is within ``tolerance`` (relative: |r - r_j| <= tolerance * r_j) of
    target j's rate (a target that never fires matches only latents that never fire); latents within a row
    are distinct.  Latents in ``exclude`` are never drawn (pass the targets to draw only other latents).
    """
    rates = _as_vector(firing_rates, "firing_rates")
    if np.any(rates < 0):
        raise StatisticsError("firing_rates must be non-negative (fraction of inputs on which each latent fires)")
    targets = _as_indices(target_latents, "target_latents", size=rates.size, min_size=1)
    m = _check_int(m, "m", minimum=1)
    tolerance = _check_real(tolerance, "tolerance", positive=True)
    allowed = np.ones(rates.size, dtype=bool)
    allowed[_as_indices(exclude, "exclude", size=rates.size, min_size=0)] = False
    pools = []
    for target in targets:
        pool = np.flatnonzero(allowed & (np.abs(rates - rates[target]) <= tolerance * rates[target]))
        if pool.size < targets.size:
            raise StatisticsError(
                f"target latent {target} (firing rate {rates[target]:.3g}) has {pool.size} candidates within "
                f"tolerance={tolerance:g}, fewer than the {targets.size} a set of distinct latents needs; "
                "raise tolerance, exclude fewer latents or pass fewer target_latents"
            )
        pools.append(pool)
    rng = _rng(seed)
    sets = np.empty((m, targets.size), dtype=np.intp)
    for row in sets:
        for j, pool in enumerate(pools):
            while (pick := pool[rng.integers(pool.size)]) in row[:j]:
                pass
            row[j] = pick
    return sets


def random_directions_like(vector: object, m: int, *, seed: int | np.random.Generator) -> np.ndarray:
    """``m`` uniformly random directions with the L2 norm of ``vector``, shape (m, *vector.shape)."""
    v = np.asarray(vector, dtype=float)
    if v.size == 0 or not np.all(np.isfinite(v)) or not np.any(v):
        raise StatisticsError("vector must be a non-empty finite array with non-zero norm (e.g. the steering vector)")
    m = _check_int(m, "m", minimum=1)
    draws = _rng(seed).standard_normal((m, v.size))
    draws *= np.linalg.norm(v) / np.linalg.norm(draws, axis=1, keepdims=True)
    return draws.reshape((m, *v.shape))


# ------------------------------------------------------------------------------------------ equivalence (item 5)


def tost(differences: object, *, margin: float, alpha: float = 0.05) -> Equivalence:
    """Two one-sided paired t-tests that the mean per-level difference lies within (-margin, +margin).

    Equivalence is shown when both one-sided p-values are below ``alpha``, i.e. when the (1 - 2 alpha)
    t interval lies inside the margins.  Declare ``margin`` before seeing the data.
    """
    d = _as_vector(differences, "differences", min_size=2)
    margin = _check_real(margin, "margin", positive=True)
    alpha = _check_alpha(alpha)
    if alpha >= 0.5:
        raise StatisticsError(f"alpha must be below 0.5 for a (1 - 2 alpha) interval, got {alpha}; e.g. alpha=0.05")
    n, mean, df = d.size, float(d.mean()), d.size - 1
    se = d.std(ddof=1) / math.sqrt(n)  # a numpy float: dividing by a zero se gives inf, not an exception
    with np.errstate(divide="ignore", invalid="ignore"):  # se == 0 gives infinite t, or NaN exactly on a margin
        p_lower = float(np.nan_to_num(stats.t.sf((mean + margin) / se, df), nan=1.0))
        p_upper = float(np.nan_to_num(stats.t.cdf((mean - margin) / se, df), nan=1.0))
    half = float(stats.t.isf(alpha, df) * se)
    p_value = max(p_lower, p_upper)
    return Equivalence(
        estimate=mean, ci_low=mean - half, ci_high=mean + half, confidence=1 - 2 * alpha, n=n,
        method=f"TOST paired t, margin ±{margin:g}", p_value=p_value, margin=margin, alpha=alpha,
        p_lower=p_lower, p_upper=p_upper, equivalent=p_value < alpha,
    )


# ----------------------------------------------------------------------------------------- multiplicity (item 6)


def _as_p_values(p_values: object) -> np.ndarray:
    p = _as_vector(p_values, "p_values")
    if np.any((p < 0) | (p > 1)):
        raise StatisticsError("p_values must lie in [0, 1]; pass raw p-values, not scores or log p-values")
    return p


def holm(p_values: object) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error), in input order; for confirmatory claims."""
    p = _as_p_values(p_values)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((p.size - np.arange(p.size)) * p[order]))
    return adjusted


def benjamini_hochberg(p_values: object) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (false discovery rate), in input order; for exploratory scans."""
    p = _as_p_values(p_values)
    order = np.argsort(p, kind="stable")[::-1]
    ranks = p.size - np.arange(p.size)
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.minimum.accumulate(p[order] * p.size / ranks))
    return adjusted


# --------------------------------------------------------------------------------------------- planning (item 3)


def _smallest_n(power_at: Callable[[int], float], power: float, *, minimum: int) -> int:
    """Smallest n >= minimum with power_at(n) >= power, for power rising with n (doubling, then bisection)."""
    if power_at(minimum) >= power:
        return minimum
    low, high = minimum, 2 * minimum
    while power_at(high) < power:
        if high > _MAX_PLANNED_N:
            raise StatisticsError(
                f"no n up to {_MAX_PLANNED_N} reaches power={power}; the planned effect is zero or too small to detect"
            )
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if power_at(middle) >= power else (middle, high)
    return high


def _check_discordance(increase: object, decrease: object) -> tuple[float, float]:
    increase = _check_unit(increase, "p_discordant_increase", closed=True, example="0.15")
    decrease = _check_unit(decrease, "p_discordant_decrease", closed=True, example="0.03")
    if not 0 < increase + decrease <= 1:
        raise StatisticsError(
            "p_discordant_increase + p_discordant_decrease must lie in (0, 1] (they are shares of all pairs), "
            f"got {increase} + {decrease}"
        )
    return increase, decrease


def _exact_mcnemar_power(increase: float, decrease: float, n: int, alpha: float) -> float:
    # numbers of discordant pairs outside this range carry less than 2e-15 of the probability
    rare = 1e-15
    low, high = stats.binom.ppf(rare, n, increase + decrease), stats.binom.isf(rare, n, increase + decrease)
    discordant = np.arange(max(1, int(low)), int(high) + 1)
    # largest count c of the rarer discordant kind that the exact test rejects: 2 * P(X <= c) <= alpha
    critical = stats.binom.ppf(alpha / 2, discordant, 0.5)
    critical = np.where(2 * stats.binom.cdf(critical, discordant, 0.5) <= alpha, critical, critical - 1)
    share = increase / (increase + decrease)
    reject = stats.binom.cdf(critical, discordant, share) + stats.binom.sf(discordant - critical - 1, discordant, share)
    return float(np.sum(stats.binom.pmf(discordant, n, increase + decrease) * reject))


def paired_binary_power(
    p_discordant_increase: float, p_discordant_decrease: float, n: int, *, alpha: float = 0.05
) -> float:
    """Exact power of :func:`mcnemar_exact` (two-sided, level ``alpha``) with ``n`` pairs.

    ``p_discordant_increase`` is the share of pairs that go from failure to success, ``..._decrease`` the
    share that go from success to failure.  Computed over the trinomial distribution of pair types (to 1e-14).
    """
    increase, decrease = _check_discordance(p_discordant_increase, p_discordant_decrease)
    return _exact_mcnemar_power(increase, decrease, _check_int(n, "n", minimum=1), _check_alpha(alpha))


def paired_binary_sample_size(
    p_discordant_increase: float, p_discordant_decrease: float, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Smallest number of pairs at which :func:`mcnemar_exact` reaches ``power`` (exact calculation).

    Connor's (1987) normal approximation gives 96 pairs for 15%/3% discordance, but the exact test then has
    power 0.77; this returns 102.
    """
    increase, decrease = _check_discordance(p_discordant_increase, p_discordant_decrease)
    alpha = _check_alpha(alpha)
    power = _check_power(power)
    return _smallest_n(lambda n: _exact_mcnemar_power(increase, decrease, n, alpha), power, minimum=1)


def _check_rates(p1: object, p2: object) -> tuple[float, float]:
    return _check_unit(p1, "p1", example="0.4"), _check_unit(p2, "p2", example="0.52")


def _two_proportion_power(p1: float, p2: float, n: int, alpha: float) -> float:
    pooled = (p1 + p2) / 2
    null_sd = math.sqrt(2 * pooled * (1 - pooled))
    alternative_sd = math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return float(special.ndtr((abs(p1 - p2) * math.sqrt(n) - _z(1 - alpha) * null_sd) / alternative_sd))


def two_proportion_power(p1: float, p2: float, n_per_arm: int, *, alpha: float = 0.05) -> float:
    """Power of the two-sided pooled z-test (chi-square) comparing two independent rates, ``n_per_arm`` each.

    Normal approximation with the pooled variance under H0 (as R's power.prop.test).
    """
    p1, p2 = _check_rates(p1, p2)
    return _two_proportion_power(p1, p2, _check_int(n_per_arm, "n_per_arm", minimum=1), _check_alpha(alpha))


def two_proportion_sample_size(p1: float, p2: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Levels per arm for an unpaired comparison of rates p1 and p2 (see :func:`two_proportion_power`).

    40% -> 52% gives 270 per arm (exact power 0.806); the unpooled shortcut's 267 has exact power 0.798.
    """
    p1, p2 = _check_rates(p1, p2)
    alpha = _check_alpha(alpha)
    power = _check_power(power)
    return _smallest_n(lambda n: _two_proportion_power(p1, p2, n, alpha), power, minimum=1)


def _paired_t_power(effect_size_d: float, n: int, alpha: float) -> float:
    df, shift = n - 1, effect_size_d * math.sqrt(n)
    critical = stats.t.isf(alpha / 2, df)
    return float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))


def paired_mean_power(effect_size_d: float, n: int, *, alpha: float = 0.05) -> float:
    """Exact power of the two-sided paired t-test with ``n`` levels (noncentral t).

    ``effect_size_d`` is the standardised mean difference: mean(differences) / sd(differences).
    """
    effect_size_d = _check_real(effect_size_d, "effect_size_d")
    return _paired_t_power(effect_size_d, _check_int(n, "n", minimum=2), _check_alpha(alpha))


def paired_mean_sample_size(effect_size_d: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Smallest number of levels at which the two-sided paired t-test reaches ``power``."""
    effect_size_d = _check_real(effect_size_d, "effect_size_d")
    alpha = _check_alpha(alpha)
    power = _check_power(power)
    return _smallest_n(lambda n: _paired_t_power(effect_size_d, n, alpha), power, minimum=2)


# ------------------------------------------------------------------------------------------- sequential (item 8)


class BernoulliSPRT:
    """Sequential probability ratio test for a success rate: H0: p <= p0 against H1: p >= p1.

    Feed outcomes (one or a batch) with :meth:`update`; outcomes are used one by one until a boundary is
    crossed or ``max_n`` is reached, and the rest of a batch is ignored.  The boundaries are log(1/alpha) and
    log(beta) (Ville's inequality), so P(accept H1) <= alpha for every p <= p0 and P(accept H0) <= beta for
    every p >= p1, whatever the batching and including the truncation at ``max_n`` ("inconclusive").
    """

    def __init__(self, p0: float, p1: float, *, alpha: float = 0.05, beta: float = 0.2, max_n: int) -> None:
        self.p0 = _check_unit(p0, "p0", example="0.5")
        self.p1 = _check_unit(p1, "p1", example="0.7")
        if self.p1 <= self.p0:
            raise StatisticsError(f"p1 must exceed p0 (H1 is the higher rate), got p0={p0}, p1={p1}")
        self.alpha = _check_alpha(alpha)
        self.beta = _check_unit(beta, "beta", example="0.2")
        self.max_n = _check_int(max_n, "max_n", minimum=1)
        self._step = (math.log(self.p1 / self.p0), math.log1p(-self.p1) - math.log1p(-self.p0))
        self._bounds = (-math.log(self.alpha), math.log(self.beta))
        self._n = self._successes = 0
        self._log_ratio = self._max_log_ratio = 0.0
        self._decision: Decision = "continue"

    @property
    def decision(self) -> Decision:
        return self._decision

    @property
    def n(self) -> int:
        """Outcomes used so far."""
        return self._n

    def update(self, outcomes: object) -> Decision:
        """Use outcomes (a bool or 1-D bools, in the order observed) and return the decision."""
        if self._decision != "continue":
            raise StatisticsError(
                f"the test already stopped ({self._decision} after {self._n}); start a new BernoulliSPRT"
            )
        x = _as_binary(np.atleast_1d(outcomes), "outcomes")[: self.max_n - self._n]
        upper, lower = self._bounds
        path = self._log_ratio + np.cumsum(np.where(x, *self._step))
        crossed = np.flatnonzero((path >= upper) | (path <= lower))
        used = int(crossed[0]) + 1 if crossed.size else x.size
        self._n += used
        self._successes += int(np.sum(x[:used]))
        self._log_ratio = float(path[used - 1])
        self._max_log_ratio = max(self._max_log_ratio, float(np.max(path[:used])))
        if self._log_ratio >= upper:
            self._decision = "accept H1"
        elif self._log_ratio <= lower:
            self._decision = "accept H0"
        elif self._n == self.max_n:
            self._decision = "inconclusive"
        return self._decision

    def result(self, *, confidence: float = 0.95) -> SequentialResult:
        """The rate so far with an anytime-valid interval, and the anytime-valid p-value for H0 (1 / max likelihood
        ratio so far); both stay valid at this data-dependent n."""
        if self._n == 0:
            raise StatisticsError("no outcomes yet; call update() before result()")
        rate = confidence_sequence_interval(self._successes, self._n, confidence=confidence)
        return SequentialResult(
            estimate=rate.estimate, ci_low=rate.ci_low, ci_high=rate.ci_high, confidence=rate.confidence, n=self._n,
            method=f"Bernoulli SPRT p0={self.p0:g} vs p1={self.p1:g} (alpha={self.alpha:g}, beta={self.beta:g}), "
            f"{rate.method}",
            p_value=min(1.0, math.exp(-self._max_log_ratio)), decision=self._decision, successes=self._successes,
            max_n=self.max_n, log_likelihood_ratio=self._log_ratio,
        )
