"""Saved runs: a run's rows with its metadata, reading ``claims.json`` back, comparing runs, and runs as DataFrames.

``load_run`` gives a :class:`RunReport`; ``read_run`` gives its rows as a pandas DataFrame (one row per claim) and
``runs_table`` lays several runs side by side (claims x runs: verdict and interval).  A checkpoint series (one
run per checkpoint, :mod:`harness.claims.series`) reads back with ``load_series`` and, as claims x checkpoints,
``read_series``.  pandas is imported inside the functions that return DataFrames only, so pytest starts without it.
"""

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from harness.claims.records import ClaimRecord, fmt
from harness.errors import ClaimError

__all__ = [
    "Change", "Comparison", "RunReport", "compare_runs", "earlier_runs", "load_run", "load_series", "read_run",
    "read_series", "rerun_key", "runs_table",
]


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


def rerun_key(row: ClaimRecord) -> tuple | None:
    """What makes two rows runs of one test: the claim id, its source's hash and the models it read (its
    ``checksums``).  The same claim on another agent, checkpoint or SAE is another test, not a rerun; a skipped
    row (no test ran) or one saved without a source hash is a run of none (None)."""
    if row.verdict == "skipped" or row.source_sha256 is None:
        return None
    return row.id, row.source_sha256, tuple(sorted(row.checksums.items()))


def earlier_runs(report_dir: Path, *, besides: str) -> dict[tuple, tuple[dict[str, Any], ...]]:
    """What the saved runs under ``report_dir`` (all but the run named ``besides``) said of each claim, by
    :func:`rerun_key`: ``{"run", "started", "sampling_seed", "verdict", "estimate"}`` per run, oldest first.  Rows
    that are runs of no test and runs that cannot be read are left out."""
    found: dict[tuple, list[dict[str, Any]]] = {}
    for path in sorted(report_dir.glob("*/claims.json")):
        if path.parent.name == besides:
            continue
        try:
            report = load_run(path)
        except ClaimError:
            continue
        for row in report.claims:
            if (key := rerun_key(row)) is not None:
                found.setdefault(key, []).append({
                    "run": report.name, "started": report.run.get("started"),
                    "sampling_seed": report.run.get("sampling_seed"), "verdict": row.verdict, "estimate": row.estimate,
                })  # fmt: skip
    return {key: tuple(sorted(runs, key=lambda r: str(r["started"]))) for key, runs in found.items()}


LEADING_COLUMNS = (
    "run", "id", "verdict", "estimate", "ci_low", "ci_high", "n", "p_value", "p_adjusted", "selected_on", "selected"
)  # fmt: skip
FRAME_COLUMNS = (
    *LEADING_COLUMNS,
    *(f.name for f in fields(ClaimRecord) if f.name not in (*LEADING_COLUMNS, "histogram", "figures")),
)
"""The columns of :func:`read_run`: the leading ones, then every other field of a row but pictures and histogram."""
INTERVAL_COLUMNS = ("verdict", "estimate", "ci_low", "ci_high")
"""What :func:`runs_table` shows of each claim in each run."""


def read_run(path: str | os.PathLike) -> "pandas.DataFrame":  # noqa: F821 (pandas is imported lazily)
    """A saved run (its directory or ``claims.json``) as a DataFrame, one row per claim.

    Columns: ``run`` (the run's name), ``id``, ``verdict``, ``estimate``, ``ci_low``, ``ci_high``, ``n``,
    ``p_value``, ``p_adjusted``, ``selected_on``, ``selected`` (a dict, e.g. ``{"channel": 6}``), then the rest
    of the row (statement, sites, metric, family, seeds, bound, family size, confidence, method, test, message,
    checksums).  Runs saved before selection was recorded read with ``selected_on`` None and ``selected`` empty.
    """
    return _frame(load_run(path))


def _frame(report: RunReport) -> "pandas.DataFrame":  # noqa: F821
    import pandas as pd

    rows = [{"run": report.name, **r.to_dict()} for r in report.claims]
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


def runs_table(paths: Iterable[str | os.PathLike]) -> "pandas.DataFrame":  # noqa: F821
    """Several saved runs side by side: one row per claim id, and for each run (in the order given) its
    ``verdict``, ``estimate``, ``ci_low`` and ``ci_high`` (columns ``(run, field)``; NaN where a run lacks the
    claim).  Runs must have distinct names."""
    reports: dict[str, RunReport] = {}
    for path in paths:
        report = load_run(path)
        if report.name in reports:
            raise ClaimError(
                f"two runs are named {report.name!r} (the second at {path}); compare runs with distinct names"
            )
        reports[report.name] = report
    if not reports:
        raise ClaimError("runs_table needs at least one run (a directory or claims.json)")
    return _side_by_side(reports, "run")


def _side_by_side(reports: Mapping[str, RunReport], level: str) -> "pandas.DataFrame":  # noqa: F821
    import pandas as pd

    frames = {name: _frame(report).set_index("id")[list(INTERVAL_COLUMNS)] for name, report in reports.items()}
    table = pd.concat(frames, axis=1)
    table.columns.names = [level, "field"]
    table.index.name = "claim"
    return table


SERIES_FILE = "series.json"
"""A checkpoint series' metadata in its folder: the checkpoints in order, each with its run's folder."""


def load_series(path: str | os.PathLike) -> tuple[dict[str, Any], tuple[tuple[str, RunReport], ...]]:
    """A checkpoint series (its folder or ``series.json``): its metadata and ``(label, run)`` per checkpoint in
    series order.  Every run must hold the same claims, else a ClaimError names what differs.

        meta, runs = load_series("reports/series-customcnn_bc")
        [label for label, _ in runs]  # ['stage1', 'stage2', ..., 'stage10']
    """
    folder = Path(path)
    folder = folder.parent if folder.name == SERIES_FILE else folder
    try:
        meta = json.loads((folder / SERIES_FILE).read_text(encoding="utf-8"))
        entries = [(str(c["label"]), folder / c["run"]) for c in meta["checkpoints"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClaimError(f"cannot read a checkpoint series from {folder}: {exc}; write one with "
                         "python -m harness.claims.series run --policies ...") from exc  # fmt: skip
    runs = tuple((label, load_run(run)) for label, run in entries)
    if not runs:
        raise ClaimError(f"the checkpoint series in {folder} lists no checkpoints")
    first_label, first = runs[0]
    expected = {r.id for r in first.claims}
    for label, report in runs[1:]:
        found = {r.id for r in report.claims}
        if found != expected:
            raise ClaimError(
                f"the runs of a series must hold the same claims: {label} lacks {sorted(expected - found)} and adds "
                f"{sorted(found - expected)} against {first_label}; run every checkpoint with the same claim files "
                "and options"
            )
    return meta, runs


def read_series(path: str | os.PathLike) -> "pandas.DataFrame":  # noqa: F821
    """A checkpoint series as claims x checkpoints: one row per claim id, and for each checkpoint (in series order)
    its ``verdict``, ``estimate``, ``ci_low`` and ``ci_high`` (columns ``(checkpoint, field)``).

        table = read_series("reports/series-customcnn_bc")
        table.xs("verdict", axis=1, level="field")  # claims x checkpoints of verdicts
    """
    _, runs = load_series(path)
    return _side_by_side(dict(runs), "checkpoint")
