"""Linear probes over cached activations: ridge classifiers and regressors, fit on one set of levels and scored
on another, with a shuffled-label baseline.

Features are flattened activations ``(N, ...)``, standardised with the training set's mean and spread.  Ridge
is solved in closed form in whichever of the primal or dual is smaller, so a probe on a 32x16x16 conv map fits
in well under a second for a thousand levels.  Classification is one-vs-rest ridge on one-hot targets (argmax of
the scores), deterministic and free of optimiser settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from harness.errors import HarnessError


class ProbeError(HarnessError, ValueError):
    """Probe inputs are inconsistent (lengths, too few levels, a single class)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class LinearProbe:
    """A fitted linear map from standardised features to class scores or regression targets."""

    kind: str
    weights: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    classes: np.ndarray | None

    def decision(self, features: np.ndarray) -> np.ndarray:
        x = (_flat(features) - self.mean) / self.scale
        return x @ self.weights + self.bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        scores = self.decision(features)
        return self.classes[scores.argmax(1)] if self.kind == "classification" else scores

    def correct(self, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Per-level correctness (classification): the unit of a Wilson interval or a McNemar test."""
        if self.kind != "classification":
            raise ProbeError("correct() is for classification probes; use r_squared() for regression")
        return _correct(self.decision(features), self.classes, labels)

    def r_squared(self, features: np.ndarray, targets: np.ndarray) -> float:
        """Held-out R^2 (summed over target dimensions): 1 - SSE / SST around the held-out mean."""
        return _r_squared(self.predict(features), targets)


def fit_probe(features: np.ndarray, labels: np.ndarray, *, kind: str = "classification", l2: float = 1.0) -> LinearProbe:
    """Fit a ridge probe.  ``l2`` is the penalty relative to the number of training levels."""
    x = _flat(features)
    y = np.asarray(labels)
    if len(x) != len(y):
        raise ProbeError(f"features have {len(x)} rows but labels {len(y)}; one label per level")
    if len(x) < 10:
        raise ProbeError(f"a probe needs at least 10 training levels, got {len(x)}")
    if kind not in ("classification", "regression"):
        raise ProbeError(f"kind must be 'classification' or 'regression', got {kind!r}")
    if l2 <= 0:
        raise ProbeError(f"l2 must be positive, got {l2}")
    classes = np.unique(y) if kind == "classification" else None
    if classes is not None and len(classes) < 2:
        raise ProbeError(f"all {len(y)} training labels are {classes[0]!r}; a classifier needs two classes")
    solver = _Ridge(x, l2)
    return solver.probe(y, kind=kind, classes=classes)


def shuffled_label_scores(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                          test_labels: np.ndarray, *, m: int, seed: int, kind: str = "classification",
                          l2: float = 1.0) -> np.ndarray:
    """Held-out accuracy (or R^2) of ``m`` probes fit on randomly permuted training labels: the null a probe's
    score is compared with (what a probe of this capacity reaches with no real relation to the labels).

    All ``m`` probes come from one factorisation and one solve, and score the test set through its products with
    the training set, never building the probes' weights: the same numbers as fitting each probe with
    :func:`fit_probe` (up to float rounding), at a small part of the cost::

        null = shuffled_label_scores(train_x, train_y, test_x, test_y, m=200, seed=0)
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(train_labels)
    solver = _Ridge(_flat(train_features), l2)
    classes = np.unique(labels) if kind == "classification" else None
    targets = np.stack([_targets(labels[rng.permutation(len(labels))], classes) for _ in range(m)], axis=1)
    scores = solver.test_scores(targets.reshape(len(labels), -1), test_features).reshape(len(test_features), m, -1)
    if kind == "classification":
        return np.array([_correct(scores[:, i], classes, test_labels).mean() for i in range(m)])
    return np.array([_r_squared(scores[:, i], test_labels) for i in range(m)])


def _flat(features) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    return x.reshape(len(x), -1)


def _targets(labels: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """One-hot class indicators (classification) or the targets as columns (regression)."""
    if classes is not None:
        return (labels[:, None] == classes[None, :]).astype(np.float64)
    return labels.astype(np.float64).reshape(len(labels), -1)


def _correct(scores: np.ndarray, classes: np.ndarray, labels) -> np.ndarray:
    return classes[scores.argmax(1)] == np.asarray(labels)


def _r_squared(predicted: np.ndarray, targets) -> float:
    y = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
    sse = ((predicted.reshape(y.shape) - y) ** 2).sum()
    return float(1 - sse / ((y - y.mean(0)) ** 2).sum())


class _Ridge:
    """Ridge on standardised features, factorised once (primal or dual, whichever is smaller)."""

    def __init__(self, x: np.ndarray, l2: float):
        self.mean, self.scale = x.mean(0), x.std(0) + 1e-6
        self.xs = (x - self.mean) / self.scale
        n, d = self.xs.shape
        penalty = l2 * n
        gram = self.xs.T @ self.xs if d <= n else self.xs @ self.xs.T
        self.factor = cho_factor(gram + penalty * np.eye(len(gram)))
        self.dual = d > n

    def _solve(self, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The solution (dual coefficients or primal weights) for centred ``target`` columns, and their means."""
        offset = target.mean(0)
        rhs = target - offset if self.dual else self.xs.T @ (target - offset)
        return cho_solve(self.factor, rhs), offset

    def probe(self, labels: np.ndarray, *, kind: str, classes: np.ndarray | None) -> LinearProbe:
        solved, offset = self._solve(_targets(labels, classes))
        weights = self.xs.T @ solved if self.dual else solved
        return LinearProbe(kind=kind, weights=weights, bias=offset, mean=self.mean, scale=self.scale, classes=classes)

    def test_scores(self, target: np.ndarray, test_features: np.ndarray) -> np.ndarray:
        """Decision values on ``test_features`` of the probes fit to each column of ``target``."""
        solved, offset = self._solve(target)
        test = (_flat(test_features) - self.mean) / self.scale
        return (test @ self.xs.T if self.dual else test) @ solved + offset
