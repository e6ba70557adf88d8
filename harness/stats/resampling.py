"""Continuous outcomes by resampling units: the bootstrap of a statistic over any unit (levels, pairs,
episodes, latents...), the paired bootstrap with a sign-flip test, and the permutation test of an observed effect
against the same effect under null interventions."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

import numpy as np

from harness.errors import StatisticsError
import harness.stats.intervals as intervals
from harness.stats.checks import (as_vector, check_choice, check_confidence, check_int, check_real, check_unit,
                                  check_unit_name, rng_from)
from harness.stats.estimates import ALTERNATIVES, Alternative, Estimate, checked_interval_at

Statistic = Literal["mean", "median"]
Interval = Literal["studentized", "bca"]


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


def _resample(values: np.ndarray, statistic: str, n_resamples: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """The statistic of ``n_resamples`` resamples of units, and for the mean each resample's standard error."""
    n, summary = values.size, _STATISTICS[statistic]
    errors: list[np.ndarray] = []

    def compute(start: int, stop: int) -> np.ndarray:
        drawn = values[rng.integers(0, n, (stop - start, n))]
        if statistic == "mean":
            errors.append(drawn.std(axis=-1, ddof=1) / math.sqrt(n))
        return summary(drawn, axis=-1)

    boot = _in_batches(compute, n_resamples, n)
    return boot, (np.concatenate(errors) if errors else None)


def _jackknife_acceleration(values: np.ndarray, statistic: str) -> float:
    """BCa acceleration from the jackknife (for the mean, :func:`~harness.stats.intervals.mean_acceleration`)."""
    n, summary = values.size, _STATISTICS[statistic]
    positions = np.arange(n - 1)
    jackknife = _in_batches(
        lambda start, stop: summary(values[positions + (positions >= np.arange(start, stop)[:, None])], axis=-1), n, n
    )
    spread = jackknife.mean() - jackknife
    scale = np.sum(spread**2)
    return float(np.sum(spread**3) / (6 * scale**1.5)) if scale > 0 else 0.0


def _check_method(statistic: object, interval: object) -> tuple[str, str]:
    statistic = check_choice(statistic, "statistic", _STATISTICS)
    interval = check_choice(interval, "interval", ("studentized", "bca"))
    if interval == "studentized" and statistic != "mean":
        raise StatisticsError(f"interval='studentized' needs statistic='mean', got {statistic!r}; "
                              "pass interval='bca' for the median")
    return statistic, interval


def _interval(x: np.ndarray, statistic: str, unit: str, interval: str, confidence: float, n_resamples: int,
              rng: np.random.Generator) -> Estimate:
    why = intervals.refusal(x, confidence, interval)
    if why is not None:
        raise StatisticsError(why)
    theta = float(_STATISTICS[statistic](x))
    boot, boot_se = _resample(x, statistic, n_resamples, rng)
    if interval == "studentized":
        se, ordered_t = float(x.std(ddof=1) / math.sqrt(x.size)), intervals.studentized(boot, boot_se, theta)

        def bounds(level: float) -> tuple[float, float]:
            return intervals.studentized_bounds(theta, se, ordered_t, level)
    else:
        acceleration = intervals.mean_acceleration(x) if statistic == "mean" else _jackknife_acceleration(x, statistic)
        ordered = np.sort(boot)

        def bounds(level: float) -> tuple[float, float]:
            return intervals.bca_bounds(theta, ordered, acceleration, level)

    interval_at = checked_interval_at(bounds)
    low, high = interval_at(confidence)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise StatisticsError(
            f"the {intervals.METHOD_NAMES[interval]} is unbounded at confidence {confidence:.6g}: too many "
            f"resamples of these {x.size} {unit} have no spread (mostly one repeated value); collect more {unit}, "
            "or count the units that differ and use harness.stats.proportion")
    return Estimate(
        estimate=theta, ci_low=low, ci_high=high, confidence=confidence, n=x.size, distribution=boot,
        interval_at=interval_at, method=f"{intervals.METHOD_NAMES[interval]} of the {statistic} over {unit}",
    )


def bootstrap(
    values: object,
    *,
    statistic: Statistic = "mean",
    unit: str = "levels",
    interval: Interval = "studentized",
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int | np.random.Generator = 0,
) -> Estimate:
    """``statistic`` of one value per independent unit, with a bootstrap interval over the units (``unit``:
    levels, pairs, episodes, latents...; it names them in ``method`` and should match the claim's ``unit``).

    ``interval="studentized"`` (the mean only; the default) is the bootstrap-t interval, which keeps its level in
    the far tails of skewed data far better than BCa; ``"bca"`` is the BCa interval (as scipy.stats.bootstrap).
    Both refuse, with a :class:`~harness.errors.StatisticsError` naming the n they need, a sample too small for
    its skewness at ``confidence``, or one without spread (docs/statistics.md, item 12).  ``interval_at`` reuses
    the same resamples (kept in ``distribution``); the fixed default ``seed`` keeps reruns identical::

        bootstrap(steps_per_episode, unit="episodes", confidence=claim.confidence)
    """
    x = as_vector(values, "values", min_size=2)
    statistic, interval = _check_method(statistic, interval)
    unit = check_unit_name(unit)
    confidence = check_confidence(confidence)
    n_resamples = check_int(n_resamples, "n_resamples", minimum=99)
    return _interval(x, statistic, unit, interval, confidence, n_resamples, rng_from(seed))


def paired_bootstrap(
    differences: object,
    *,
    statistic: Statistic = "mean",
    alternative: Alternative = "two-sided",
    interval: Interval = "studentized",
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int | np.random.Generator = 0,
    unit: str = "levels",
) -> Estimate:
    """Paired continuous outcome: ``statistic`` of per-unit differences (e.g. clean minus intervened; the caller
    picks the sign and declares the bound to match), with :func:`bootstrap`'s interval over the units.

    The p-value tests "no effect" (differences symmetric about ``null_value=0.0``) by flipping the sign of each
    unit's difference: over all 2^n patterns when that is at most ``n_resamples``, else over ``n_resamples``
    random patterns (drawn after the resamples) with p = (b+1)/(m+1)::

        paired_bootstrap(clean_p_up - ablated_p_up, confidence=claim.confidence)
    """
    d = as_vector(differences, "differences", min_size=2)
    statistic, interval = _check_method(statistic, interval)
    alternative = check_choice(alternative, "alternative", ALTERNATIVES)
    unit = check_unit_name(unit)
    confidence = check_confidence(confidence)
    n_resamples = check_int(n_resamples, "n_resamples", minimum=99)
    rng = rng_from(seed)
    estimate = _interval(d, statistic, unit, interval, confidence, n_resamples, rng)
    n, summary = d.size, _STATISTICS[statistic]
    exact = 2**n <= n_resamples
    bits = np.arange(n)

    def flipped(start: int, stop: int) -> np.ndarray:
        if exact:  # pattern k flips the units where the bits of k are set
            signs = 1 - 2 * ((np.arange(start, stop)[:, None] >> bits) & 1)
        else:
            signs = 1 - 2 * rng.integers(0, 2, (stop - start, n))
        return summary(d * signs, axis=-1)

    null = _in_batches(flipped, 2**n if exact else n_resamples, n)
    p_value = _tail_p_value(null, estimate.estimate, alternative, exact=exact)
    sidedness = "" if alternative == "two-sided" else f" ({alternative})"
    return replace(estimate, p_value=p_value, alternative=alternative, null_value=0.0,
                   method=f"paired {estimate.method}, {'exact' if exact else 'Monte-Carlo'} sign-flip p{sidedness}")


# ----------------------------------------------------------------------------------------------- null baselines


def permutation_test_against_null(
    observed: float | Estimate,
    null_values: object,
    *,
    alternative: Alternative = "greater",
    null_units: object = None,
    level: float | None = None,
) -> Estimate:
    """Compare a claim's effect with the same effect under m null interventions (random channels, features, vectors).

    Returns the observed value with ``null_quantile`` (its mid-rank quantile among the null values),
    ``p_value`` = (b+1)/(m+1) where b counts null values at least as extreme (two-sided: twice the smaller
    tail; ``null_value`` None: the null is the baseline), and the null values in ``distribution``.  Pass the
    claim's :class:`Estimate` to keep its interval, ``interval_at`` and n; for a bare float there is no interval
    (NaN bounds) and n is m.

    The p-value is valid only over distinct null units: pass ``null_units`` (one hashable id per null value, e.g.
    the latent or the sorted channel set) and repeated units count once (their first value).  With ``level``
    (the p the claim must reach, e.g. ``claim.alpha / m``), a null too small to ever give p <= level is refused
    with the smallest size that could::

        permutation_test_against_null(effect, null_drops, null_units=null_latents, level=claim.alpha / m)
    """
    null = as_vector(null_values, "null_values")
    alternative = check_choice(alternative, "alternative", ALTERNATIVES)
    if null_units is not None:
        units = [tuple(np.ravel(unit).tolist()) for unit in null_units]
        if len(units) != null.size:
            raise StatisticsError(f"null_units must hold one id per null value: {len(units)} ids for {null.size} "
                                  "values")
        first: dict[tuple, int] = {}
        for i, unit in enumerate(units):
            first.setdefault(unit, i)
        null = null[list(first.values())]
    if level is not None:
        level = check_unit(level, "level", example="0.05 / 8")
        sides = 2 if alternative == "two-sided" else 1
        smallest = sides / (null.size + 1)
        if smallest > level:
            needed = math.ceil(sides / level) - 1
            needed += sides / (needed + 1) > level  # rounding of sides / level
            raise StatisticsError(
                f"a null of {null.size} distinct units gives p >= {smallest:.3g} and can never reach the level "
                f"{level:.3g}; draw at least {needed} distinct null units")
    if isinstance(observed, Estimate):
        value = check_real(observed.estimate, "observed.estimate")
        kept = dict(ci_low=observed.ci_low, ci_high=observed.ci_high, confidence=observed.confidence, n=observed.n,
                    interval_at=observed.interval_at)
        base = f"{observed.method}; "
    else:
        value = check_real(observed, "observed")
        kept = dict(ci_low=math.nan, ci_high=math.nan, confidence=math.nan, n=null.size)
        base = ""
    quantile = (np.count_nonzero(null < value) + 0.5 * np.count_nonzero(null == value)) / null.size
    return Estimate(
        estimate=value, **kept, method=f"{base}permutation p against {null.size} null draws ({alternative})",
        p_value=_tail_p_value(null, value, alternative, exact=False), alternative=alternative, null_value=None,
        null_quantile=float(quantile), distribution=null,
    )
