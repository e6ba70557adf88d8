"""Saved runs read back as DataFrames: one run (``read_run``) and several side by side (``runs_table``)."""

import hashlib
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
    b1 = next(c for c in saved if c["id"] == "B1-solves-held-out-levels")
    assert frame.set_index("id").loc["B1-solves-held-out-levels", "estimate"] == pytest.approx(b1["estimate"])
    chosen = frame.set_index("id")
    assert chosen.loc["CH3-up-channel-group", "selected_on"] == "selection"
    ch3 = next(c for c in saved if c["id"] == "CH3-up-channel-group")
    assert chosen.loc["CH3-up-channel-group", "selected"] == ch3["selected"] and len(ch3["selected"]["channels"]) == 3
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
    shipped = json.loads((SHIPPED_RUN / "claims.json").read_text())["claims"]
    assert table.index.name == "claim" and len(table) == 3 + len(shipped)
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


# Runs through the plugin (pytester): every run kept, its history, partial families, heavy claims, option checks.

pytest_plugins = ["pytester"]


@pytest.fixture
def claims(pytester: pytest.Pytester) -> pytest.Pytester:
    from test_plugin import CONFTEST, THREE_VERDICTS

    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_verdicts=THREE_VERDICTS)
    return pytester


def run_claims(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    from test_plugin import run

    return run(pytester, *args)


def rows_of(pytester: pytest.Pytester, name: str) -> dict:
    return {r["id"]: r for r in json.loads((pytester.path / "reports" / name / "claims.json").read_text())["claims"]}


def test_a_run_name_is_never_reused_silently(claims):
    """Issue 19 item 8: reusing --claims-run is refused unless --claims-overwrite; unnamed runs in the same
    second get distinct folders."""
    assert run_claims(claims, "--claims-run", "r1").ret == pytest.ExitCode.TESTS_FAILED
    again = run_claims(claims, "--claims-run", "r1")
    assert again.ret == pytest.ExitCode.USAGE_ERROR
    again.stderr.fnmatch_lines(["*--claims-run r1: a run of that name is saved in*--claims-overwrite*"])
    assert run_claims(claims, "--claims-run", "r1", "--claims-overwrite").ret == pytest.ExitCode.TESTS_FAILED
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    taken = {(now + timedelta(seconds=s)).strftime("%Y%m%d-%H%M%S") for s in range(30)}
    for name in taken:  # every name this run could take in the next 30 s is held by another run
        (claims.path / "reports" / name).mkdir(parents=True)
    run_claims(claims)
    mine = [p.name for p in (claims.path / "reports").iterdir() if (p / "claims.json").is_file()]
    assert len(mine) == 2 and any(name.endswith("-2") and name[:-2] in taken for name in mine)


def test_each_row_carries_its_source_hash_and_the_earlier_runs_of_that_source(claims):
    """Issue 19 items 8 and 9: reruns leave a trace in every later run's rows, matched by the claim file's hash."""
    digest = hashlib.sha256((claims.path / "test_verdicts.py").read_bytes()).hexdigest()
    run_claims(claims, "--claims-run", "r1", "--sampling-seed", "1")
    first = rows_of(claims, "r1")
    assert first["H-sup"]["source_sha256"] == digest and first["H-sup"]["history"] == []
    run_claims(claims, "--claims-run", "r2", "--sampling-seed", "2")
    (earlier,) = rows_of(claims, "r2")["H-ref"]["history"]
    assert (earlier["run"], earlier["verdict"], earlier["sampling_seed"]) == ("r1", "refuted", 1)
    claims.makepyfile(test_verdicts=(claims.path / "test_verdicts.py").read_text() + "\n# edited\n")
    run_claims(claims, "--claims-run", "r3")
    assert rows_of(claims, "r3")["H-ref"]["history"] == []  # another source is another claim
    run_claims(claims, "--claims-run", "r4")
    assert [h["run"] for h in rows_of(claims, "r4")["H-sup"]["history"]] == ["r3"]


def test_the_same_claim_on_other_models_is_another_test_not_a_rerun(claims, monkeypatch):
    """A report folder holding runs of several agents (or a series' checkpoints) lists as earlier runs of a claim
    only those on the same models: a checkpoint series' runs are not reruns of each other.  A skipped claim ran
    no test: it has no earlier runs and is none."""
    from test_plugin import CONFTEST

    claims.makeconftest(CONFTEST.replace("    import pytest\n", "    import os\n    import pytest\n", 1).replace(
        '"sha256:feed"', 'os.environ.get("POLICY_SHA", "sha256:feed")'))
    claims.makepyfile(test_skipped="""
        import pytest
        from conftest import declare

        @declare("H-skip")
        def test_skipped(claim, policy):
            pytest.skip("applies to another architecture")
    """)
    run_claims(claims, "--claims-run", "r1")
    monkeypatch.setenv("POLICY_SHA", "sha256:beef")
    run_claims(claims, "--claims-run", "r2")
    assert rows_of(claims, "r2")["H-ref"]["checksums"] == {"policy": "sha256:beef"}
    assert rows_of(claims, "r2")["H-ref"]["history"] == []
    monkeypatch.delenv("POLICY_SHA")
    run_claims(claims, "--claims-run", "r3")
    assert [h["run"] for h in rows_of(claims, "r3")["H-ref"]["history"]] == ["r1"]
    assert rows_of(claims, "r3")["H-skip"]["verdict"] == "skipped" and rows_of(claims, "r3")["H-skip"]["history"] == []


def test_a_partial_family_and_heavy_claims_are_flagged(claims):
    """Issue 19 item 8 (partial family) and issue 21 E (heavy claims deselected unless asked for)."""
    claims.makepyfile(test_heavy="""
        import pytest
        from conftest import declare

        @pytest.mark.heavy
        @declare("H-heavy")
        def test_heavy(claim, interval):
            claim.check(interval(0.2, 0.3))
    """)
    run_claims(claims, "--claims-run", "r1", "-k", "not refuted")
    data = json.loads((claims.path / "reports" / "r1" / "claims.json").read_text())
    assert sorted(r["id"] for r in data["claims"]) == ["H-inc", "H-sup"]
    assert data["run"]["partial_family"] is True
    assert data["run"]["deselected_claims"] == ["test_verdicts.py::test_refuted"]
    assert data["run"]["heavy_claims_not_run"] == ["test_heavy.py::test_heavy"]
    assert rows_of(claims, "r1")["H-sup"]["family_size"] == 1
    run_claims(claims, "--claims-run", "r2", "--claims-heavy")
    data = json.loads((claims.path / "reports" / "r2" / "claims.json").read_text())
    assert "H-heavy" in rows_of(claims, "r2") and data["run"]["partial_family"] is False
    run_claims(claims, "--claims-run", "r3", "-m", "heavy")
    assert list(rows_of(claims, "r3")) == ["H-heavy"]


def test_a_negative_sampling_seed_and_an_unknown_sae_site_are_refused_at_start(claims):
    """Issue 19 items 15 and 16: usage errors before any claim runs, naming what is valid."""
    negative = run_claims(claims, "--sampling-seed", "-5")
    assert negative.ret == pytest.ExitCode.USAGE_ERROR
    negative.stderr.fnmatch_lines(["*--sampling-seed must be a non-negative int, got -5*"])
    policy = Path(harness.__file__).resolve().parent.parent / "fixtures" / "agents" / "customcnn_bc" / "policy.pt"
    unknown = run_claims(claims, f"--policy={policy}", "--sae", f"conv9z={policy}")
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    unknown.stderr.fnmatch_lines(["*--sae conv9z=...: the policy policy.pt has no site 'conv9z'; valid sites:*conv3a*"])
    assert not (claims.path / "reports").exists()
