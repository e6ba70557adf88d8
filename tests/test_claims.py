"""Claim declarations and verdict rules on hand-built evidence (no pytest plugin involved)."""

from dataclasses import dataclass, field, replace
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.claims.claim import Claim, ClaimRefuted, ClaimSpec
from harness.claims.records import Bound, adjust_p_values
from harness.errors import ClaimError
from harness.stats import (SequentialResult, confidence_sequence_interval, holm, paired_bootstrap,
                           permutation_test_against_null, tost)

Z = NormalDist().inv_cdf


def z_of(confidence: float) -> float:
    return Z(1 - (1 - confidence) / 2)


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """A statistic's result as the claim API reads it (duck typing), with a normal-shaped ``interval_at``: each
    side of the interval scales with the two-sided z of the confidence asked for."""

    estimate: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95
    n: int = 512
    method: str = "paired BCa bootstrap"
    p_value: float | None = None
    alternative: str | None = None
    distribution: np.ndarray | None = None
    null_quantile: float | None = None
    interval_at: object = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.interval_at is None:
            def interval_at(confidence: float) -> tuple[float, float]:
                scale = z_of(confidence) / z_of(self.confidence)
                return (self.estimate - scale * (self.estimate - self.ci_low),
                        self.estimate + scale * (self.ci_high - self.estimate))

            object.__setattr__(self, "interval_at", interval_at)


DECLARATION = dict(
    id="H1", statement="Ablating conv3a channel 17 lowers P(UP).", sites=["conv3a:17"], metric="mean drop in P(UP)",
    seeds="confirmation", n=512,
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
        "claim 'H1' refuted: mean drop in P(UP) = 0.04 [0.01, 0.07] (95% CI, n=512 levels, paired BCa bootstrap, "
        "p = 1); "
        "needed lower bound > 0.1"
    )


NULL = dict(null_quantile=0.99, distribution=np.zeros(999), alternative="greater")


def test_a_null_baseline_p_value_must_also_pass():
    assert make_claim().check(interval(0.2, 0.3, p_value=0.01, **NULL)) == "supported"
    assert make_claim().check(interval(0.2, 0.3, p_value=0.2, **NULL)) == "inconclusive"
    with pytest.raises(ClaimRefuted, match=r"and p <= 0\.05 against the null"):
        make_claim().check(interval(0.0, 0.05, p_value=0.001, **NULL))


@pytest.mark.parametrize("alternative", ["two-sided", "less", None])
def test_a_null_baseline_must_be_tested_the_way_the_bound_points(alternative):
    """Issue 19 item 5: a lower-bound claim backed by 'random sets beat it' (less) or a two-sided p is refused."""
    evidence = interval(0.2, 0.3, p_value=0.01, **{**NULL, "alternative": alternative})
    with pytest.raises(ClaimError, match="needs the null baseline tested with alternative='greater'"):
        make_claim().check(evidence)
    with pytest.raises(ClaimError, match="alternative='less'"):
        make_claim(upper_bound_below=0.5).check(replace(evidence, alternative="greater"))
    with pytest.raises(ClaimError, match="equivalence claim cannot be supported by beating a null"):
        make_claim(equivalent_within=0.5).check(evidence)


def test_a_p_value_of_no_effect_is_reported_but_not_required():
    """A sign-flip p of 0.9 says nothing against 'the effect is below 0.05'; it must not block support."""
    claim = make_claim(upper_bound_below=0.05)
    assert claim.check(interval(-0.01, 0.03, p_value=0.9, alternative="greater")) == "supported"
    row = claim.record(test="t", checksums={})
    assert (row.statistic_p_value, row.statistic_hypothesis) == (0.9, "greater than the null baseline")
    assert row.p_value <= 0.05


def test_an_estimate_without_interval_at_is_refused():
    """Issue 19 item 2 (the claim's half): a hand-made estimate cannot give a verdict."""
    with pytest.raises(ClaimError, match="no interval_at.*build it with harness.stats"):
        make_claim().check(Evidence(estimate=0.9, ci_low=0.1, ci_high=0.2, interval_at=0))
    lying = Evidence(estimate=0.15, ci_low=0.12, ci_high=0.2, interval_at=lambda c: (0.0, 0.3))
    with pytest.raises(ClaimError, match=r"interval_at\(0\.95\) gives \[0, 0\.3\] but the result's interval is"):
        make_claim().check(lying)


def test_a_wilson_interval_is_refused_as_evidence():
    """Wilson's upper bound near 1 misses 2.65% at n=64, p=0.99 and alpha/8 (0.31% nominal): no verdict on it, in
    any form it reaches a claim (alone, through proportion, or against a null baseline)."""
    from harness.stats import permutation_test_against_null, proportion, wilson_interval

    def make_claim_of_100():
        return Claim(spec=ClaimSpec.declare(**{**DECLARATION, "n": 100, "lower_bound_above": 0.5}),
                     family_alpha=0.05, family_size=1)

    outcomes = np.arange(100) < 95
    for result in (wilson_interval(95, 100), proportion(outcomes, method="wilson"),
                   permutation_test_against_null(wilson_interval(95, 100), np.linspace(0.4, 0.6, 40))):
        with pytest.raises(ClaimError, match="Wilson's interval .* clopper_pearson_interval"):
            make_claim_of_100().check(result)
    assert make_claim_of_100().check(proportion(outcomes)) == "supported"


def expected_p(bound: str, t: float, evidence: Evidence) -> float:
    """The own-hypothesis p of a normal-shaped interval, in closed form: supported at 1 - a exactly when the
    interval's side, scaled by z(1 - a) / z(confidence), stays off the bound."""
    zc, e = z_of(evidence.confidence), evidence.estimate
    one_sided = {
        "lower": lambda: zc * (e - t) / (e - evidence.ci_low),
        "upper": lambda: zc * (t - e) / (evidence.ci_high - e),
        "equivalence": lambda: min(zc * (e + t) / (e - evidence.ci_low), zc * (t - e) / (evidence.ci_high - e)),
    }[bound]()
    return min(1.0, max(2 * (1 - NormalDist().cdf(one_sided)), 1e-12))


@given(
    low=st.floats(-1, 1), width=st.floats(0.001, 1), skew=st.floats(0.1, 0.9), threshold=st.floats(-1, 1),
    bound=st.sampled_from(["lower", "upper", "equivalence"]), family_size=st.integers(1, 12),
)  # fmt: skip
def test_the_own_p_value_agrees_with_the_verdict_and_the_adjusted_column(low, width, skew, threshold, bound,
                                                                         family_size):
    """Issue 19 item 7: p is the claim's own hypothesis (closed form here), supported exactly when p <= alpha/m,
    and the Bonferroni column is <= alpha exactly for supported rows."""
    keyword = {"lower": "lower_bound_above", "upper": "upper_bound_below", "equivalence": "equivalent_within"}
    t = abs(threshold) + 0.01 if bound == "equivalence" else threshold
    claim = make_claim(family_size=family_size, **{keyword[bound]: t})
    evidence = Evidence(estimate=low + skew * width, ci_low=low, ci_high=low + width, confidence=claim.confidence)
    try:
        verdict = claim.check(evidence)
    except ClaimRefuted:
        verdict = "refuted"
    row = claim.record(test="t", checksums={})
    assert (verdict == "supported") == (row.p_value <= claim.alpha) == (row.p_adjusted <= 0.05)
    expected = expected_p(bound, t, evidence)
    if 1e-10 < expected < 0.999:  # the bisection's floor and ceiling aside
        assert row.p_value == pytest.approx(expected, rel=1e-4)


def test_bonferroni_sets_the_confidence_and_the_p_cutoff():
    claim = make_claim(family_size=4)
    assert claim.alpha == pytest.approx(0.0125)
    assert claim.confidence == pytest.approx(0.9875)
    with pytest.raises(ClaimError, match=r"needs 0\.9875 \(alpha 0\.05 / 4 confirmatory claims"):
        claim.check(interval(0.2, 0.3))  # computed at the default 0.95
    evidence = interval(0.2, 0.3, confidence=claim.confidence, p_value=0.02, **NULL)
    assert claim.check(evidence) == "inconclusive"  # 0.02 > 0.05 / 4
    assert claim.p_value == 0.02  # the null's p is the larger one
    assert make_claim(family_size=1).check(interval(0.2, 0.3, p_value=0.02, **NULL)) == "supported"


def test_too_few_null_draws_can_never_support():
    claim = make_claim(family_size=10)  # alpha 0.005: p = 1/(99+1) = 0.01 can never pass
    evidence = interval(0.2, 0.3, confidence=claim.confidence, p_value=0.01, **{**NULL, "distribution": np.zeros(99)})
    with pytest.raises(ClaimError, match="99 null draws"):
        claim.check(evidence)


@pytest.mark.parametrize("family_size", [1, 8, 11, 16, 40])
def test_null_draws_reach_the_claims_alpha_with_one_draw_to_spare(family_size):
    claim = make_claim(family_size=family_size)
    draws = claim.null_draws
    assert 2 / (draws + 1) <= claim.alpha and draws <= 2 / claim.alpha + 1  # one draw may beat the effect
    null = {**NULL, "distribution": np.zeros(draws)}
    assert claim.check(interval(0.2, 0.3, confidence=claim.confidence, p_value=2 / (draws + 1), **null)) == "supported"


@pytest.mark.parametrize(
    ("evidence", "match"),
    [
        (interval(0.2, 0.3, n=400), "declares n=512 but the result used n=400 of at most 400"),
        (interval(float("nan"), float("nan")), "no finite interval"),
        (object(), "the result lacks estimate"),
    ],
)
def test_a_result_that_cannot_answer_the_claim_is_an_error(evidence, match):
    with pytest.raises(ClaimError, match=match):
        make_claim().check(evidence)


def sequential(n: int, max_n: int) -> SequentialResult:
    rate = confidence_sequence_interval(n // 2 + n // 4, n)
    return SequentialResult(estimate=rate.estimate, ci_low=rate.ci_low, ci_high=rate.ci_high, n=n, method=rate.method, confidence=0.95,
                            interval_at=rate.interval_at, decision="accept H1", successes=n // 2 + n // 4,
                            max_n=max_n, log_likelihood_ratio=0.0)


def test_a_sequential_result_may_stop_before_its_declared_most_units():
    claim = make_claim(lower_bound_above=0.5)
    assert claim.check(sequential(300, 512)) == "supported"
    row = claim.record(test="t", checksums={})
    assert (row.n, row.max_n, row.sample) == (300, 512, "300 of at most 512 levels")  # what it used, not declared
    with pytest.raises(ClaimError, match="used n=300 of at most 400"):
        make_claim(lower_bound_above=0.5).check(sequential(300, 400))


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
        ({"seeds": "selection"}, "a confirmatory claim is tested on seeds='confirmation', not 'selection'"),
        ({"seeds": "training"}, "declare family='exploratory' to test on another range"),
        ({"unit": "widgets"}, "unit 'widgets' is unknown"),
        ({"architectures": ["resnet"]}, r"claim 'H1': architectures \['resnet'\] are unknown; use names of"),
        ({"architectures": []}, "claim 'H1': architectures must name at least one of"),
        ({"saes": [""]}, r"claim 'H1': saes must name the sites or roles \(mid_conv, last_conv"),
        ({"sae": ["conv4a"]}, "unknown sae .*optionally family, selected_on, unit, architectures, saes"),
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


def test_a_declaration_names_its_architectures_and_saes():
    spec = ClaimSpec.declare(**DECLARATION, lower_bound_above=0.1, architectures="impala", saes="last_conv")
    assert (spec.architectures, spec.saes) == (("impala",), ("last_conv",))
    everywhere = ClaimSpec.declare(**DECLARATION, lower_bound_above=0.1)
    assert (everywhere.architectures, everywhere.saes) == (None, ())


def test_a_claim_applies_to_the_policy_or_says_why_not():
    """Roles in the declared sites read as the policy's own sites; another architecture, or an SAE site without a
    loaded SAE, is a reason to skip."""
    from harness.claims.declaration import applied
    from harness.policy.models import CustomCNN, ImpalaCNN

    spec = ClaimSpec.declare(**{**DECLARATION, "sites": ["last_conv.sae.latents:selected", "last_conv.relu:3",
                                                         "mid_conv", "conv4a", "policy"]},
                             lower_bound_above=0.1, saes=["last_conv"])  # fmt: skip
    resolved, reason = applied(spec, CustomCNN(), sae_sites={"conv4a"})
    assert reason is None
    assert resolved.sites == ("conv4a.sae.latents:selected", "conv4a.relu:3", "conv3a", "conv4a", "policy")
    impala = ImpalaCNN()
    assert applied(spec, impala, sae_sites={"stack3.res2"})[0].sites[:3] == (
        "stack3.res2.sae.latents:selected", "stack3.relu:3", "stack2.res2")
    assert applied(spec, impala, sae_sites={"conv4a"})[1] == (
        "needs an SAE on last_conv (stack3.res2 in this impala policy), and none is loaded for this policy: pass "
        "--sae stack3.res2=PATH (the ini's heist_saes go with its heist_policy only)")
    only_custom = replace(spec, architectures=("custom_cnn",), saes=())
    assert applied(only_custom, impala, sae_sites=set())[1] == "applies to custom_cnn; the policy under test is impala"


def test_the_record_carries_declaration_numbers_and_evidence():
    claim = make_claim(family_size=2)
    claim.attach(np.zeros((4, 4, 3), np.uint8), "clean level")
    null = np.linspace(-1, 1, 999)
    claim.check(interval(0.2, 0.3, confidence=claim.confidence, p_value=0.001, **{**NULL, "distribution": null}))
    row = claim.record(test="claims/test_up.py::test_up", checksums={"policy": "abc"}, source_sha256="f00")
    assert (row.verdict, row.n, row.family_size, row.threshold, row.direction) == ("supported", 512, 2, 0.1, "lower")
    assert (row.ci_low, row.ci_high, row.checksums, row.source_sha256) == (0.2, 0.3, {"policy": "abc"}, "f00")
    assert row.statistic_p_value == row.p_value == 0.001  # the null's p, larger than the bound's (about 2e-11)
    assert claim.spec.bound.p_value(claim.result.interval_at, claim.alpha, (0.2, 0.3)) == pytest.approx(2e-11, rel=0.2)
    assert row.p_adjusted == pytest.approx(2 * row.p_value)
    assert row.histogram.kind == "null" and sum(row.histogram.counts) == 999
    assert [f.caption for f in row.figures] == ["clean level"]


def test_the_unit_is_declared_and_printed():
    """Issue 19 item 11: n is printed in the declared unit; exploratory claims may use another range."""
    spec = ClaimSpec.declare(**{**DECLARATION, "seeds": "training"}, lower_bound_above=0.1, family="exploratory",
                             unit="pairs")
    claim = Claim(spec=spec, family_alpha=0.05, family_size=1)
    claim.check(interval(0.2, 0.3))
    assert "n=512 pairs" in claim.message and claim.record(test="t", checksums={}).unit == "pairs"
    assert make_claim().spec.unit == "levels"


def test_the_record_of_an_unfinished_claim():
    unchecked = make_claim().record(test="t.py::test_x", checksums={})
    assert unchecked.verdict == "error" and "recorded no result" in unchecked.message
    skipped = make_claim().record(test="t.py::test_x", checksums={}, status="skipped", reason="no GPU")
    assert (skipped.verdict, skipped.message, skipped.estimate) == ("skipped", "no GPU", None)


def test_attached_pictures_must_be_rgb_bytes():
    with pytest.raises(ClaimError, match=r"\(H, W, 3\) uint8"):
        make_claim().attach(np.zeros((4, 4, 3)), "float image")


def test_holm_runs_over_the_whole_family():
    """Issue 19 item 7: rows without a p-value (errors) count as p = 1 in their family's Holm; Bonferroni stays."""
    def row(claim_id: str, family: str, p: float | None, verdict: str = "supported", size: int = 3):
        base = make_claim().record(test="t", checksums={})
        return replace(base, id=claim_id, family=family, p_value=p, verdict=verdict, family_size=size)

    rows = [
        row("a", "confirmatory", 0.01), row("b", "exploratory", 0.02, size=2), row("c", "confirmatory", 0.04),
        row("d", "exploratory", 0.03, size=2), row("e", "confirmatory", None, "error"),
    ]  # fmt: skip
    adjusted = {r.id: r.p_holm for r in adjust_p_values(rows)}
    assert [adjusted["a"], adjusted["c"]] == pytest.approx(holm([0.01, 0.04, 1.0])[:2])
    assert [adjusted["b"], adjusted["d"]] == pytest.approx(holm([0.02, 0.03]))
    assert adjusted["e"] is None


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
    assert claim.spec.seed_ranges == ("confirmation", "selection")
    claim.select(channels=(6, 17, 5), coefficient=0.5)
    claim.check(interval(0.2, 0.3))
    row = claim.record(test="t", checksums={})
    assert (row.selected_on, row.selected) == ("selection", {"channels": [6, 17, 5], "coefficient": 0.5})
    assert row.selection == "channels=[6, 17, 5]; coefficient=0.5"
    assert make_claim().record(test="t", checksums={}).selected == {}


def test_selection_is_declared_made_once_and_before_the_check():
    with pytest.raises(ClaimError, match="selected_on and seeds are both 'confirmation'"):
        ClaimSpec.declare(**DECLARATION, lower_bound_above=0.1, selected_on="confirmation")
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
