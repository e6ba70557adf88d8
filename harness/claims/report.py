"""Report writers: a run as a terminal table, Markdown, CSV, JSON and a self-contained HTML page.

Nothing here knows about pytest: a :class:`~harness.claims.runs.RunReport` (rows from
:mod:`harness.claims.records` plus run metadata) goes in, text comes out, and :func:`write_report` puts
``claims.json``, ``claims.csv``, ``claims.md`` and ``index.html`` in one directory.  The HTML page carries its
pictures as inline PNGs and its distributions as inline SVG histograms.  ``claims.json`` holds the numbers and
histograms but not the pictures, so it stays small and diffable; :func:`harness.claims.runs.load_run` reads it back.
"""

import csv
import html
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path

from harness.claims.records import ClaimRecord, fmt
from harness.claims.runs import RunReport

__all__ = [
    "histogram_svg", "render_csv", "render_html", "render_json", "render_markdown", "render_terminal", "write_report"
]  # fmt: skip


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

COLUMNS = ("claim", "verdict", "estimate [CI]", "n", "p", "p adj", "needed", "selected")


def _cells(r: ClaimRecord) -> tuple[str, ...]:
    return (r.id, r.verdict.upper(), r.interval, str(r.n), fmt(r.p_value), fmt(r.p_adjusted), r.needed, r.selection)


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
        selection = "" if r.selected_on is None else f"; selected on {r.selected_on}: {r.selection}"
        out += [f"sites {', '.join(r.sites)}; {r.family}; seeds {r.seeds}{selection}; test `{r.test}`", ""]
    return "\n".join(out)


CSV_FIELDS = (
    "id", "verdict", "estimate", "ci_low", "ci_high", "confidence", "n", "p_value", "p_adjusted", "null_quantile",
    "direction", "threshold", "family", "family_size", "family_alpha", "seeds", "selected_on", "selected", "sites",
    "metric", "method", "statement", "test", "message", "checksums",
)  # fmt: skip


def render_csv(report: RunReport) -> str:
    """One row per claim; sites and checksums joined with ``;``, the selection as ``channel=6`` (empty if none)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in report.claims:
        row = {name: getattr(r, name) for name in CSV_FIELDS}
        row["sites"] = ";".join(r.sites)
        row["selected"] = "" if not r.selected else r.selection
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
            "seeds": r.seeds, "selected on": r.selected_on or "–", "selected": r.selection, "n": r.n,
            "method": r.method or "–", "confidence": fmt(r.confidence),
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
