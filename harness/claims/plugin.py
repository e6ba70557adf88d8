"""pytest plugin for claims: the ``claim`` marker and fixture, run options, verdict statuses and the run's reports.

Registered through the ``pytest11`` entry point ``heist_claims`` (or ``-p harness.claims.plugin`` when not installed).
How a claim travels through a run (also under pytest-xdist, where each worker runs the same collection):

1. collection: every ``@pytest.mark.claim`` is parsed into a :class:`~harness.claims.claim.ClaimSpec` and counted in
   its family (the ``m`` of the in-test Bonferroni correction); bad declarations error their own test at setup;
2. setup: the test's :class:`~harness.claims.claim.Claim` goes into ``item.stash``; the ``claim`` fixture hands it out;
3. the test calls ``claim.check(result)``: refuted raises, so the test fails with the estimate explaining itself;
4. report (in the worker): the claim's row goes onto ``report.user_properties``; an unchecked claim becomes an
   error, an inconclusive one a failure under ``--claims-strict``;
5. controller: rows are merged and the report files rewritten after each one (a hard crash keeps what came
   before), once more at session finish with the exit status, and a table is printed in the terminal summary.

Fixtures that load models build on :func:`claims_options`; they record checksums with :func:`record_checksum`
and anything else worth keeping with :func:`record_run_metadata`.
"""

import json
import platform
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import cached_property
from importlib import metadata as package_metadata
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from harness.claims.claim import Claim, ClaimRefuted, ClaimSpec, adjust_p_values
from harness.errors import ClaimError
from harness.claims.report import ClaimRecord, RunReport, compare_runs, load_run, render_terminal, write_report

__all__ = ["ClaimsOptions", "claim", "claims_options", "record_checksum", "record_run_metadata"]

RUN = pytest.StashKey["ClaimRun"]()
CLAIM = pytest.StashKey[Claim]()
ROW = "heist_claim"  # user_properties key of a claim's report row
RUN_METADATA = "heist_claims_run"  # user_properties key of metadata recorded in a worker
WORKER_INPUT = "heist_claims"  # xdist workerinput key: the controller's run name and start time


@dataclass(frozen=True, kw_only=True)
class ClaimsOptions:
    """The run's command-line options, resolved; the lead's model and sampler fixtures build on these."""

    report_dir: Path
    """Where runs are written: ``<report_dir>/<run>/`` (``--claims-report-dir``, default ``<rootdir>/reports``)."""
    run: str
    """The run's name (``--claims-run``, default the UTC start time ``YYYYMMDD-HHMMSS``)."""
    policy: Path | None
    """Policy checkpoint (``--policy``)."""
    saes: Mapping[str, Path]
    """SAE checkpoint per site (``--sae conv3a=path``, repeatable)."""
    sampling_seed: int
    """Seed of the level sampler (``--sampling-seed``)."""
    alpha: float
    """Family-wise error rate of each family of claims (``--claims-alpha``, default 0.05)."""
    strict: bool
    """Inconclusive claims fail too (``--claims-strict``), for gating a model in CI."""
    compare: Path | None
    """``claims.json`` of the saved run to compare with (``--claims-compare``)."""

    @property
    def run_dir(self) -> Path:
        return self.report_dir / self.run


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("heist claims", "claims about Heist policies (harness.claims.plugin)")
    group.addoption(
        "--claims-report-dir", metavar="DIR", help="write runs under DIR/<run>/ (default: <rootdir>/reports)"
    )
    group.addoption("--claims-run", metavar="NAME", help="name of this run (default: UTC start time)")
    group.addoption("--policy", metavar="PATH", help="policy checkpoint the claims are about")
    group.addoption(
        "--sae", action="append", default=[], metavar="SITE=PATH", help="SAE checkpoint for SITE; repeatable"
    )
    group.addoption("--sampling-seed", type=int, default=0, metavar="INT", help="seed of the level sampler (default 0)")
    group.addoption("--claims-alpha", type=float, default=0.05, metavar="A", help="family-wise alpha (default 0.05)")
    group.addoption("--claims-strict", action="store_true", help="fail inconclusive claims too")
    group.addoption(
        "--claims-compare",
        metavar="PATH_OR_RUN",
        help="compare with a saved run: its directory, its claims.json, a run name, or 'latest'",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "claim(id, statement, sites, metric, seeds, n, lower_bound_above|upper_bound_below|equivalent_within, "
        "family='confirmatory'): declare the claim this test checks (see harness.claims.claim)",
    )
    run = ClaimRun(config)
    config.stash[RUN] = run
    config.pluginmanager.register(run, "heist_claims_run")


@pytest.fixture(scope="session")
def claims_options(pytestconfig: pytest.Config) -> ClaimsOptions:
    """The run's options: report directory, run name, checkpoints, sampling seed, alpha, strictness."""
    return pytestconfig.stash[RUN].options


@pytest.fixture
def claim(request: pytest.FixtureRequest) -> Claim:
    """The claim this test declares with ``@pytest.mark.claim``; call ``claim.check(result)`` once."""
    found = request.node.stash.get(CLAIM, None)
    if found is None:
        raise ClaimError(f"{request.node.nodeid} uses the claim fixture but declares no @pytest.mark.claim(...)")
    return found


def record_run_metadata(config: pytest.Config, key: str, value: Any) -> None:
    """Keep ``key: value`` (plain JSON) in the run's metadata, e.g. seed ranges; works in xdist workers too."""
    config.stash[RUN].add("metadata", key, value)


def record_checksum(config: pytest.Config, name: str, digest: str) -> None:
    """Record a model's checksum (e.g. ``policy``, ``sae/conv3a``): in the run and in every later claim row."""
    if not isinstance(digest, str) or not digest:
        raise ClaimError(f"checksum of {name!r} must be a non-empty string, got {digest!r}")
    config.stash[RUN].add("checksums", name, digest)


def _options(config: pytest.Config, run_name: str) -> ClaimsOptions:
    """Resolve the command line; paths are relative to the invocation directory."""
    here = config.invocation_params.dir
    saes: dict[str, Path] = {}
    for entry in config.getoption("sae"):
        site, sep, path = entry.partition("=")
        if not sep or not site or not path or site in saes:
            raise pytest.UsageError(f"--sae {entry!r}: give SITE=PATH, each site once (e.g. --sae conv3a=sae.pt)")
        saes[site] = here / path
    alpha = config.getoption("claims_alpha")
    if not 0 < alpha < 1:
        raise pytest.UsageError(f"--claims-alpha must lie in (0, 1), got {alpha}")
    if not run_name or Path(run_name).name != run_name or run_name in (".", ".."):
        raise pytest.UsageError(f"--claims-run {run_name!r}: a run name is one path component")
    report_dir = config.getoption("claims_report_dir")
    report_dir = config.rootpath / "reports" if report_dir is None else here / report_dir
    policy, compare = config.getoption("policy"), config.getoption("claims_compare")
    return ClaimsOptions(
        report_dir=report_dir,
        run=run_name,
        policy=None if policy is None else here / policy,
        saes=MappingProxyType(saes),
        sampling_seed=config.getoption("sampling_seed"),
        alpha=alpha,
        strict=config.getoption("claims_strict"),
        compare=None if compare is None else _resolve_compare(compare, here, report_dir, run_name),
    )


def _resolve_compare(value: str, here: Path, report_dir: Path, run_name: str) -> Path:
    """A saved run's ``claims.json``: from a path, a run name under the report directory, or ``latest``."""
    if value == "latest":
        saved = [p for p in report_dir.glob("*/claims.json") if p.parent.name != run_name]
        if not saved:
            raise pytest.UsageError(f"--claims-compare latest: no saved run under {report_dir}")
        return max(saved, key=lambda p: p.stat().st_mtime)
    for path in (here / value, report_dir / value):
        if path.is_dir() and (path / "claims.json").is_file():
            return path / "claims.json"
        if path.is_file():
            return path
    raise pytest.UsageError(
        f"--claims-compare {value!r}: no run directory, claims.json, or run of that name under {report_dir}"
    )


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
    """The session's claims state (in ``config.stash``), registered as a plugin for the hooks below."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.is_worker = hasattr(config, "workerinput")  # pytest-xdist's documented marker of a worker
        shared = config.workerinput.get(WORKER_INPUT) if self.is_worker else None
        now = datetime.now(timezone.utc)
        self.started = shared["started"] if shared else now.isoformat(timespec="seconds")
        self.options = _options(
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
            "seed_ranges": sorted({r.seeds for r in claims}),
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
