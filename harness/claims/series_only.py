"""pytest plugin for one task of a checkpoint series on Ray (:mod:`harness.claims.series_ray`): collect the whole
claim suite, so that every family keeps the size it has in one run (the ``m`` of the in-test Bonferroni
correction), but run the claims of one file only.  The others are skipped before any of their fixtures is set
up, and the series keeps each file's rows from its own task.

    python -m pytest claims -p harness.claims.series_only --claims-only-file=claims/test_behaviour.py
"""

from pathlib import Path

import pytest

__all__: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("heist claims").addoption(
        "--claims-only-file", metavar="PATH",
        help="collect every claim (family sizes as in one run) but run only the claims in PATH; the others skip",
    )  # fmt: skip


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    only = item.config.getoption("claims_only_file")
    if only and Path(item.path).resolve() != (item.config.invocation_params.dir / only).resolve():
        pytest.skip(f"runs in the series task of its own file, not of {only}")
