"""A checkpoint series on a Ray cluster: one Ray task per checkpoint x claim file, merged into one run per
checkpoint with the same rows as the xdist run.

Each task runs pytest on the whole claim suite with :mod:`harness.claims.series_only`, which runs one file's
claims and skips the rest, so every family has the size it has in one run and each claim its run's confidence.
The series keeps each claim's row from its own file's task, fills Holm's adjusted p-values across the merged run
(as the xdist controller does once every worker's rows are in), and writes the run with the same writers.  Ray
does all the scheduling (``num_cpus=1`` per task); the checkpoint files travel with the tasks, and the code comes
from the project at ``root`` on each node (a shared checkout), else from the task's working directory (Ray's
``runtime_env={"working_dir": ...}``, given to ``ray.init`` by the caller who starts the Ray instance).

Needs the optional extra: ``pip install -e '.[ray]'``.  Joins the Ray instance the caller started
(``ray.init(num_cpus=2)``), else the cluster at ``address`` (``auto``, ``ray://...``), else starts a local one.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.claims.records import ClaimRecord, adjust_p_values
from harness.claims.report import relative_to_project, write_report
from harness.claims.runs import RunReport, load_run
from harness.claims.series_checkpoints import (
    Checkpoint, check_finished, only_arguments, pytest_command, shown_path,
)
from harness.errors import ClaimError

__all__ = ["claim_files", "merge_file_runs", "project_on_this_node", "run_with_ray"]

PYTHON_FILES = ("test_*.py", "*_test.py")  # pytest's default python_files


def claim_files(claims: Sequence[str], root: Path) -> list[str]:
    """The test files under ``claims`` (files or folders, relative to ``root``), as paths relative to ``root``."""
    found: list[str] = []
    for claim in claims:
        path = root / claim
        if path.is_dir():
            files = sorted({p for pattern in PYTHON_FILES for p in path.rglob(pattern)})
        elif path.is_file():
            files = [path]
        else:
            raise ClaimError(f"claim path {claim} does not exist under {root}")
        found += [p.relative_to(root).as_posix() for p in files if p.relative_to(root).as_posix() not in found]
    if not found:
        raise ClaimError(f"no claim files (test_*.py) under {', '.join(claims)}")
    return found


def project_on_this_node(root: str, claims: Sequence[str]) -> str:
    """Where a task finds the project: at ``root``, the driver's path (a shared checkout), else in the task's working
    directory (where Ray's ``runtime_env={"working_dir": ...}`` unpacks it on a node without that path)."""
    for folder in (root, os.getcwd()):
        if all((Path(folder) / claim).exists() for claim in claims):
            return folder
    raise ClaimError(f"node {socket.gethostname()} has no {', '.join(claims)} under {root} (the driver's project) nor "
                     f"under its working directory {os.getcwd()}: give each node a checkout at {root}, or start Ray "
                     f"with runtime_env={{'working_dir': <the project>}} and run the series from that Ray instance")


def _run_one_file(root: str, claims: list[str], only: str, run: str, report_dir: str, models: dict[str, bytes],
                  pytest_args: list[str]) -> dict[str, Any]:  # fmt: skip
    """A Ray task: pytest on the suite, running ``only``'s claims on the checkpoint given as bytes (``policy`` and
    ``sae:<site>``); returns its ``claims.json`` text, exit status, output tail, seconds and where it ran (Ray's
    node id and the host's name)."""
    import ray

    with tempfile.TemporaryDirectory(prefix="series-task-") as scratch:
        paths = {}
        for key, data in models.items():
            paths[key] = Path(scratch) / f"{key.replace(':', '-')}.pt"
            paths[key].write_bytes(data)
        saes = {key.split(":", 1)[1]: path for key, path in paths.items() if key.startswith("sae:")}
        checkpoint = Checkpoint(label=run, policy=paths["policy"], saes=saes)
        command = pytest_command(checkpoint, claims=claims, report_dir=Path(report_dir), run=run,
                                 pytest_args=[*pytest_args, *only_arguments([only])])  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}  # one core per task
        started = time.perf_counter()
        done = subprocess.run(command, cwd=project_on_this_node(root, claims), capture_output=True, text=True, env=env)
        claims_json = Path(report_dir) / run / "claims.json"
        return {
            "exit_status": done.returncode, "output": (done.stdout + done.stderr)[-6000:],
            "claims_json": claims_json.read_text(encoding="utf-8") if claims_json.is_file() else None,
            "seconds": time.perf_counter() - started,
            "node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
        }  # fmt: skip


def _same_file(a: str, b: str) -> bool:
    """Two paths of one file (or node ids of one test), relative to different folders (project, pytest's rootdir)."""
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def merge_file_runs(label: str, parts: Sequence[tuple[str, RunReport]]) -> RunReport:
    """One checkpoint's run from its per-file runs (``(file, run)``): each claim's row from its own file's run (a
    claim of a file no task ran keeps its skipped row), Holm's p-values filled across them, metadata from the
    first part (times spanning all, warnings of all)."""
    rows: dict[str, ClaimRecord] = {}
    for file, report in parts:
        for row in report.claims:
            if _same_file(file, row.test if "::" in file else row.test.split("::")[0]):
                if row.id in rows:
                    raise ClaimError(f"claim {row.id!r} has a row in two tasks of checkpoint {label}")
                rows[row.id] = row
    for row in parts[0][1].claims:  # claims of files no task ran (outside --only): their skipped rows
        rows.setdefault(row.id, row)
    runs = [report.run for _, report in parts]
    statuses = [r.get("exit_status") for r in runs if r.get("exit_status") is not None]
    run = {
        **runs[0], "run": label, "started": min(str(r.get("started")) for r in runs),
        "finished": max(str(r.get("finished")) for r in runs), "exit_status": max(statuses, default=None),
        "warnings": sorted({w for r in runs for w in r.get("warnings", [])}),
        "metadata": {k: v for r in runs for k, v in (r.get("metadata") or {}).items()},
    }  # fmt: skip
    return RunReport(run=run, claims=adjust_p_values(sorted(rows.values(), key=lambda r: r.id)))


def _models(checkpoint, saes: Mapping[str, Path]) -> dict[str, bytes]:
    chosen = {**checkpoint.saes, **saes}
    return {"policy": checkpoint.policy.read_bytes(), **{f"sae:{s}": p.read_bytes() for s, p in chosen.items()}}


def run_with_ray(checkpoints, *, claims: Sequence[str], pytest_args: Sequence[str], saes: Mapping[str, Path],
                 runs_dir: Path, root: Path, logs: Path, only: Sequence[str] = (),
                 address: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Run every checkpoint x claim file (those of ``only`` when given) as a Ray task, merge each checkpoint's tasks
    into ``runs_dir/<label>/`` (its ``ray_tasks`` say which node ran each file); returns per checkpoint
    ``{"exit_status", "seconds"}`` (seconds summed over its tasks).  Claims of files outside ``only`` keep their
    skipped rows, as in an xdist run with ``only``."""
    try:
        import ray
    except ImportError as exc:
        raise ClaimError("the Ray backend needs ray: pip install -e '.[ray]' (or pip install 'ray>=2.9')") from exc
    if not ray.is_initialized():
        ray.init(address=address)
    files = list(only) or claim_files(claims, root)
    task = ray.remote(num_cpus=1)(_run_one_file)
    scratch = runs_dir.parent / ".ray"  # per-task runs; also the shared selection cache on one machine
    futures = {
        (c.label, file): task.remote(str(root), list(claims), file, f"{c.label}--{Path(file).stem}", str(scratch),
                                     _models(c, saes), list(pytest_args))
        for c in checkpoints for file in files
    }  # fmt: skip
    results = dict(zip(futures, ray.get(list(futures.values()))))
    done = []
    for c in checkpoints:
        parts = []
        for file in files:
            result = results[c.label, file]
            output = relative_to_project(result["output"], root)
            (logs / f"{c.label}--{Path(file).stem}.txt").write_text(output, encoding="utf-8")
            report_path = scratch / f"{c.label}--{Path(file).stem}" / "claims.json"
            if result["claims_json"] is not None:  # a remote node wrote its own copy: keep one here
                report_path.parent.mkdir(parents=True, exist_ok=True)
                report_path.write_text(result["claims_json"], encoding="utf-8")
            check_finished(f"{c.label} (task of {file})", result["exit_status"], report_path, result["output"])
            parts.append((file, load_run(report_path)))
        merged = merge_file_runs(c.label, parts)
        given = {s: shown_path(p, root) for s, p in {**c.saes, **saes}.items()}  # the tasks had temporary copies
        saes_used = {**(merged.run.get("saes") or {}), **given}
        where = [{"file": f, **{k: results[c.label, f][k] for k in ("node", "host")},
                  "seconds": round(results[c.label, f]["seconds"], 1)} for f in files]  # fmt: skip
        shown = {"policy": shown_path(c.policy, root), "backend": "ray", "saes": saes_used, "ray_tasks": where}
        write_report(RunReport(run={**merged.run, **shown}, claims=merged.claims), runs_dir / c.label, root=root)
        done.append({"exit_status": merged.run["exit_status"],
                     "seconds": round(sum(results[c.label, f]["seconds"] for f in files), 1)})  # fmt: skip
    return done
