"""Equivalence: two one-sided tests (TOST) that a paired effect lies within a declared margin."""

from __future__ import annotations

import math

from scipy import stats

from harness.errors import StatisticsError
from harness.stats.checks import as_vector, check_alpha, check_real
from harness.stats.estimates import Equivalence, checked_interval_at
from harness.stats.intervals import refusal, t_bounds


def tost(differences: object, *, margin: float, alpha: float = 0.05) -> Equivalence:
    """Two one-sided paired t-tests that the mean per-level difference lies within (-margin, +margin).

    Equivalence is shown when both one-sided p-values are below ``alpha``, i.e. when the (1 - 2 alpha)
    t interval lies inside the margins.  Declare ``margin`` before seeing the data.  A sample too small for its
    skewness, or without spread, is refused with the n it needs (:mod:`~harness.stats.intervals`).
    ``p_value`` tests H0: |effect| >= margin (stored as ``alternative="two-sided"``, ``null_value=margin``);
    ``interval_at`` gives the t interval at any other confidence::

        tost(edited_success - clean_success, margin=0.05, alpha=claim.alpha / 2)
    """
    d = as_vector(differences, "differences", min_size=2)
    margin = check_real(margin, "margin", positive=True)
    alpha = check_alpha(alpha)
    if alpha >= 0.5:
        raise StatisticsError(f"alpha must be below 0.5 for a (1 - 2 alpha) interval, got {alpha}; e.g. alpha=0.05")
    why = refusal(d, 1 - 2 * alpha, "t")
    if why is not None:
        raise StatisticsError(f"TOST: {why}")
    n, mean, df = d.size, float(d.mean()), d.size - 1
    se = float(d.std(ddof=1) / math.sqrt(n))  # positive: a sample without spread was refused above
    p_lower = float(stats.t.sf((mean + margin) / se, df))
    p_upper = float(stats.t.cdf((mean - margin) / se, df))
    interval_at = checked_interval_at(lambda level: t_bounds(mean, se, df, level))
    low, high = interval_at(1 - 2 * alpha)
    p_value = max(p_lower, p_upper)
    return Equivalence(
        estimate=mean, ci_low=low, ci_high=high, confidence=1 - 2 * alpha, n=n,
        method=f"TOST paired t, margin ±{margin:g}", p_value=p_value, alternative="two-sided", null_value=margin,
        interval_at=interval_at, margin=margin, alpha=alpha, p_lower=p_lower, p_upper=p_upper,
        equivalent=p_value < alpha,
    )
