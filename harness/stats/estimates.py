"""What every statistic returns: an :class:`Estimate` (point, interval, n, method, p-value), its subclasses for
equivalence and sequential tests, and the names of test alternatives and sequential decisions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np


Alternative = Literal["two-sided", "greater", "less"]
Decision = Literal["continue", "accept H1", "accept H0", "inconclusive"]

ALTERNATIVES = ("two-sided", "greater", "less")


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
