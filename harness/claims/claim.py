"""Claims: a hypothesis declared up front as a pytest marker, then checked once against a statistic's result.

Writing a claim
---------------
::

    MIN_DROP = 0.10  # fixed before any data was seen

    @pytest.mark.claim(
        id="H1-up-channel",
        statement="Zero-ablating conv3a channel 17 lowers P(UP) by more than 0.10 when the gem is above the agent.",
        sites=["conv3a:17"], metric="mean drop in P(UP)", lower_bound_above=MIN_DROP,
        seeds="confirmation", n=512, family="confirmatory",
    )
    def test_up_channel(claim, policy, sample_levels):
        drop = ...  # one value per level, clean minus ablated
        claim.check(paired_bootstrap(drop, confidence=claim.confidence))

The declaration holds everything pre-registered: statement, sites, metric, exactly one bound
(``lower_bound_above=t``, ``upper_bound_below=t`` or ``equivalent_within=margin``), the seed range, ``n`` and
its ``unit`` (``"levels"``, the default, ``"pairs"``, ``"episodes"``, ``"latents"``, ``"restarts"``, ``"states"``
or ``"channels"``), and the family (``confirmatory``, the default, tested on ``seeds="confirmation"`` only, or
``exploratory``, on any range).  ``claim.attach(image, caption)`` adds pictures (uint8 RGB arrays) to the report.

Sites may be named by role (``sites=["last_conv:selected"]``, :mod:`harness.policy.roles`), so one claim runs on
every architecture; the report names the site each role resolved to.  A claim about some architectures only
declares ``architectures=["custom_cnn", ...]`` (default: all), and one that needs SAEs declares their sites or
roles, ``saes=["last_conv"]``.  A claim that does not apply to the policy under test (another architecture, an SAE
not loaded for it) is skipped with the reason in its report row, and is no member of its family's ``m``
(:mod:`harness.claims.declaration`).

Selecting, then confirming
--------------------------
A claim about a unit chosen from the data (the channel whose ablation lowers P(UP) most, a latent, a steering
coefficient) chooses it on one seed range and tests it on another (docs/statistics.md, item 7).  It declares the
range it chose on, ``selected_on="selection"`` (never its ``seeds``), and records its choice in the test with
``claim.select(channel=6)`` (plain JSON values: ``channels=[6, 17, 5]``, ``latent=123``) once, before
``claim.check``.  The choice appears in the claim's report row.  Checking without selecting, or selecting without
``selected_on``, is a :class:`~harness.errors.ClaimError`.

Verdicts (docs/statistics.md, item 11)
--------------------------------------
The result must come from :mod:`harness.stats` (it carries ``interval_at``, the same method's interval at any
confidence).  Its two-sided interval at confidence ``1 - alpha/m`` (see below) decides:

* ``lower_bound_above=t``: supported if ``ci_low > t``, refuted if ``ci_high < t``;
* ``upper_bound_below=t``: supported if ``ci_high < t``, refuted if ``ci_low > t``;
* ``equivalent_within=d`` (a "does not matter" claim, TOST with margin ``d``): supported if the interval lies
  inside ``(-d, d)``, refuted if it lies entirely outside;
* otherwise inconclusive.  A result compared with a null baseline (``null_quantile`` set, e.g. a permutation
  test against random channels, whose ``alternative`` must point the bound's way: ``greater`` for a lower bound,
  ``less`` for an upper one) is supported only if also ``p <= alpha/m``.

Every row carries ``p_value``, the p-value of the claim's OWN hypothesis (H0: effect <= t for a lower bound,
>= t for an upper bound, outside ``(-d, d)`` for equivalence): the smallest ``a`` whose two-sided ``1 - a``
interval lies wholly on the supporting side, by bisection over ``interval_at`` (with a null baseline, the larger
of that and the null's p); "supported" holds exactly when ``p <= alpha/m``.  The statistic's own p-value (e.g. a
sign-flip test of "no effect") is kept as ``statistic_p_value``.  For a "does not matter" claim pass
``tost(d, margin=MARGIN, alpha=claim.alpha / 2)`` or ``paired_bootstrap(d, confidence=claim.confidence)``.

Multiplicity
------------
A run's claims form two families, confirmatory and exploratory; ``m`` is the number of claims of the claim's
family collected in the run (after ``-k``/``-m`` selection, which the run flags as a partial family).  The
in-test verdict uses Bonferroni: the interval at ``1 - alpha/m`` (``claim.confidence``; another level is a
:class:`~harness.errors.ClaimError`).  The report's ``p_adjusted`` is the same rule over the whole family,
``min(1, m p)``, so it is ``<= alpha`` exactly for the supported rows; Holm's adjusted p (never larger) is shown
beside it as ``p_holm`` (:func:`~harness.claims.records.adjust_p_values`).  A run of a single claim is a family
of one: take confirmatory verdicts from full runs.
"""

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from harness.claims.declaration import CONFIRMATION, ClaimSpec
from harness.claims.records import Bound, ClaimRecord, Figure, Histogram, fmt
from harness.errors import ClaimError
from harness.stats import SequentialResult
from harness.stats.proportions import WILSON

__all__ = ["Bound", "CONFIRMATION", "Claim", "ClaimRefuted", "ClaimSpec"]  # Bound, CONFIRMATION, ClaimSpec: re-exported

NULL_ALTERNATIVE = {"lower": "greater", "upper": "less"}
"""The alternative a null-baseline test must have to back a bound of each direction."""
RESULT_ATTRIBUTES = (
    "estimate", "ci_low", "ci_high", "confidence", "n", "method", "p_value", "distribution", "null_quantile",
    "interval_at",
)  # fmt: skip


class ClaimRefuted(AssertionError):
    """The claim's interval lies on the wrong side of its pre-registered bound; the message gives the numbers."""


def _number(x: Any) -> float | None:
    """A plain float for the report, with None and NaN both read as no value."""
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _against_null(result: Any) -> bool:
    """Whether the result's p-value compares the effect with a null baseline (which support then requires)."""
    return result.null_quantile is not None and result.p_value is not None


class Claim:
    """One claim inside its test: tells the test which confidence to use, collects pictures, checks one result.

    ``family_alpha`` is the run's alpha and ``family_size`` the number of claims in this claim's family, so the
    claim is tested at ``alpha = family_alpha / family_size`` and ``confidence = 1 - alpha`` (Bonferroni).
    """

    def __init__(self, *, spec: ClaimSpec, family_alpha: float, family_size: int) -> None:
        if not 0 < family_alpha < 1 or family_size < 1:
            raise ClaimError(f"claim {spec.id!r}: need 0 < alpha < 1 and family size >= 1")
        self.spec = spec
        self.family_alpha = family_alpha
        self.family_size = family_size
        self.figures: list[Figure] = []
        self.selected: dict[str, Any] | None = None
        self.result: Any = None
        self.verdict: str | None = None
        self.p_value: float | None = None  # the claim's own hypothesis, set by check
        self.message = ""

    @property
    def alpha(self) -> float:
        """This claim's share of the run's alpha: ``family_alpha / family_size``."""
        return self.family_alpha / self.family_size

    @property
    def confidence(self) -> float:
        """The confidence the result's interval must have: ``1 - alpha``; pass it to the statistic."""
        return 1 - self.alpha

    @property
    def null_draws(self) -> int:
        """How many draws a null baseline of this claim takes: ``ceil(2 / alpha)``, so that p (``(b + 1) / (draws +
        1)``) reaches ``alpha`` even when one draw beats the effect.  A fixed count breaks as the family grows (200
        draws cannot reach alpha below 1/201, i.e. beyond 10 claims at alpha 0.05); pass ``claim.null_draws``."""
        return math.ceil(2 / self.alpha)

    def attach(self, image: np.ndarray, caption: str) -> None:
        """Add a picture (``(H, W, 3)`` uint8 RGB, e.g. a clean or counterfactual level) to the report."""
        self.figures.append(Figure.from_rgb(image, caption))

    def select(self, **units: Any) -> None:
        """Record the unit(s) chosen on the ``selected_on`` range, e.g. ``claim.select(channel=6)``; once, before
        :meth:`check`, with plain JSON values (convert numpy numbers with ``int()`` or ``float()``)."""
        __tracebackhide__ = True
        name = f"claim {self.spec.id!r}"
        if self.spec.selected_on is None:
            raise ClaimError(
                f"{name} selects {', '.join(units) or 'nothing'} but declares no selected_on; declare the seed range "
                "the unit is chosen on, e.g. selected_on='selection'"
            )
        if self.verdict is not None or self.selected is not None:
            raise ClaimError(f"{name}: select once, before claim.check (the choice comes before the test)")
        if not units:
            raise ClaimError(f"{name}: select names at least one unit, e.g. claim.select(channel=6)")
        try:
            plain = json.loads(json.dumps(units, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ClaimError(
                f"{name}: selected units must be plain JSON (int, float, str, bool, lists, dicts); {exc}; convert "
                "numpy numbers with int() or float()"
            ) from exc
        self.selected = plain

    def check(self, result: Any) -> str:
        """Decide the verdict from a statistic's result; raise :class:`ClaimRefuted` when refuted.

        Returns ``"supported"`` or ``"inconclusive"``.  Raises :class:`ClaimError` when the result cannot
        answer this claim: checked twice, a declared selection not made, not built by :mod:`harness.stats` (no
        ``interval_at``, or one that disagrees with the interval), another confidence or n, no finite interval, a
        null baseline tested the other way, or too small to ever reach ``p <= alpha``.
        """
        __tracebackhide__ = True  # pytest shows the test's own line and this message, not this method
        name = f"claim {self.spec.id!r}"
        if self.verdict is not None:
            raise ClaimError(f"{name} was already checked; one claim, one result (declare another claim)")
        if self.spec.selected_on is not None and self.selected is None:
            raise ClaimError(
                f"{name} declares selected_on={self.spec.selected_on!r} but selected nothing; call "
                "claim.select(...) with the unit chosen on that range before claim.check"
            )
        missing = [a for a in RESULT_ATTRIBUTES if not hasattr(result, a)]
        if missing:
            raise ClaimError(f"{name}: the result lacks {', '.join(missing)}; pass a harness.stats result")
        if _number(result.ci_low) is None or _number(result.ci_high) is None:
            raise ClaimError(
                f"{name}: the result has no finite interval ({result.ci_low}, {result.ci_high}); a null-baseline "
                "test needs the effect's own estimate: permutation_test_against_null(paired_bootstrap(...), null)"
            )
        if not math.isclose(result.confidence, self.confidence, rel_tol=0, abs_tol=1e-12):
            raise ClaimError(
                f"{name}: the result's interval is at confidence {result.confidence:.6g}, but this claim needs "
                f"{self.confidence:.6g} (alpha {self.family_alpha:g} / {self.family_size} {self.spec.family} "
                "claims in this run); pass confidence=claim.confidence to the statistic (tost: alpha=claim.alpha / 2, "
                "as its interval has confidence 1 - 2 alpha)"
            )
        self._check_interval_at(result)
        if str(result.method).startswith(WILSON):
            raise ClaimError(
                f"{name}: Wilson's interval ({result.method!r}) misses several times its nominal rate on the side "
                "nearer 0 or 1 at a claim's level (docs/statistics.md, item 12); pass clopper_pearson_interval(...) "
                "or proportion(...) (Clopper-Pearson, exact at every n)"
            )
        most = result.max_n if isinstance(result, SequentialResult) else result.n  # a sequential test may stop early
        if most != self.spec.n or not 1 <= result.n <= most:
            raise ClaimError(f"{name} declares n={self.spec.n} but the result used n={result.n} of at most {most}; "
                             "a new n is a new claim (a sequential claim declares its most units)")
        against_null = _against_null(result)
        if against_null:
            self._check_null(result)
        p = self.spec.bound.p_value(result.interval_at, self.alpha, (result.ci_low, result.ci_high))
        verdict = self.spec.bound.verdict(result.ci_low, result.ci_high)
        if against_null:
            p = max(p, float(result.p_value))
            if verdict == "supported" and not p <= self.alpha:
                verdict = "inconclusive"
        self.result, self.verdict, self.p_value = result, verdict, p
        self.message = self._explain(result)
        if verdict == "refuted":
            raise ClaimRefuted(f"{name} refuted: {self.message}")
        return verdict

    def _check_interval_at(self, result: Any) -> None:
        """Refuse a result without ``interval_at`` or whose ``interval_at(confidence)`` is not its interval."""
        __tracebackhide__ = True
        name = f"claim {self.spec.id!r}"
        if not callable(result.interval_at):
            raise ClaimError(
                f"{name}: the result has no interval_at (the same method's interval at another confidence), so its "
                "own p-value cannot be computed; build it with harness.stats (paired_bootstrap, proportion, "
                "tost, permutation_test_against_null, ...), not by hand"
            )
        low, high = result.interval_at(result.confidence)
        if not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in ((low, result.ci_low),
                                                                              (high, result.ci_high))):
            raise ClaimError(
                f"{name}: interval_at({result.confidence:.6g}) gives [{fmt(low)}, {fmt(high)}] but the result's "
                f"interval is [{fmt(result.ci_low)}, {fmt(result.ci_high)}]; build it with harness.stats"
            )

    def _check_null(self, result: Any) -> None:
        """A null baseline must test the bound's direction and have enough draws to reach ``alpha``."""
        __tracebackhide__ = True
        name, direction = f"claim {self.spec.id!r}", self.spec.bound.direction
        wanted = NULL_ALTERNATIVE.get(direction)
        if wanted is None:
            raise ClaimError(f"{name}: an equivalence claim cannot be supported by beating a null baseline; pass "
                             "the effect's own estimate (tost or paired_bootstrap)")
        alternative = getattr(result, "alternative", None)
        if alternative != wanted:
            raise ClaimError(
                f"{name}: its {direction} bound needs the null baseline tested with alternative={wanted!r} (the "
                f"effect beats the null that way), got {alternative!r}"
            )
        if result.distribution is not None and 1 / (len(result.distribution) + 1) > self.alpha:
            raise ClaimError(
                f"{name}: with {len(result.distribution)} null draws no p-value can reach this claim's alpha "
                f"{self.alpha:.3g}; draw at least {math.ceil(1 / self.alpha)}"
            )

    def _explain(self, result: Any) -> str:
        """The estimate explaining itself, e.g. ``mean drop = 0.04 [0.01, 0.07] (99% CI, ...); needed ...``."""
        need_p = f" and p <= {fmt(self.alpha)} against the null" if _against_null(result) else ""
        return (
            f"{self.spec.metric} = {fmt(result.estimate)} [{fmt(result.ci_low)}, {fmt(result.ci_high)}] "
            f"({100 * result.confidence:.4g}% CI, n={result.n} {self.spec.unit}, {result.method}, "
            f"p = {fmt(self.p_value)}); needed {self.spec.bound}{need_p}"
        )

    def record(
        self, *, test: str, checksums: Mapping[str, str], status: str | None = None, reason: str = "",
        source_sha256: str | None = None,
    ) -> ClaimRecord:
        """The claim's report row.  ``status`` (``"error"`` or ``"skipped"``, with its ``reason``) replaces the
        verdict when the test did not complete; an unchecked claim that was not skipped is an error.
        ``source_sha256`` identifies the claim's source (its file's content) across runs."""
        spec, result = self.spec, self.result
        if status is None and self.verdict is None:
            status, reason = "error", f"recorded no result: call claim.check(result) in {test or 'the test'}"
        row = ClaimRecord(
            id=spec.id, statement=spec.statement, sites=spec.sites, metric=spec.metric, family=spec.family,
            seeds=spec.seeds, n=spec.n, unit=spec.unit, direction=spec.bound.direction,
            threshold=spec.bound.threshold, family_alpha=self.family_alpha, family_size=self.family_size,
            confidence=self.confidence, verdict=status or self.verdict, message=reason or self.message, test=test,
            checksums=dict(checksums), figures=tuple(self.figures), selected_on=spec.selected_on,
            selected=dict(self.selected or {}), source_sha256=source_sha256,
        )  # fmt: skip
        if result is None or status is not None:
            return row
        distribution = result.distribution
        return replace(
            row,
            n=int(result.n), max_n=getattr(result, "max_n", None),
            estimate=_number(result.estimate), ci_low=_number(result.ci_low), ci_high=_number(result.ci_high),
            method=str(result.method), p_value=self.p_value, p_adjusted=self._bonferroni(),
            statistic_p_value=_number(result.p_value), statistic_hypothesis=_hypothesis(result),
            null_quantile=_number(result.null_quantile),
            histogram=None if distribution is None else Histogram.of(
                distribution, kind="bootstrap" if result.null_quantile is None else "null"
            ),
        )  # fmt: skip

    def _bonferroni(self) -> float:
        """``min(1, m p)``, kept on the verdict's side of ``family_alpha`` where float rounding could cross it."""
        adjusted = min(1.0, self.family_size * self.p_value)
        if self.verdict == "supported":
            return min(adjusted, self.family_alpha)
        return max(adjusted, math.nextafter(self.family_alpha, 1.0))


def _hypothesis(result: Any) -> str | None:
    """What the statistic's own p-value tests, e.g. ``greater than 0`` or ``greater than the null baseline``."""
    alternative = getattr(result, "alternative", None)
    if result.p_value is None or alternative is None:
        return None
    null = getattr(result, "null_value", None)
    against = "the null baseline" if null is None else fmt(null)
    return f"{alternative} ({against})" if alternative == "two-sided" else f"{alternative} than {against}"
