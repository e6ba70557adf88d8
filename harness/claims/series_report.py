"""A checkpoint series as one report: claims x checkpoints (verdict, estimate and interval per cell) as Markdown,
CSV and a self-contained HTML page, each claim's estimate over the series as SVG (:func:`~harness.claims.charts.
series_svg`), and when each claim first becomes supported.

The series folder (written by :mod:`harness.claims.series`) holds ``series.json`` and one run per checkpoint under
``runs/<label>/``; :func:`write_series_report` reads them back (:func:`~harness.claims.runs.load_series`, which
refuses runs with different claims) and writes ``series.md``, ``series.csv``, ``series.svg`` and ``index.html``.

    write_series_report("reports/series-customcnn_bc")
"""

import csv
import html
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.claims.charts import series_svg
from harness.claims.records import ClaimRecord
from harness.claims.report import STYLE, markdown_text
from harness.claims.runs import RunReport, load_series
from harness.claims.series_checkpoints import ONLY_REASON

__all__ = [
    "claim_rows", "first_supported", "render_series_csv", "render_series_html", "render_series_markdown",
    "skipped_everywhere", "write_series_report",
]

Runs = Sequence[tuple[str, RunReport]]


def claim_rows(runs: Runs) -> list[tuple[str, list[ClaimRecord]]]:
    """``(claim id, its row at each checkpoint)`` in claim-id order (the runs hold the same claims), without the
    claims skipped at every checkpoint (:func:`skipped_everywhere`)."""
    by_label = [{r.id: r for r in report.claims} for _, report in runs]
    left_out = set(skipped_everywhere(runs))
    return [(i, [rows[i] for rows in by_label]) for i in sorted(by_label[0]) if i not in left_out]


def skipped_everywhere(runs: Runs) -> dict[str, str]:
    """The claims skipped at every checkpoint, with the last checkpoint's reason: not run because the series ran
    other files (``--only``), or not applying to any of the policies (a claim about another architecture)."""
    skipped = [{r.id: r.message for r in report.claims if r.verdict == "skipped"} for _, report in runs]
    common = set.intersection(*(set(s) for s in skipped)) if skipped else set()
    return {claim_id: skipped[-1][claim_id] for claim_id in sorted(common)}


def _left_out_lines(runs: Runs) -> list[str]:
    """What the table leaves out, in words: claims outside ``--only``, then those skipped for another reason."""
    skipped = skipped_everywhere(runs)
    outside = [i for i, reason in skipped.items() if ONLY_REASON in reason]
    other = [f"{i} ({reason.removeprefix('Skipped: ')})" for i, reason in skipped.items() if i not in outside]
    return ([f"Collected for the family sizes but not run (outside --only): {', '.join(outside)}."] * bool(outside)
            + [f"Skipped at every checkpoint: {'; '.join(other)}."] * bool(other))  # fmt: skip


def first_supported(labels: Sequence[str], rows: Sequence[ClaimRecord]) -> tuple[str | None, str | None]:
    """The first checkpoint where the claim is supported, and the first from which it stays supported to the end
    of the series (None: never).  ``first_supported(["a", "b", "c"], [refuted, supported, supported])`` is
    ``("b", "b")``."""
    supported = [r.verdict == "supported" for r in rows]
    first = next((label for label, s in zip(labels, supported) if s), None)
    stays = None
    for i in range(len(rows), 0, -1):
        if not supported[i - 1]:
            break
        stays = labels[i - 1]
    return first, stays


def _cell(r: ClaimRecord) -> str:
    return r.verdict if r.estimate is None else f"{r.verdict} {r.interval}"


def _checkpoint_lines(meta: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One line per checkpoint: label, policy file, its sha256 (16 digits), SAEs used, seconds, pytest's exit."""
    lines = []
    for c in meta["checkpoints"]:
        saes = ", ".join(f"{site}={path}" for site, path in (c.get("saes_used") or {}).items()) or "–"
        seconds = "–" if c.get("seconds") is None else f"{c['seconds']:.0f}"
        lines.append((c["label"], c.get("policy", "–"), (c.get("policy_sha256") or "–")[:16], saes, seconds,
                      str(c.get("exit_status", "–"))))  # fmt: skip
    return lines


CHECKPOINT_COLUMNS = ("checkpoint", "policy", "sha256", "SAEs used", "seconds", "pytest exit")
SERIES_KEYS = ("series", "backend", "claims", "only", "pytest_args", "started", "resumed", "kept_from_before",
               "finished")


def render_series_markdown(meta: Mapping[str, Any], runs: Runs) -> str:
    """The claims x checkpoints table with when each claim is first supported, then the checkpoints."""
    m = markdown_text
    labels = [label for label, _ in runs]
    out = [f"# Checkpoint series: {m(meta.get('series', ''))}", ""]
    for key in SERIES_KEYS:
        value = meta.get(key)
        if value not in (None, "", []):
            out.append(f"- {key.replace('_', ' ')}: {m(' '.join(value) if isinstance(value, list) else value)}")
    out += ["", "Each cell: verdict, estimate [interval at the claim's confidence] (the claim's run at that checkpoint "
            "is under `runs/<checkpoint>/`).", ""]  # fmt: skip
    out += [
        "| claim | needed | " + " | ".join(map(m, labels)) + " | first supported | supported from |",
        "|" + "---|" * (len(labels) + 4),
    ]
    for claim_id, rows in claim_rows(runs):
        first, stays = first_supported(labels, rows)
        cells = [m(claim_id), m(rows[-1].needed), *(m(_cell(r)) for r in rows), m(first or "never"),
                 m(stays or "–")]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    out += [line for text in _left_out_lines(runs) for line in ("", m(text))]
    out += ["", "## Checkpoints", "", "| " + " | ".join(CHECKPOINT_COLUMNS) + " |", "|" + "---|" * 6]
    out += ["| " + " | ".join(m(x) for x in line) + " |" for line in _checkpoint_lines(meta)]
    return "\n".join(out) + "\n"


CSV_FIELDS = ("checkpoint", "position", "claim", "verdict", "estimate", "ci_low", "ci_high", "confidence", "n",
              "unit", "direction", "threshold", "p_value", "selected", "family", "method")  # fmt: skip


def render_series_csv(runs: Runs) -> str:
    """Long form: one line per checkpoint and claim, checkpoints in series order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for position, (label, report) in enumerate(runs, start=1):
        for r in sorted(report.claims, key=lambda r: r.id):
            row = {f: getattr(r, f) for f in CSV_FIELDS if hasattr(r, f) and f != "selected"}
            row.update(checkpoint=label, position=position, claim=r.id, selected="" if not r.selected else r.selection)
            writer.writerow(row)
    return buffer.getvalue()


def render_series_html(meta: Mapping[str, Any], runs: Runs) -> str:
    """A self-contained page: the series plot, the claims x checkpoints table (cells coloured by verdict, each
    checkpoint linked to its run's page), the checkpoints and the series' metadata."""
    e = html.escape
    labels = [label for label, _ in runs]
    table = claim_rows(runs)
    out = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>Series: {e(str(meta.get("series", "")))}</title>',
        f"<style>{STYLE}.cell{{font-size:13px;white-space:nowrap}}</style></head><body>",
        f"<h1>Checkpoint series: {e(str(meta.get('series', '')))}</h1>",
        f'<p class="lead">{len(table)} claims over {len(labels)} checkpoints; each cell gives the verdict and the '
        "estimate [interval at the claim's confidence].</p>",
        f'<figure class="forest">{series_svg(labels, [rows for _, rows in table])}</figure>',
        "<table><tr><th>claim</th><th>needed</th>"
        + "".join(f'<th><a href="runs/{e(label)}/index.html">{e(label)}</a></th>' for label in labels)
        + "<th>first supported</th><th>supported from</th></tr>",
    ]
    for claim_id, rows in table:
        first, stays = first_supported(labels, rows)
        cells = "".join(f'<td class="cell {e(r.verdict)}" title="{e(r.message)}">{e(_cell(r))}</td>' for r in rows)
        out.append(f"<tr><td>{e(claim_id)}</td><td>{e(rows[-1].needed)}</td>{cells}<td>{e(first or 'never')}</td>"
                   f"<td>{e(stays or '–')}</td></tr>")  # fmt: skip
    out.append("</table>")
    out += [f"<p>{e(text)}</p>" for text in _left_out_lines(runs)]
    out += ["<h2>Checkpoints</h2><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in CHECKPOINT_COLUMNS)]
    out += ["<tr>" + "".join(f"<td>{e(x)}</td>" for x in line) + "</tr>" for line in _checkpoint_lines(meta)]
    out.append("</table><h2>Series</h2><table>")
    for key in SERIES_KEYS:
        value = meta.get(key)
        shown = " ".join(map(str, value)) if isinstance(value, list) else "–" if value in (None, "") else str(value)
        out.append(f"<tr><th>{e(key.replace('_', ' '))}</th><td>{e(shown)}</td></tr>")
    out.append("</table></body></html>")
    return "\n".join(out)


def write_series_report(folder: str | os.PathLike) -> tuple[Path, ...]:
    """Write ``series.md``, ``series.csv``, ``series.svg`` and ``index.html`` into a series folder from its
    ``series.json`` and runs; returns their paths."""
    folder = Path(folder)
    meta, runs = load_series(folder)
    labels = [label for label, _ in runs]
    texts = {
        "series.md": render_series_markdown(meta, runs),
        "series.csv": render_series_csv(runs),
        "series.svg": series_svg(labels, [rows for _, rows in claim_rows(runs)]),
        "index.html": render_series_html(meta, runs),
    }
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    return tuple(folder / name for name in texts)
