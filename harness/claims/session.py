"""A claims run inside one pytest session: parse declarations, hand each test its claim, collect rows (merging
pytest-xdist workers), decide statuses and write the reports.

How a claim travels through a run (also under pytest-xdist, where each worker runs the same collection):

1. collection: every ``@pytest.mark.claim`` is parsed into a :class:`~harness.claims.claim.ClaimSpec` and counted in
   its family (the ``m`` of the in-test Bonferroni correction); bad declarations error their own test at setup;
2. setup: the test's :class:`~harness.claims.claim.Claim` goes into ``item.stash``; the ``claim`` fixture hands it out;
3. the test calls ``claim.check(result)``: refuted raises, so the test fails with the estimate explaining itself;
4. report (in the worker): the claim's row goes onto ``report.user_properties``; an unchecked claim becomes an
   error, an inconclusive one a failure under ``--claims-strict``;
5. controller: rows are merged and the report files rewritten after each one (a hard crash keeps what came
   before), once more at session finish with the exit status, and a table is printed in the terminal summary.
"""

import json
import platform
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from functools import cached_property
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import pytest

from harness.claims.claim import Claim, ClaimRefuted, ClaimSpec
from harness.claims.options import resolve_options
from harness.claims.records import ClaimRecord, adjust_p_values
from harness.claims.report import render_terminal, write_report
from harness.claims.runs import RunReport, compare_runs, load_run
from harness.errors import ClaimError

__all__ = ["CLAIM", "ClaimRun"]

CLAIM = pytest.StashKey[Claim]()
"""``item.stash`` key of a claim test's :class:`Claim`."""
ROW = "heist_claim"  # user_properties key of a claim's report row
RUN_METADATA = "heist_claims_run"  # user_properties key of metadata recorded in a worker
WORKER_INPUT = "heist_claims"  # xdist workerinput key: the controller's run name and start time


def _git(root: Path, *args: str) -> str | None:
    """``git <args>`` in ``root``; None when git or the repository is missing."""
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _version(package: str) -> str | None:
    try:
        return package_metadata.version(package)
    except package_metadata.PackageNotFoundError:
        return None


def _json_ready(value: Any, what: str) -> Any:
    """``value`` as plain JSON (metadata crosses xdist workers and lands in claims.json)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ClaimError(f"{what} must be plain JSON (str, int, float, bool, None, lists, dicts): {exc}") from exc


class ClaimRun:
    """The session's claims state (in ``config.stash``), registered as a plugin for the hooks below.

    ``add`` records run metadata and checksums (also from xdist workers, which send them with their reports).
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.is_worker = hasattr(config, "workerinput")  # pytest-xdist's documented marker of a worker
        shared = config.workerinput.get(WORKER_INPUT) if self.is_worker else None
        now = datetime.now(timezone.utc)
        self.started = shared["started"] if shared else now.isoformat(timespec="seconds")
        self.options = resolve_options(
            config, shared["run"] if shared else config.getoption("claims_run") or now.strftime("%Y%m%d-%H%M%S")
        )
        compare = self.options.compare
        try:
            self.previous = None if compare is None or self.is_worker else load_run(compare)
        except ClaimError as exc:
            raise pytest.UsageError(str(exc)) from exc
        self.specs: dict[str, ClaimSpec] = {}  # nodeid -> valid declaration
        self.declaration_errors: dict[str, ClaimError] = {}
        self.family_sizes: Counter[str] = Counter()
        self.recorded: dict[str, dict[str, Any]] = {"metadata": {}, "checksums": {}}
        self.pending: dict[str, dict[str, Any]] = {"metadata": {}, "checksums": {}}  # worker: not yet sent
        self.warnings: list[str] = []
        self.records: dict[str, ClaimRecord] = {}  # controller: nodeid -> row
        self.report: RunReport | None = None  # the last one written

    # -- metadata ------------------------------------------------------------------------------------------

    def add(self, kind: str, key: str, value: Any) -> None:
        """Record ``key: value`` under ``kind`` here and, in an xdist worker, queue it for the controller."""
        value = _json_ready(value, f"{kind} {key!r}")
        self.merge(kind, {key: value})
        if self.is_worker:
            self.pending[kind][key] = value

    def merge(self, kind: str, items: Mapping[str, Any]) -> None:
        """Keep the first value of each key; a different later value becomes a warning in the report."""
        target = self.recorded[kind]
        for key, value in items.items():
            if key in target and target[key] != value:
                self.warnings.append(f"{kind} {key!r} recorded as {target[key]!r} and as {value!r}; kept the first")
            target.setdefault(key, value)

    @cached_property
    def environment(self) -> dict[str, Any]:
        """Commit and versions, gathered once when the first report is written (not on every pytest start)."""
        root = self.config.rootpath
        status = _git(root, "status", "--porcelain", "--untracked-files=no")
        return {
            "git_commit": _git(root, "rev-parse", "HEAD"),
            "git_dirty": None if status is None else bool(status),
            "python": platform.python_version(),
            **{package: _version(package) for package in ("numpy", "torch", "pytest")},
            "platform": platform.platform(),
        }

    def build_report(self, exit_status: int | None) -> RunReport:
        claims = adjust_p_values(sorted(self.records.values(), key=lambda r: r.id))
        options = self.options
        run = {
            "run": options.run,
            "started": self.started,
            "finished": None if exit_status is None else datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "exit_status": exit_status,
            **self.environment,
            "checksums": self.recorded["checksums"],
            "policy": self._shown(options.policy),
            "saes": {site: self._shown(path) for site, path in options.saes.items()},
            "sampling_seed": options.sampling_seed,
            "seed_ranges": sorted({r.seeds for r in claims} | {r.selected_on for r in claims if r.selected_on}),
            "alpha": options.alpha,
            "strict": options.strict,
            "compared_with": self._shown(options.compare),
            "metadata": self.recorded["metadata"],
            "warnings": self.warnings,
        }
        comparison = None if self.previous is None else compare_runs(self.previous, claims)
        return RunReport(run=run, claims=claims, comparison=comparison)

    def _shown(self, path: Path | None) -> str | None:
        """A path for the report: relative to the project root when inside it, so that committed reports do not
        carry one machine's directories."""
        if path is None:
            return None
        return str(path.relative_to(self.config.rootpath)) if path.is_relative_to(self.config.rootpath) else str(path)

    def write(self, exit_status: int | None = None) -> None:
        """Rewrite the run's report files from the rows so far (``exit_status`` None: the run is still going)."""
        self.report = self.build_report(exit_status)
        write_report(self.report, self.options.run_dir)

    # -- hooks ---------------------------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: give workers this run's name and start time."""
        node.workerinput[WORKER_INPUT] = {"run": self.options.run, "started": self.started}

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Parse every claim declaration of the run and count each family (identically in every xdist worker)."""
        by_id: dict[str, list[str]] = {}
        for item in session.items:
            marker = item.get_closest_marker("claim")
            if marker is None:
                continue
            try:
                if marker.args:
                    raise ClaimError(f"claim in {item.nodeid}: declare with keywords only, got {marker.args}")
                spec = ClaimSpec.declare(**marker.kwargs)
            except ClaimError as exc:
                self.declaration_errors[item.nodeid] = exc
                continue
            callspec = getattr(item, "callspec", None)
            if callspec is not None:  # each parameter set is a claim of its own
                spec = replace(spec, id=f"{spec.id}[{callspec.id}]")
            self.specs[item.nodeid] = spec
            by_id.setdefault(spec.id, []).append(item.nodeid)
        for claim_id, nodeids in by_id.items():
            if len(nodeids) > 1:
                for nodeid in nodeids:
                    del self.specs[nodeid]
                    self.declaration_errors[nodeid] = ClaimError(
                        f"claim {claim_id!r} is declared by {len(nodeids)} tests ({', '.join(nodeids)}); "
                        "give each claim its own id"
                    )
        self.family_sizes = Counter(spec.family for spec in self.specs.values())

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """A bad declaration errors its test; a good one gets its Claim, before any fixture runs."""
        __tracebackhide__ = True
        if item.nodeid in self.declaration_errors:
            raise self.declaration_errors[item.nodeid]
        spec = self.specs.get(item.nodeid)
        if spec is not None:
            item.stash[CLAIM] = Claim(
                spec=spec, family_alpha=self.options.alpha, family_size=self.family_sizes[spec.family]
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
        """Put the claim's row on its final report (call, or a setup that did not pass), and decide errors."""
        report: pytest.TestReport = yield
        if any(self.pending.values()):
            report.user_properties.append((RUN_METADATA, self.pending))
            self.pending = {"metadata": {}, "checksums": {}}
        claim = item.stash.get(CLAIM, None)
        if claim is None or report.when == "teardown" or (report.when == "setup" and report.passed):
            return report
        status, reason = None, ""
        if report.skipped:
            longrepr = report.longrepr
            status, reason = "skipped", str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)
        elif report.failed and not (call.excinfo is not None and call.excinfo.errisinstance(ClaimRefuted)):
            text = report.longreprtext if call.excinfo is None else call.excinfo.exconly()
            status, reason = "error", (text.strip().splitlines() or ["failed"])[0][:300]
        row = claim.record(test=item.nodeid, checksums=self.recorded["checksums"], status=status, reason=reason)
        if report.passed and row.verdict == "error":
            report.outcome, report.longrepr = "failed", f"ClaimError: claim {row.id!r} {row.message}"
        elif report.passed and row.verdict == "inconclusive" and self.options.strict:
            report.outcome = "failed"
            report.longrepr = f"claim {row.id!r} inconclusive (--claims-strict): {row.message}"
        report.user_properties.append((ROW, row.to_dict()))
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Controller: merge worker metadata and claim rows; rewrite the reports after each row."""
        if self.is_worker:
            return
        for key, value in report.user_properties:
            if key == RUN_METADATA:
                for kind, items in value.items():
                    self.merge(kind, items)
            elif key == ROW:
                self.records[report.nodeid] = ClaimRecord.from_dict(value)
                self.write()

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str | tuple] | None:
        """Show the verdict: SUPPORTED, INCONCLUSIVE (letter I), REFUTED, or ERROR for a claim without one."""
        if report.when != "call":
            return None
        verdict = next((value["verdict"] for key, value in report.user_properties if key == ROW), None)
        if verdict == "supported" and report.passed:
            return "passed", ".", ("SUPPORTED", {"green": True})
        if verdict == "inconclusive":
            return ("inconclusive", "I", ("INCONCLUSIVE", {"yellow": True})) if report.passed else (
                "failed", "F", ("INCONCLUSIVE", {"red": True})
            )
        if verdict == "refuted":
            return "failed", "F", ("REFUTED", {"red": True})
        if verdict == "error":
            return "error", "E", ("ERROR", {"red": True})
        return None

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the final reports, also after a KeyboardInterrupt or a crash in a later test."""
        if not self.is_worker and self.records:
            self.write(exit_status=int(exitstatus))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.report is None:
            return
        terminalreporter.write_sep("=", f"claims: run {self.options.run}")
        for line in render_terminal(self.report):
            terminalreporter.write_line(line)
        for warning in self.warnings:
            terminalreporter.write_line(f"warning: {warning}", yellow=True)
        terminalreporter.write_line(f"reports written to {self.options.run_dir}")
