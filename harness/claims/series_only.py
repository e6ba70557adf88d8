"""pytest plugin for part of a claim suite at the suite's own family sizes: collect the whole suite, so that every
family keeps the size it has in one run (the ``m`` of the in-test Bonferroni correction), but run only the claims
of the files (or tests, by node id) named.  The others are skipped before any of their fixtures is set up.  A
checkpoint series uses it for each Ray task (one file each, :mod:`harness.claims.series_ray`) and for ``--only``
(a cheap subset of files whose verdicts are those the whole suite would give).

    python -m pytest claims -p harness.claims.series_only --claims-only-file=claims/test_behaviour.py \
        --claims-only-file=claims/test_channels.py::test_up_channel_activation
"""

from pathlib import Path

import pytest

from harness.claims.series_checkpoints import ONLY_REASON

__all__: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("heist claims").addoption(
        "--claims-only-file", metavar="PATH", action="append", default=[],
        help="collect every claim (family sizes as in one run) but run only the claims in PATH, a file or a test's "
        "node id (repeatable); the others skip",
    )  # fmt: skip


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    only = item.config.getoption("claims_only_file")
    here = item.config.invocation_params.dir
    files = {(here / path).resolve() for path in only if "::" not in path}
    if only and item.nodeid not in only and Path(item.path).resolve() not in files:
        pytest.skip(f"{ONLY_REASON} ({', '.join(only)})")
