"""Multiplicity: Holm (family-wise error, confirmatory claims) and Benjamini-Hochberg (false discovery rate,
exploratory scans) adjusted p-values."""

from __future__ import annotations

import numpy as np

from harness.errors import StatisticsError
from harness.stats.checks import as_vector


def _as_p_values(p_values: object) -> np.ndarray:
    p = as_vector(p_values, "p_values")
    if np.any((p < 0) | (p > 1)):
        raise StatisticsError("p_values must lie in [0, 1]; pass raw p-values, not scores or log p-values")
    return p


def holm(p_values: object) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error), in input order; for confirmatory claims."""
    p = _as_p_values(p_values)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((p.size - np.arange(p.size)) * p[order]))
    return adjusted


def benjamini_hochberg(p_values: object) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (false discovery rate), in input order; for exploratory scans."""
    p = _as_p_values(p_values)
    order = np.argsort(p, kind="stable")[::-1]
    ranks = p.size - np.arange(p.size)
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.minimum.accumulate(p[order] * p.size / ranks))
    return adjusted
