"""Where a run came from: the commit and versions it ran with, the content hash of the harness's code, and that of
each claim's source."""

import hashlib
import platform
import subprocess
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

__all__ = ["file_sha256", "harness_sha256", "run_environment"]


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


def file_sha256(path: Path) -> str | None:
    """sha256 of a claim's file (its source, constants and helpers), or None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def harness_sha256() -> str:
    """sha256 over the harness package's Python files (in path order): two runs with the same value ran the same
    harness code, whatever their commits."""
    package = Path(__file__).resolve().parent.parent
    return hashlib.sha256(b"".join(file_sha256(p).encode() for p in sorted(package.rglob("*.py")))).hexdigest()


SOURCE_FILES = ("*.py", "*.toml", "*.cfg", "*.ini")
"""What ``git_dirty`` looks at: code and configuration.  Reports a run writes (even committed ones) are outputs,
and the models and SAEs a run reads are recorded by their sha256."""


def run_environment(root: Path) -> dict[str, Any]:
    """The commit of ``root`` (and whether tracked source files, :data:`SOURCE_FILES`, differ from it), the harness
    code's hash, the Python, numpy, torch and pytest versions, and the platform."""
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--",
                  *(f":/{pattern}" for pattern in SOURCE_FILES))  # the whole repository, whichever folder root is
    return {
        "git_commit": _git(root, "rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "harness_sha256": harness_sha256(),
        "python": platform.python_version(),
        **{package: _version(package) for package in ("numpy", "torch", "pytest")},
        "platform": platform.platform(),
    }
