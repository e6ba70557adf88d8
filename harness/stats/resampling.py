"""Paired continuous outcomes by resampling levels: the BCa bootstrap with a sign-flip test, and the
permutation test of an observed effect against the same effect under null interventions."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy import special

from harness.stats.checks import as_vector, check_choice, check_confidence, check_int, check_real, rng_from
from harness.stats.estimates import ALTERNATIVES, Alternative, Estimate


_STATISTICS: dict[str, Callable[..., np.ndarray]] = {"mean": np.mean, "median": np.median}
_BATCH_ELEMENTS = 2**22  # resampled values held in memory at once (32 MiB of float64)
_TIE_TOLERANCE = 100 * np.finfo(float).eps  # relative; values this close count as ties, as in scipy.stats


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
    d = as_vector(differences, "differences", min_size=2)
    summary = _STATISTICS[check_choice(statistic, "statistic", _STATISTICS)]
    alternative = check_choice(alternative, "alternative", ALTERNATIVES)
    confidence = check_confidence(confidence)
    n_resamples = check_int(n_resamples, "n_resamples", minimum=99)
    rng = rng_from(seed)
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
    null = as_vector(null_values, "null_values")
    alternative = check_choice(alternative, "alternative", ALTERNATIVES)
    if isinstance(observed, Estimate):
        value = check_real(observed.estimate, "observed.estimate")
        low, high, confidence, n = observed.ci_low, observed.ci_high, observed.confidence, observed.n
        base = f"{observed.method}; "
    else:
        value = check_real(observed, "observed")
        low = high = confidence = math.nan
        n, base = null.size, ""
    quantile = (np.count_nonzero(null < value) + 0.5 * np.count_nonzero(null == value)) / null.size
    return Estimate(
        estimate=value, ci_low=low, ci_high=high, confidence=confidence, n=n,
        method=f"{base}permutation p against {null.size} null draws ({alternative})",
        p_value=_tail_p_value(null, value, alternative, exact=False), null_quantile=float(quantile), distribution=null,
    )
