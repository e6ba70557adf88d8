"""Rates and paired binary outcomes: Wilson, Clopper-Pearson and anytime-valid intervals for a success rate,
and the exact McNemar test with a betting interval for a paired risk difference.

A verdict takes Clopper-Pearson, not Wilson (:func:`~harness.claims.claim.Claim.check` refuses Wilson): at a
claim's level 1 - alpha/m Wilson's bound on the side nearer 0 or 1 misses several times its nominal rate
(docs/statistics.md, item 12); Wilson stays for describing rates (training cards)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy import optimize, special, stats

from harness.errors import StatisticsError
from harness.stats.bounded import bounded_mean
from harness.stats.checks import as_binary, check_choice, check_confidence, check_int, check_unit_name
from harness.stats.estimates import Estimate, checked_interval_at


WILSON = "Wilson"
"""The method name of Wilson's interval, which a verdict refuses."""


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
        estimate=successes / n, ci_low=low, ci_high=high, confidence=confidence, n=n, method=WILSON,
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


def mcnemar_exact(before: object, after: object, *, confidence: float = 0.95,
                  seed: int | np.random.Generator = 0) -> Estimate:
    """Paired binary outcomes on the same levels: risk difference mean(after) - mean(before).

    The p-value is the exact two-sided McNemar test (binomial on the discordant pairs); the interval is the
    betting interval (:func:`~harness.stats.bounded_mean`) of the per-level differences after - before, which lie
    in [-1, 1]: it keeps its level at any n and any discordance, where Newcombe's score interval (method 10)
    missed up to 1.15% a side at alpha/8 (nominal 0.31%) when discordance was lopsided, even at n=256
    (docs/statistics.md).  ``seed`` orders the levels for the bet.
    """
    before, after = as_binary(before, "before"), as_binary(after, "after")
    if before.size != after.size:
        raise StatisticsError(
            "before and after must hold one outcome per level for the same levels; "
            f"got lengths {before.size} and {after.size}"
        )
    confidence = check_confidence(confidence)
    before_only, after_only = int(np.sum(before & ~after)), int(np.sum(~before & after))
    p_value = min(1.0, 2 * float(stats.binom.cdf(min(before_only, after_only), before_only + after_only, 0.5)))
    difference = bounded_mean(after.astype(float) - before, bounds=(-1, 1), confidence=confidence, seed=seed)
    return replace(difference, method="exact McNemar, betting interval of the paired difference", p_value=p_value,
                   alternative="two-sided", null_value=0.0)
