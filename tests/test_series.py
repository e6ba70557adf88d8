"""One claims run across many checkpoints (harness.claims.series): the claims x checkpoints table and the plot from
saved runs, the stages rebuilt from git history and checked against their cards, errors by name, and the suite
over a list of tiny checkpoints with pytest-xdist and with Ray (the same rows)."""

import hashlib
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import harness
from harness.claims import series_stages
from harness.claims.charts import series_svg
from harness.claims.provenance import harness_sha256
from harness.claims.records import ClaimRecord
from harness.claims.report import write_report
from harness.claims.runs import RunReport, load_run, load_series, read_series
from harness.claims.series import _same_code, main, run_series
from harness.claims.series_checkpoints import ONLY_REASON, find_checkpoints
from harness.claims.series_ray import merge_file_runs, project_on_this_node
from harness.claims.series_report import first_supported, write_series_report
from harness.errors import ClaimError

ROOT = Path(harness.__file__).resolve().parent.parent


def row(claim_id: str, verdict: str, estimate: float | None, *, threshold: float = 0.5, **changes) -> ClaimRecord:
    interval = {} if estimate is None else {"estimate": estimate, "ci_low": estimate - 0.1, "ci_high": estimate + 0.1}
    return ClaimRecord(
        id=claim_id, statement="A claim.", sites=("conv4a",), metric="rate", family="confirmatory",
        seeds="confirmation", n=64, direction="lower", threshold=threshold, family_alpha=0.05, family_size=2,
        confidence=0.975, verdict=verdict,
        **{"message": "no result" if estimate is None else "", "test": "c.py::t", **interval, **changes},
    )  # fmt: skip


def saved_series(folder: Path, runs: dict[str, list[ClaimRecord]]) -> Path:
    """A series folder written with the real run writer, and its series.json as the series command writes it."""
    for label, rows in runs.items():
        write_report(RunReport(run={"run": label, "saes": {}}, claims=tuple(rows)), folder / "runs" / label)
    checkpoints = [{"label": label, "policy": f"ckpt/{label}.pt", "run": f"runs/{label}", "exit_status": 1,
                    "seconds": 3.0} for label in runs]  # fmt: skip
    (folder / "series.json").write_text(json.dumps({"series": "demo", "checkpoints": checkpoints}))
    return folder


STAGED = {
    "stage1": [row("A", "refuted", 0.2), row("B", "supported", 0.9)],
    "stage2": [row("A", "inconclusive", 0.5), row("B", "error", None)],
    "stage10": [row("A", "supported", 0.8), row("B", "supported", 0.95)],
}


def test_a_series_reads_back_as_claims_by_checkpoints(tmp_path):
    table = read_series(saved_series(tmp_path, STAGED))
    assert list(table.columns.get_level_values("checkpoint").unique()) == ["stage1", "stage2", "stage10"]
    assert list(table.columns.names) == ["checkpoint", "field"] and list(table.index) == ["A", "B"]
    verdicts = table.xs("verdict", axis=1, level="field")
    assert list(verdicts.loc["A"]) == ["refuted", "inconclusive", "supported"]
    assert table.loc["A", ("stage10", "ci_low")] == pytest.approx(0.7)
    assert pd.isna(table.loc["B", ("stage2", "estimate")])


def test_the_report_gives_a_cell_per_claim_and_checkpoint_and_when_each_is_first_supported(tmp_path):
    folder = saved_series(tmp_path, STAGED)
    written = write_series_report(folder)
    assert sorted(p.name for p in written) == ["index.html", "series.csv", "series.md", "series.svg"]
    markdown = (folder / "series.md").read_text()
    a_cells = "refuted 0.2 [0.1, 0.3] | inconclusive 0.5 [0.4, 0.6] | supported 0.8 [0.7, 0.9] | stage10 | stage10"
    b_cells = "supported 0.9 [0.8, 1] | error | supported 0.95 [0.85, 1.05] | stage1 | stage10"
    assert f"| A | lower bound > 0.5 | {a_cells} |" in markdown and f"| B | lower bound > 0.5 | {b_cells} |" in markdown
    csv = pd.read_csv(folder / "series.csv")
    assert len(csv) == 6 and list(csv["checkpoint"][:2]) == ["stage1", "stage1"]
    assert list(csv[csv["claim"] == "A"]["estimate"]) == [0.2, 0.5, 0.8]
    page = (folder / "index.html").read_text()
    assert page.count('<td class="cell supported"') == 3 and 'href="runs/stage2/index.html"' in page
    svg = (folder / "series.svg").read_text()
    assert svg.count('<g class="series"') == 2 and svg.count('<g class="mark"') == 6 and svg in page
    assert svg.count("<circle") == 5 and svg.count('fill="none" stroke="#7d3c98"') == 1  # B at stage2: no interval
    assert svg.count('stroke="#aaa"') == 2 + 0  # A's estimates joined twice, B's broken on both sides of stage2


def test_claims_only_collected_for_the_family_sizes_are_listed_apart(tmp_path):
    not_run = row("B", "skipped", None, message=f"Skipped: {ONLY_REASON} (claims/a.py)")
    other = row("C", "skipped", None, message="applies to bilinear_cnn; the policy under test is custom_cnn")
    once = row("D", "skipped", None, message="no SAE")
    folder = saved_series(tmp_path, {"s1": [row("A", "refuted", 0.2), not_run, other, once],
                                     "s2": [row("A", "supported", 0.8), not_run, other, row("D", "refuted", 0.1)]})
    write_series_report(folder)
    markdown = (folder / "series.md").read_text()
    assert "| B |" not in markdown and "not run (outside --only): B." in markdown and "| D |" in markdown
    assert "Skipped at every checkpoint: C (applies to bilinear_cnn; the policy under test is custom_cnn)." in markdown
    assert (folder / "series.svg").read_text().count('<g class="series"') == 2
    assert list(read_series(folder).index) == ["A", "B", "C", "D"]  # the DataFrame keeps every row


def test_first_supported_and_supported_from():
    rows = [row("A", v, 0.5) for v in ("refuted", "supported", "inconclusive", "supported", "supported")]
    assert first_supported(list("abcde"), rows) == ("b", "d")
    assert first_supported(list("ab"), rows[:1] * 2) == (None, None)
    assert first_supported(list("ab"), [rows[1], rows[2]]) == ("a", None)


def test_the_plot_puts_each_estimate_inside_its_interval_on_the_claim_scale():
    svg = series_svg(["s1", "s2"], [[row("A", "refuted", 0.2), row("A", "supported", 0.9)]])
    bars = [tuple(map(float, m)) for m in re.findall(r'<line x1="[\d.]+" y1="([\d.]+)" x2="[\d.]+" y2="([\d.]+)" '
                                                     r'stroke="#\w+" stroke-width="4"', svg)]  # fmt: skip
    dots = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert len(bars) == 2 and len(dots) == 2
    assert all(min(b) <= d <= max(b) for b, d in zip(bars, dots)) and dots[1] < dots[0]  # higher is up
    with pytest.raises(ClaimError, match="1 rows for 2 checkpoints"):
        series_svg(["s1", "s2"], [[row("A", "refuted", 0.2)]])


def test_runs_with_different_claims_are_refused_by_name(tmp_path):
    folder = saved_series(tmp_path, {"s1": [row("A", "refuted", 0.2)], "s2": [row("B", "supported", 0.9)]})
    with pytest.raises(ClaimError, match=r"s2 lacks \['A'\] and adds \['B'\] against s1"):
        read_series(folder)
    with pytest.raises(ClaimError, match="cannot read a checkpoint series"):
        load_series(tmp_path / "nothing")


def test_checkpoints_come_in_natural_order_with_their_own_saes(tmp_path):
    for name in ("stage10.pt", "stage2.pt", "stage1.pt", "stage2.sae-conv4a.pt", "stage2.sae-conv3a.pt"):
        (tmp_path / name).write_bytes(b"x")
    found = find_checkpoints([tmp_path])
    assert [c.label for c in found] == ["stage1", "stage2", "stage10"]
    assert found[1].saes == {"conv3a": tmp_path / "stage2.sae-conv3a.pt", "conv4a": tmp_path / "stage2.sae-conv4a.pt"}
    assert found[0].saes == {} and [c.label for c in find_checkpoints([tmp_path / "stage10.pt"])] == ["stage10"]


@pytest.mark.parametrize("paths, message", [
    ([], "needs at least one policy"),
    (["missing.pt"], "checkpoint missing.pt does not exist"),
    (["empty"], "holds no policy checkpoint"),
    (["stage2.sae-conv4a.pt"], "is an SAE"),
    (["stage1.pt", "other/stage1.pt"], "two checkpoints are labelled 'stage1'"),
])  # fmt: skip
def test_bad_checkpoint_lists_are_refused_by_name(tmp_path, monkeypatch, paths, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    for name in ("stage1.pt", "other/stage1.pt", "stage2.sae-conv4a.pt"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ClaimError, match=message):
        find_checkpoints(paths)


def test_arguments_the_series_sets_itself_are_refused(tmp_path, capsys):
    (tmp_path / "p.pt").write_bytes(b"x")
    with pytest.raises(ClaimError, match="'--policy=other.pt' is set by the series"):
        run_series([tmp_path / "p.pt"], out=tmp_path / "out", pytest_args=["--policy=other.pt"])
    with pytest.raises(ClaimError, match="backend 'spark'"):
        run_series([tmp_path / "p.pt"], out=tmp_path / "out", backend="spark")
    assert main(["run", "--policies", str(tmp_path / "nope.pt")]) == 2
    assert "checkpoint" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """The stages rebuilt from this repository's history (about 12 MB; git show, no training)."""
    out = tmp_path_factory.mktemp("stages")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs this repository's git history")
    return out, series_stages.rebuild_stages(out, root=ROOT)


def test_the_stages_are_rebuilt_from_history_and_checked_against_their_cards(stages):
    out, manifest = stages
    status = {s["label"]: s["status"] for s in manifest["stages"]}
    assert status == {f"stage{i}": "missing" if i in (7, 9) else "written" for i in range(1, 11)}
    assert [c.label for c in find_checkpoints([out])] == [f"stage{i}" for i in (1, 2, 3, 4, 5, 6, 8, 10)]
    card = (ROOT / "fixtures/agents/customcnn_bc/card.md").read_text()
    stage9 = manifest["stages"][8]
    assert stage9["sha256"] in card and "--init stage8.pt --seed 7" in stage9["rebuild"]
    assert "--seed 5" in manifest["stages"][6]["rebuild"]
    for entry in manifest["stages"]:
        if entry["status"] == "written":
            assert set(entry["saes"]) == {"conv3a", "conv4a"}
            assert json.loads((out / "stages.json").read_text())["stages"][entry["stage"] - 1] == entry
    shipped = manifest["stages"][9]
    assert (out / "stage10.pt").read_bytes() == (ROOT / "fixtures/agents/customcnn_bc/policy.pt").read_bytes()
    assert shipped["saes"]["conv4a"]["source"] == "working tree:fixtures/saes/customcnn_bc_conv4a/sae.pt"


def test_a_rebuilt_missing_stage_is_checked_against_its_stated_sha256(stages, tmp_path, monkeypatch):
    out, _ = stages
    (tmp_path / "stage9.pt").write_bytes((out / "stage8.pt").read_bytes())  # not stage 9's weights
    (tmp_path / "stage9.sae-conv4a.pt").write_bytes((out / "stage8.sae-conv4a.pt").read_bytes())
    monkeypatch.setattr(series_stages, "STAGES", (series_stages.STAGES[8],))
    entry = series_stages.rebuild_stages(tmp_path, root=ROOT)["stages"][0]
    assert entry["status"] == "rebuilt, sha256 differs from the card's" and entry["actual_sha256"] != entry["sha256"]
    sae_sha256 = hashlib.sha256((out / "stage8.sae-conv4a.pt").read_bytes()).hexdigest()
    assert entry["saes"] == {"conv4a": {"file": "stage9.sae-conv4a.pt", "source": "rebuilt beside it",
                                        "sha256": sae_sha256}}


def test_a_stage_whose_file_or_sae_does_not_match_its_card_is_refused(tmp_path, monkeypatch):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs this repository's git history")
    stage1, stage2 = series_stages.STAGES[:2]
    monkeypatch.setattr(series_stages, "STAGES", (replace(stage1, sha256_in=stage2.sha256_in),))
    with pytest.raises(ClaimError, match="stage1: 03a38ff:fixtures/agents/customcnn_bc.pt has sha256 6c34b1"):
        series_stages.rebuild_stages(tmp_path, root=ROOT)
    monkeypatch.setattr(series_stages, "STAGES", (replace(stage2, sae_commit=stage1.sae_commit),))
    with pytest.raises(ClaimError, match="the conv3a SAE at 367784d.*trained on policy 6c34b1"):
        series_stages.rebuild_stages(tmp_path, root=ROOT)


def test_per_file_runs_merge_into_one_run_with_each_claim_from_its_own_file():
    def part(own: str, other: str) -> RunReport:
        return RunReport(run={"run": "x", "exit_status": 0, "started": "t1", "finished": "t2", "warnings": []},
                         claims=(row(own, "supported", 0.9, p_value=0.001, test=f"claims/{own}.py::t"),
                                 row(other, "skipped", None, test=f"claims/{other}.py::t")))  # fmt: skip
    merged = merge_file_runs("s1", [("claims/A.py", part("A", "B")), ("claims/B.py", part("B", "A"))])
    assert [(r.id, r.verdict) for r in merged.claims] == [("A", "supported"), ("B", "supported")]
    assert merged.run["run"] == "s1" and all(r.p_holm == pytest.approx(0.002) for r in merged.claims)


TINY_CLAIMS = {
    "test_a.py": '''
import pytest, torch
from harness.stats import clopper_pearson_interval

def successes(options):
    return int(round(float(torch.load(options.policy)["strength"]) * 200))

@pytest.mark.claim(id="A1-rate", statement="The rate is above one half.", sites=["conv4a"], metric="rate",
                   seeds="confirmation", n=200, lower_bound_above=0.5)
def test_rate(claim, claims_options):
    claim.check(clopper_pearson_interval(successes(claims_options), 200, confidence=claim.confidence))

@pytest.mark.claim(id="A2-rate-low", statement="The rate is above 0.3.", sites=["conv4a"], metric="rate",
                   seeds="confirmation", n=200, lower_bound_above=0.3, family="exploratory")
def test_rate_low(claim, claims_options):
    claim.check(clopper_pearson_interval(successes(claims_options), 200, confidence=claim.confidence))
''',
    "test_b.py": '''
import pytest, torch
from harness.stats import clopper_pearson_interval

@pytest.mark.claim(id="B1-misses", statement="The miss rate is below 0.4.", sites=["conv4a"], metric="misses",
                   seeds="confirmation", n=200, upper_bound_below=0.4)
def test_misses(claim, claims_options):
    misses = 200 - int(round(float(torch.load(claims_options.policy)["strength"]) * 200))
    claim.check(clopper_pearson_interval(misses, 200, confidence=claim.confidence))
''',
}  # evidence read from the checkpoint, so each checkpoint gives its own verdicts without any model


@pytest.fixture
def tiny_project(tmp_path):
    import torch

    (tmp_path / "claims").mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    for name, text in TINY_CLAIMS.items():
        (tmp_path / "claims" / name).write_text(text)
    (tmp_path / "ckpt").mkdir()
    for label, strength in (("s1", 0.3), ("s2", 0.55), ("s10", 0.9)):
        torch.save({"strength": torch.tensor(strength)}, tmp_path / "ckpt" / f"{label}.pt")
    return tmp_path


COMPARED = ("id", "verdict", "estimate", "ci_low", "ci_high", "confidence", "family_size", "p_value", "p_adjusted",
            "p_holm", "test")  # fmt: skip


def _rows(folder: Path, label: str) -> list[tuple]:
    return [tuple(getattr(r, f) for f in COMPARED) for r in load_run(folder / "runs" / label).claims]


@pytest.mark.slow
def test_the_suite_runs_once_per_checkpoint_with_xdist(tiny_project):
    out = run_series([tiny_project / "ckpt"], out=tiny_project / "series", root=tiny_project, workers=2)
    table = read_series(out)
    assert list(table.xs("verdict", axis=1, level="field").loc["A1-rate"]) == ["refuted", "inconclusive", "supported"]
    meta = json.loads((out / "series.json").read_text())
    assert [c["policy"] for c in meta["checkpoints"]] == ["ckpt/s1.pt", "ckpt/s2.pt", "ckpt/s10.pt"]
    assert meta["finished"] is not None and "s2: pytest exit" not in (out / "series.md").read_text()
    assert [r[COMPARED.index("family_size")] for r in _rows(out, "s2")] == [2, 1, 2]  # A1, A2, B1: one run's sizes
    with pytest.raises(ClaimError, match="a series is saved"):
        run_series([tiny_project / "ckpt"], out=out, root=tiny_project)


@pytest.mark.slow
def test_resume_runs_only_the_checkpoints_a_saved_series_lacks_or_whose_files_or_code_changed(tiny_project):
    import torch

    out = run_series([tiny_project / "ckpt" / "s1.pt", tiny_project / "ckpt" / "s2.pt"], out=tiny_project / "series",
                     root=tiny_project, workers=0)  # fmt: skip
    first = {label: (out / "runs" / label / "claims.json").read_bytes() for label in ("s1", "s2")}
    torch.save({"strength": torch.tensor(0.95)}, tiny_project / "ckpt" / "s2.pt")  # s2 changed since its run
    run_series([tiny_project / "ckpt"], out=out, root=tiny_project, workers=0, resume=True)
    meta = json.loads((out / "series.json").read_text())
    assert meta["kept_from_before"] == ["s1"] and meta["finished"] is not None and meta["resumed"] >= meta["started"]
    assert "- kept from before: s1" in (out / "series.md").read_text()
    assert [c["label"] for c in meta["checkpoints"]] == ["s1", "s2", "s10"]
    assert (out / "runs" / "s1" / "claims.json").read_bytes() == first["s1"]
    assert (out / "runs" / "s2" / "claims.json").read_bytes() != first["s2"]
    assert list(read_series(out).xs("verdict", axis=1, level="field").loc["A1-rate"]) == ["refuted", "supported",
                                                                                          "supported"]
    with open(tiny_project / "claims" / "test_b.py", "a") as claim_file:
        claim_file.write("# a claim file edited after the runs: none of them is kept\n")
    run_series([tiny_project / "ckpt"], out=out, root=tiny_project, workers=0, resume=True)
    assert "kept_from_before" not in json.loads((out / "series.json").read_text())
    assert (out / "runs" / "s1" / "claims.json").read_bytes() != first["s1"]


def test_a_saved_run_is_kept_only_if_it_ran_this_harness_code_and_these_claim_files(tmp_path):
    (tmp_path / "claims").mkdir()
    claim_file = tmp_path / "claims" / "test_a.py"
    claim_file.write_text("BOUND = 0.5\n")
    source = hashlib.sha256(claim_file.read_bytes()).hexdigest()

    def saved(harness: str | None) -> RunReport:
        return RunReport(run={"harness_sha256": harness},
                         claims=(row("A", "supported", 0.9, test="claims/test_a.py::t", source_sha256=source),))

    assert _same_code(saved(harness_sha256()), tmp_path)
    assert not _same_code(saved("0" * 64), tmp_path) and not _same_code(saved(None), tmp_path)  # None: not recorded
    claim_file.write_text("BOUND = 0.4\n")
    assert not _same_code(saved(harness_sha256()), tmp_path)


def test_resume_refuses_a_series_saved_with_other_claims_or_arguments(tmp_path):
    (tmp_path / "p.pt").write_bytes(b"policy")
    (tmp_path / "out").mkdir()
    saved = {"claims": ["claims"], "only": [], "pytest_args": [], "checkpoints": []}
    (tmp_path / "out" / "series.json").write_text(json.dumps(saved))
    with pytest.raises(ClaimError, match=r"--resume: the series in .* was run with pytest_args \[\], this run asks"):
        run_series([tmp_path / "p.pt"], out=tmp_path / "out", pytest_args=["--sampling-seed=3"], resume=True)
    with pytest.raises(ClaimError, match="pass one of them"):
        run_series([tmp_path / "p.pt"], out=tmp_path / "out", overwrite=True, resume=True)
    with pytest.raises(ClaimError, match="or --resume to run only the checkpoints it lacks"):
        run_series([tmp_path / "p.pt"], out=tmp_path / "out")


@pytest.mark.slow
def test_only_some_files_run_at_the_whole_suites_family_sizes(tiny_project):
    out = run_series([tiny_project / "ckpt" / "s10.pt"], out=tiny_project / "only", root=tiny_project, workers=0,
                     only=["claims/test_a.py::test_rate_low", "claims/test_b.py"])  # a test by node id, a file
    rows = {r.id: r for r in load_run(out / "runs" / "s10").claims}
    assert [rows[i].verdict for i in ("A1-rate", "A2-rate-low", "B1-misses")] == ["skipped", "supported", "supported"]
    assert rows["B1-misses"].family_size == 2 and rows["B1-misses"].confidence == pytest.approx(0.975)  # A1 counted
    assert "not run (outside --only): A1-rate" in (out / "series.md").read_text()
    with pytest.raises(ClaimError, match="--only claims/test_c.py: no such claim file"):
        run_series([tiny_project / "ckpt"], out=tiny_project / "other", root=tiny_project, only=["claims/test_c.py"])


@pytest.mark.slow
def test_ray_runs_a_task_per_checkpoint_and_file_and_merges_the_same_rows(tiny_project):
    ray = pytest.importorskip("ray")
    xdist = run_series([tiny_project / "ckpt"], out=tiny_project / "by-xdist", root=tiny_project, workers=0)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        by_ray = run_series([tiny_project / "ckpt"], out=tiny_project / "by-ray", root=tiny_project, backend="ray")
    finally:
        ray.shutdown()
    assert len(list((by_ray / "logs").glob("*.txt"))) == 6  # 3 checkpoints x 2 claim files
    for label in ("s1", "s2", "s10"):
        assert _rows(by_ray, label) == _rows(xdist, label)
    assert (read_series(by_ray).fillna(0) == read_series(xdist).fillna(0)).all().all()


@pytest.mark.slow
def test_ray_spreads_the_tasks_over_the_nodes_of_a_cluster(tiny_project):
    """Two Ray nodes of one core each (Ray's own multi-node test cluster, on one machine): the series joins the
    cluster, both nodes run tasks, each run says which node ran each file, and the rows are the one-node rows."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    one_node = run_series([tiny_project / "ckpt"], out=tiny_project / "one-node", root=tiny_project, workers=0)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address)
        out = run_series([tiny_project / "ckpt"], out=tiny_project / "cluster", root=tiny_project, backend="ray")
    finally:
        ray.shutdown()
        cluster.shutdown()
    tasks = [t for label in ("s1", "s2", "s10") for t in load_run(out / "runs" / label).run["ray_tasks"]]
    assert sorted(t["file"] for t in tasks) == ["claims/test_a.py"] * 3 + ["claims/test_b.py"] * 3
    assert len({t["node"] for t in tasks}) == 2
    for label in ("s1", "s2", "s10"):
        assert _rows(out, label) == _rows(one_node, label)


def test_a_ray_task_finds_the_project_at_the_drivers_path_else_in_its_working_directory(tmp_path, monkeypatch):
    shared, shipped = tmp_path / "shared", tmp_path / "shipped"  # a shared checkout; runtime_env's unpacked copy
    for project in (shared, shipped):
        (project / "claims").mkdir(parents=True)
    monkeypatch.chdir(shipped)
    assert project_on_this_node(str(shared), ["claims"]) == str(shared)
    assert project_on_this_node(str(tmp_path / "elsewhere"), ["claims"]) == str(shipped)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ClaimError, match=r"no claims under .*elsewhere .* nor under its working directory"):
        project_on_this_node(str(tmp_path / "elsewhere"), ["claims"])


@pytest.mark.slow
def test_a_ray_task_finds_the_project_ray_shipped_to_its_working_directory(tiny_project):
    """Ray's ``runtime_env={"working_dir": ...}`` unpacks the project into each task's working directory: a task on
    a node without the driver's path (here a path that exists nowhere) runs it from there."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, runtime_env={"working_dir": str(tiny_project)})
    try:
        found = ray.get(ray.remote(project_on_this_node).remote(str(tiny_project / "elsewhere"), ["claims"]))
    finally:
        ray.shutdown()
    assert Path(found) != tiny_project
    assert (Path(found) / "claims" / "test_a.py").read_text() == (tiny_project / "claims" / "test_a.py").read_text()
