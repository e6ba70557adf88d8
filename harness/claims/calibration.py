"""Calibrating claims (docs/statistics.md items 9, 12 and 13).

On models whose truth is known: a claim's own declaration, the verdict :meth:`~harness.claims.claim.Claim.check`
gives a result when the claim is tested alone, and the rate of "supported" over repetitions, split by whether the
claim was true (power) or false (false-positive rate).  Run a claim's science function on planted and null models
(:mod:`harness.policy.planted`), decide each result with :func:`decide`, and summarise the :class:`Outcome` list
of each (claim, model) cell.

On populations whose mean is known: how often a statistic's interval misses below and above at a claim's own
confidence and n (:func:`interval_misses` by simulation with the statistics' own bound code, :func:`rate_misses`
exactly; :func:`paired_differences` is the population of a paired binary outcome).  Place the population's mean
exactly at a claim's bound and the miss on the supporting side is the claim's false-positive rate there (its
size), the hardest null there is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

import harness.stats.intervals as intervals
from harness.claims.claim import Claim, ClaimRefuted, ClaimSpec
from harness.errors import ClaimError
from harness.stats import Estimate, clopper_pearson_interval
from harness.stats.proportions import _wilson_bounds, two_sided_z

__all__ = ["Misses", "Outcome", "decide", "declaration_of", "false_positive_rate", "interval_misses",
           "paired_differences", "power", "rate", "rate_misses", "sequential_rate_misses"]


def declaration_of(test: Callable) -> dict[str, Any]:
    """The keywords of ``test``'s ``@pytest.mark.claim`` marker: the claim exactly as its file declares it."""
    marks = [mark for mark in getattr(test, "pytestmark", []) if mark.name == "claim"]
    if len(marks) != 1:
        raise ClaimError(f"{getattr(test, '__name__', test)!r} carries {len(marks)} claim markers; a claim test "
                         "carries exactly one")
    return dict(marks[0].kwargs)


def decide(declaration: Mapping[str, Any], result: Any, *, alpha: float,
           selected: Mapping[str, Any] | None = None) -> str:
    """The verdict ``Claim.check`` gives ``result`` for the claim ``declaration`` (marker keywords) tested alone
    at ``alpha``, so ``result`` is computed at confidence ``1 - alpha``; "refuted" is returned, not raised.
    ``selected``: the unit(s) chosen, for a claim that declares ``selected_on`` (``claim.select(**selected)``)."""
    claim = Claim(spec=ClaimSpec.declare(**declaration), family_alpha=alpha, family_size=1)
    if claim.spec.selected_on is not None:
        claim.select(**(selected or {}))
    try:
        return claim.check(result)
    except ClaimRefuted:
        return "refuted"


def rate(verdicts: list[str], *, confidence: float = 0.95) -> Estimate:
    """The rate of "supported" among ``verdicts`` with its Clopper-Pearson interval."""
    return clopper_pearson_interval(sum(v == "supported" for v in verdicts), len(verdicts), confidence=confidence)


@dataclass(frozen=True)
class Outcome:
    """One repetition of one (claim, model) cell: the verdict, and whether the claim is true there."""

    verdict: str
    true: bool


def false_positive_rate(outcomes: list[Outcome]) -> Estimate | None:
    """The rate of "supported" where the claim is false (None if it was true in every repetition)."""
    verdicts = [o.verdict for o in outcomes if not o.true]
    return rate(verdicts) if verdicts else None


def power(outcomes: list[Outcome]) -> Estimate | None:
    """The rate of "supported" where the claim is true (None if it was false in every repetition)."""
    verdicts = [o.verdict for o in outcomes if o.true]
    return rate(verdicts) if verdicts else None


# ------------------------------------------------------------------------- intervals on known populations


@dataclass(frozen=True)
class Misses:
    """Shares of samples whose interval lay wholly above the true value (``truth_below``: a lower bound too
    high, the false positive of a lower-bound claim at its bound), wholly below it (``truth_above``), or that the
    method refused (``refused``: no interval, so no verdict), out of ``samples`` (0 for an exact enumeration)."""

    truth_below: float
    truth_above: float
    refused: float
    samples: int

    @property
    def coverage(self) -> float:
        """Share of the intervals given that contain the true value."""
        given = 1 - self.refused
        return 1 - (self.truth_below + self.truth_above) / given if given > 0 else float("nan")


def interval_misses(population: np.ndarray, n: int, confidence: float, *, method: str = "studentized",
                    bounds: tuple[float, float] | None = None, samples: int = 10_000, resamples: int = 1999,
                    seed: int = 0) -> Misses:
    """Draw ``samples`` samples of ``n`` values from ``population`` (with replacement, so the true mean is the
    population's) and compute each one's interval for the mean with the statistics' own code
    (:func:`harness.stats.intervals.rows_bounds`, ``method`` "studentized", "bca", "t", or "betting" with the
    values' ``bounds``)::

        interval_misses(ch1_values - ch1_values.mean() + 0.01, 256, 1 - 0.05 / 8).truth_below  # size at 0.01
    """
    population = np.asarray(population, dtype=float)
    if method == "betting" and (bounds is None or population.min() < bounds[0] or population.max() > bounds[1]):
        raise ClaimError(f"the betting interval needs bounds that hold every value; got bounds={bounds!r} for values "
                         f"in [{population.min():.6g}, {population.max():.6g}]")
    mean, rng = float(population.mean()), np.random.default_rng(seed)
    counts = np.zeros(3)
    rows = max(1, 2_000_000 // (8 * n))
    for start in range(0, samples, rows):
        x = population[rng.integers(0, population.size, (min(rows, samples - start), n))]
        resampled = None if method == "betting" else intervals.resample_counts(n, resamples, rng)
        low, high = intervals.rows_bounds(method, x, resampled, confidence, bounds=bounds)
        counts += [np.sum(mean < low), np.sum(mean > high), np.sum(np.isnan(low))]
    below, above, refused = counts / samples
    return Misses(truth_below=below, truth_above=above, refused=refused, samples=samples)


def paired_differences(cells: tuple[float, float, float, float], *, size: int = 100_000) -> np.ndarray:
    """The per-unit differences after - before (in {-1, 0, 1}) of a paired binary outcome whose units fall in
    (both, before only, after only, neither) with probabilities ``cells``: ``size`` values in exactly those
    shares (to 1/size), so the mean is cells[2] - cells[1].  With :func:`interval_misses` (method "betting",
    bounds (-1, 1)) it measures :func:`~harness.stats.mcnemar_exact`'s interval."""
    shares = np.asarray(cells, dtype=float)
    if shares.shape != (4,) or np.any(shares < 0) or not np.isclose(shares.sum(), 1):
        raise ClaimError(f"cells must be four probabilities (both, before only, after only, neither) summing to 1, "
                         f"got {cells!r}")
    before_only, after_only = (int(round(share * size)) for share in shares[1:3])
    return np.repeat([-1.0, 1.0, 0.0], [before_only, after_only, size - before_only - after_only])


def rate_misses(p: float, n: int, confidence: float, *, method: str = "clopper-pearson") -> Misses:
    """Exact misses of the Wilson or Clopper-Pearson interval for a rate p from n outcomes (every count)."""
    k = np.arange(n + 1)
    if method == "wilson":
        low, high = _wilson_bounds(k, n, two_sided_z(confidence))
    else:
        tail = (1 - confidence) / 2
        low = np.where(k > 0, stats.beta.ppf(tail, np.maximum(k, 1), n - k + 1), 0.0)
        high = np.where(k < n, stats.beta.isf(tail, k + 1, np.maximum(n - k, 1)), 1.0)
    weight = stats.binom.pmf(k, n, p)
    return Misses(truth_below=float(weight[p < low].sum()), truth_above=float(weight[p > high].sum()), refused=0.0,
                  samples=0)


def sequential_rate_misses(p: float, max_n: int, confidence: float) -> Misses:
    """Exact misses of a rate tested sequentially (claims/test_behaviour.py's ``sequential_rate``): after every
    outcome up to ``max_n``, stop as soon as the confidence sequence
    (:func:`~harness.stats.confidence_sequence_interval`) at ``confidence`` excludes the true rate ``p``; the
    misses are the chances of stopping with ``p`` below or above the interval.  Dynamic programming over the
    count of successes among the runs still going, every path counted once."""
    if not 0 < p < 1:
        raise ClaimError(f"the true rate p must lie strictly between 0 and 1, got {p}")
    alive, below, above = np.array([1.0]), 0.0, 0.0
    log_alpha, log_p, log_q = np.log(1 - confidence), np.log(p), np.log1p(-p)
    for n in range(1, max_n + 1):
        alive = np.concatenate([alive * (1 - p), [0.0]]) + np.concatenate([[0.0], alive * p])
        k = np.arange(n + 1)
        # p is outside the interval exactly when its likelihood falls below (1 - confidence) B(k + 1, n - k + 1)
        outside = k * log_p + (n - k) * log_q < special.betaln(k + 1, n - k + 1) + log_alpha
        below += float(alive[outside & (k > n * p)].sum())
        above += float(alive[outside & (k < n * p)].sum())
        alive = np.where(outside, 0.0, alive)
    return Misses(truth_below=below, truth_above=above, refused=0.0, samples=0)
