"""Calibrating claims on models whose truth is known (docs/statistics.md item 9): a claim's own declaration, the
verdict :meth:`~harness.claims.claim.Claim.check` gives a result when the claim is tested alone, and the rate of
"supported" over repetitions, split by whether the claim was true (power) or false (false-positive rate).

Run a claim's science function on planted and null models (:mod:`harness.policy.planted`), decide each result
with :func:`decide`, and summarise the :class:`Outcome` list of each (claim, model) cell.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.claims.claim import Claim, ClaimRefuted, ClaimSpec
from harness.errors import ClaimError
from harness.stats import Estimate, clopper_pearson_interval

__all__ = ["Outcome", "decide", "declaration_of", "false_positive_rate", "power", "rate"]


def declaration_of(test: Callable) -> dict[str, Any]:
    """The keywords of ``test``'s ``@pytest.mark.claim`` marker: the claim exactly as its file declares it."""
    marks = [mark for mark in getattr(test, "pytestmark", []) if mark.name == "claim"]
    if len(marks) != 1:
        raise ClaimError(f"{getattr(test, '__name__', test)!r} carries {len(marks)} claim markers; a claim test "
                         "carries exactly one")
    return dict(marks[0].kwargs)


def decide(declaration: Mapping[str, Any], result: Any, *, alpha: float,
           selected: Mapping[str, Any] | None = None) -> str:
    """The verdict ``Claim.check`` gives ``result`` for the claim ``declaration`` (marker keywords) tested alone
    at ``alpha``, so ``result`` is computed at confidence ``1 - alpha``; "refuted" is returned, not raised.
    ``selected``: the unit(s) chosen, for a claim that declares ``selected_on`` (``claim.select(**selected)``)."""
    claim = Claim(spec=ClaimSpec.declare(**declaration), family_alpha=alpha, family_size=1)
    if claim.spec.selected_on is not None:
        claim.select(**(selected or {}))
    try:
        return claim.check(result)
    except ClaimRefuted:
        return "refuted"


def rate(verdicts: list[str], *, confidence: float = 0.95) -> Estimate:
    """The rate of "supported" among ``verdicts`` with its Clopper-Pearson interval."""
    return clopper_pearson_interval(sum(v == "supported" for v in verdicts), len(verdicts), confidence=confidence)


@dataclass(frozen=True)
class Outcome:
    """One repetition of one (claim, model) cell: the verdict, and whether the claim is true there."""

    verdict: str
    true: bool


def false_positive_rate(outcomes: list[Outcome]) -> Estimate | None:
    """The rate of "supported" where the claim is false (None if it was true in every repetition)."""
    verdicts = [o.verdict for o in outcomes if not o.true]
    return rate(verdicts) if verdicts else None


def power(outcomes: list[Outcome]) -> Estimate | None:
    """The rate of "supported" where the claim is true (None if it was false in every repetition)."""
    verdicts = [o.verdict for o in outcomes if o.true]
    return rate(verdicts) if verdicts else None
