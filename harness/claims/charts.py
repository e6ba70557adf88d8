"""The report's charts as inline SVG: the forest plot of every claim's interval against its pre-registered bound
(the page opens with it) and each claim's histogram of its bootstrap or null distribution.

A claim's interval and bound are on the claim's own scale (a success rate near 0.9, a drop in probability near
0.05), so each row has its own axis: the interval as a bar and the estimate as a dot in the colour of the verdict,
the bound as a dashed line, and the side of the bound that supports the claim shaded.  A row without an interval
(an error, a skipped claim) still gets its mark, a hollow square with the reason in its tooltip, so the plot has
exactly one mark (``<g class="mark">``) per claim.  Drawn with plain strings: no script, no library, no network.

    svg = forest_svg(report.claims)  # paste into a page; one <g class="mark" data-claim=ID> per claim
    svg = histogram_svg(report.claims[0])  # "" when the claim kept no distribution
    svg = series_svg(["stage1", "stage2"], [[row_at_1, row_at_2], ...])  # each claim over a checkpoint series
"""

import html
from collections.abc import Sequence

from harness.claims.records import ClaimRecord, fmt
from harness.errors import ClaimError

__all__ = ["VERDICT_COLOURS", "forest_svg", "histogram_svg", "series_svg"]

VERDICT_COLOURS = {
    "supported": "#1e8449", "refuted": "#c0392b", "inconclusive": "#d68910", "error": "#7d3c98", "skipped": "#7f8c8d"
}  # fmt: skip
"""Mark colour by verdict (or status); the page's verdict badges use the same colours."""

LABEL_WIDTH, PANEL_WIDTH, TEXT_WIDTH, ROW_HEIGHT, HEADER = 230, 400, 440, 30, 34


def _thresholds(r: ClaimRecord) -> list[float]:
    """The bound's line(s): two for an equivalence margin, none for a row whose declaration could not be read."""
    if r.threshold is None:
        return []
    return [-r.threshold, r.threshold] if r.direction == "equivalence" else [r.threshold]


def _supporting_side(r: ClaimRecord, x, lo: float, hi: float) -> tuple[float, float]:
    """The pixel span where an interval must lie to support the claim (clipped to the row's axis)."""
    t = r.threshold
    low, high = {"lower": (t, hi), "upper": (lo, t), "equivalence": (-t, t)}[r.direction]
    return x(max(low, lo)), x(min(high, hi))


def _row(r: ClaimRecord, top: float) -> list[str]:
    e = html.escape
    mid = top + ROW_HEIGHT / 2
    colour = VERDICT_COLOURS.get(r.verdict, "#555")
    left = LABEL_WIDTH
    parts = [
        f'<g class="mark" data-claim="{e(r.id)}" data-verdict="{e(r.verdict)}">',
        f'<text x="{LABEL_WIDTH - 8}" y="{mid + 4}" text-anchor="end" font-size="12">'
        f'<a href="#{e(r.id)}">{e(r.id)}</a></text>',
    ]
    if r.estimate is None or r.ci_low is None or r.ci_high is None:
        reason = r.message.splitlines()[0] if r.message else r.verdict
        parts += [
            f'<rect x="{left + 4}" y="{mid - 5}" width="10" height="10" fill="none" stroke="{colour}" '
            f'stroke-width="2"><title>{e(r.id)}: {e(r.verdict)}, no interval: {e(reason)}</title></rect>',
            f'<text x="{left + 20}" y="{mid + 4}" font-size="12" fill="{colour}">{e(r.verdict.upper())}: no '
            f"interval</text>",
            "</g>",
        ]
        return parts
    values = [r.ci_low, r.ci_high, r.estimate, *_thresholds(r)]
    lo, hi = min(values), max(values)
    pad = 0.08 * (hi - lo) or 0.05 * (abs(hi) or 1.0)
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        return round(left + 6 + (v - lo) / (hi - lo) * (PANEL_WIDTH - 12), 2)

    shade_from, shade_to = (0, 0) if r.threshold is None else _supporting_side(r, x, lo, hi)
    if shade_to > shade_from:
        parts.append(
            f'<rect x="{shade_from}" y="{top + 3}" width="{round(shade_to - shade_from, 2)}" '
            f'height="{ROW_HEIGHT - 6}" fill="#e3f4e8"><title>supports the claim: {e(r.needed)}</title></rect>'
        )
    for t in _thresholds(r):
        parts.append(
            f'<line x1="{x(t)}" y1="{top + 2}" x2="{x(t)}" y2="{top + ROW_HEIGHT - 2}" stroke="#333" '
            f'stroke-dasharray="4 3"><title>bound {fmt(t)}</title></line>'
        )
    tip = f"{r.id}: {r.verdict}, {r.interval}; needed {r.needed}"
    parts += [
        f'<line x1="{x(r.ci_low)}" y1="{mid}" x2="{x(r.ci_high)}" y2="{mid}" stroke="{colour}" stroke-width="4" '
        f'stroke-linecap="round"><title>{e(tip)}</title></line>',
        f'<circle cx="{x(r.estimate)}" cy="{mid}" r="5" fill="{colour}" stroke="#fff" stroke-width="1.5">'
        f"<title>{e(tip)}</title></circle>",
        f'<text x="{left + 4}" y="{top + ROW_HEIGHT - 1}" font-size="9" fill="#777">{e(fmt(lo))}</text>',
        f'<text x="{left + PANEL_WIDTH - 4}" y="{top + ROW_HEIGHT - 1}" font-size="9" fill="#777" '
        f'text-anchor="end">{e(fmt(hi))}</text>',
        f'<text x="{left + PANEL_WIDTH + 10}" y="{mid + 4}" font-size="12"><tspan fill="{colour}" '
        f'font-weight="bold">{e(r.verdict.upper())}</tspan> {e(r.interval)}, {e(r.needed)}</text>',
        "</g>",
    ]
    return parts


def forest_svg(claims: Sequence[ClaimRecord]) -> str:
    """Every claim's interval against its bound, one row per claim, each row on its own scale (empty: "")."""
    if not claims:
        return ""
    width = LABEL_WIDTH + PANEL_WIDTH + TEXT_WIDTH
    height = HEADER + ROW_HEIGHT * len(claims) + 6
    legend_x = LABEL_WIDTH + 6
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="forest" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="system-ui,sans-serif">',
        f"<title>{len(claims)} claims: interval (bar), estimate (dot) and pre-registered bound (dashed)</title>",
        f'<text x="{legend_x}" y="14" font-size="11" fill="#333">bar: interval at the claim\'s confidence; dot: '
        "estimate; dashed: bound; shaded: where the interval must lie to support the claim</text>",
        f'<text x="{legend_x}" y="28" font-size="11" fill="#333">each row has its own scale (ends printed '
        "below the row)</text>",
    ]
    for i, r in enumerate(claims):
        top = HEADER + i * ROW_HEIGHT
        if i % 2:
            parts.append(f'<rect x="0" y="{top}" width="{width}" height="{ROW_HEIGHT}" fill="#f7f7f7"/>')
        parts += _row(r, top)
    parts.append("</svg>")
    return "".join(parts)


def histogram_svg(record: ClaimRecord, *, width: int = 420, height: int = 150) -> str:
    """The record's distribution as an inline SVG, with the observed estimate and the threshold(s) marked."""
    hist = record.histogram
    if hist is None:
        return ""
    thresholds = _thresholds(record)
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


SERIES_STEP, SERIES_HEIGHT, SERIES_AXIS, SERIES_HEADER = 64, 118, 18, 50  # pixels: per checkpoint, per claim panel,
# for the checkpoint labels under a panel, for the legend
SERIES_LABEL = 290  # room for a claim id left of its panel


def _series_panel(labels: Sequence[str], rows: Sequence[ClaimRecord], top: float) -> list[str]:
    """One claim over the checkpoints: interval bars and estimate dots on the claim's own vertical scale."""
    e = html.escape
    first = rows[0]
    left, bottom = SERIES_LABEL, top + SERIES_HEIGHT - SERIES_AXIS - 6
    values = [v for r in rows for v in (r.ci_low, r.ci_high, r.estimate) if v is not None]
    values += _thresholds(first) or [0.0]
    lo, hi = min(values), max(values)
    pad = 0.08 * (hi - lo) or 0.05 * (abs(hi) or 1.0)
    lo, hi = lo - pad, hi + pad

    def y(v: float) -> float:
        return round(top + 10 + (hi - v) / (hi - lo) * (bottom - top - 10), 2)

    right = left + SERIES_STEP * len(labels)
    parts = [
        f'<g class="series" data-claim="{e(first.id)}">',
        f'<text x="{left - 8}" y="{top + 48}" text-anchor="end" font-size="11" font-weight="bold">{e(first.id)}</text>',
        f'<text x="{left - 8}" y="{top + 63}" text-anchor="end" font-size="10" fill="#555">needed: '
        f"{e(first.needed)}</text>",
        f'<text x="{left - 4}" y="{top + 14}" text-anchor="end" font-size="9" fill="#777">{e(fmt(hi))}</text>',
        f'<text x="{left - 4}" y="{bottom}" text-anchor="end" font-size="9" fill="#777">{e(fmt(lo))}</text>',
        f'<rect x="{left}" y="{top + 8}" width="{right - left}" height="{round(bottom - top - 6, 2)}" fill="none" '
        'stroke="#ccc"/>',
    ]
    if first.threshold is not None:
        edges = _supporting_side(first, y, lo, hi)
        upper, lower = min(edges), max(edges)
        if lower > upper:
            parts.append(f'<rect x="{left}" y="{upper}" width="{right - left}" height="{round(lower - upper, 2)}" '
                         f'fill="#e3f4e8"><title>supports the claim: {e(first.needed)}</title></rect>')  # fmt: skip
    for t in _thresholds(first):
        parts.append(f'<line x1="{left}" y1="{y(t)}" x2="{right}" y2="{y(t)}" stroke="#333" stroke-dasharray="4 3">'
                     f"<title>bound {fmt(t)}</title></line>")  # fmt: skip
    for i in range(len(rows) - 1):  # estimates joined between neighbouring checkpoints only, broken at a gap
        a, b = rows[i].estimate, rows[i + 1].estimate
        if a is not None and b is not None:
            x1, x2 = round(left + SERIES_STEP * (i + 0.5), 2), round(left + SERIES_STEP * (i + 1.5), 2)
            parts.append(f'<line x1="{x1}" y1="{y(a)}" x2="{x2}" y2="{y(b)}" stroke="#aaa" stroke-width="1"/>')
    for i, (label, r) in enumerate(zip(labels, rows)):
        x = round(left + SERIES_STEP * (i + 0.5), 2)
        colour = VERDICT_COLOURS.get(r.verdict, "#555")
        parts.append(f'<g class="mark" data-checkpoint="{e(label)}" data-verdict="{e(r.verdict)}">')
        if r.estimate is None or r.ci_low is None or r.ci_high is None:
            reason = r.message.splitlines()[0] if r.message else r.verdict
            mid = round((top + bottom) / 2, 2)
            parts.append(f'<rect x="{x - 5}" y="{mid - 5}" width="10" height="10" fill="none" stroke="{colour}" '
                         f'stroke-width="2"><title>{e(label)}: {e(r.verdict)}, no interval: {e(reason)}</title></rect>')
        else:
            tip = e(f"{label}: {r.verdict}, {r.interval}; needed {r.needed}")
            parts += [
                f'<line x1="{x}" y1="{y(r.ci_low)}" x2="{x}" y2="{y(r.ci_high)}" stroke="{colour}" stroke-width="4" '
                f'stroke-linecap="round"><title>{tip}</title></line>',
                f'<circle cx="{x}" cy="{y(r.estimate)}" r="5" fill="{colour}" stroke="#fff" stroke-width="1.5">'
                f"<title>{tip}</title></circle>",
            ]
        parts += [f'<text x="{x}" y="{bottom + 14}" text-anchor="middle" font-size="10">{e(label)}</text>', "</g>"]
    parts.append("</g>")
    return parts


def series_svg(labels: Sequence[str], claims: Sequence[Sequence[ClaimRecord]]) -> str:
    """Each claim's estimate over a series of checkpoints: one panel per claim on its own vertical scale, per
    checkpoint (left to right) the interval as a bar and the estimate as a dot in the verdict's colour, the bound
    dashed and the side that supports the claim shaded, as in :func:`forest_svg`; a checkpoint without an interval
    gets a hollow square.  ``claims`` holds one row per checkpoint for each claim; one ``<g class="series"
    data-claim=ID>`` per claim, one ``<g class="mark" data-checkpoint=LABEL>`` per checkpoint inside it."""
    if not claims:
        return ""
    width = max(SERIES_LABEL + SERIES_STEP * len(labels) + 20, 600)
    height = SERIES_HEADER + SERIES_HEIGHT * len(claims)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="series" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="system-ui,sans-serif">',
        f"<title>{len(claims)} claims over {len(labels)} checkpoints: interval (bar), estimate (dot), bound "
        "(dashed)</title>",
        '<text x="8" y="14" font-size="11" fill="#333">bar: interval at the claim\'s confidence; dot: estimate in '
        "the verdict's colour; dashed: bound</text>",
        '<text x="8" y="28" font-size="11" fill="#333">shaded: where the interval must lie to support the claim</text>',
        '<text x="8" y="42" font-size="11" fill="#333">each claim has its own vertical scale (ends printed on the '
        "left); checkpoints in series order</text>",
    ]
    for i, rows in enumerate(claims):
        if len(rows) != len(labels):
            raise ClaimError(f"claim {rows[0].id if rows else i}: {len(rows)} rows for {len(labels)} checkpoints")
        parts += _series_panel(labels, rows, SERIES_HEADER + i * SERIES_HEIGHT)
    parts.append("</svg>")
    return "".join(parts)
