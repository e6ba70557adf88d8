"""The mean of values that cannot leave known bounds (a change of probability lies in [-1, 1]), with the betting
interval of Waudby-Smith & Ramdas (2024, JRSS-B): valid at every n for every population within the bounds, where a
bootstrap's level rests on the sample's skewness and a minimum n (docs/statistics.md, item 12)."""

from __future__ import annotations

import numpy as np

from harness.errors import StatisticsError
import harness.stats.intervals as intervals
from harness.stats.checks import as_vector, check_confidence, check_real, check_unit_name, rng_from
from harness.stats.estimates import Estimate, checked_interval_at


PROBABILITY_CHANGE = (-1.0, 1.0)
"""The bounds of a change of probability (or of a difference of two probabilities, or of total variations)."""


def _check_bounds(bounds: object) -> tuple[float, float]:
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise StatisticsError(f"bounds must be (lowest, highest) the values can take, e.g. bounds=(-1, 1) for a "
                              f"change of probability, got {bounds!r}")
    low, high = (check_real(b, "bounds") for b in bounds)
    if not low < high:
        raise StatisticsError(f"bounds must be (lowest, highest) with lowest < highest, got {bounds!r}")
    return low, high


def bounded_mean(
    values: object,
    *,
    bounds: tuple[float, float],
    unit: str = "levels",
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> Estimate:
    """Mean of one value per independent unit, every value within ``bounds`` by construction, with the betting
    interval (:func:`~harness.stats.intervals.betting_bounds`): each side misses with probability at most
    (1 - confidence) / 2 whatever the population's shape, at any n, so no sample is refused for its skewness.
    The bounds are what the values CAN take (declare them from the measurement, never from the data: a change of
    probability lies in [-1, 1]); a value outside them is refused.  Wide bounds cost width (about
    range * log(1 / tail) / n beside the variance term), so declare the tightest ones the measurement guarantees.

    The bet runs over the units in an order shuffled by ``seed`` (the interval needs units in random order, which a
    caller's sorting would break); ``interval_at`` keeps that order, and the stakes are sized for one fixed
    confidence (:data:`~harness.stats.intervals.BETTING_STAKE_CONFIDENCE`), so its intervals are nested::

        bounded_mean(clean_p_up - ablated_p_up, bounds=(-1, 1), confidence=claim.confidence)
    """
    x = as_vector(values, "values")
    low, high = _check_bounds(bounds)
    outside = np.flatnonzero((x < low) | (x > high))
    if outside.size:
        raise StatisticsError(
            f"values[{outside[0]}] = {x[outside[0]]:.6g} lies outside the declared bounds ({low:g}, {high:g}) "
            f"({outside.size} of {x.size} do); the bounds must be what the measurement can take, so fix the "
            "measurement or declare the bounds it guarantees")
    unit = check_unit_name(unit)
    confidence = check_confidence(confidence)
    ordered = x[rng_from(seed).permutation(x.size)][None, :]

    def bounds_at(level: float) -> tuple[float, float]:
        floor, ceiling = intervals.betting_bounds(ordered, (low, high), level)
        return float(floor[0]), float(ceiling[0])

    interval_at = checked_interval_at(bounds_at)
    ci_low, ci_high = interval_at(confidence)
    return Estimate(estimate=float(x.mean()), ci_low=ci_low, ci_high=ci_high, confidence=confidence, n=x.size,
                    interval_at=interval_at,
                    method=f"betting interval of the mean over {unit} within [{low:g}, {high:g}]")
