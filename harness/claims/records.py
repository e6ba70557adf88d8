"""A claim's report row and what it holds: verdicts, bounds in words, the histogram and pictures of its evidence.

Both the claim (which fills a row) and the writers and saved runs (which read rows) import these types; nothing
here knows about pytest or about writing files.
"""

import base64
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from harness.claims.png import encode_png
from harness.errors import ClaimError

__all__ = [
    "DIRECTIONS", "FAMILIES", "STATUSES", "VERDICTS", "Bound", "ClaimRecord", "Figure", "Histogram",
    "adjust_p_values", "describe_bound", "describe_selection", "fmt",
]  # fmt: skip

FAMILIES = ("confirmatory", "exploratory")
"""The two families of a run; each is corrected on its own (Bonferroni decides, Holm is shown beside it)."""
P_FLOOR, P_TOP = 1e-12, 1 - 1e-9
"""The bisection's range of ``a`` (confidences ``1 - a`` stay inside (0, 1)); a p below ``P_FLOOR`` reads as it."""

VERDICTS = ("supported", "refuted", "inconclusive")
"""The three verdicts (docs/statistics.md, item 11)."""
STATUSES = (*VERDICTS, "error", "skipped")
"""What a report row can say: a verdict, or why the claim has none (its test errored or was skipped)."""
DIRECTIONS = {"lower": "lower bound > {}", "upper": "upper bound < {}", "equivalence": "interval within ±{}"}
BOUND_KEYWORDS = {"lower_bound_above": "lower", "upper_bound_below": "upper", "equivalent_within": "equivalence"}
"""Declaration keyword -> bound direction; a claim declares exactly one."""
"""How a claim's bound reads, by direction; the claim's threshold goes in the braces."""


def fmt(x: float | None) -> str:
    """A number as the reports print it: three significant digits, a dash for none."""
    return "–" if x is None else f"{x:.3g}"


def describe_bound(direction: str, threshold: float) -> str:
    """A pre-registered bound in words, e.g. ``lower bound > 0.1``."""
    return DIRECTIONS[direction].format(fmt(threshold))


def describe_selection(selected: Mapping[str, Any]) -> str:
    """The units a claim selected, e.g. ``channel=6`` or ``channels=[6, 17, 5]; latent=123``; a dash for none."""
    if not selected:
        return "–"
    return "; ".join(f"{name}={value if isinstance(value, str) else json.dumps(value)}"
                     for name, value in selected.items())  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Bound:
    """A pre-registered bound: ``direction`` is ``lower``, ``upper`` or ``equivalence`` (threshold = margin)."""

    direction: str
    threshold: float

    def __str__(self) -> str:
        return describe_bound(self.direction, self.threshold)

    def verdict(self, low: float, high: float) -> str:
        """The verdict an interval ``[low, high]`` gives on its own (before any p-value requirement)."""
        t = self.threshold
        supported, refuted = {
            "lower": (low > t, high < t),
            "upper": (high < t, low > t),
            "equivalence": (-t < low and high < t, low > t or high < -t),
        }[self.direction]
        return "supported" if supported else "refuted" if refuted else "inconclusive"

    def p_value(self, interval_at: Callable[[float], tuple[float, float]], alpha: float,
                interval: tuple[float, float]) -> float:
        """p of H0 "the bound is not met": the smallest ``a`` whose two-sided ``1 - a`` interval
        (``interval_at(1 - a)``) is supported, by bisection on the log scale.  It lands on the side of ``alpha``
        that ``interval`` (the one at ``1 - alpha``) gives, so ``p <= alpha`` exactly when it is supported."""
        def supports(a: float) -> bool:
            return self.verdict(*interval_at(1 - a)) == "supported"

        if self.verdict(*interval) == "supported":
            low, high = P_FLOOR, alpha  # ``high`` supports; ``low`` (once checked) does not
            if supports(low):
                return P_FLOOR
        else:
            low, high = alpha, 1.0
            if not supports(P_TOP):
                return 1.0
            high = P_TOP
        while high / low > 1 + 1e-6:
            middle = math.sqrt(low * high)
            low, high = (low, middle) if supports(middle) else (middle, high)
        return high


@dataclass(frozen=True, kw_only=True)
class Figure:
    """A picture attached to a claim as evidence: a PNG (base64 text, so rows stay JSON) and its caption."""

    caption: str
    png_base64: str

    @classmethod
    def from_rgb(cls, image: np.ndarray, caption: str) -> "Figure":
        """Encode an ``(H, W, 3)`` uint8 RGB array."""
        return cls(caption=caption, png_base64=base64.b64encode(encode_png(image)).decode("ascii"))


@dataclass(frozen=True, kw_only=True)
class Histogram:
    """A binned distribution: ``kind`` is ``"null"`` (effects under the null baseline) or ``"bootstrap"``."""

    kind: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]

    @classmethod
    def of(cls, values: np.ndarray, *, kind: str, bins: int = 40) -> "Histogram | None":
        """Bin the finite values; None when there are none."""
        finite = np.asarray(values, dtype=float).ravel()
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            return None
        counts, edges = np.histogram(finite, bins=bins)
        return cls(kind=kind, edges=tuple(map(float, edges)), counts=tuple(map(int, counts)))


@dataclass(frozen=True, kw_only=True)
class ClaimRecord:
    """One claim's row in a report: its declaration, its verdict (or status) and the numbers behind it.

    ``confidence`` is ``1 - family_alpha / family_size`` (the in-test Bonferroni level).  A claim that chose its
    unit on other seeds names that range in ``selected_on`` and the choice in ``selected`` (e.g.
    ``{"channel": 6}``).  A row whose declaration could not be read has verdict ``error`` and may lack its bound
    (``direction`` and ``threshold`` None).
    """

    id: str
    statement: str
    sites: tuple[str, ...]
    metric: str
    family: str
    seeds: str
    n: int
    direction: str | None
    threshold: float | None
    family_alpha: float
    family_size: int
    confidence: float
    verdict: str
    message: str
    test: str
    unit: str = "levels"
    """What ``n`` counts (the declaration's ``unit``): levels, pairs, episodes, latents, restarts, states, channels."""
    max_n: int | None = None
    """A sequential claim's declared most units; ``n`` is then the units it used before it stopped."""
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    method: str | None = None
    p_value: float | None = None
    """p-value of the claim's own pre-registered hypothesis (H0: the bound is not met), by bisection over the
    statistic's ``interval_at``; with a null baseline, the larger of that and the null's p.  Supported exactly
    when ``p_value <= family_alpha / family_size``."""
    p_adjusted: float | None = None
    """Bonferroni over the whole family, ``min(1, family_size * p_value)``: ``<= family_alpha`` exactly when the
    verdict is supported (the in-test rule)."""
    p_holm: float | None = None
    """Holm over the whole family (claims without a p-value count as 1), filled once all rows are in; shown beside
    ``p_adjusted``, never larger, never the verdict."""
    statistic_p_value: float | None = None
    """The p-value the statistic itself reported (e.g. a sign-flip test of no effect, or the null baseline's)."""
    statistic_hypothesis: str | None = None
    """What ``statistic_p_value`` tests, e.g. ``greater than 0`` or ``greater than the null baseline``."""
    null_quantile: float | None = None
    selected_on: str | None = None
    selected: Mapping[str, Any] = field(default_factory=dict)
    checksums: Mapping[str, str] = field(default_factory=dict)
    source_sha256: str | None = None
    """sha256 of the claim's source (the content of its test file), so reruns of the same claim can be found."""
    history: tuple[Mapping[str, Any], ...] = ()
    """Earlier runs in the same report folder of this claim id with the same ``source_sha256`` on the same models
    (``checksums``), oldest first: each ``{"run", "started", "sampling_seed", "verdict", "estimate"}``;
    ``len(history)`` is how many there were."""
    histogram: Histogram | None = None
    figures: tuple[Figure, ...] = ()

    def __post_init__(self) -> None:
        if self.verdict not in STATUSES:
            raise ClaimError(f"claim {self.id!r}: verdict {self.verdict!r} is none of {STATUSES}")
        if self.direction not in DIRECTIONS and not (self.direction is None and self.verdict == "error"):
            raise ClaimError(f"claim {self.id!r}: direction {self.direction!r} is none of {tuple(DIRECTIONS)}")

    @property
    def needed(self) -> str:
        """The pre-registered bound in words, e.g. ``lower bound > 0.1``; a dash when the declaration had none."""
        return "–" if self.direction is None else describe_bound(self.direction, self.threshold)

    @property
    def sample(self) -> str:
        """What n counted, e.g. ``256 pairs``, or ``157 of at most 512 episodes`` for a sequential claim."""
        return f"{self.n} {self.unit}" if self.max_n is None else f"{self.n} of at most {self.max_n} {self.unit}"

    @property
    def interval(self) -> str:
        """``estimate [low, high]``, or a dash without a result."""
        return "–" if self.estimate is None else f"{fmt(self.estimate)} [{fmt(self.ci_low)}, {fmt(self.ci_high)}]"

    @property
    def selection(self) -> str:
        """The selected units in words, e.g. ``channel=6``, or a dash when the claim selected nothing."""
        return describe_selection(self.selected)

    @classmethod
    def unreadable(cls, declaration: Mapping[str, Any], *, test: str, reason: str, family_alpha: float,
                   family_size: int, source_sha256: str | None = None) -> "ClaimRecord":
        """The error row of a claim whose declaration could not be read: what the marker's keywords give of it
        (its id, else the test's name), ``reason`` as the message."""
        def text(key: str, default: str = "–") -> str:
            value = declaration.get(key)
            return value if isinstance(value, str) and value else default

        bounds = [(k, v) for k, v in declaration.items() if k in BOUND_KEYWORDS and isinstance(v, (int, float))]
        direction, threshold = (BOUND_KEYWORDS[bounds[0][0]], float(bounds[0][1])) if len(bounds) == 1 else (None, None)
        sites = declaration.get("sites")
        n = declaration.get("n")
        return cls(
            id=text("id", test), statement=text("statement"), metric=text("metric"), seeds=text("seeds"),
            sites=(sites,) if isinstance(sites, str) else tuple(map(str, sites)) if isinstance(sites, (list, tuple))
            else (), family=text("family", FAMILIES[0]) if declaration.get("family") in FAMILIES else FAMILIES[0],
            n=n if isinstance(n, int) and not isinstance(n, bool) else 0, unit=text("unit", "levels"),
            direction=direction, threshold=threshold, family_alpha=family_alpha, family_size=family_size,
            confidence=1 - family_alpha / family_size, verdict="error", message=reason, test=test,
            source_sha256=source_sha256,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (these rows cross pytest-xdist workers as ``user_properties``)."""
        plain = {"sites": list(self.sites), "selected": dict(self.selected), "checksums": dict(self.checksums),
                 "history": [dict(h) for h in self.history]}
        return {**asdict(self), **plain}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClaimRecord":
        """Inverse of :meth:`to_dict`; a missing ``figures`` (as in ``claims.json``), ``selected_on`` or
        ``selected`` (as in runs saved before selection was recorded) reads as none."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ClaimError(f"claim record has unknown fields {sorted(unknown)}; known: {sorted(known)}")
        histogram = data.get("histogram")
        return cls(
            **{
                **data,
                "sites": tuple(data["sites"]),
                "histogram": None if histogram is None else Histogram(
                    kind=histogram["kind"], edges=tuple(histogram["edges"]), counts=tuple(histogram["counts"])
                ),
                "figures": tuple(Figure(**f) for f in data.get("figures", ())),
                "history": tuple(dict(h) for h in data.get("history", ())),
            }
        )  # fmt: skip


def adjust_p_values(records: Sequence[ClaimRecord]) -> tuple[ClaimRecord, ...]:
    """Fill ``p_holm`` across the run: Holm within each family over all its ``family_size`` claims, a claim
    without a p-value (errored, skipped, not run) counted as ``p = 1``.  ``p_adjusted`` (Bonferroni, the verdict's
    own rule) is already in each row."""
    from harness.stats import holm  # scipy: imported when needed, not at every pytest start

    adjusted = list(records)
    for family in FAMILIES:
        members = [i for i, r in enumerate(adjusted) if r.family == family and r.p_value is not None]
        if members:
            size = max(adjusted[i].family_size for i in members)
            padded = [adjusted[i].p_value for i in members] + [1.0] * max(0, size - len(members))
            for i, p in zip(members, holm(padded)):
                adjusted[i] = replace(adjusted[i], p_holm=float(p))
    return tuple(adjusted)
