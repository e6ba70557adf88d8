"""Saved runs read back as DataFrames: one run (``read_run``) and several side by side (``runs_table``)."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import harness
from harness.claims import read_run, runs_table
from harness.claims.records import ClaimRecord
from harness.claims.report import write_report
from harness.claims.runs import RunReport
from harness.errors import ClaimError

SHIPPED_RUN = Path(harness.__file__).resolve().parent.parent / "reports" / "shipped-agent"


def row(claim_id: str, verdict: str = "supported", estimate: float = 0.2, **changes) -> ClaimRecord:
    return ClaimRecord(
        id=claim_id, statement="A claim.", sites=("conv4a:6",), metric="mean drop", family="confirmatory",
        seeds="confirmation", n=64, direction="lower", threshold=0.1, family_alpha=0.05, family_size=2,
        confidence=0.975, verdict=verdict, message="", test="t.py::test", estimate=estimate,
        ci_low=estimate - 0.05, ci_high=estimate + 0.05, p_value=0.01, **changes,
    )  # fmt: skip


def saved_run(directory: Path, name: str, *rows: ClaimRecord) -> Path:
    write_report(RunReport(run={"run": name}, claims=rows), directory / name)
    return directory / name


def test_the_shipped_run_reads_as_one_row_per_claim():
    frame = read_run(SHIPPED_RUN)
    saved = json.loads((SHIPPED_RUN / "claims.json").read_text())["claims"]
    assert list(frame["id"]) == [c["id"] for c in saved]
    assert list(frame.columns[:11]) == [
        "run", "id", "verdict", "estimate", "ci_low", "ci_high", "n", "p_value", "p_adjusted", "selected_on", "selected"
    ]  # fmt: skip
    assert {"statement", "family", "seeds", "threshold", "checksums"} <= set(frame.columns)
    assert "histogram" not in frame.columns and "figures" not in frame.columns
    assert set(frame["run"]) == {"shipped-agent"}
    assert frame.set_index("id").loc["B1-solves-held-out-levels", "estimate"] == pytest.approx(0.939453125)
    chosen = frame.set_index("id")
    assert chosen.loc["CH3-up-channel-group", "selected_on"] == "selection"
    assert chosen.loc["CH3-up-channel-group", "selected"] == {"channels": [6, 17, 5]}
    assert chosen.loc["B1-solves-held-out-levels", "selected"] == {}


def test_a_run_saved_before_selection_was_recorded_still_reads(tmp_path):
    path = saved_run(tmp_path, "old", row("CH1", selected_on="selection", selected={"channel": 6})) / "claims.json"
    data = json.loads(path.read_text())
    for claim in data["claims"]:
        del claim["selected_on"], claim["selected"]
    path.write_text(json.dumps(data))
    frame = read_run(path)
    assert frame["selected_on"].isna().all() and all(s == {} for s in frame["selected"])


def test_a_selection_and_an_empty_run_read_back(tmp_path):
    chosen = row("CH1", selected_on="selection", selected={"channel": 6})
    frame = read_run(saved_run(tmp_path, "r1", chosen) / "claims.json")
    assert (frame.loc[0, "selected_on"], frame.loc[0, "selected"]) == ("selection", {"channel": 6})
    empty = read_run(saved_run(tmp_path, "r0"))
    assert empty.empty and list(empty.columns) == list(frame.columns)


def test_runs_side_by_side(tmp_path):
    first = saved_run(tmp_path, "before", row("A"), row("B", "inconclusive", 0.12))
    second = saved_run(tmp_path, "after", row("B", "supported", 0.3), row("C", "refuted", 0.0))
    table = runs_table([first, second, SHIPPED_RUN])
    assert list(table.columns.get_level_values("run").unique()) == ["before", "after", "shipped-agent"]
    assert list(table.columns.get_level_values("field").unique()) == ["verdict", "estimate", "ci_low", "ci_high"]
    assert table.index.name == "claim" and len(table) == 3 + 9
    assert (table.loc["B", ("before", "verdict")], table.loc["B", ("after", "verdict")]) == ("inconclusive", "supported")
    assert table.loc["B", ("after", "ci_low")] == pytest.approx(0.25)
    assert pd.isna(table.loc["A", ("after", "verdict")]) and pd.isna(table.loc["C", ("before", "estimate")])
    with pytest.raises(ClaimError, match="two runs are named 'before'"):
        runs_table([first, first])
    with pytest.raises(ClaimError, match="at least one run"):
        runs_table([])
    with pytest.raises(ClaimError, match="cannot read a claims run"):
        read_run(tmp_path / "missing")


def test_importing_the_claims_package_stays_light():
    """``from harness.claims import read_run`` must not load pytest, torch or pandas (pandas loads on use)."""
    code = ("import sys; from harness.claims import read_run, runs_table; "
            "print(sorted(m for m in ('pytest', 'torch', 'pandas') if m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
