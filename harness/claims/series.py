"""One claims run across many checkpoints: the suite once per checkpoint, and one report that lays the claims
side by side over the series (claims x checkpoints, and each claim's estimate over the series as a plot).

Commands (``python -m harness.claims.series --help``)::

    # the shipped agent's training stages, rebuilt from git history and checked against their cards
    python -m harness.claims.series stages --out checkpoints/customcnn_bc
    # the default claim suite on each of them (pytest-xdist workers within each checkpoint's run)
    python -m harness.claims.series run --policies checkpoints/customcnn_bc -n 2
    # on a Ray cluster instead: one Ray task per checkpoint x claim file
    python -m harness.claims.series run --policies checkpoints/customcnn_bc --backend ray --ray-address auto
    # rewrite the tables and the plot from the saved runs
    python -m harness.claims.series report reports/series-customcnn_bc
    # add checkpoints to a saved series (or finish one stopped part-way): only the checkpoints without a run run
    python -m harness.claims.series run --policies checkpoints/customcnn_bc -n 2 --resume

``--policies`` takes policy files and folders of them (a folder's ``*.pt`` in natural order: ``stage2`` before
``stage10``); each checkpoint is labelled by its file's stem.  Any other argument goes to pytest (``--claims-heavy``,
``--sampling-seed 3``, ``-m "not heavy"``...); ``--claims PATH`` names the claim files or folders (default
``claims``).  Each checkpoint's run is a normal claims run, written to ``<out>/runs/<label>/`` by the plugin, so
``read_run`` and ``--claims-compare`` work on it; ``<out>/series.json`` lists them in order, and
:func:`~harness.claims.runs.read_series` reads the series back as claims x checkpoints.

SAEs: a checkpoint uses its own SAEs when they lie beside it as ``<stem>.sae-<site>.pt`` (the stages command writes
each stage's SAEs, retrained on that stage by the SAE card commands, from git history).  ``--sae SITE=PATH`` puts
one SAE on every checkpoint instead (for example the shipped SAE: on an earlier stage an SAE claim then tests the
final agent's SAE spliced into that stage).  A checkpoint with neither uses pytest's defaults (the ini's
``heist_saes``, the shipped SAEs).  The report's checkpoint table names the SAE files each run used.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from harness.claims.report import relative_to_project
from harness.claims.provenance import file_sha256, harness_sha256
from harness.claims.runs import SERIES_FILE, RunReport, load_run
from harness.claims.series_checkpoints import (
    check_finished, find_checkpoints, only_arguments, pytest_command, shown_path,
)
from harness.claims.series_report import write_series_report
from harness.errors import ClaimError

__all__ = ["main", "run_series"]

SET_BY_SERIES = ("--policy", "--sae", "--claims-run", "--claims-report-dir", "--claims-overwrite", "-n",
                 "--numprocesses")  # fmt: skip
BACKENDS = ("xdist", "ray")


def _run_with_xdist(checkpoints, *, claims, pytest_args, only, workers, saes, runs_dir, root, logs) -> Iterator[dict]:
    """Each checkpoint's run in turn, ``workers`` xdist workers each; yields ``{"exit_status", "seconds"}``."""
    for i, checkpoint in enumerate(checkpoints, start=1):
        command = pytest_command(checkpoint, claims=claims, pytest_args=[*pytest_args, *only_arguments(only)],
                                 report_dir=runs_dir, run=checkpoint.label, saes=saes)  # fmt: skip
        command += [] if str(workers) == "0" else ["-n", str(workers)]
        started = time.perf_counter()
        finished = subprocess.run(command, cwd=root, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        output = relative_to_project(finished.stdout + finished.stderr, root)
        (logs / f"{checkpoint.label}.txt").write_text(output, encoding="utf-8")
        check_finished(checkpoint.label, finished.returncode, runs_dir / checkpoint.label / "claims.json", output)
        print(f"[{i}/{len(checkpoints)}] {checkpoint.label}: pytest exit {finished.returncode} in {seconds:.0f} s",
              flush=True)  # fmt: skip
        yield {"exit_status": finished.returncode, "seconds": round(seconds, 1)}


def _same_code(run: RunReport, root: Path) -> bool:
    """Whether a saved run ran this harness code (its recorded ``harness_sha256``; runs from before it was recorded
    count as different) and these claim files (each claim's ``source_sha256`` against its file now)."""
    if run.run.get("harness_sha256") != harness_sha256():
        return False
    files = {r.test.split("::")[0]: r.source_sha256 for r in run.claims if r.test}
    return all(file_sha256(root / file) == sha for file, sha in files.items())


def _kept_runs(out: Path, checkpoints, *, saes, claims, only, pytest_args,
               root: Path) -> tuple[str, dict[str, dict]]:  # fmt: skip
    """When the saved series started, and its checkpoint entries that ``--resume`` keeps, by label: those whose
    policy and SAE files are the ones this run would use (same sha256) and that ran the same harness code and
    claim files.  A series saved with other claims, ``--only`` or pytest arguments is refused: its verdicts would
    not be those of this run."""
    saved = json.loads((out / SERIES_FILE).read_text(encoding="utf-8"))
    asked = {"claims": list(claims), "only": list(only), "pytest_args": list(pytest_args)}
    for key, value in asked.items():
        if saved.get(key) != value:
            raise ClaimError(f"--resume: the series in {out} was run with {key} {saved.get(key)}, this run asks for "
                             f"{value}; resume with the same, or choose another --out")  # fmt: skip
    by_label, kept = {c.label: c for c in checkpoints}, {}
    for entry in saved["checkpoints"]:
        checkpoint = by_label.get(entry["label"])
        saved_run = out / entry["run"] / "claims.json"
        if checkpoint is None or not saved_run.is_file() or entry["policy_sha256"] != file_sha256(checkpoint.policy):
            continue
        run = load_run(out / entry["run"])
        recorded = {k: v for k, v in run.run.get("checksums", {}).items() if k.startswith("sae:")}
        used = {f"sae:{site}": file_sha256(path) for site, path in {**checkpoint.saes, **saes}.items()}
        if recorded == used and _same_code(run, root):
            kept[entry["label"]] = entry
    return saved["started"], kept


def run_series(policies: Sequence[str | os.PathLike], *, out: str | os.PathLike, claims: Sequence[str] = ("claims",),
               pytest_args: Sequence[str] = (), workers: int | str = "auto", backend: str = "xdist",
               saes: Mapping[str, str | os.PathLike] | None = None, name: str | None = None,
               only: Sequence[str] = (), root: str | os.PathLike = ".", overwrite: bool = False,
               resume: bool = False, ray_address: str | None = None) -> Path:  # fmt: skip
    """Run the claim suite once per checkpoint and write the series report into ``out``; returns ``out``.

    ``backend="xdist"`` runs the checkpoints one after another, each with ``workers`` pytest-xdist workers
    (``0``: none); ``"ray"`` runs one Ray task per checkpoint x claim file (:mod:`harness.claims.series_ray`).
    ``only`` names claim files (relative to ``root``) or tests (node ids) to run out of those collected: the
    others' claims are collected, so every family keeps the suite's size and each claim the confidence it has in
    a whole run, but skipped (:mod:`harness.claims.series_only`); the report lists them apart.
    ``root`` is where pytest runs (the project whose ``claims`` and ini are used).  With xdist, ``series.json``
    and the report are rewritten after each checkpoint, so a series stopped part-way keeps what it finished
    (``finished`` stays null until the last checkpoint).  ``resume=True`` keeps the saved series' runs of
    checkpoints whose policy and SAE files are unchanged (same sha256) and that ran the same harness code and claim
    files, and runs the others: new checkpoints, changed ones, those a stopped series did not reach, and all of them
    after a change to the code that decides their verdicts.

        run_series(["checkpoints/customcnn_bc"], out="reports/series-customcnn_bc", pytest_args=["--claims-heavy"])
    """
    checkpoints = find_checkpoints(policies)
    if backend not in BACKENDS:
        raise ClaimError(f"backend {backend!r} is none of {BACKENDS}")
    clashing = [a for a in pytest_args if a.split("=")[0] in SET_BY_SERIES]
    if clashing:
        raise ClaimError(f"pytest argument {clashing[0]!r} is set by the series for each checkpoint; use the series' "
                         "own --sae, --workers (-n), --out and --overwrite")  # fmt: skip
    if not claims:
        raise ClaimError("no claim files: pass --claims PATH (files or folders), e.g. --claims claims")
    root, out = Path(root).resolve(), Path(out).absolute()
    if overwrite and resume:
        raise ClaimError("--overwrite replaces a saved series and --resume adds to it: pass one of them")
    if (out / SERIES_FILE).exists() and not (overwrite or resume):
        raise ClaimError(f"a series is saved in {out}; every series is kept, so choose another --out, pass "
                         "--overwrite to replace it, or --resume to run only the checkpoints it lacks")  # fmt: skip
    saes = {site: Path(path) for site, path in (saes or {}).items()}
    missing = [f"{site}={path}" for site, path in saes.items() if not path.is_file()]
    if missing:
        raise ClaimError(f"SAE checkpoint {missing[0]} does not exist")
    first_started, kept = None, {}
    if resume and (out / SERIES_FILE).exists():
        first_started, kept = _kept_runs(out, checkpoints, saes=saes, claims=claims, only=only,
                                         pytest_args=pytest_args, root=root)  # fmt: skip
    absent = [file for file in only if not (root / file.split("::")[0]).is_file()]
    if absent:
        raise ClaimError(f"--only {absent[0]}: no such claim file under {root}")
    runs_dir, logs = out / "runs", out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    options = {"claims": list(claims), "pytest_args": list(pytest_args), "only": list(only), "saes": saes,
               "runs_dir": runs_dir, "root": root}  # fmt: skip
    to_run = [c for c in checkpoints if c.label not in kept]
    if backend == "ray":
        from harness.claims.series_ray import run_with_ray

        results = iter(run_with_ray(to_run, address=ray_address, logs=logs, **options))
    else:
        results = _run_with_xdist(to_run, workers=workers, logs=logs, **options)
    meta = {
        "series": name or out.name, "backend": backend if backend == "ray" else f"xdist (-n {workers})",
        "claims": list(claims), "only": list(only), "pytest_args": list(pytest_args), "started": started,
        "finished": None,
        "checkpoints": [],
    }  # fmt: skip
    if kept:  # the series began with its first run; this run resumed it
        meta["started"] = first_started
        meta["resumed"], meta["kept_from_before"] = started, [c.label for c in checkpoints if c.label in kept]
    done = dict(kept)

    def save() -> None:
        meta["checkpoints"] = [done[c.label] for c in checkpoints if c.label in done]
        if len(done) == len(checkpoints):
            meta["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (out / SERIES_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        write_series_report(out)

    for checkpoint, result in zip(to_run, results):
        done[checkpoint.label] = {
            "label": checkpoint.label, "policy": shown_path(checkpoint.policy, root),
            "policy_sha256": file_sha256(checkpoint.policy),
            "saes_used": load_run(runs_dir / checkpoint.label).run.get("saes"), "run": f"runs/{checkpoint.label}",
            **result,
        }  # fmt: skip
        save()
    if not to_run:
        save()
    return out


def _default_out(first_policy: str) -> str:
    """``reports/series-<folder>``: the folder named first, or the folder of the policy file named first."""
    path = Path(first_policy).resolve()
    return f"reports/series-{(path.parent if path.is_file() else path).name}"


def _sae_entries(entries: Sequence[str]) -> dict[str, str]:
    saes = {}
    for entry in entries:
        site, sep, path = entry.partition("=")
        if not sep or not site or not path or site in saes:
            raise ClaimError(f"--sae {entry!r}: give SITE=PATH, each site once (e.g. --sae conv4a=sae.pt)")
        saes[site] = path
    return saes


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m harness.claims.series", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    stages = commands.add_parser("stages", help="rebuild the shipped agent's training stages from git history")
    stages.add_argument("--out", required=True, help="folder to write stageN.pt (and their SAEs) into")
    run = commands.add_parser("run", help="run the claim suite on each checkpoint and write the series report; "
                                          "other arguments go to pytest")  # fmt: skip
    run.add_argument("--policies", nargs="+", required=True, help="policy files and folders of them, in order")
    run.add_argument("--out", help="series folder (default reports/series-<name of the first --policies>)")
    run.add_argument("--claims", nargs="+", default=["claims"], help="claim files or folders (default: claims)")
    run.add_argument("--only", nargs="+", default=[], metavar="FILE",
                     help="run only these claim files' (or tests') claims; the rest are collected for the family sizes")
    run.add_argument("-n", "--workers", default="auto", help="pytest-xdist workers per checkpoint (0: none)")
    run.add_argument("--sae", action="append", default=[], metavar="SITE=PATH", help="one SAE for every checkpoint")
    run.add_argument("--backend", choices=BACKENDS, default="xdist", help="xdist (default) or ray")
    run.add_argument("--ray-address", help="Ray cluster to join (e.g. auto); default: a local Ray instance")
    run.add_argument("--name", help="the series' name in its report (default: the --out folder's name)")
    run.add_argument("--overwrite", action="store_true", help="replace a series saved in --out")
    run.add_argument("--resume", action="store_true",
                     help="keep the saved series' runs of unchanged checkpoints and run only the others")
    report = commands.add_parser("report", help="rewrite a series' tables and plot from its saved runs")
    report.add_argument("folder")
    args, pytest_args = parser.parse_known_args(argv)
    pytest_args = [a for a in pytest_args if a != "--"]
    try:
        if args.command == "stages":
            from harness.claims.series_stages import rebuild_stages

            manifest = rebuild_stages(args.out)
            for stage in manifest["stages"]:
                extra = f": {stage['rebuild']}" if "rebuild" in stage and stage["status"] == "missing" else ""
                rebuilt = f", rebuilt {stage['actual_sha256'][:16]}" if "actual_sha256" in stage else ""
                print(f"{stage['label']}: {stage['status']} (sha256 {stage['sha256'][:16]}{rebuilt}){extra}")
            return 0
        if args.command == "report":
            print("\n".join(map(str, write_series_report(args.folder))))
            return 0
        folder = run_series(args.policies, out=args.out or _default_out(args.policies[0]), claims=args.claims,
                            pytest_args=pytest_args, workers=args.workers,
                            backend=args.backend, saes=_sae_entries(args.sae), name=args.name, only=args.only,
                            overwrite=args.overwrite, resume=args.resume, ray_address=args.ray_address)  # fmt: skip
        print(f"series report written to {folder}")
        return 0
    except ClaimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
