"""A claims run inside one pytest session: parse declarations, hand each test its claim, collect rows (merging
pytest-xdist workers), decide statuses and write the reports.

How a claim travels through a run (also under pytest-xdist, where each worker runs the same collection):

1. collection: claims marked ``heavy`` are deselected unless asked for (``--claims-heavy`` or ``-m heavy``); every
   ``@pytest.mark.claim`` is parsed into a :class:`~harness.claims.claim.ClaimSpec` and counted in its family (the
   ``m`` of the in-test Bonferroni correction); a claim that does not apply to the policy under test (another
   architecture, a missing SAE: :func:`~harness.claims.declaration.applied`) is set aside as skipped, outside ``m``;
   bad declarations error their own test at setup; each claim gets a row-in-waiting (an ERROR row, or its SKIPPED
   row) and its source hash, so that a claim whose test or worker crashed still has a row;
2. setup: the test's :class:`~harness.claims.claim.Claim` goes into ``item.stash``; the ``claim`` fixture hands it out;
3. the test calls ``claim.check(result)``: refuted raises, so the test fails with the estimate explaining itself;
4. report (in the worker): the claim's row goes onto ``report.user_properties``; an unchecked claim becomes an
   error, an inconclusive one a failure under ``--claims-strict``;
5. controller: rows are merged and the report files rewritten after each one (a hard crash keeps what came
   before), once more at session finish with the exit status, and a table is printed in the terminal summary.
   The run's folder is created at the first row and never reused: each row also says how many earlier runs of the
   same claim source (``history``) the report folder holds, and what they said.
"""

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from harness.claims.claim import Claim, ClaimRefuted
from harness.claims.declaration import ClaimSpec, applied
from harness.claims.records import FAMILIES
from harness.claims.options import reserve_run_dir, resolve_options
from harness.claims.provenance import file_sha256, run_environment
from harness.claims.records import ClaimRecord, adjust_p_values
from harness.claims.report import render_terminal, write_report
from harness.claims.runs import RunReport, compare_runs, earlier_runs, load_run, rerun_key
from harness.errors import ClaimError, HarnessError

__all__ = ["CLAIM", "ClaimRun"]

CLAIM = pytest.StashKey[Claim]()
"""``item.stash`` key of a claim test's :class:`Claim`."""
ROW = "heist_claim"  # user_properties key of a claim's report row
RUN_METADATA = "heist_claims_run"  # user_properties key of metadata recorded in a worker
WORKER_INPUT = "heist_claims"  # xdist workerinput key: the controller's run name and start time
KINDS = ("metadata", "checksums", "claims", "collection")  # what workers send: run metadata, model checksums,
# each collected claim's row-in-waiting (an error row until its result comes), what selection left out
NOT_RUN = "did not run: the session ended before it (a crash, an interrupt or --maxfail)"


def _family_of(declaration: Mapping[str, Any]) -> str:
    """The family a declaration names, or the default one when it names none it may."""
    return declaration["family"] if declaration.get("family") in FAMILIES else FAMILIES[0]


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
        self.declaration_errors: dict[str, HarnessError] = {}
        self.skips: dict[str, str] = {}  # nodeid -> why the claim does not apply to the policy under test
        self.family_sizes: Counter[str] = Counter()
        self.recorded: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self.pending: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}  # worker: not yet sent
        self.sources: dict[str, str] = {}  # nodeid -> sha256 of the claim's file
        self.heavy: set[str] = set()  # nodeids this plugin deselected as heavy
        self.crashed: dict[str, str] = {}  # controller: nodeid -> why its worker gave no row
        self.reserved = False  # whether the run's folder is created
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
        return run_environment(self.config.rootpath)

    @cached_property
    def history(self) -> dict[tuple, tuple[dict[str, Any], ...]]:
        """Earlier runs in the report folder by (claim id, source hash, models read), read once when the first row
        is written."""
        return earlier_runs(self.options.report_dir, besides=self.options.run)

    def rows(self, exit_status: int | None) -> list[ClaimRecord]:
        """Every claim's row: its own, or an error saying why it has none (its worker crashed; at the end of the
        session, it never ran), each but a skipped one with the earlier runs of the same test (:func:`rerun_key`)."""
        rows = dict(self.records)
        for nodeid, waiting in self.recorded["claims"].items():
            if nodeid not in rows and (nodeid in self.crashed or exit_status is not None):
                reason = self.crashed.get(nodeid, NOT_RUN)
                rows[nodeid] = replace(ClaimRecord.from_dict(waiting), message=reason)
        return [replace(row, history=self.history.get(rerun_key(row), ())) for row in rows.values()]

    def build_report(self, exit_status: int | None) -> RunReport:
        claims = adjust_p_values(sorted(self.rows(exit_status), key=lambda r: r.id))
        options = self.options
        collection = self.recorded["collection"]
        left_out = {kind: sorted(n for n, k in collection.items() if k == kind) for kind in ("deselected", "heavy")}
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
            "partial_family": bool(left_out["deselected"]),
            "deselected_claims": left_out["deselected"],
            "heavy_claims_not_run": left_out["heavy"],
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
        if not self.reserved:
            try:
                self.options = reserve_run_dir(self.options)
            except ClaimError as exc:
                raise pytest.UsageError(str(exc)) from exc
            self.reserved = True
        self.report = self.build_report(exit_status)
        write_report(self.report, self.options.run_dir)

    # -- hooks ---------------------------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: give workers this run's name and start time."""
        node.workerinput[WORKER_INPUT] = {"run": self.options.run, "started": self.started}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """Deselect the tests marked ``heavy`` unless the run asks for them."""
        if self.options.heavy:
            return
        heavy = [item for item in items if item.get_closest_marker("heavy") is not None]
        if heavy:
            self.heavy = {item.nodeid for item in heavy}
            items[:] = [item for item in items if item.nodeid not in self.heavy]
            config.hook.pytest_deselected(items=heavy)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        """Remember claims left out of the run: by the user (a partial family) or as heavy."""
        for item in items:
            if item.get_closest_marker("claim") is not None:
                kind = "heavy" if item.nodeid in self.heavy else "deselected"
                self.add("collection", item.nodeid, kind)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Parse every claim declaration of the run and count each family (identically in every xdist worker);
        give each claim its source hash and its row-in-waiting."""
        by_id: dict[str, list[str]] = {}
        claims = [(item, item.get_closest_marker("claim")) for item in session.items]
        claims = [(item, marker) for item, marker in claims if marker is not None]
        for item, marker in claims:
            self.sources[item.nodeid] = file_sha256(item.path)
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
        self._apply_to_policy()
        unreadable = {item.nodeid: marker.kwargs for item, marker in claims if item.nodeid in self.declaration_errors}
        self.family_sizes = Counter(spec.family for n, spec in self.specs.items() if n not in self.skips)
        self.family_sizes.update(_family_of(k) for k in unreadable.values())
        alpha = self.options.alpha
        for item, _ in claims:
            nodeid, source = item.nodeid, self.sources[item.nodeid]
            if nodeid in unreadable:
                error = self.declaration_errors[nodeid]
                row = ClaimRecord.unreadable(
                    unreadable[nodeid], test=nodeid, reason=f"{type(error).__name__}: {error}", family_alpha=alpha,
                    family_size=self.family_sizes[_family_of(unreadable[nodeid])], source_sha256=source,
                )
            else:
                skipped = self.skips.get(nodeid)
                row = self._claim(self.specs[nodeid]).record(
                    test=nodeid, checksums={}, status="error" if skipped is None else "skipped",
                    reason=skipped or NOT_RUN, source_sha256=source,
                )  # fmt: skip
            self.add("claims", nodeid, row.to_dict())

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """A bad declaration errors its test; a good one gets its Claim, before any fixture runs."""
        __tracebackhide__ = True
        if item.nodeid in self.declaration_errors:
            raise self.declaration_errors[item.nodeid]
        spec = self.specs.get(item.nodeid)
        if spec is not None:
            item.stash[CLAIM] = self._claim(spec)
        if item.nodeid in self.skips:
            pytest.skip(self.skips[item.nodeid])

    def _claim(self, spec: ClaimSpec) -> Claim:
        """The claim of ``spec`` in this run; a claim skipped for the policy is no member of its family (``m``), so
        it gets the family's size, or 1 where every member was skipped."""
        return Claim(spec=spec, family_alpha=self.options.alpha, family_size=max(1, self.family_sizes[spec.family]))

    def _apply_to_policy(self) -> None:
        """Name the role sites of the claims as the policy under test resolves them; set aside the claims that do
        not apply to it (their reason in ``skips``); a role that does not resolve errors its claim."""
        policy = self.policy_model
        if policy is None:
            return
        for nodeid, spec in list(self.specs.items()):
            try:
                self.specs[nodeid], reason = applied(spec, policy, sae_sites=self.options.saes)
            except HarnessError as exc:
                del self.specs[nodeid]
                self.declaration_errors[nodeid] = exc
                continue
            if reason is not None:
                self.skips[nodeid] = reason

    @cached_property
    def policy_model(self) -> Any:
        """The policy under test, loaded once for the run (the ``policy`` fixture hands out this model); None when
        there is no file or it does not load (the fixture then says why)."""
        from harness.policy.models import load_policy

        path = self.options.policy
        try:
            return None if path is None or not path.is_file() else load_policy(path)
        except HarnessError:
            return None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
        """Put the claim's row on its final report (call, or a setup that did not pass), and decide errors."""
        report: pytest.TestReport = yield
        if any(self.pending.values()):
            report.user_properties.append((RUN_METADATA, self.pending))
            self.pending = {kind: {} for kind in KINDS}
        if item.nodeid in self.declaration_errors and report.when == "setup":
            report.user_properties.append((ROW, self.recorded["claims"][item.nodeid]))
        claim = item.stash.get(CLAIM, None)
        if claim is None or report.when == "teardown" or (report.when == "setup" and report.passed):
            return report
        status, reason = None, ""
        if report.skipped:
            longrepr = report.longrepr
            status, reason = "skipped", str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)
            reason = reason.removeprefix("Skipped: ")
        elif report.failed and not (call.excinfo is not None and call.excinfo.errisinstance(ClaimRefuted)):
            text = report.longreprtext if call.excinfo is None else call.excinfo.exconly()
            status, reason = "error", (text.strip().splitlines() or ["failed"])[0][:300]
        row = claim.record(test=item.nodeid, checksums=self.recorded["checksums"], status=status, reason=reason,
                           source_sha256=self.sources.get(item.nodeid))
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
        rows = [value for key, value in report.user_properties if key == ROW]
        for key, value in report.user_properties:
            if key == RUN_METADATA:
                for kind, items in value.items():
                    self.merge(kind, items)
        for value in rows:
            self.records[report.nodeid] = ClaimRecord.from_dict(value)
        crashed = not rows and report.failed and report.when not in ("setup", "call", "teardown")
        if crashed:  # pytest-xdist's report of a worker that crashed while running this test (when '???')
            self.crashed.setdefault(report.nodeid, str(report.longrepr).strip().splitlines()[0][:300])
        if rows or crashed:
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
        collected_only = session.config.option.collectonly
        if not self.is_worker and not collected_only and (self.records or self.recorded["claims"]):
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
