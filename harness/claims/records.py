"""A claim's report row and what it holds: verdicts, bounds in words, the histogram and pictures of its evidence.

Both the claim (which fills a row) and the writers and saved runs (which read rows) import these types; nothing
here knows about pytest or about writing files.
"""

import base64
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from harness.claims.png import encode_png
from harness.errors import ClaimError

__all__ = [
    "DIRECTIONS", "STATUSES", "VERDICTS", "ClaimRecord", "Figure", "Histogram", "describe_bound",
    "describe_selection", "fmt",
]  # fmt: skip

VERDICTS = ("supported", "refuted", "inconclusive")
"""The three verdicts (docs/statistics.md, item 11)."""
STATUSES = (*VERDICTS, "error", "skipped")
"""What a report row can say: a verdict, or why the claim has none (its test errored or was skipped)."""
DIRECTIONS = {"lower": "lower bound > {}", "upper": "upper bound < {}", "equivalence": "interval within ±{}"}
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

    ``confidence`` is ``1 - family_alpha / family_size`` (the in-test Bonferroni level); ``p_adjusted`` is the run-wide
    Holm (confirmatory) or Benjamini-Hochberg (exploratory) p-value, filled in once all rows are in.  A claim that
    chose its unit on other seeds names that range in ``selected_on`` and the choice in ``selected``
    (e.g. ``{"channel": 6}``).
    """

    id: str
    statement: str
    sites: tuple[str, ...]
    metric: str
    family: str
    seeds: str
    n: int
    direction: str
    threshold: float
    family_alpha: float
    family_size: int
    confidence: float
    verdict: str
    message: str
    test: str
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    method: str | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    null_quantile: float | None = None
    selected_on: str | None = None
    selected: Mapping[str, Any] = field(default_factory=dict)
    checksums: Mapping[str, str] = field(default_factory=dict)
    histogram: Histogram | None = None
    figures: tuple[Figure, ...] = ()

    def __post_init__(self) -> None:
        if self.verdict not in STATUSES:
            raise ClaimError(f"claim {self.id!r}: verdict {self.verdict!r} is none of {STATUSES}")
        if self.direction not in DIRECTIONS:
            raise ClaimError(f"claim {self.id!r}: direction {self.direction!r} is none of {tuple(DIRECTIONS)}")

    @property
    def needed(self) -> str:
        """The pre-registered bound in words, e.g. ``lower bound > 0.1``."""
        return describe_bound(self.direction, self.threshold)

    @property
    def interval(self) -> str:
        """``estimate [low, high]``, or a dash without a result."""
        return "–" if self.estimate is None else f"{fmt(self.estimate)} [{fmt(self.ci_low)}, {fmt(self.ci_high)}]"

    @property
    def selection(self) -> str:
        """The selected units in words, e.g. ``channel=6``, or a dash when the claim selected nothing."""
        return describe_selection(self.selected)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (these rows cross pytest-xdist workers as ``user_properties``)."""
        plain = {"sites": list(self.sites), "selected": dict(self.selected), "checksums": dict(self.checksums)}
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
            }
        )  # fmt: skip
