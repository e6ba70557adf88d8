"""Claim declarations and verdict rules on hand-built evidence (no pytest plugin involved)."""

from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.claims.claim import Bound, Claim, ClaimRefuted, ClaimSpec, adjust_p_values
from harness.errors import ClaimError
from harness.stats import benjamini_hochberg, holm, paired_bootstrap, permutation_test_against_null, tost


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """A statistic's result as the claim API reads it (duck typing)."""

    estimate: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95
    n: int = 512
    method: str = "paired BCa bootstrap"
    p_value: float | None = None
    distribution: np.ndarray | None = None
    null_quantile: float | None = None

    def describe(self) -> str:
        return f"{self.estimate} [{self.ci_low}, {self.ci_high}]"


DECLARATION = dict(
    id="H1", statement="Ablating conv3a channel 17 lowers P(UP).", sites=["conv3a:17"], metric="mean drop in P(UP)",
    seeds="confirm", n=512,
)  # fmt: skip


def make_claim(family_size: int = 1, alpha: float = 0.05, **bound: float) -> Claim:
    spec = ClaimSpec.declare(**DECLARATION, **(bound or {"lower_bound_above": 0.10}))
    return Claim(spec=spec, family_alpha=alpha, family_size=family_size)


def interval(low: float, high: float, **extra) -> Evidence:
    return Evidence(estimate=(low + high) / 2, ci_low=low, ci_high=high, **extra)


@pytest.mark.parametrize(
    ("bound", "low", "high", "verdict"),
    [
        ({"lower_bound_above": 0.10}, 0.12, 0.20, "supported"),
        ({"lower_bound_above": 0.10}, 0.05, 0.15, "inconclusive"),
        ({"lower_bound_above": 0.10}, 0.10, 0.15, "inconclusive"),  # touching the bound does not meet it
        ({"lower_bound_above": 0.10}, 0.01, 0.07, "refuted"),
        ({"upper_bound_below": 0.05}, -0.01, 0.03, "supported"),
        ({"upper_bound_below": 0.05}, 0.01, 0.08, "inconclusive"),
        ({"upper_bound_below": 0.05}, 0.06, 0.09, "refuted"),
        ({"equivalent_within": 0.02}, -0.01, 0.015, "supported"),
        ({"equivalent_within": 0.02}, -0.01, 0.03, "inconclusive"),
        ({"equivalent_within": 0.02}, 0.025, 0.06, "refuted"),
        ({"equivalent_within": 0.02}, -0.06, -0.03, "refuted"),
    ],
)
def test_the_interval_decides_the_verdict(bound, low, high, verdict):
    claim = make_claim(**bound)
    if verdict == "refuted":
        with pytest.raises(ClaimRefuted, match="refuted"):
            claim.check(interval(low, high))
    else:
        assert claim.check(interval(low, high)) == verdict
    assert claim.verdict == verdict


def test_a_refutation_explains_itself():
    claim = make_claim()
    with pytest.raises(ClaimRefuted) as caught:
        claim.check(Evidence(estimate=0.04, ci_low=0.01, ci_high=0.07))
    assert str(caught.value) == (
        "claim 'H1' refuted: mean drop in P(UP) = 0.04 [0.01, 0.07] (95% CI, n=512 levels, paired BCa bootstrap); "
        "needed lower bound > 0.1"
    )


def test_a_null_baseline_p_value_must_also_pass():
    null = np.zeros(999)
    against_null = dict(null_quantile=0.99, distribution=null)
    assert make_claim().check(interval(0.2, 0.3, p_value=0.01, **against_null)) == "supported"
    assert make_claim().check(interval(0.2, 0.3, p_value=0.2, **against_null)) == "inconclusive"
    with pytest.raises(ClaimRefuted, match=r"and p <= 0\.05 against the null"):
        make_claim().check(interval(0.0, 0.05, p_value=0.001, **against_null))


def test_a_p_value_of_no_effect_is_reported_but_not_required():
    """A sign-flip p of 0.9 says nothing against 'the effect is below 0.05'; it must not block support."""
    claim = make_claim(upper_bound_below=0.05)
    assert claim.check(interval(-0.01, 0.03, p_value=0.9)) == "supported"
    assert claim.record(test="t", checksums={}).p_value == 0.9


def test_bonferroni_sets_the_confidence_and_the_p_cutoff():
    claim = make_claim(family_size=4)
    assert claim.alpha == pytest.approx(0.0125)
    assert claim.confidence == pytest.approx(0.9875)
    with pytest.raises(ClaimError, match=r"needs 0\.9875 \(alpha 0\.05 / 4 confirmatory claims"):
        claim.check(interval(0.2, 0.3))  # computed at the default 0.95
    null = dict(null_quantile=0.98, distribution=np.zeros(999))
    evidence = interval(0.2, 0.3, confidence=claim.confidence, p_value=0.02, **null)
    assert claim.check(evidence) == "inconclusive"  # 0.02 > 0.05 / 4
    assert make_claim(family_size=1).check(replace(evidence, confidence=0.95)) == "supported"


def test_too_few_null_draws_can_never_support():
    claim = make_claim(family_size=10)  # alpha 0.005: p = 1/(99+1) = 0.01 can never pass
    null = dict(null_quantile=1.0, distribution=np.zeros(99))
    evidence = interval(0.2, 0.3, confidence=claim.confidence, p_value=0.01, **null)
    with pytest.raises(ClaimError, match="99 null draws"):
        claim.check(evidence)


@pytest.mark.parametrize(
    ("evidence", "match"),
    [
        (interval(0.2, 0.3, n=400), "declares n=512 but the result used n=400"),
        (interval(float("nan"), float("nan")), "no finite interval"),
        (object(), "the result lacks estimate"),
    ],
)
def test_a_result_that_cannot_answer_the_claim_is_an_error(evidence, match):
    with pytest.raises(ClaimError, match=match):
        make_claim().check(evidence)


def test_a_claim_is_checked_once():
    claim = make_claim()
    claim.check(interval(0.2, 0.3))
    with pytest.raises(ClaimError, match="already checked"):
        claim.check(interval(0.0, 0.05))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"statement": "  "}, "claim 'H1': statement must be a non-empty string"),
        ({"family": "confirmatry"}, "claim 'H1': family 'confirmatry' is unknown"),
        ({"n": 0}, "claim 'H1': n must be a positive int"),
        ({"sites": []}, "claim 'H1': sites must name at least one site"),
        ({"id": "two words"}, "claim id 'two words' must be a non-empty string without spaces"),
        ({"seed": 3}, "claim 'H1': unknown seed"),
        ({"upper_bound_below": 0.2}, "exactly one bound"),
        ({"lower_bound_above": "0.1"}, "lower_bound_above must be a number"),
    ],
)
def test_declaration_errors_name_the_claim(change, match):
    with pytest.raises(ClaimError, match=match):
        ClaimSpec.declare(**{**DECLARATION, "lower_bound_above": 0.1, **change})


def test_declaration_errors_list_what_is_missing():
    declaration = {k: v for k, v in DECLARATION.items() if k not in ("statement", "metric")}
    with pytest.raises(ClaimError, match="claim 'H1': missing statement, metric"):
        ClaimSpec.declare(**declaration, lower_bound_above=0.1)
    with pytest.raises(ClaimError, match="claim 'H1': declare exactly one bound"):
        ClaimSpec.declare(**DECLARATION)
    with pytest.raises(ClaimError, match="positive margin"):
        ClaimSpec.declare(**DECLARATION, equivalent_within=0)


def test_a_declaration_reads_as_a_spec():
    spec = ClaimSpec.declare(**{**DECLARATION, "sites": "conv3a"}, equivalent_within=0.02, family="exploratory")
    assert spec.sites == ("conv3a",)
    assert spec.bound == Bound(direction="equivalence", threshold=0.02)
    assert str(spec.bound) == "interval within ±0.02"


def test_the_record_carries_declaration_numbers_and_evidence():
    claim = make_claim(family_size=2)
    claim.attach(np.zeros((4, 4, 3), np.uint8), "clean level")
    null = np.linspace(-1, 1, 999)
    claim.check(interval(0.2, 0.3, confidence=claim.confidence, p_value=0.001, null_quantile=0.999, distribution=null))
    row = claim.record(test="claims/test_up.py::test_up", checksums={"policy": "abc"})
    assert (row.verdict, row.n, row.family_size, row.threshold, row.direction) == ("supported", 512, 2, 0.1, "lower")
    assert (row.ci_low, row.ci_high, row.p_value, row.checksums) == (0.2, 0.3, 0.001, {"policy": "abc"})
    assert row.histogram.kind == "null" and sum(row.histogram.counts) == 999
    assert [f.caption for f in row.figures] == ["clean level"]


def test_the_record_of_an_unfinished_claim():
    unchecked = make_claim().record(test="t.py::test_x", checksums={})
    assert unchecked.verdict == "error" and "recorded no result" in unchecked.message
    skipped = make_claim().record(test="t.py::test_x", checksums={}, status="skipped", reason="no GPU")
    assert (skipped.verdict, skipped.message, skipped.estimate) == ("skipped", "no GPU", None)


def test_attached_pictures_must_be_rgb_bytes():
    with pytest.raises(ClaimError, match=r"\(H, W, 3\) uint8"):
        make_claim().attach(np.zeros((4, 4, 3)), "float image")


def test_run_wide_adjustment_uses_holm_and_benjamini_hochberg():
    def row(claim_id: str, family: str, p: float | None, verdict: str = "supported"):
        base = make_claim().record(test="t", checksums={})
        return replace(base, id=claim_id, family=family, p_value=p, verdict=verdict)

    rows = [
        row("a", "confirmatory", 0.01), row("b", "exploratory", 0.02), row("c", "confirmatory", 0.04),
        row("d", "exploratory", 0.03), row("e", "confirmatory", None), row("f", "confirmatory", 0.001, "error"),
    ]  # fmt: skip
    adjusted = {r.id: r.p_adjusted for r in adjust_p_values(rows)}
    assert [adjusted["a"], adjusted["c"]] == pytest.approx(holm([0.01, 0.04]))
    assert [adjusted["b"], adjusted["d"]] == pytest.approx(benjamini_hochberg([0.02, 0.03]))
    assert adjusted["e"] is None and adjusted["f"] is None


def test_real_statistics_at_the_claims_confidence():
    rng = np.random.default_rng(1)
    claim = make_claim(family_size=3)
    drop = rng.normal(0.3, 0.1, 512)
    effect = paired_bootstrap(drop, confidence=claim.confidence, n_resamples=999)
    result = permutation_test_against_null(effect, rng.normal(0.0, 0.05, 999))
    assert claim.check(result) == "supported"
    assert claim.record(test="t", checksums={}).histogram.kind == "null"

    same = make_claim(family_size=3, equivalent_within=0.05)
    assert same.check(tost(rng.normal(0.0, 0.1, 512), margin=0.05, alpha=same.alpha / 2)) == "supported"


@given(
    low=st.floats(-1, 1), width=st.floats(0, 1), threshold=st.floats(-1, 1),
    direction=st.sampled_from(["lower", "upper", "equivalence"]),
)  # fmt: skip
def test_a_verdict_never_contradicts_its_interval(low, width, threshold, direction):
    high = low + width
    bound = Bound(direction=direction, threshold=abs(threshold) if direction == "equivalence" else threshold)
    verdict = bound.verdict(low, high)
    mirrored = {"lower": "upper", "upper": "lower", "equivalence": "equivalence"}[direction]
    mirror_threshold = bound.threshold if direction == "equivalence" else -bound.threshold
    assert Bound(direction=mirrored, threshold=mirror_threshold).verdict(-high, -low) == verdict
    contains_threshold = low <= bound.threshold <= high
    if direction != "equivalence" and contains_threshold:
        assert verdict == "inconclusive"


def make_selecting_claim(**declared) -> Claim:
    spec = ClaimSpec.declare(**DECLARATION, lower_bound_above=0.1, selected_on="selection", **declared)
    return Claim(spec=spec, family_alpha=0.05, family_size=1)


def test_a_selected_unit_lands_in_the_record():
    claim = make_selecting_claim()
    assert claim.spec.seed_ranges == ("confirm", "selection")
    claim.select(channels=(6, 17, 5), coefficient=0.5)
    claim.check(interval(0.2, 0.3))
    row = claim.record(test="t", checksums={})
    assert (row.selected_on, row.selected) == ("selection", {"channels": [6, 17, 5], "coefficient": 0.5})
    assert row.selection == "channels=[6, 17, 5]; coefficient=0.5"
    assert make_claim().record(test="t", checksums={}).selected == {}


def test_selection_is_declared_made_once_and_before_the_check():
    with pytest.raises(ClaimError, match="selected_on and seeds are both 'confirm'"):
        ClaimSpec.declare(**DECLARATION, lower_bound_above=0.1, selected_on="confirm")
    with pytest.raises(ClaimError, match="selects channel but declares no selected_on"):
        make_claim().select(channel=6)
    with pytest.raises(ClaimError, match="declares selected_on='selection' but selected nothing"):
        make_selecting_claim().check(interval(0.2, 0.3))
    twice = make_selecting_claim()
    twice.select(channel=6)
    with pytest.raises(ClaimError, match="select once, before claim.check"):
        twice.select(channel=7)
    late = make_selecting_claim()
    late.select(channel=6)
    late.check(interval(0.2, 0.3))
    with pytest.raises(ClaimError, match="select once"):
        late.select(channel=7)
    with pytest.raises(ClaimError, match="at least one unit"):
        make_selecting_claim().select()
    with pytest.raises(ClaimError, match=r"plain JSON.*int\(\)"):
        make_selecting_claim().select(channel=np.int64(6))
    assert twice.selected == {"channel": 6}  # a refused second choice leaves the first
