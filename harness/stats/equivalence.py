"""Equivalence: two one-sided tests (TOST) that a paired effect lies within a declared margin."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from harness.errors import StatisticsError
from harness.stats.checks import as_vector, check_alpha, check_real
from harness.stats.estimates import Equivalence


def tost(differences: object, *, margin: float, alpha: float = 0.05) -> Equivalence:
    """Two one-sided paired t-tests that the mean per-level difference lies within (-margin, +margin).

    Equivalence is shown when both one-sided p-values are below ``alpha``, i.e. when the (1 - 2 alpha)
    t interval lies inside the margins.  Declare ``margin`` before seeing the data.
    """
    d = as_vector(differences, "differences", min_size=2)
    margin = check_real(margin, "margin", positive=True)
    alpha = check_alpha(alpha)
    if alpha >= 0.5:
        raise StatisticsError(f"alpha must be below 0.5 for a (1 - 2 alpha) interval, got {alpha}; e.g. alpha=0.05")
    n, mean, df = d.size, float(d.mean()), d.size - 1
    se = d.std(ddof=1) / math.sqrt(n)  # a numpy float: dividing by a zero se gives inf, not an exception
    with np.errstate(divide="ignore", invalid="ignore"):  # se == 0 gives infinite t, or NaN exactly on a margin
        p_lower = float(np.nan_to_num(stats.t.sf((mean + margin) / se, df), nan=1.0))
        p_upper = float(np.nan_to_num(stats.t.cdf((mean - margin) / se, df), nan=1.0))
    half = float(stats.t.isf(alpha, df) * se)
    p_value = max(p_lower, p_upper)
    return Equivalence(
        estimate=mean, ci_low=mean - half, ci_high=mean + half, confidence=1 - 2 * alpha, n=n,
        method=f"TOST paired t, margin ±{margin:g}", p_value=p_value, margin=margin, alpha=alpha,
        p_lower=p_lower, p_upper=p_upper, equivalent=p_value < alpha,
    )
