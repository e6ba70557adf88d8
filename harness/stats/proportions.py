"""Rates and paired binary outcomes: Wilson, Clopper-Pearson and anytime-valid intervals for a success rate,
and the exact McNemar test with Newcombe's interval for a paired risk difference."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy import optimize, special, stats

from harness.errors import StatisticsError
from harness.stats.checks import as_binary, check_choice, check_confidence, check_int, check_unit_name
from harness.stats.estimates import Estimate, checked_interval_at


def _check_counts(successes: object, n: object) -> tuple[int, int]:
    n = check_int(n, "n", minimum=1)
    successes = check_int(successes, "successes", minimum=0)
    if successes > n:
        raise StatisticsError(f"successes must be at most n={n}, got {successes}")
    return successes, n


def two_sided_z(confidence: float) -> float:
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
    confidence = check_confidence(confidence)
    interval_at = checked_interval_at(lambda level: _wilson_bounds(successes, n, two_sided_z(level)))
    low, high = interval_at(confidence)
    return Estimate(
        estimate=successes / n, ci_low=low, ci_high=high, confidence=confidence, n=n, method="Wilson",
        interval_at=interval_at,
    )


def clopper_pearson_interval(successes: int, n: int, *, confidence: float = 0.95) -> Estimate:
    """Rate successes/n with its exact (Clopper-Pearson) interval."""
    successes, n = _check_counts(successes, n)
    confidence = check_confidence(confidence)

    def bounds(level: float) -> tuple[float, float]:
        tail = (1 - level) / 2
        low = stats.beta.ppf(tail, successes, n - successes + 1) if successes > 0 else 0.0
        high = stats.beta.isf(tail, successes + 1, n - successes) if successes < n else 1.0
        return low, high

    interval_at = checked_interval_at(bounds)
    low, high = interval_at(confidence)
    return Estimate(
        estimate=successes / n, ci_low=low, ci_high=high, confidence=confidence, n=n, method="Clopper-Pearson",
        interval_at=interval_at,
    )


def confidence_sequence_interval(successes: int, n: int, *, confidence: float = 0.95) -> Estimate:
    """Rate with an anytime-valid interval: it keeps its coverage under any data-dependent stopping.

    The interval is {p : p^s (1-p)^(n-s) > (1 - confidence) * B(s+1, n-s+1)}, the confidence sequence of the
    uniform-prior (beta-binomial) mixture martingale via Ville's inequality.  Wider than Wilson; use it when
    the number of outcomes was not fixed in advance.
    """
    successes, n = _check_counts(successes, n)
    confidence = check_confidence(confidence)
    interval_at = checked_interval_at(lambda level: (
        _sequence_lower_bound(successes, n - successes, 1 - level),
        1 - _sequence_lower_bound(n - successes, successes, 1 - level)))
    low, high = interval_at(confidence)
    return Estimate(
        estimate=successes / n, ci_low=low, ci_high=high, confidence=confidence, n=n,
        method="beta-binomial mixture confidence sequence (anytime-valid)", interval_at=interval_at,
    )


_RATE_METHODS = {"clopper-pearson": clopper_pearson_interval, "wilson": wilson_interval,
                 "confidence sequence": confidence_sequence_interval}


def proportion(outcomes: object, *, unit: str = "levels", method: str = "clopper-pearson",
               confidence: float = 0.95) -> Estimate:
    """The share of units (levels, latents, channels, episodes...) whose outcome is True, with its interval:
    ``"clopper-pearson"`` (exact, the default), ``"wilson"`` or ``"confidence sequence"`` (anytime-valid).
    ``unit`` names the units in ``method``::

        proportion(firing_rates == 0, unit="latents", confidence=claim.confidence)  # the dead latents' share
    """
    flags = as_binary(outcomes, "outcomes")
    method = check_choice(method, "method", _RATE_METHODS)
    unit = check_unit_name(unit)
    rate = _RATE_METHODS[method](int(flags.sum()), flags.size, confidence=confidence)
    return replace(rate, method=f"{rate.method} over {unit}")


def _sequence_lower_bound(successes: int, failures: int, alpha: float) -> float:
    if successes == 0:
        return 0.0
    threshold = special.betaln(successes + 1, failures + 1) + math.log(alpha)

    def excess(p: float) -> float:
        return special.xlogy(successes, p) + special.xlog1py(failures, -p) - threshold

    return optimize.brentq(excess, np.finfo(float).tiny, successes / (successes + failures), xtol=1e-14)


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
    before, after = as_binary(before, "before"), as_binary(after, "after")
    if before.size != after.size:
        raise StatisticsError(
            "before and after must hold one outcome per level for the same levels; "
            f"got lengths {before.size} and {after.size}"
        )
    confidence = check_confidence(confidence)
    both = int(np.sum(before & after))
    before_only = int(np.sum(before & ~after))
    after_only = int(np.sum(~before & after))
    neither = before.size - both - before_only - after_only
    p_value = min(1.0, 2 * float(stats.binom.cdf(min(before_only, after_only), before_only + after_only, 0.5)))
    interval_at = checked_interval_at(
        lambda level: _newcombe_paired_bounds(both, before_only, after_only, neither, two_sided_z(level)))
    low, high = interval_at(confidence)
    return Estimate(
        estimate=(after_only - before_only) / before.size, ci_low=low, ci_high=high, confidence=confidence,
        n=before.size, method="exact McNemar, Newcombe paired score CI", p_value=p_value, alternative="two-sided",
        null_value=0.0, interval_at=interval_at,
    )
