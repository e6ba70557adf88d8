"""What every statistic returns: an :class:`Estimate` (point, interval, n, method, p-value and the hypothesis it
tests, and ``interval_at`` for the same method at another confidence), its subclasses for equivalence and
sequential tests, and the names of test alternatives and sequential decisions."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from harness.errors import StatisticsError
from harness.stats.checks import check_confidence


Alternative = Literal["two-sided", "greater", "less"]
Decision = Literal["continue", "accept H1", "accept H0", "inconclusive"]
IntervalAt = Callable[[float], tuple[float, float]]

ALTERNATIVES = ("two-sided", "greater", "less")


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """A point estimate with its interval, sample size, method and (for tests) p-value.

    ``n`` counts the independent units the statistic resampled or counted (levels, pairs, episodes, latents...).
    ``interval_at(confidence)`` gives the two-sided interval of the same method on the same data (same
    resamples) at another confidence, never narrower at a higher one; every statistic of :mod:`harness.stats`
    sets it, an estimate built by hand has None.  ``p_value`` tests ``alternative`` ("greater": the effect
    exceeds ``null_value``) against ``null_value`` (e.g. 0.0 for "no effect"; None when the null is a baseline
    of null draws, see :func:`~harness.stats.permutation_test_against_null`).  ``distribution`` keeps the raw
    bootstrap or null distribution (read-only) where one was drawn; ``null_quantile`` is the estimate's mid-rank
    quantile in a null baseline, where one was compared.

    No interval: ``ci_low``, ``ci_high`` and ``confidence`` all NaN (and no ``interval_at``) say that the
    estimate has none (a bare value compared with a null baseline); otherwise the bounds are finite, ordered and
    contain the estimate.  Anything else is refused with a :class:`~harness.errors.StatisticsError`::

        Estimate(estimate=0.9, ci_low=0.1, ci_high=0.2, confidence=0.95, n=10, method="m")  # StatisticsError
    """

    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int
    method: str
    p_value: float | None = None
    alternative: Alternative | None = None
    null_value: float | None = None
    null_quantile: float | None = None
    distribution: np.ndarray | None = field(default=None, repr=False, compare=False)
    interval_at: IntervalAt | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._validate()
        if self.distribution is not None:
            kept = np.array(self.distribution, dtype=float)
            kept.setflags(write=False)
            object.__setattr__(self, "distribution", kept)

    def _validate(self) -> None:
        def refuse(name: str, why: str) -> None:
            raise StatisticsError(f"{name} {why} (Estimate {self.method!r}); build it with harness.stats")

        for name in ("estimate", "ci_low", "ci_high", "confidence"):
            if not _is_real(getattr(self, name)):
                refuse(name, f"must be a number, got {getattr(self, name)!r}")
        if not math.isfinite(self.estimate):
            refuse("estimate", f"must be finite, got {self.estimate!r}")
        no_interval = [math.isnan(v) for v in (self.ci_low, self.ci_high, self.confidence)]
        if all(no_interval):
            if self.interval_at is not None:
                refuse("interval_at", "must be None for an estimate without an interval (NaN bounds)")
        else:
            for name in ("ci_low", "ci_high"):
                if not math.isfinite(getattr(self, name)):
                    refuse(name, f"must be finite (all of ci_low, ci_high, confidence NaN means no interval), "
                                 f"got {getattr(self, name)!r}")
            if not 0 < self.confidence < 1:
                refuse("confidence", f"must lie strictly between 0 and 1, got {self.confidence!r}")
            if self.ci_low > self.ci_high:
                refuse("ci_low", f"must not exceed ci_high, got [{self.ci_low!r}, {self.ci_high!r}]")
            if not self.ci_low <= self.estimate <= self.ci_high:
                refuse("estimate", f"{self.estimate!r} lies outside its own interval [{self.ci_low!r}, "
                                   f"{self.ci_high!r}]")
        if not isinstance(self.n, (int, np.integer)) or isinstance(self.n, (bool, np.bool_)) or self.n < 1:
            refuse("n", f"must be an int of at least 1, got {self.n!r}")
        if self.p_value is not None:
            if not _is_real(self.p_value) or not 0 <= self.p_value <= 1:
                refuse("p_value", f"must lie in [0, 1], got {self.p_value!r}")
            if self.alternative is None:
                refuse("alternative", "must say which hypothesis the p-value tests ('greater', 'less', 'two-sided')")
        if self.alternative is not None and self.alternative not in ALTERNATIVES:
            refuse("alternative", f"must be one of {', '.join(map(repr, ALTERNATIVES))}, got {self.alternative!r}")
        if self.null_value is not None and (not _is_real(self.null_value) or not math.isfinite(self.null_value)):
            refuse("null_value", f"must be a finite number or None, got {self.null_value!r}")
        if self.interval_at is not None and not callable(self.interval_at):
            refuse("interval_at", f"must be callable (confidence -> (low, high)), got {self.interval_at!r}")

    @property
    def has_interval(self) -> bool:
        """False for an estimate without an interval (NaN bounds)."""
        return not math.isnan(self.ci_low)

    def describe(self) -> str:
        """One line, e.g. ``0.04 [0.01, 0.07] (n=512, paired BCa bootstrap), p=0.003``."""
        interval = f" [{_fmt(self.ci_low)}, {_fmt(self.ci_high)}]" if self.has_interval else ""
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


def checked_interval_at(compute: Callable[[float], tuple[float, float]]) -> IntervalAt:
    """Wrap ``compute(confidence) -> (low, high)`` so it checks its argument and returns plain floats."""
    def interval_at(confidence: float) -> tuple[float, float]:
        low, high = compute(check_confidence(confidence))
        return float(low), float(high)

    return interval_at
