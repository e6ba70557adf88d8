"""Claim reports: rows, comparison with a saved run, and writers (terminal, Markdown, CSV, JSON, HTML).

Nothing here knows about pytest: a :class:`RunReport` is a list of :class:`ClaimRecord` rows plus run metadata
(a JSON-ready mapping), and :func:`write_report` turns it into ``claims.md``, ``claims.csv``, ``claims.json`` and
``index.html`` in one directory.  The HTML page is self-contained: pictures are inline PNGs (encoded by
:func:`encode_png`, zlib and struct only) and distributions are inline SVG histograms.  ``claims.json`` holds the
numbers and histograms but not the pictures, so it stays small and diffable; :func:`load_run` reads it back.
"""

import base64
import csv
import html
import io
import json
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ClaimError

__all__ = [
    "Change",
    "ClaimRecord",
    "Comparison",
    "Figure",
    "Histogram",
    "RunReport",
    "compare_runs",
    "encode_png",
    "histogram_svg",
    "load_run",
    "render_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "render_terminal",
    "write_report",
]

VERDICTS = ("supported", "refuted", "inconclusive")
"""The three verdicts of statistics.md item 11."""
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
    Holm (confirmatory) or Benjamini-Hochberg (exploratory) p-value, filled in once all rows are in.
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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (these rows cross pytest-xdist workers as ``user_properties``)."""
        return {**asdict(self), "sites": list(self.sites), "checksums": dict(self.checksums)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClaimRecord":
        """Inverse of :meth:`to_dict`; a missing ``figures`` (as in ``claims.json``) reads as none."""
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
        )


@dataclass(frozen=True, kw_only=True)
class Change:
    """How one claim differs from the saved run (only claims that differ get one); one side may be missing."""

    previous: ClaimRecord | None
    current: ClaimRecord | None

    @property
    def id(self) -> str:
        return (self.current or self.previous).id

    @property
    def verdict_changed(self) -> bool:
        return self.previous is None or self.current is None or self.previous.verdict != self.current.verdict

    @property
    def moved(self) -> bool:
        """The estimate left the previous run's interval."""
        p, c = self.previous, self.current
        if p is None or c is None or c.estimate is None or p.ci_low is None or p.ci_high is None:
            return False
        return not p.ci_low <= c.estimate <= p.ci_high

    @property
    def bound_changed(self) -> bool:
        p, c = self.previous, self.current
        return p is not None and c is not None and (p.direction, p.threshold) != (c.direction, c.threshold)

    def describe(self) -> str:
        """One line, e.g. ``H1: supported -> refuted; estimate 0.04 outside previous [0.12, 0.2]``."""
        p, c = self.previous, self.current
        if p is None:
            return f"{self.id}: new claim ({c.verdict})"
        if c is None:
            return f"{self.id}: not in this run (was {p.verdict})"
        parts = [f"{p.verdict} -> {c.verdict}" if self.verdict_changed else f"still {c.verdict}"]
        if self.moved:
            parts.append(f"estimate {fmt(c.estimate)} outside previous [{fmt(p.ci_low)}, {fmt(p.ci_high)}]")
        if self.bound_changed:
            parts.append(f"bound changed from '{p.needed}' to '{c.needed}': a changed threshold is a new claim")
        return f"{self.id}: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Summary for ``claims.json``."""
        p, c = self.previous, self.current
        return {
            "id": self.id,
            "previous_verdict": None if p is None else p.verdict,
            "verdict": None if c is None else c.verdict,
            "previous_estimate": None if p is None else p.estimate,
            "previous_ci": None if p is None else [p.ci_low, p.ci_high],
            "estimate": None if c is None else c.estimate,
            "verdict_changed": self.verdict_changed,
            "moved_outside_previous_interval": self.moved,
            "bound_changed": self.bound_changed,
            "summary": self.describe(),
        }


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """What changed since a saved run (named ``previous_run``)."""

    previous_run: str
    changes: tuple[Change, ...]

    def lines(self) -> list[str]:
        return [c.describe() for c in self.changes] or ["no verdict changed and no estimate left its interval"]

    def to_dict(self) -> dict[str, Any]:
        return {"previous_run": self.previous_run, "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True, kw_only=True)
class RunReport:
    """Everything the writers need: run metadata (JSON-ready), the rows, and an optional comparison."""

    run: Mapping[str, Any]
    claims: tuple[ClaimRecord, ...]
    comparison: Comparison | None = None

    @property
    def name(self) -> str:
        return str(self.run.get("run", "run"))


def compare_runs(previous: RunReport, current: Sequence[ClaimRecord]) -> Comparison:
    """Claims whose verdict or bound changed, whose estimate left the previous interval, or that came or went."""
    before = {r.id: r for r in previous.claims}
    now = {r.id: r for r in current}
    candidates = [Change(previous=before.get(i), current=now.get(i)) for i in dict.fromkeys([*now, *before])]
    changes = tuple(c for c in candidates if c.verdict_changed or c.moved or c.bound_changed)
    return Comparison(previous_run=previous.name, changes=changes)


def load_run(path: str | os.PathLike) -> RunReport:
    """Read a saved run from its directory or its ``claims.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / "claims.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunReport(run=data["run"], claims=tuple(ClaimRecord.from_dict(r) for r in data["claims"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClaimError(f"cannot read a claims run from {path}: {exc}") from exc


# --- PNG and SVG -------------------------------------------------------------------------------------------


def encode_png(image: np.ndarray) -> bytes:
    """Encode an ``(H, W, 3)`` uint8 RGB array as an 8-bit truecolour PNG (filter 0, zlib level 9)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ClaimError(
            f"a picture must be a non-empty (H, W, 3) uint8 RGB array, got {image.dtype} {image.shape}; "
            "convert floats with (x * 255).round().astype(np.uint8)"
        )
    height, width, _ = image.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, width * 3)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(np.ascontiguousarray(rows).tobytes(), 9))
        + chunk(b"IEND", b"")
    )


def histogram_svg(record: ClaimRecord, *, width: int = 420, height: int = 150) -> str:
    """The record's distribution as an inline SVG, with the observed estimate and the threshold(s) marked."""
    hist = record.histogram
    if hist is None:
        return ""
    thresholds = [-record.threshold, record.threshold] if record.direction == "equivalence" else [record.threshold]
    marks = [x for x in (record.estimate, *thresholds) if x is not None]
    lo, hi = min(hist.edges[0], *marks), max(hist.edges[-1], *marks)
    pad = 0.05 * (hi - lo) or 0.5
    lo, hi = lo - pad, hi + pad
    top, bottom = 22, height - 20
    tallest = max(hist.counts) or 1

    def x(v: float) -> float:
        return round((v - lo) / (hi - lo) * width, 2)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">',
        f"<title>{html.escape(hist.kind)} distribution of {html.escape(record.metric)}</title>",
    ]
    for left, right, count in zip(hist.edges, hist.edges[1:], hist.counts):
        h = round((bottom - top) * count / tallest, 2)
        parts.append(
            f'<rect x="{x(left)}" y="{bottom - h}" width="{max(round(x(right) - x(left) - 0.5, 2), 0.5)}" height="{h}" '
            f'fill="#9db4cc"><title>[{fmt(left)}, {fmt(right)}): {count}</title></rect>'
        )
    parts.append(f'<line x1="0" y1="{bottom}" x2="{width}" y2="{bottom}" stroke="#555"/>')
    for t in thresholds:
        parts.append(
            f'<line x1="{x(t)}" y1="{top - 6}" x2="{x(t)}" y2="{bottom}" stroke="#c0392b" '
            f'stroke-dasharray="4 3" stroke-width="1.5"><title>threshold {fmt(t)}</title></line>'
        )
    if record.estimate is not None:
        parts.append(
            f'<line x1="{x(record.estimate)}" y1="{top - 6}" x2="{x(record.estimate)}" y2="{bottom}" '
            f'stroke="#111" stroke-width="2"><title>observed {fmt(record.estimate)}</title></line>'
        )
    label = f"{hist.kind} ({sum(hist.counts)} draws) — observed: solid, threshold: dashed"
    parts += [
        f'<text x="4" y="12" font-size="11">{html.escape(label)}</text>',
        f'<text x="2" y="{height - 5}" font-size="10">{fmt(lo)}</text>',
        f'<text x="{width - 2}" y="{height - 5}" font-size="10" text-anchor="end">{fmt(hi)}</text>',
        "</svg>",
    ]
    return "".join(parts)


# --- renderers ---------------------------------------------------------------------------------------------

COLUMNS = ("claim", "verdict", "estimate [CI]", "n", "p", "p adj", "needed")


def _cells(r: ClaimRecord) -> tuple[str, ...]:
    return (r.id, r.verdict.upper(), r.interval, str(r.n), fmt(r.p_value), fmt(r.p_adjusted), r.needed)


def _run_lines(report: RunReport) -> list[str]:
    """Run metadata as ``key: value`` lines (mappings and lists flattened one level)."""
    lines = []
    for key, value in report.run.items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        lines.append(f"{key}: {'–' if value in (None, '') else value}")
    return lines


def render_terminal(report: RunReport) -> list[str]:
    """A fixed-width table plus the comparison, as lines for the terminal."""
    rows = [COLUMNS, *map(_cells, report.claims)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if report.comparison is not None:
        lines += ["", f"compared with {report.comparison.previous_run}:", *report.comparison.lines()]
    return lines


def render_markdown(report: RunReport) -> str:
    """Run metadata, the summary table, the comparison and each claim's statement and message."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = [f"# Claims: {report.name}", "", *(f"- {cell(line)}" for line in _run_lines(report)), ""]
    out += [
        "| " + " | ".join((*COLUMNS, "family", "seeds")) + " |",
        "|" + "---|" * (len(COLUMNS) + 2),
        *(
            "| " + " | ".join(cell(c) for c in (*_cells(r), r.family, r.seeds)) + " |"
            for r in report.claims
        ),
        "",
        "p adj: Holm across the run's confirmatory claims, Benjamini-Hochberg across its exploratory claims. "
        "Verdicts use the in-test Bonferroni level (confidence = 1 - alpha / family size).",
        "",
    ]
    if report.comparison is not None:
        out += [f"## Changes since {report.comparison.previous_run}", ""]
        out += [f"- {cell(line)}" for line in report.comparison.lines()] + [""]
    out += ["## Claims", ""]
    for r in report.claims:
        out += [f"### {r.id}: {r.verdict}", "", r.statement, "", f"`{r.message}`", ""]
        out += [f"sites {', '.join(r.sites)}; {r.family}; seeds {r.seeds}; test `{r.test}`", ""]
    return "\n".join(out)


CSV_FIELDS = (
    "id", "verdict", "estimate", "ci_low", "ci_high", "confidence", "n", "p_value", "p_adjusted", "null_quantile",
    "direction", "threshold", "family", "family_size", "family_alpha", "seeds", "sites", "metric", "method",
    "statement", "test", "message", "checksums",
)  # fmt: skip


def render_csv(report: RunReport) -> str:
    """One row per claim; sites and checksums joined with ``;``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in report.claims:
        row = {name: getattr(r, name) for name in CSV_FIELDS}
        row["sites"] = ";".join(r.sites)
        row["checksums"] = ";".join(f"{k}={v}" for k, v in r.checksums.items())
        writer.writerow(row)
    return buffer.getvalue()


def render_json(report: RunReport) -> str:
    """Run metadata, one record per claim (pictures left out) and the comparison."""
    claims = [{k: v for k, v in r.to_dict().items() if k != "figures"} for r in report.claims]
    comparison = None if report.comparison is None else report.comparison.to_dict()
    return json.dumps({"run": report.run, "claims": claims, "comparison": comparison}, indent=1, allow_nan=False)


STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
.supported{background:#d5f5dd}.refuted{background:#f9d0cc}.inconclusive{background:#fcefc7}
.error{background:#e8d5f5}.skipped{background:#eee}section{border-top:1px solid #ccc;margin-top:1.5em}
code{white-space:pre-wrap}figure{display:inline-block;margin:4px 12px 4px 0;vertical-align:top}
figure img{width:192px;image-rendering:pixelated;border:1px solid #999}figcaption{font-size:12px;max-width:192px}
"""


def render_html(report: RunReport) -> str:
    """A self-contained page: metadata, summary table, comparison, then each claim with histogram and pictures."""
    e = html.escape
    out = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>Claims: {e(report.name)}</title>',
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Claims: {e(report.name)}</h1>",
        "<ul>" + "".join(f"<li>{e(line)}</li>" for line in _run_lines(report)) + "</ul>",
        "<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in COLUMNS) + "</tr>",
    ]
    for r in report.claims:
        first, *rest = _cells(r)
        cells = f'<td><a href="#{e(r.id)}">{e(first)}</a></td>' + "".join(f"<td>{e(c)}</td>" for c in rest)
        out.append(f'<tr class="{r.verdict}">{cells}</tr>')
    out.append("</table>")
    if report.comparison is not None:
        out.append(f"<h2>Changes since {e(report.comparison.previous_run)}</h2><ul>")
        out += [f"<li>{e(line)}</li>" for line in report.comparison.lines()]
        out.append("</ul>")
    for r in report.claims:
        facts = {
            "sites": ", ".join(r.sites), "metric": r.metric, "needed": r.needed, "family": r.family,
            "seeds": r.seeds, "n": r.n, "method": r.method or "–", "confidence": fmt(r.confidence),
            "p": fmt(r.p_value), "p adjusted": fmt(r.p_adjusted), "null quantile": fmt(r.null_quantile),
            "test": r.test, "checksums": ", ".join(f"{k}={v}" for k, v in r.checksums.items()) or "–",
        }  # fmt: skip
        out += [
            f'<section id="{e(r.id)}"><h2 class="{r.verdict}">{e(r.id)}: {e(r.verdict)}</h2>',
            f"<p>{e(r.statement)}</p><p><code>{e(r.message)}</code></p>",
            "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in facts.items()),
            "</table>",
            histogram_svg(r),
            *(
                f'<figure><img alt="{e(f.caption)}" src="data:image/png;base64,{f.png_base64}">'
                f"<figcaption>{e(f.caption)}</figcaption></figure>"
                for f in r.figures
            ),
            "</section>",
        ]
    out.append("</body></html>")
    return "\n".join(out)


def _write_atomically(path: Path, text: str) -> None:
    """Write a sibling temporary file, then rename it: an interrupted write never leaves half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


WRITERS = {
    "claims.json": render_json, "claims.csv": render_csv, "claims.md": render_markdown, "index.html": render_html
}  # fmt: skip
"""File name -> renderer; JSON first, so the numbers land even if a later file cannot be written."""


def write_report(report: RunReport, directory: str | os.PathLike) -> tuple[Path, ...]:
    """Write ``claims.json``, ``claims.csv``, ``claims.md`` and ``index.html`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, render in WRITERS.items():
        _write_atomically(directory / name, render(report))
    return tuple(directory / name for name in WRITERS)
