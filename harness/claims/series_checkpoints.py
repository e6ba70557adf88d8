"""The checkpoints of a series (:mod:`harness.claims.series`): finding them and their SAEs, the pytest command of
one checkpoint's run, and the check that a run finished.  Shared by the xdist and the Ray backends.

    checkpoints = find_checkpoints(["checkpoints/customcnn_bc"])  # stage1, stage2, ..., stage10
    command = pytest_command(checkpoints[0], claims=["claims"], pytest_args=[], report_dir=Path("r"), run="stage1")
"""

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ClaimError

__all__ = ["ONLY_REASON", "Checkpoint", "check_finished", "find_checkpoints", "only_arguments", "pytest_command",
           "shown_path"]

ONLY_REASON = "collected for the family sizes, not run: this run runs only the claims of"
"""The start of the skip reason of a claim outside the files a run runs (:mod:`harness.claims.series_only`); a
series report lists such claims apart instead of as skipped cells."""

SAE_MARK = ".sae-"


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """One policy of the series, its label (the file's stem) and the SAEs found beside it, by site."""

    label: str
    policy: Path
    saes: Mapping[str, Path] = field(default_factory=dict)


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def find_checkpoints(paths: Sequence[str | os.PathLike]) -> tuple[Checkpoint, ...]:
    """The series' checkpoints, in the order given (a folder's policies in natural order), each with the SAEs
    beside it (``<stem>.sae-<site>.pt``).

        find_checkpoints(["checkpoints/customcnn_bc"])  # stage1, stage2, ..., stage8, stage10
    """
    if not paths:
        raise ClaimError("a checkpoint series needs at least one policy: pass --policies FILE_OR_FOLDER ...")
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted((p for p in path.glob("*.pt") if SAE_MARK not in p.name), key=lambda p: _natural(p.name))
            if not found:
                raise ClaimError(f"folder {path} holds no policy checkpoint (*.pt besides *{SAE_MARK}SITE.pt)")
            files += found
        elif path.is_file():
            if SAE_MARK in path.name:
                raise ClaimError(f"{path} is an SAE ({SAE_MARK}SITE.pt), not a policy; pass the policy beside it")
            files.append(path)
        else:
            raise ClaimError(f"checkpoint {path} does not exist; pass policy files (.pt) or folders of them")
    labels = [p.stem for p in files]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ClaimError(f"two checkpoints are labelled {twice[0]!r} (labels are file stems); rename one")
    return tuple(
        Checkpoint(label=p.stem, policy=p, saes={s.name[len(p.stem) + len(SAE_MARK):-3]: s
                                                 for s in sorted(p.parent.glob(f"{p.stem}{SAE_MARK}*.pt"))})
        for p in files
    )  # fmt: skip


def pytest_command(checkpoint: Checkpoint, *, claims: Sequence[str], pytest_args: Sequence[str], report_dir: Path,
                   run: str, saes: Mapping[str, Path] = {}) -> list[str]:  # fmt: skip
    """The pytest command line of one checkpoint's run (``saes`` replace the checkpoint's own by site)."""
    chosen = {**checkpoint.saes, **saes}
    return [
        sys.executable, "-m", "pytest", *claims, *pytest_args, f"--policy={checkpoint.policy.resolve()}",
        *(f"--sae={site}={path.resolve()}" for site, path in chosen.items()),
        f"--claims-report-dir={report_dir.resolve()}", f"--claims-run={run}", "--claims-overwrite",
        "-p", "no:cacheprovider",
    ]  # fmt: skip


def only_arguments(files: Sequence[str]) -> list[str]:
    """pytest arguments that collect the whole suite but run only ``files``' claims (none: run everything)."""
    if not files:
        return []
    return ["-p", "harness.claims.series_only", *(f"--claims-only-file={file}" for file in files)]


def check_finished(label: str, exit_status: int, claims_json: Path, output: str) -> None:
    """pytest exits 0 (all claims passed) or 1 (some refuted or errored) on a finished run; anything else, or no
    report, stops the series with pytest's last words."""
    if exit_status not in (0, 1) or not claims_json.is_file():
        raise ClaimError(f"pytest on checkpoint {label} exited {exit_status} without a finished report "
                         f"({claims_json}); its output ends:\n{output[-3000:]}")  # fmt: skip


def shown_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (reports do not carry one machine's folders), else absolute."""
    path = path.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
