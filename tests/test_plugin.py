"""The claims plugin driven through pytester: outcomes, statuses, options, reports, xdist, comparison, crashes."""

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import harness

pytest_plugins = ["pytester"]

# Once the package is installed, its pytest11 entry point loads the plugin; loading it again with -p would
# register it twice.
PLUGIN = () if any(ep.value == "harness.claims.plugin" for ep in entry_points(group="pytest11")) else ("-p", "harness.claims.plugin")
REPO = Path(harness.__file__).resolve().parent.parent

CONFTEST = """
    from dataclasses import dataclass
    from statistics import NormalDist

    import pytest

    from harness.claims.plugin import record_checksum, record_run_metadata


    @dataclass(frozen=True, kw_only=True)
    class Evidence:
        estimate: float
        ci_low: float
        ci_high: float
        confidence: float
        n: int
        method: str = "hand-built interval"
        p_value: float | None = None
        alternative: str | None = None
        distribution: object = None
        null_quantile: float | None = None

        def interval_at(self, confidence):
            z = lambda c: NormalDist().inv_cdf(1 - (1 - c) / 2)
            scale = z(confidence) / z(self.confidence)
            return (self.estimate - scale * (self.estimate - self.ci_low),
                    self.estimate + scale * (self.ci_high - self.estimate))


    @pytest.fixture(scope="session")
    def policy(request):
        record_checksum(request.config, "policy", "sha256:feed")
        record_run_metadata(request.config, "seed_ranges", {"confirm": [10000, 10999]})
        return "policy"


    @pytest.fixture
    def interval(claim, policy):
        def make(low, high, **extra):
            return Evidence(
                estimate=(low + high) / 2, ci_low=low, ci_high=high, confidence=claim.confidence, n=claim.spec.n,
                **extra,
            )
        return make


    def declare(claim_id, **extra):
        bound = {} if {"upper_bound_below", "equivalent_within"} & set(extra) else {"lower_bound_above": 0.1}
        return pytest.mark.claim(
            id=claim_id, statement=f"Claim {claim_id} holds.", sites=["conv3a"], metric="mean drop in P(UP)",
            **{"seeds": "confirmation", "n": 64, **bound, **extra},
        )
"""

THREE_VERDICTS = """
    from conftest import declare


    @declare("H-sup")
    def test_supported(claim, interval):
        claim.check(interval(0.2, 0.3))


    @declare("H-ref")
    def test_refuted(claim, interval):
        claim.check(interval(0.01, 0.07))


    @declare("H-inc", family="exploratory")
    def test_inconclusive(claim, interval):
        claim.check(interval(0.05, 0.15))
"""


@pytest.fixture
def claims(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    return pytester


QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")  # inner runs need neither (and stay fast)


def run(pytester: pytest.Pytester, *args: str, **kwargs) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN, *QUIET, *args, **kwargs)


def saved(pytester: pytest.Pytester, run_name: str = "r1") -> dict:
    return json.loads((pytester.path / "reports" / run_name / "claims.json").read_text())


def test_verdicts_become_outcomes_and_statuses(claims):
    claims.makepyfile(test_verdicts=THREE_VERDICTS)
    result = run(claims, "--claims-run", "r1")
    result.stdout.fnmatch_lines(["test_verdicts.py .FI*", "*1 failed, 1 passed, 1 inconclusive*"])
    text = result.stdout.str()
    assert (
        "claim 'H-ref' refuted: mean drop in P(UP) = 0.04 [0.01, 0.07] (97.5% CI, n=64 levels, hand-built interval, "
        "p = 1); "
        "needed lower bound > 0.1"
    ) in text
    result.stdout.fnmatch_lines(["*claims: run r1*", "claim*verdict*", "H-inc*INCONCLUSIVE*", "H-ref*REFUTED*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED

    verbose = run(claims, "-v", "--claims-run", "r1", "--claims-overwrite")
    verbose.stdout.fnmatch_lines(
        ["*::test_supported SUPPORTED*", "*::test_refuted REFUTED*", "*::test_inconclusive INCONCLUSIVE*"]
    )


def test_strict_mode_fails_inconclusive_claims(claims):
    claims.makepyfile(test_verdicts=THREE_VERDICTS)
    result = run(claims, "--claims-strict", "-v")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        ["*::test_inconclusive INCONCLUSIVE*", "*claim 'H-inc' inconclusive (--claims-strict)*"]
    )


def test_reports_hold_every_required_field(claims):
    claims.makepyfile(test_verdicts=THREE_VERDICTS)
    run(claims, "--claims-run", "r1", "--sampling-seed", "7")
    directory = claims.path / "reports" / "r1"
    assert sorted(p.name for p in directory.iterdir()) == ["claims.csv", "claims.json", "claims.md", "index.html"]
    data = saved(claims)
    rows = {row["id"]: row for row in data["claims"]}
    assert {row["verdict"] for row in rows.values()} == {"supported", "refuted", "inconclusive"}
    required = {"id", "statement", "verdict", "estimate", "ci_low", "ci_high", "p_value", "p_adjusted", "n", "seeds",
                "family", "method", "threshold", "checksums"}  # fmt: skip
    for row in rows.values():
        assert required <= row.keys()
        assert row["checksums"] == {"policy": "sha256:feed"} and row["seeds"] == "confirmation" and row["n"] == 64
    assert (rows["H-sup"]["family_size"], rows["H-inc"]["family_size"]) == (2, 1)
    assert rows["H-sup"]["confidence"] == pytest.approx(1 - 0.05 / 2)
    run_info = data["run"]
    assert {"git_commit", "python", "numpy", "torch", "started", "finished"} <= run_info.keys()
    assert run_info["checksums"] == {"policy": "sha256:feed"} and run_info["sampling_seed"] == 7
    assert run_info["metadata"] == {"seed_ranges": {"confirm": [10000, 10999]}}
    assert run_info["exit_status"] == 1
    assert "| H-ref | REFUTED |" in (directory / "claims.md").read_text()


def test_a_run_without_claims_writes_nothing(pytester):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    run(pytester).assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()


def test_a_claim_without_a_result_is_an_error(claims):
    claims.makepyfile(
        """
        from conftest import declare

        @declare("H-silent")
        def test_forgets_to_check(claim):
            pass

        @declare("H-no-fixture")
        def test_never_asks_for_the_claim():
            pass

        @declare("H-crash")
        def test_crashes_before_checking(claim):
            raise RuntimeError("renderer died")
        """
    )
    result = run(claims, "--claims-run", "r1")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(["*ClaimError: claim 'H-silent' recorded no result: call claim.check(result)*"])
    rows = {row["id"]: row for row in saved(claims)["claims"]}
    assert {row["verdict"] for row in rows.values()} == {"error"}
    assert rows["H-crash"]["message"] == "RuntimeError: renderer died"


def test_declaration_errors_are_clear(claims):
    claims.makepyfile(
        """
        import pytest
        from conftest import declare

        @pytest.mark.claim(id="H-nostatement", sites="conv3a", metric="m", seeds="confirmation", n=8,
                           lower_bound_above=0)
        def test_missing_statement(claim):
            pass

        @declare("H-family", family="confirmed")
        def test_unknown_family(claim):
            pass

        @declare("H-twice")
        def test_first(claim):
            pass

        @declare("H-twice")
        def test_second(claim):
            pass

        def test_fixture_without_marker(claim):
            pass

        @declare("H-fine")
        def test_fine(claim, interval):
            claim.check(interval(0.2, 0.3))
        """
    )
    result = run(claims)
    result.assert_outcomes(passed=1, errors=5)
    result.stdout.fnmatch_lines_random(
        [
            "*ClaimError: claim 'H-nostatement': missing statement*",
            "*ClaimError: claim 'H-family': family 'confirmed' is unknown*",
            "*ClaimError: claim 'H-twice' is declared by 2 tests*test_first*test_second*",
            "*ClaimError: *test_fixture_without_marker uses the claim fixture but declares no @pytest.mark.claim*",
        ]
    )
    rows = saved(claims, next((claims.path / "reports").iterdir()).name)["claims"]
    # issue 19 item 10: every collected claim has a row; a bad declaration is an error row that counts in its family
    assert sorted((r["id"], r["verdict"]) for r in rows) == [
        ("H-family", "error"), ("H-fine", "supported"), ("H-nostatement", "error"), ("H-twice", "error"),
        ("H-twice", "error"),
    ]  # fmt: skip
    assert {r["family_size"] for r in rows} == {5}
    messages = {r["test"].split("::")[1]: r["message"] for r in rows}
    assert messages["test_missing_statement"].startswith("ClaimError: claim 'H-nostatement': missing statement")
    assert "declared by 2 tests" in messages["test_first"]
    nostatement = next(r for r in rows if r["id"] == "H-nostatement")
    assert (nostatement["direction"], nostatement["threshold"], nostatement["n"]) == ("lower", 0.0, 8)


def test_family_size_follows_selection_and_parameters(claims):
    claims.makepyfile(
        """
        import pytest
        from conftest import declare

        @declare("H-a")
        def test_a(claim, interval):
            claim.check(interval(0.2, 0.3))

        @declare("H-b")
        def test_b(claim, interval):
            claim.check(interval(0.2, 0.3))

        @pytest.mark.parametrize("site", ["conv3a", "fc1"])
        @declare("H-p")
        def test_p(claim, interval, site):
            claim.check(interval(0.2, 0.3))
        """
    )
    run(claims, "--claims-run", "r1")
    assert {(r["id"], r["family_size"]) for r in saved(claims)["claims"]} == {
        ("H-a", 4), ("H-b", 4), ("H-p[conv3a]", 4), ("H-p[fc1]", 4)
    }  # fmt: skip
    run(claims, "--claims-run", "r2", "-k", "not test_b")
    assert {r["family_size"] for r in saved(claims, "r2")["claims"]} == {3}


def test_options_reach_the_fixtures(claims):
    claims.makepyfile(
        """
        def test_options(claims_options, pytestconfig):
            here = pytestconfig.invocation_params.dir
            assert claims_options.policy == here / "policy.pt"
            assert dict(claims_options.saes) == {"conv3a": here / "a.pt", "fc1": here / "b.pt"}
            assert (claims_options.sampling_seed, claims_options.alpha, claims_options.strict) == (7, 0.01, True)
            assert claims_options.run_dir == here / "out" / "mine"
        """
    )
    models = ("--policy", "policy.pt", "--sae", "conv3a=a.pt", "--sae", "fc1=b.pt", "--sampling-seed", "7")
    claims_run = ("--claims-alpha", "0.01", "--claims-strict", "--claims-run", "mine", "--claims-report-dir", "out")
    run(claims, *models, *claims_run).assert_outcomes(passed=1)
    bad = run(claims, "--sae", "conv3a")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--sae 'conv3a': give SITE=PATH*"])


@pytest.mark.parametrize("alpha", ["0.5", "1e-300", "nan", "0"])
def test_an_alpha_outside_its_range_is_refused_before_anything_runs(claims, alpha):
    claims.makepyfile(test_verdicts=THREE_VERDICTS)
    bad = run(claims, "--claims-alpha", alpha)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--claims-alpha must lie in ?1e-06, 0.2?, got*"])


def test_a_report_folder_that_cannot_be_written_is_refused_before_anything_runs(claims):
    claims.makepyfile(test_verdicts=THREE_VERDICTS)
    (claims.path / "taken").write_text("a file, not a folder")
    for report_dir in ("taken", "taken/below"):
        bad = run(claims, "--claims-report-dir", report_dir)
        assert bad.ret == pytest.ExitCode.USAGE_ERROR
        bad.stderr.fnmatch_lines(["*cannot write reports to*taken is a file, not a folder*"])
        assert "passed" not in bad.stdout.str()


def test_comparison_with_a_saved_run(claims):
    claims.makepyfile(test_verdicts=THREE_VERDICTS)
    run(claims, "--claims-run", "r1")
    claims.makepyfile(test_verdicts=THREE_VERDICTS.replace("interval(0.2, 0.3)", "interval(0.0, 0.05)"))
    result = run(claims, "--claims-run", "r2", "--claims-compare", "r1")
    change = "H-sup: supported -> refuted; estimate 0.025 outside previous [0.2, 0.3]"
    assert f"compared with r1:\n{change}\n" in result.stdout.str()
    (change,) = saved(claims, "r2")["comparison"]["changes"]
    assert (change["id"], change["previous_verdict"], change["verdict"]) == ("H-sup", "supported", "refuted")
    assert "## Changes since r1" in (claims.path / "reports" / "r2" / "claims.md").read_text()
    assert saved(claims, "r2")["run"]["compared_with"] == "reports/r1/claims.json"  # no machine's directories
    latest = run(claims, "--claims-run", "r3", "--claims-compare", "latest")
    latest.stdout.fnmatch_lines(["compared with r2:", "no verdict changed and no estimate left its interval"])
    missing = run(claims, "--claims-compare", "nope")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR


def test_skips_pictures_and_metadata_conflicts(claims):
    claims.makepyfile(
        """
        import numpy as np
        import pytest
        from conftest import declare
        from harness.claims.plugin import record_run_metadata

        @declare("H-skip")
        def test_skipped(claim):
            pytest.skip("needs the hires renderer")

        @declare("H-pic")
        def test_picture(claim, interval, pytestconfig):
            claim.attach(np.zeros((4, 4, 3), np.uint8), "clean level")
            record_run_metadata(pytestconfig, "seed_ranges", "changed")
            claim.check(interval(0.2, 0.3))
        """
    )
    result = run(claims, "--claims-run", "r1")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["warning: metadata 'seed_ranges' recorded as * and as 'changed'; kept the first"])
    rows = {r["id"]: r for r in saved(claims)["claims"]}
    assert (rows["H-skip"]["verdict"], rows["H-skip"]["message"]) == ("skipped", "needs the hires renderer")
    page = (claims.path / "reports" / "r1" / "index.html").read_text()
    assert "data:image/png;base64," in page and "clean level" in page


def test_an_interrupted_run_still_writes_its_reports(claims):
    claims.makepyfile(
        """
        from conftest import declare

        @declare("H-first")
        def test_a_first(claim, interval):
            claim.check(interval(0.2, 0.3))

        def test_b_interrupt():
            raise KeyboardInterrupt
        """
    )
    result = run(claims, "--claims-run", "r1", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    data = saved(claims)
    assert [r["id"] for r in data["claims"]] == ["H-first"] and data["run"]["exit_status"] == 2


@pytest.fixture
def subprocess_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a child pytest import the package even where it is not installed."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))


@pytest.mark.usefixtures("subprocess_env")
def test_a_hard_crash_keeps_the_rows_written_so_far(claims):
    claims.makepyfile(
        """
        import os
        from conftest import declare

        @declare("H-first")
        def test_a_first(claim, interval):
            claim.check(interval(0.2, 0.3))

        def test_b_crash():
            os._exit(3)
        """
    )
    result = claims.runpytest_subprocess(*PLUGIN, *QUIET, "--claims-run", "r1")
    assert result.ret == 3
    data = saved(claims)
    assert [r["id"] for r in data["claims"]] == ["H-first"] and data["run"]["exit_status"] is None


@pytest.mark.usefixtures("subprocess_env")
def test_xdist_workers_rows_are_merged(claims):
    pytest.importorskip("xdist")
    claims.makepyfile(test_one=THREE_VERDICTS, test_two=THREE_VERDICTS.replace('"H-', '"G-'))
    result = claims.runpytest_subprocess(*PLUGIN, *QUIET, "-n", "2", "--claims-run", "r1")
    result.stdout.fnmatch_lines(["*claims: run r1*", "*2 failed, 2 passed, 2 inconclusive*"])
    data = saved(claims)
    assert sorted(r["id"] for r in data["claims"]) == ["G-inc", "G-ref", "G-sup", "H-inc", "H-ref", "H-sup"]
    assert {r["family_size"] for r in data["claims"] if r["family"] == "confirmatory"} == {4}
    assert data["run"]["checksums"] == {"policy": "sha256:feed"}
    assert data["run"]["metadata"] == {"seed_ranges": {"confirm": [10000, 10999]}}
    assert all(r["checksums"] == {"policy": "sha256:feed"} for r in data["claims"])


@pytest.mark.usefixtures("subprocess_env")
def test_under_xdist_a_crashed_worker_and_a_bad_declaration_still_give_rows(claims):
    """Issue 19 item 10: a claim whose worker died and one whose declaration is malformed each get an error row."""
    pytest.importorskip("xdist")
    claims.makepyfile(
        test_one=THREE_VERDICTS,
        test_two="""
        import os
        import pytest
        from conftest import declare

        @declare("H-crash")
        def test_crash(claim):
            os._exit(3)

        @pytest.mark.claim(id="H-bad", statement="s", sites="conv3a", metric="m", seeds="confirmation", n=8)
        def test_bad(claim):
            pass
        """,
    )
    result = claims.runpytest_subprocess(*PLUGIN, *QUIET, "-n", "2", "--claims-run", "r1")
    result.stdout.fnmatch_lines(["*claims: run r1*"])
    rows = {r["id"]: r for r in saved(claims)["claims"]}
    assert sorted(rows) == ["H-bad", "H-crash", "H-inc", "H-ref", "H-sup"]
    assert rows["H-crash"]["verdict"] == "error" and "crashed while running" in rows["H-crash"]["message"]
    assert rows["H-bad"]["verdict"] == "error" and "declare exactly one bound" in rows["H-bad"]["message"]
    assert rows["H-sup"]["verdict"] == "supported" and rows["H-sup"]["family_size"] == 4
