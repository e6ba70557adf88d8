"""Sequential testing: a Bernoulli SPRT that may stop at any outcome, with an anytime-valid interval."""

from __future__ import annotations

import math

import numpy as np

from harness.errors import StatisticsError
from harness.stats.checks import as_binary, check_alpha, check_int, check_unit
from harness.stats.estimates import Decision, SequentialResult
from harness.stats.proportions import confidence_sequence_interval


class BernoulliSPRT:
    """Sequential probability ratio test for a success rate: H0: p <= p0 against H1: p >= p1.

    Feed outcomes (one or a batch) with :meth:`update`; outcomes are used one by one until a boundary is
    crossed or ``max_n`` is reached, and the rest of a batch is ignored.  The boundaries are log(1/alpha) and
    log(beta) (Ville's inequality), so P(accept H1) <= alpha for every p <= p0 and P(accept H0) <= beta for
    every p >= p1, whatever the batching and including the truncation at ``max_n`` ("inconclusive").
    """

    def __init__(self, p0: float, p1: float, *, alpha: float = 0.05, beta: float = 0.2, max_n: int) -> None:
        self.p0 = check_unit(p0, "p0", example="0.5")
        self.p1 = check_unit(p1, "p1", example="0.7")
        if self.p1 <= self.p0:
            raise StatisticsError(f"p1 must exceed p0 (H1 is the higher rate), got p0={p0}, p1={p1}")
        self.alpha = check_alpha(alpha)
        self.beta = check_unit(beta, "beta", example="0.2")
        self.max_n = check_int(max_n, "max_n", minimum=1)
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
        x = as_binary(np.atleast_1d(outcomes), "outcomes")[: self.max_n - self._n]
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
            p_value=min(1.0, math.exp(-self._max_log_ratio)), alternative="greater", null_value=self.p0,
            interval_at=rate.interval_at, decision=self._decision, successes=self._successes,
            max_n=self.max_n, log_likelihood_ratio=self._log_ratio,
        )
