"""Linear probes: closed-form ridge against a direct solve, decoding planted signals, and the shuffled null."""

import numpy as np
import pytest

from harness.lenses.probes import ProbeError, fit_probe, shuffled_label_scores


def planted(n=300, d=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)


@pytest.mark.parametrize("d", [20, 500])  # primal (d <= n) and dual (d > n) solves
def test_ridge_matches_direct_solution(d):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(100, d)), rng.normal(size=100)
    probe = fit_probe(x, y, kind="regression", l2=0.5)
    xs = (x - x.mean(0)) / (x.std(0) + 1e-6)
    direct = np.linalg.solve(xs.T @ xs + 0.5 * 100 * np.eye(d), xs.T @ (y - y.mean()))
    np.testing.assert_allclose(probe.weights.ravel(), direct, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(probe.predict(x).ravel(), xs @ direct + y.mean(), rtol=1e-6, atol=1e-9)


def test_probe_decodes_a_planted_signal_and_shuffled_labels_do_not():
    x, y = planted()
    probe = fit_probe(x[:200], y[:200], l2=0.1)
    accuracy = probe.correct(x[200:], y[200:]).mean()
    null = shuffled_label_scores(x[:200], y[:200], x[200:], y[200:], m=30, seed=0, l2=0.1)
    assert accuracy > 0.85
    assert null.max() < accuracy and abs(null.mean() - 0.5) < 0.1


def test_r_squared_of_a_linear_target():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 10))
    y = np.stack([x[:, 0] * 2, x[:, 1] - x[:, 2]], axis=1) + 0.05 * rng.normal(size=(300, 2))
    probe = fit_probe(x[:200], y[:200], kind="regression", l2=0.001)
    assert probe.r_squared(x[200:], y[200:]) > 0.99


@pytest.mark.parametrize("kwargs, message", [
    ({"labels": np.zeros(5)}, "rows but labels"),
    ({"labels": np.zeros(300)}, "a classifier needs two classes"),
    ({"kind": "clustering"}, "kind must be"),
    ({"l2": 0.0}, "l2 must be positive"),
])
def test_bad_input_is_named(kwargs, message):
    x, y = planted()
    with pytest.raises(ProbeError, match=message):
        fit_probe(x, kwargs.pop("labels", y), **kwargs)


@pytest.mark.parametrize("d", [20, 500])  # primal and dual solves
@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_shuffled_scores_are_those_of_probes_fit_one_by_one(d, kind):
    """The batched null (one solve, test scored through the training set) against fit_probe on each of the same
    permutations of the labels."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(160, d))
    y = (x[:, :3] @ [1.0, -0.5, 0.2]) if kind == "regression" else rng.integers(0, 4, size=160)
    null = shuffled_label_scores(x[:100], y[:100], x[100:], y[100:], m=12, seed=7, kind=kind, l2=0.3)
    draws = np.random.default_rng(7)
    one_by_one = []
    for _ in range(12):
        probe = fit_probe(x[:100], y[:100][draws.permutation(100)], kind=kind, l2=0.3)
        one_by_one.append(probe.correct(x[100:], y[100:]).mean() if kind == "classification"
                          else probe.r_squared(x[100:], y[100:]))
    np.testing.assert_allclose(null, one_by_one, rtol=1e-9, atol=1e-12)
    assert len(set(np.round(null, 12))) > 3  # the permutations differ
