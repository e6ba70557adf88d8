"""Report writers: a run as a terminal table, Markdown, CSV, JSON and a self-contained HTML page.

Nothing here knows about pytest: a :class:`~harness.claims.runs.RunReport` (rows from
:mod:`harness.claims.records` plus run metadata) goes in, text comes out, and :func:`write_report` puts
``claims.json``, ``claims.csv``, ``claims.md`` and ``index.html`` in one directory.  The HTML page opens with a
forest plot of every claim's interval against its bound (:mod:`harness.claims.charts`), then gives each claim a
section with its verdict, selected unit, pictures (inline PNGs, small ones scaled up) and histogram, and ends with
the run's metadata as a table.  ``claims.json`` holds the numbers and histograms but not the pictures, so it stays
small and diffable; :func:`harness.claims.runs.load_run` reads it back.  Text from claims (statements, captions,
messages) is escaped for HTML and for Markdown; paths inside the project are written relative to it.

    write_report(report, "reports/mine", root=".")  # claims.json, claims.csv, claims.md, index.html
"""

import base64
import csv
import html
import io
import json
import math
import os
import re
import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from harness.claims.charts import VERDICT_COLOURS, forest_svg, histogram_svg
from harness.claims.records import STATUSES, ClaimRecord, Figure, fmt
from harness.claims.runs import RunReport

__all__ = [
    "histogram_svg", "markdown_text", "relative_to_project", "render_csv", "render_html", "render_json",
    "render_markdown", "render_terminal", "write_report",
]  # fmt: skip

COLUMNS = ("claim", "verdict", "estimate [CI]", "n", "p", "p adj", "needed", "selected")


def _cells(r: ClaimRecord) -> tuple[str, ...]:
    return (r.id, r.verdict.upper(), r.interval, r.sample, fmt(r.p_value), fmt(r.p_adjusted), r.needed,
            r.selection)  # fmt: skip


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
    """A fixed-width table, each skipped claim's reason, and the comparison, as lines for the terminal."""
    rows = [COLUMNS, *map(_cells, report.claims)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    skipped = [r for r in report.claims if r.verdict == "skipped"]
    if skipped:
        lines += ["", "skipped:", *(f"  {r.id}: {r.message}" for r in skipped)]
    if report.comparison is not None:
        lines += ["", f"compared with {report.comparison.previous_run}:", *report.comparison.lines()]
    return lines


MARKDOWN_SPECIAL = re.compile(
    r"[\\`*|~]|\](?=[(\[:])|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])"  # anywhere
    r"|^#(?=[#\s]|$)|^[+-](?=\s|$)|^\d+(?=[.)](?:\s|$))"  # at the start: a heading or a list item
)
"""What Markdown (CommonMark, GitHub tables) would read as markup: backslashes, code, emphasis, links, table pipes,
strike-through, a ``]`` that would close a link, underscores at word edges, and a heading, list or numbered-list
mark at the start."""


def markdown_text(text: str) -> str:
    """Text from a claim as literal Markdown on one line: markup backslash-escaped, ``<`` and ``&`` as entities
    (no raw HTML reaches the page: a tag needs its ``<``), newlines as spaces: ``markdown_text("a | <b>")`` is
    ``a \\| &lt;b>``."""
    text = " ".join(str(text).splitlines()).replace("&", "&amp;").replace("<", "&lt;")
    text = "&gt;" + text[1:] if text.startswith(">") else text  # a quote mark; elsewhere ">" is plain text
    return MARKDOWN_SPECIAL.sub(lambda match: "\\" + match.group(0) if not match.group(0)[0].isdigit()
                                else match.group(0) + "\\", text)  # fmt: skip


def _code_span(text: str) -> str:
    """``text`` as one inline code span, fenced with more backticks than it contains in a row (CommonMark)."""
    text = " ".join(str(text).splitlines())
    fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return f"{fence} {text} {fence}"


def render_markdown(report: RunReport) -> str:
    """Run metadata, the summary table, the comparison and each claim's statement, message and picture captions,
    every piece of claim text escaped (:func:`markdown_text`)."""
    m = markdown_text
    out = [f"# Claims: {m(report.name)}", "", *(f"- {m(line)}" for line in _run_lines(report)), ""]
    out += [
        "| " + " | ".join((*COLUMNS, "family", "seeds")) + " |",
        "|" + "---|" * (len(COLUMNS) + 2),
        *("| " + " | ".join(m(c) for c in (*_cells(r), r.family, r.seeds)) + " |" for r in report.claims),
        "",
        "p adj: Holm across the run's confirmatory claims, Benjamini-Hochberg across its exploratory claims. "
        "Verdicts use the in-test Bonferroni level (confidence = 1 - alpha / family size).",
        "",
    ]
    if report.comparison is not None:
        out += [f"## Changes since {m(report.comparison.previous_run)}", ""]
        out += [f"- {m(line)}" for line in report.comparison.lines()] + [""]
    out += ["## Claims", ""]
    for r in report.claims:
        out += [f"### {m(r.id)}: {r.verdict}", "", m(r.statement), "", _code_span(r.message), ""]
        selection = "" if r.selected_on is None else f"; selected on {r.selected_on}: {r.selection}"
        facts = f"sites {', '.join(r.sites)}; {r.family}; seeds {r.seeds}{selection}"
        out += [f"{m(facts)}; test {_code_span(r.test)}", ""]
        if r.figures:
            out += ["pictures (in index.html): " + "; ".join(m(f.caption) for f in r.figures), ""]
    return "\n".join(out)


CSV_FIELDS = (
    "id", "verdict", "estimate", "ci_low", "ci_high", "confidence", "n", "max_n", "unit", "p_value", "p_adjusted", "p_holm",
    "statistic_p_value", "statistic_hypothesis", "null_quantile", "direction", "threshold", "family", "family_size",
    "family_alpha", "seeds", "selected_on", "selected", "sites", "metric", "method", "statement", "test", "message",
    "checksums", "source_sha256", "earlier_runs",
)  # fmt: skip


def render_csv(report: RunReport) -> str:
    """One row per claim; sites and checksums joined with ``;``, the selection as ``channel=6`` (empty if none)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in report.claims:
        row = {name: getattr(r, name) for name in CSV_FIELDS if name != "earlier_runs"}
        row["earlier_runs"] = len(r.history)
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
body{font:15px/1.5 system-ui,sans-serif;margin:2em auto;max-width:1120px;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{margin:.2em 0}.lead{color:#444;margin-top:0}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 9px;text-align:left;
vertical-align:top}th{background:#f4f4f4;font-weight:600}
.supported{background:#d5f5dd}.refuted{background:#f9d0cc}.inconclusive{background:#fcefc7}
.error{background:#e8d5f5}.skipped{background:#eee}
.badge{display:inline-block;border-radius:4px;padding:1px 8px;font-size:13px;font-weight:700;color:#fff;
vertical-align:middle}.unit{font-size:14px;font-weight:400;color:#333;margin-left:.6em}
section.claim{border-top:2px solid #ccc;margin-top:2em;padding-top:.6em}
.statement{font-size:16px}.numbers,.history{color:#333;margin:.4em 0}
.message{background:#f7f7f7;padding:6px 10px;border-radius:4px;font:13px/1.4 monospace;white-space:pre-wrap;
overflow-wrap:anywhere}
figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top;max-width:100%}
figure img{image-rendering:pixelated;border:1px solid #999;max-width:100%;height:auto}
figcaption{font-size:13px;color:#333;max-width:600px}.forest svg{max-width:100%;height:auto}
details{margin:.6em 0}summary{cursor:pointer;color:#444}code{overflow-wrap:anywhere}
"""
DISPLAY_MIN = 320
"""Pictures narrower than this many pixels are shown scaled up by a whole factor (a 64x64 frame at 384)."""


def _badge(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#555")
    return f'<span class="badge" style="background:{colour}">{html.escape(verdict.upper())}</span>'


def _value_html(value: Any) -> str:
    """A metadata or row value as readable HTML: mappings as ``key: value`` lines, lists joined, none as a dash."""
    e = html.escape
    if value is None or value == "" or value == [] or value == {}:
        return "–"
    if isinstance(value, float):
        return e(fmt(value))
    if isinstance(value, Mapping):
        return "<br>".join(f"<b>{e(str(k))}</b>: {_value_html(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, Mapping) for v in value):
            return "<br>".join(e(json.dumps(v, sort_keys=True)) for v in value)
        return e(", ".join(map(str, value)))
    return e(str(value))


def _figure_html(figure: Figure) -> str:
    e = html.escape
    header = base64.b64decode(figure.png_base64[:32])  # the signature and IHDR: width at bytes 16-19
    (width,) = struct.unpack(">I", header[16:20])
    shown = width * max(1, math.ceil(DISPLAY_MIN / width))
    return (
        f'<figure><img alt="{e(figure.caption)}" style="width:{shown}px" '
        f'src="data:image/png;base64,{figure.png_base64}"><figcaption>{e(figure.caption)}</figcaption></figure>'
    )


SHOWN_ELSEWHERE = {"id", "statement", "verdict", "message", "histogram", "figures", "selected", "estimate", "ci_low",
                   "ci_high", "direction", "threshold"}  # fmt: skip
"""Row fields the claim's section shows outside its table of facts (every other field goes in the table)."""


def _facts(r: ClaimRecord) -> dict[str, Any]:
    facts = {"needed": r.needed, "estimate [CI]": r.interval, "selected": r.selection}
    for f in fields(r):
        if f.name not in SHOWN_ELSEWHERE:
            facts[f.name.replace("_", " ")] = getattr(r, f.name)
    return facts


def _history_html(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """Earlier runs of the same claim (same source, same models), so that a rerun until supported shows (issue 19,
    item 8)."""
    if not history:
        return []
    e = html.escape
    columns = sorted({key for run in history for key in run}, key=lambda k: (k != "run", k))
    return [
        f'<p class="history"><b>{len(history)} earlier run{"s" * (len(history) > 1)} of this claim</b> (same '
        "source and models):</p><table>" + "".join(f"<th>{e(c.replace('_', ' '))}</th>" for c in columns),
        *("<tr>" + "".join(f"<td>{_value_html(run.get(c))}</td>" for c in columns) + "</tr>" for run in history),
        "</table>",
    ]


def _claim_html(r: ClaimRecord) -> list[str]:
    e = html.escape
    unit = ""
    if r.selected:
        chosen = f" (chosen on {r.selected_on})" if r.selected_on else ""
        unit = f'<span class="unit">selected: <b>{e(r.selection)}</b>{e(chosen)}</span>'
    numbers = [f"n = {r.sample}", f"needed: {r.needed}", f"p = {fmt(r.p_value)}",
               f"adjusted p = {fmt(r.p_adjusted)}"]  # fmt: skip
    return [
        f'<section class="claim" id="{e(r.id)}"><h2>{_badge(r.verdict)} {e(r.id)}{unit}</h2>',
        f'<p class="statement">{e(r.statement)}</p><div class="message">{e(r.message)}</div>',
        f'<p class="numbers">{e(" · ".join(numbers))}</p>',
        *_history_html(r.history),
        histogram_svg(r),
        *(_figure_html(f) for f in r.figures),
        "<details><summary>all fields</summary><table>",
        *(f"<tr><th>{e(k)}</th><td>{_value_html(v)}</td></tr>" for k, v in _facts(r).items()),
        "</table></details></section>",
    ]


def render_html(report: RunReport) -> str:
    """A self-contained page: the forest plot of every claim's interval, a summary table, the comparison, each
    claim's section (verdict, selected unit, statement, message, histogram, pictures, facts), then the run."""
    e = html.escape
    counts = Counter(r.verdict for r in report.claims)
    tally = ", ".join(f"{counts[v]} {v}" for v in STATUSES if counts[v]) or "no claims"
    out = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>Claims: {e(report.name)}</title>',
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Claims: {e(report.name)}</h1>",
        f'<p class="lead">{len(report.claims)} claims: {e(tally)}. Run details at the <a href="#run">end</a>.</p>',
        f'<figure class="forest">{forest_svg(report.claims)}</figure>',
        "<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in COLUMNS) + "</tr>",
    ]
    for r in report.claims:
        first, verdict, *rest = _cells(r)
        cells = f'<td><a href="#{e(r.id)}">{e(first)}</a></td><td>{_badge(r.verdict)}</td>'
        out.append(f"<tr>{cells}" + "".join(f"<td>{e(c)}</td>" for c in rest) + "</tr>")
    out.append("</table>")
    if report.comparison is not None:
        out.append(f"<h2>Changes since {e(report.comparison.previous_run)}</h2><ul>")
        out += [f"<li>{e(line)}</li>" for line in report.comparison.lines()]
        out.append("</ul>")
    for r in report.claims:
        out += _claim_html(r)
    out += ['<section id="run"><h2>Run</h2><table>']
    out += [f"<tr><th>{e(k.replace('_', ' '))}</th><td>{_value_html(v)}</td></tr>" for k, v in report.run.items()]
    out.append("</table></section></body></html>")
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


def relative_to_project(value: Any, root: str | os.PathLike) -> Any:
    """``value`` (text, or mappings and lists of it) with every absolute path inside ``root`` written relative to
    it: ``relative_to_project("/repo/claims/t.py:3: error", "/repo")`` is ``"claims/t.py:3: error"``."""
    if isinstance(value, str):
        for prefix in {str(Path(root).absolute()), str(Path(root).resolve())}:
            value = value.replace(prefix.rstrip(os.sep) + os.sep, "")
        return value
    if isinstance(value, Mapping):
        return {k: relative_to_project(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(relative_to_project(v, root) for v in value)
    return value


def _project_root(directory: Path) -> Path | None:
    """The nearest folder at or above ``directory`` with a ``pyproject.toml`` or ``.git`` (None: none)."""
    marks = ("pyproject.toml", ".git")
    return next((p for p in (directory, *directory.parents) if any((p / m).exists() for m in marks)), None)


def write_report(
    report: RunReport, directory: str | os.PathLike, *, root: str | os.PathLike | None = None
) -> tuple[Path, ...]:
    """Write ``claims.json``, ``claims.csv``, ``claims.md`` and ``index.html`` into ``directory``, with paths inside
    the project ``root`` (default: the nearest folder above ``directory`` holding ``pyproject.toml`` or ``.git``)
    written relative to it in messages, captions and run metadata."""
    directory = Path(directory).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    root = _project_root(directory) if root is None else Path(root)
    if root is not None:
        claims = tuple(
            replace(r, message=relative_to_project(r.message, root), figures=tuple(
                replace(f, caption=relative_to_project(f.caption, root)) for f in r.figures))
            for r in report.claims
        )  # fmt: skip
        report = replace(report, run=relative_to_project(dict(report.run), root), claims=claims)
    for name, render in WRITERS.items():
        _write_atomically(directory / name, render(report))
    return tuple(directory / name for name in WRITERS)
