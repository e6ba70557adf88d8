"""Counterexample search as a claim form: "for every level of family X, property P holds".

What such a claim can and cannot show
-------------------------------------
A universal statement is refuted by one counterexample, and no finite search proves it.  So the claim has two
parts, and only the first decides the verdict:

(a) **the verdict**: on a seeded, representative sample of ``n`` members of family X (drawn from the claim's
    ``seeds`` range), the rate at which P fails, with its exact Clopper-Pearson interval at the claim's confidence,
    against a pre-registered ``upper_bound_below`` (the largest failure rate at which P would still be a rule of
    the policy).  *Supported* means: with confidence ``claim.confidence``, P fails on fewer than that fraction of
    family X.  *Refuted*: it fails on more.  It never means that P holds on every member;
(b) **the search**: hypothesis, derandomized from ``seed`` and limited to ``max_examples``, hunts for a member on
    which P fails and shrinks it to the smallest it can find (fewest, nearest edits on the lowest pool seed).
    Hypothesis does not sample representatively, so its result never enters the verdict; it answers the literal
    "every": the row says either "counterexample found" (the universal statement is false, whatever the rate) with
    the level attached as a picture with its edit path, or "no counterexample in N examples" (which proves nothing).

A failure from the sample counts as a counterexample too; the picture shows the search's (smallest) one if any,
else the sample's first.

Writing one
-----------
P is a function of a batch of :class:`Case` (a level and the edit path that made it) returning, for each, ``None``
where P holds or a short reason where it fails; it is called on the whole sample at once (one forward pass) and on
one case at a time during the search::

    def walks_into_wall(cases): ...  # [None, "RIGHT into the wall at (4, 3)", ...]

    sample = failure_rate(cases, walks_into_wall, confidence=claim.confidence)
    found = search(case_strategy, walks_into_wall, max_examples=200, seed=0)
    check_universal(claim, sample, found)  # attaches the picture, then claim.check(...)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from random import Random

from harness.claims.figures import edit_path_picture
from harness.errors import ClaimError
from harness.heist.levels import HeistLevel
from harness.stats import proportion
from harness.stats.estimates import Estimate

__all__ = ["Case", "Failure", "Sample", "Search", "check_universal", "failure_rate", "search"]


@dataclass(frozen=True, kw_only=True)
class Case:
    """A member of a family: the levels of its edit path (the generated level first, the checked level last) and
    each edit in words: ``Case(path=(level, level.move_agent((3, 4))), edits=("agent (2, 8) -> (3, 4)",))``."""

    path: tuple[HeistLevel, ...]
    edits: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.path or len(self.edits) != len(self.path) - 1:
            raise ClaimError(
                f"a case needs its levels and one edit per step after the first, got {len(self.path)} levels and "
                f"{len(self.edits)} edits"
            )

    @property
    def level(self) -> HeistLevel:
        """The level the property is checked on: the end of the edit path."""
        return self.path[-1]

    def describe(self) -> str:
        """The edit path in words, e.g. ``seed 1000123: agent (2, 8) -> (3, 4)``."""
        seed = f"seed {self.path[0].current_level_seed}"
        return f"{seed}: {'; '.join(self.edits)}" if self.edits else f"{seed}, unedited"


Property = Callable[[Sequence[Case]], Sequence["str | None"]]
"""P over a batch of cases: None where it holds, a short reason where it fails."""


@dataclass(frozen=True, kw_only=True)
class Failure:
    """A case on which the property failed, and why."""

    case: Case
    reason: str


@dataclass(frozen=True, kw_only=True)
class Sample:
    """Part (a): the failure rate on a representative sample, its exact interval, and the failures."""

    estimate: Estimate
    failures: tuple[Failure, ...]


@dataclass(frozen=True, kw_only=True)
class Search:
    """Part (b): how many examples hypothesis tried (shrinking included) and the smallest failure it found."""

    examples: int
    max_examples: int
    seed: int
    counterexample: Failure | None

    def describe(self) -> str:
        """``no counterexample in 200 examples (hypothesis, seed 0)`` or ``counterexample found after ...``."""
        how = f"hypothesis, seed {self.seed}, at most {self.max_examples} examples"
        if self.counterexample is None:
            return f"no counterexample in {self.examples} examples ({how})"
        return (
            f"counterexample found ({how}, {self.examples} tried with shrinking): {self.counterexample.case.describe()}"
            f" -> {self.counterexample.reason}"
        )


def _checked(check: Property, cases: Sequence[Case]) -> list[str | None]:
    reasons = list(check(cases))
    if len(reasons) != len(cases) or not all(r is None or isinstance(r, str) for r in reasons):
        raise ClaimError(
            f"a property returns one None-or-reason per case; got {len(reasons)} values for {len(cases)} cases"
        )
    return reasons


def failure_rate(cases: Sequence[Case], check: Property, *, confidence: float, unit: str = "levels") -> Sample:
    """Part (a): check every case and estimate the failure rate with its exact (Clopper-Pearson) interval at
    ``confidence``, over cases counted as ``unit`` (the claim's, e.g. ``"pairs"``):
    ``failure_rate(cases, walks_into_wall, confidence=claim.confidence)``."""
    cases = list(cases)
    if not cases or not all(isinstance(c, Case) for c in cases):
        raise ClaimError("failure_rate needs a non-empty sequence of Case")
    reasons = _checked(check, cases)
    failures = tuple(Failure(case=c, reason=r) for c, r in zip(cases, reasons) if r is not None)
    estimate = proportion([r is not None for r in reasons], unit=unit, confidence=confidence)
    return Sample(estimate=estimate, failures=failures)


def search(strategy, check: Property, *, max_examples: int, seed: int = 0) -> Search:
    """Part (b): hypothesis looks for a case (drawn from ``strategy``) on which ``check`` fails, at most
    ``max_examples`` generated, seeded, no example database, torch on one thread while it runs (cases come one at
    a time), and shrinks it:
    ``search(cases_strategy, walks_into_wall, max_examples=200, seed=0)``."""
    import torch
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample, Unsatisfiable

    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ClaimError(f"max_examples must be a positive int, got {max_examples!r}")
    tried = 0

    def fails(case: Case) -> bool:
        nonlocal tried
        if not isinstance(case, Case):
            raise ClaimError(f"the search strategy must draw Case values, drew {type(case).__name__}")
        tried += 1
        return _checked(check, [case])[0] is not None

    options = settings(
        max_examples=max_examples, database=None, deadline=None, phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one case at a time: 10 ms of CPU a forward pass, against 160 ms on two busy threads
    try:
        case = find(strategy, fails, settings=options, random=Random(seed))
    except (NoSuchExample, Unsatisfiable):
        return Search(examples=tried, max_examples=max_examples, seed=seed, counterexample=None)
    finally:
        torch.set_num_threads(threads)
    (reason,) = _checked(check, [case])
    return Search(examples=tried, max_examples=max_examples, seed=seed,
                  counterexample=Failure(case=case, reason=reason))  # fmt: skip


def check_universal(claim, sample: Sample, found: Search) -> str:
    """Attach the smallest counterexample (the search's, else the sample's first) as its edit path, name the
    search's outcome in the result's method, then ``claim.check`` the sample's failure rate (the verdict)."""
    __tracebackhide__ = True
    shown = found.counterexample or (sample.failures[0] if sample.failures else None)
    literal = "the literal 'for every' is false" if shown else "the literal 'for every' is not refuted"
    if shown is not None:
        source = "search (shrunk)" if shown is found.counterexample else "sample"
        claim.attach(
            edit_path_picture(shown.case.path),
            f"counterexample from the {source}: {shown.case.describe()} -> {shown.reason} (left to right: the "
            "generated level, then each edit, edited cells outlined in magenta; gold: the shortest path)",
        )
    failures = len(sample.failures)
    method = (
        f"{sample.estimate.method}; {failures} failing of {sample.estimate.n} sampled; {found.describe()}; {literal}"
    )
    return claim.check(replace(sample.estimate, method=method))
