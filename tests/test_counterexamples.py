"""Counterexample search as a claim form (harness/claims/counterexamples.py), on planted properties whose failures
are known without any policy: the exact failure rate and interval, the search finding and shrinking a planted
counterexample (and finding none where there is none), and the verdict and picture a claim gets."""

import math

import pytest
from hypothesis import strategies as st

from harness.claims.claim import Bound, Claim, ClaimRefuted, ClaimSpec
from harness.claims.counterexamples import Case, Search, check_universal, failure_rate, search
from harness.errors import ClaimError
from harness.heist import strategies
from harness.stats import clopper_pearson_interval


def spec(threshold: float = 0.2) -> ClaimSpec:
    return ClaimSpec(id="CX-test", statement="P holds on every level.", sites=("policy",), metric="failure rate",
                     bound=Bound(direction="upper", threshold=threshold), seeds="confirmation", n=64)  # fmt: skip


def make_claim(threshold: float = 0.2) -> Claim:
    return Claim(spec=spec(threshold), family_alpha=0.05, family_size=1)


def gem_cases(count: int) -> list[Case]:
    """Each pool level with its gem moved one cell, where it can be (planted cases with a one-step edit path)."""
    cases = []
    for index in range(strategies.POOL_SIZE):
        level = strategies.pool_level(index)
        gx, gy = level.gem.cell
        cell = next(((x, y) for x, y in ((gx + 1, gy), (gx - 1, gy), (gx, gy + 1), (gx, gy - 1))
                     if not level.is_wall((x, y)) and level.occupant((x, y)) is None), None)  # fmt: skip
        if cell is not None:
            cases.append(Case(path=(level, level.move_gem(cell)), edits=(f"gem {level.gem.cell} -> {cell}",)))
        if len(cases) == count:
            return cases
    raise AssertionError("the pool has too few levels with a free cell beside the gem")


def gem_on_odd_column(cases):
    """Planted P: fails exactly where the edited gem lies in an odd column."""
    return [f"gem in column {c.level.gem.cell[0]}" if c.level.gem.cell[0] % 2 else None for c in cases]


def test_failure_rate_is_the_exact_interval_of_the_planted_failures():
    cases = gem_cases(64)
    odd = sum(c.level.gem.cell[0] % 2 for c in cases)
    sample = failure_rate(cases, gem_on_odd_column, confidence=0.99)
    expected = clopper_pearson_interval(odd, 64, confidence=0.99)
    assert (sample.estimate.estimate, sample.estimate.ci_low, sample.estimate.ci_high) == (
        expected.estimate, expected.ci_low, expected.ci_high)
    assert len(sample.failures) == odd and all(f.case.level.gem.cell[0] % 2 for f in sample.failures)
    with pytest.raises(ClaimError, match="one None-or-reason per case"):
        failure_rate(cases, lambda batch: [None], confidence=0.99)
    with pytest.raises(ClaimError, match="non-empty"):
        failure_rate([], gem_on_odd_column, confidence=0.99)


def pool_cases():
    return st.integers(0, 63).map(lambda i: Case(path=(strategies.pool_level(i),)))


def test_search_shrinks_to_the_smallest_planted_counterexample():
    """P fails on pool levels from index 10 on: the search must find one and shrink it to pool level 10."""
    failing = {strategies.pool_level(i).current_level_seed for i in range(10, 64)}

    def late_levels(cases):
        return ["late" if c.level.current_level_seed in failing else None for c in cases]

    found = search(pool_cases(), late_levels, max_examples=100, seed=0)
    assert found.counterexample is not None
    assert found.counterexample.case.level == strategies.pool_level(10) and found.counterexample.reason == "late"
    again = search(pool_cases(), late_levels, max_examples=100, seed=0)
    assert again.counterexample.case == found.counterexample.case  # seeded: the same search finds the same
    assert "counterexample found" in found.describe() and "seed 0" in found.describe()


def test_search_reports_none_found_with_its_example_count():
    never = search(pool_cases(), lambda cases: [None] * len(cases), max_examples=30, seed=1)
    assert never.counterexample is None and 1 <= never.examples <= 30
    assert never.describe().startswith(f"no counterexample in {never.examples} examples")
    with pytest.raises(ClaimError, match="max_examples"):
        search(pool_cases(), gem_on_odd_column, max_examples=0)
    with pytest.raises(ClaimError, match="must draw Case"):
        search(st.just(1), gem_on_odd_column, max_examples=5)


def test_the_verdict_is_the_rate_and_the_row_names_the_counterexample():
    """A rate below the bound is supported even with a counterexample (shown, and the literal 'every' called
    false); a rate above it is refuted; with no failure at all, the row says no counterexample was found."""
    cases = gem_cases(64)
    odd = sum(c.level.gem.cell[0] % 2 for c in cases)
    claim = make_claim(threshold=0.9)
    sample = failure_rate(cases, gem_on_odd_column, confidence=claim.confidence)
    nothing = Search(examples=30, max_examples=30, seed=0, counterexample=None)
    assert check_universal(claim, sample, nothing) == "supported" and 0 < odd < 64
    assert "the literal 'for every' is false" in claim.message and f"{odd} failing of 64 sampled" in claim.message
    (figure,) = claim.figures
    assert figure.caption.startswith("counterexample from the sample: seed ")

    strict = make_claim(threshold=0.05)
    with pytest.raises(ClaimRefuted):
        check_universal(strict, failure_rate(cases, gem_on_odd_column, confidence=strict.confidence), nothing)

    clean = make_claim(threshold=0.2)
    none = failure_rate(cases, lambda batch: [None] * len(batch), confidence=clean.confidence)
    assert check_universal(clean, none, nothing) == "supported" and clean.figures == []
    assert "no counterexample in 30 examples" in clean.message and "is not refuted" in clean.message
    tail = (1 - clean.confidence) / 2  # no failure in 64: the exact upper bound solves (1 - p)^64 = tail
    assert math.isclose(clean.result.ci_high, 1 - tail ** (1 / 64), rel_tol=1e-9) and clean.result.estimate == 0


def test_a_case_needs_one_edit_per_step():
    level = strategies.pool_level(0)
    with pytest.raises(ClaimError, match="one edit per step"):
        Case(path=(level, level), edits=())
    assert Case(path=(level,)).describe().endswith("unedited")
    moved = level.remove_gem()
    case = Case(path=(level, moved), edits=("gem removed",))
    assert case.level is moved and case.describe() == f"seed {level.current_level_seed}: gem removed"
