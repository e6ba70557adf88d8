"""The betting interval for the mean of bounded values (harness.stats.bounded_mean): its guards, its level at
small n on skewed and two-tailed data where the bootstrap refuses or misses, and what it costs in width."""

import numpy as np
import pytest
from calibration import claim_values

import harness.stats.intervals as intervals
from harness.claims.calibration import interval_misses
from harness.errors import StatisticsError
from harness.stats import bounded_mean, paired_bootstrap

ALPHA_16 = 1 - 0.05 / 16  # the 16-claim family's confidence; nominal miss 0.156% a side


@pytest.mark.parametrize(("values", "bounds", "match"), [
    ([0.2, 1.5], (-1, 1), r"values\[1\] = 1\.5 lies outside the declared bounds \(-1, 1\)"),
    ([0.2, 0.3], (1, -1), "lowest < highest"),
    ([0.2, 0.3], (0, float("inf")), "bounds must be a finite number"),
    ([0.2, 0.3], 1.0, r"bounds must be \(lowest, highest\)"),
    ([0.2, float("nan")], (0, 1), "NaN or infinite"),
    ([], (0, 1), "at least 1"),
])  # fmt: skip
def test_bad_input_is_refused_with_what_is_wrong(values, bounds, match):
    with pytest.raises(StatisticsError, match=match):
        bounded_mean(values, bounds=bounds)


def test_the_interval_contains_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (64, 256, 1024):
        x = rng.beta(0.5, 4, n)
        result = bounded_mean(x, bounds=(0, 1), unit="latents", confidence=0.99)
        assert result.ci_low <= x.mean() <= result.ci_high and result.n == n
        assert result.method == "betting interval of the mean over latents within [0, 1]"
        widths.append(result.ci_high - result.ci_low)
    # four times n: the variance term halves the width, the range term (1/n) quarters it, so 2 to 4 times
    assert 2 < widths[0] / widths[1] < 4 and 1.8 < widths[1] / widths[2] < 4, widths


def test_all_equal_values_give_an_honest_interval_not_certainty():
    """A bootstrap refuses 64 zeros (no spread); the bet still bounds the mean, about as Clopper-Pearson would."""
    result = bounded_mean(np.zeros(64), bounds=(0, 1), confidence=0.95)
    assert result.ci_low == 0 and 0.03 < result.ci_high < 0.12, result.describe()


def test_a_sorted_input_is_bet_on_in_shuffled_order():
    """Sorting the values (a caller's, say) must not move the interval: the bet runs in the seed's order."""
    x = np.random.default_rng(1).beta(0.5, 4, 200)
    shuffled = np.random.default_rng(2).permutation(x)
    a, b = bounded_mean(np.sort(x), bounds=(0, 1)), bounded_mean(shuffled, bounds=(0, 1))
    assert a.estimate == pytest.approx(b.estimate)
    assert abs(a.ci_low - b.ci_low) < 0.2 * (b.ci_high - b.ci_low)


@pytest.mark.parametrize(("name", "draw", "bounds"), [
    ("beta(0.2, 4), skewness 3.4", lambda rng, shape: rng.beta(0.2, 4, shape), (0, 1)),
    ("rare binary 2%", lambda rng, shape: (rng.random(shape) < 0.02).astype(float), (0, 1)),
    ("S2's values (two heavy tails)", None, (-1, 1)),
])  # fmt: skip
@pytest.mark.parametrize("n", [16, 64])
def test_each_side_misses_at_most_nominal_at_small_n_where_the_bootstrap_refuses(name, draw, bounds, n):
    """At alpha/16 the studentized bootstrap refuses these samples at n=16 and 64 (or misses: S2's shape at n=64
    put the upper bound below the mean 0.90% of the time at alpha/8); the bet's guarantee is each side at most
    0.156%.  20,000 samples: 31 misses at nominal, so 1.6 times nominal bounds chance."""
    population = (claim_values("S2") if draw is None else draw(np.random.default_rng(5), 200_000))
    misses = interval_misses(population, n, ALPHA_16, method="betting", bounds=bounds, samples=20_000, seed=n)
    assert misses.refused == 0
    assert max(misses.truth_below, misses.truth_above) < 1.6 * 0.05 / 32, misses


def test_its_width_on_the_claims_values_is_near_the_bootstraps():
    """The price of a guarantee at every n: on CH3's per-level values (n=256, alpha/16, where the bootstrap
    accepts them) the bet's interval is at most 1.5 times as wide."""
    values = claim_values("CH3")
    bet = bounded_mean(values, bounds=(-1, 1), confidence=ALPHA_16)
    boot = paired_bootstrap(values, confidence=ALPHA_16)
    assert bet.ci_high - bet.ci_low < 1.5 * (boot.ci_high - boot.ci_low), (bet.describe(), boot.describe())


def test_rows_bounds_runs_the_same_code_as_bounded_mean():
    x = np.random.default_rng(3).beta(2, 5, 100)
    low, high = intervals.rows_bounds("betting", x[None, :], None, 0.99, bounds=(0, 1))
    result = bounded_mean(x, bounds=(0, 1), confidence=0.99, seed=np.random.default_rng(9))
    reordered = x[np.random.default_rng(9).permutation(x.size)]
    low2, high2 = intervals.betting_bounds(reordered[None, :], (0, 1), 0.99)
    assert (result.ci_low, result.ci_high) == (low2[0], high2[0])
    assert low[0] <= x.mean() <= high[0]
