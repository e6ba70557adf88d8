"""Time the claim suite: per claim (setup, call and teardown, so a shared selection fixture counts where it first
runs) and in total, as the README's first command runs it (``pytest claims -n 2``).

    .venv/bin/python bench/bench_claims.py                 # the default suite, 2 workers
    .venv/bin/python bench/bench_claims.py --workers 0     # serially
    .venv/bin/python bench/bench_claims.py --heavy claims/test_channels.py   # with heavy claims, one file

Runs write to a temporary report folder (never ``reports/``), with a fresh selection cache unless ``--warm`` is
given, so the figures include computing each selection once.  Prints one line per claim, slowest first, then the
total wall time; the target for the default suite is under 300 s on 2 cores (issue 21 E).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (0: serial; default 2)")
    parser.add_argument("--heavy", action="store_true", help="run claims marked heavy too")
    parser.add_argument("--warm", metavar="DIR", help="report folder to reuse (its selection cache stays warm)")
    parser.add_argument("paths", nargs="*", default=["claims"], help="claim files or folders (default: claims)")
    args = parser.parse_args()
    if args.workers < 0:
        parser.error(f"--workers must be >= 0, got {args.workers}")
    with tempfile.TemporaryDirectory(prefix="bench-claims-") as scratch:
        report_dir = Path(args.warm) if args.warm else Path(scratch) / "reports"
        junit, name = Path(scratch) / "junit.xml", f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
        command = [
            sys.executable, "-m", "pytest", *args.paths, "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
            f"--claims-report-dir={report_dir}", "--claims-run", name,
            *(["-n", str(args.workers)] if args.workers else []), *(["--claims-heavy"] if args.heavy else []),
        ]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if not junit.is_file():
            sys.exit(f"pytest wrote no timings (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        rows = _rows(report_dir / name / "claims.json")
        timings = sorted(_timings(junit), key=lambda t: -t[1])
    print(f"{'seconds':>8}  {'verdict':<12}  claim (test)")
    for test, seconds in timings:
        claim_id, verdict = rows.get(test, ("-", "not a claim"))
        print(f"{seconds:8.1f}  {verdict:<12}  {claim_id} ({test})")
    workers = f"-n {args.workers}" if args.workers else "serial"
    verdict = "within" if wall < TARGET_S else "OVER"
    print(f"total: {wall:.1f} s wall ({workers}), {sum(s for _, s in timings):.1f} s summed over tests; "
          f"{verdict} the {TARGET_S} s target; pytest exit status {done.returncode}")


def _timings(junit: Path) -> list[tuple[str, float]]:
    """``(nodeid, seconds)`` per test case of a JUnit XML report."""
    cases = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        cases.append((f"{module}.py::{case.get('name')}", float(case.get("time", 0.0))))
    return cases


def _rows(path: Path) -> dict[str, tuple[str, str]]:
    """Test nodeid -> (claim id, verdict) from the run's ``claims.json`` (none when the run wrote none)."""
    if not path.is_file():
        return {}
    return {row["test"]: (row["id"], row["verdict"]) for row in json.loads(path.read_text(encoding="utf-8"))["claims"]}


if __name__ == "__main__":
    main()
