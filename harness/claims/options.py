"""The claims run's options: command line, ini defaults, and their resolution into :class:`ClaimsOptions`.

Model checkpoints come from ``--policy PATH`` and ``--sae SITE=PATH`` (repeatable), or else from the ini options
``heist_policy`` and ``heist_saes`` (``SITE=PATH`` entries), whose paths are relative to the ini file's directory;
command-line paths are relative to the invocation directory.  A ``--sae`` replaces the ini's SAE for its site only.
The ini's SAEs were trained on the ini's policy, so they are used only while the policy under test is that one
(the same path or the same content): with another ``--policy``, only ``--sae`` entries load, and claims that need
an SAE on a site without one are skipped.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import pytest

from harness.errors import ClaimError

MIN_ALPHA, MAX_ALPHA = 1e-6, 0.2
"""The family-wise alpha a run may use (docs/statistics.md): above 0.2 a "supported" verdict means little; below
1e-6 the intervals are wider than any sample of levels can narrow."""

__all__ = ["ClaimsOptions", "add_options", "reserve_run_dir", "resolve_options"]


@dataclass(frozen=True, kw_only=True)
class ClaimsOptions:
    """The run's options, resolved; the plugin's model and sampler fixtures build on these."""

    report_dir: Path
    """Where runs are written: ``<report_dir>/<run>/`` (``--claims-report-dir``, default ``<rootdir>/reports``)."""
    run: str
    """The run's name (``--claims-run``, default the UTC start time ``YYYYMMDD-HHMMSS``)."""
    policy: Path | None
    """Policy checkpoint (``--policy``, else the ini's ``heist_policy``; None when neither is given)."""
    saes: Mapping[str, Path]
    """SAE checkpoint per site (the ini's ``heist_saes`` when the policy is the ini's, each site replaced by a
    ``--sae SITE=PATH``)."""
    sampling_seed: int
    """Seed of the level sampler (``--sampling-seed``)."""
    alpha: float
    """Family-wise error rate of each family of claims (``--claims-alpha``, default 0.05)."""
    strict: bool
    """Inconclusive claims fail too (``--claims-strict``), for gating a model in CI."""
    compare: Path | None
    """``claims.json`` of the saved run to compare with (``--claims-compare``)."""
    named: bool = False
    """The run was named with ``--claims-run`` (else its name is the start time, suffixed ``-2``, ``-3`` ... when
    another run took that second)."""
    overwrite: bool = False
    """An existing run of the same name may be overwritten (``--claims-overwrite``); otherwise it is refused."""
    heavy: bool = False
    """Claims marked ``heavy`` run too (``--claims-heavy``, or a ``-m`` expression naming ``heavy``)."""

    @property
    def run_dir(self) -> Path:
        return self.report_dir / self.run


def add_options(parser: pytest.Parser) -> None:
    """Register the command-line options and the ini options that give model defaults."""
    group = parser.getgroup("heist claims", "claims about Heist policies (harness.claims.plugin)")
    group.addoption(
        "--claims-report-dir", metavar="DIR", help="write runs under DIR/<run>/ (default: <rootdir>/reports)"
    )
    group.addoption("--claims-run", metavar="NAME", help="name of this run (default: UTC start time)")
    group.addoption(
        "--claims-overwrite", action="store_true", help="let --claims-run NAME replace a saved run of that name"
    )
    group.addoption("--claims-heavy", action="store_true", help="run the claims marked heavy too")
    group.addoption(
        "--policy", metavar="PATH", help="policy checkpoint the claims are about (default: the ini's heist_policy)"
    )
    group.addoption(
        "--sae", action="append", default=[], metavar="SITE=PATH",
        help="SAE checkpoint for SITE, replacing the ini's heist_saes entry for that site; repeatable",
    )  # fmt: skip
    group.addoption("--sampling-seed", type=int, default=0, metavar="INT", help="seed of the level sampler (default 0)")
    group.addoption("--claims-alpha", type=float, default=0.05, metavar="A", help="family-wise alpha (default 0.05)")
    group.addoption("--claims-strict", action="store_true", help="fail inconclusive claims too")
    group.addoption(
        "--claims-compare",
        metavar="PATH_OR_RUN",
        help="compare with a saved run: its directory, its claims.json, a run name, or 'latest'",
    )
    parser.addini("heist_policy", "default policy checkpoint, relative to the ini file", type="string", default="")
    parser.addini("heist_saes", "default SAE checkpoints, SITE=PATH relative to the ini file", type="args", default=[])


def _site_paths(entries: list[str], base: Path, source: str) -> dict[str, Path]:
    """``SITE=PATH`` entries as ``{site: base / path}``; each site once."""
    paths: dict[str, Path] = {}
    for entry in entries:
        site, sep, path = entry.partition("=")
        if not sep or not site or not path or site in paths:
            raise pytest.UsageError(f"{source} {entry!r}: give SITE=PATH, each site once (e.g. {source} conv3a=sae.pt)")
        paths[site] = base / path
    return paths


def resolve_options(config: pytest.Config, run_name: str) -> ClaimsOptions:
    """Resolve the command line and the ini defaults (see the module docstring for which path is relative to what)."""
    here = config.invocation_params.dir
    ini_dir = here if config.inipath is None else config.inipath.parent
    ini_saes = _site_paths(config.getini("heist_saes"), ini_dir, "heist_saes")
    alpha = config.getoption("claims_alpha")
    if not MIN_ALPHA <= alpha <= MAX_ALPHA:
        raise pytest.UsageError(
            f"--claims-alpha must lie in [{MIN_ALPHA:g}, {MAX_ALPHA:g}], got {alpha:g}: a larger alpha makes verdicts "
            "that mean little, a smaller one makes intervals no sample can narrow"
        )
    if not run_name or Path(run_name).name != run_name or run_name in (".", ".."):
        raise pytest.UsageError(f"--claims-run {run_name!r}: a run name is one path component")
    report_dir = config.getoption("claims_report_dir")
    report_dir = config.rootpath / "reports" if report_dir is None else here / report_dir
    _check_writable(report_dir / run_name)
    named, overwrite = config.getoption("claims_run") is not None, config.getoption("claims_overwrite")
    controller = not hasattr(config, "workerinput")  # pytest-xdist's documented marker of a worker
    taken = (report_dir / run_name).is_dir() and any((report_dir / run_name).iterdir())
    if controller and named and not overwrite and taken:
        raise pytest.UsageError(
            f"--claims-run {run_name}: a run of that name is saved in {report_dir}; every run is kept, so choose "
            "another name, or pass --claims-overwrite to replace it"
        )
    seed = config.getoption("sampling_seed")
    if seed < 0:
        raise pytest.UsageError(f"--sampling-seed must be a non-negative int, got {seed}")
    policy, ini_policy = config.getoption("policy"), config.getini("heist_policy")
    ini_policy = ini_dir / ini_policy if ini_policy else None
    policy = here / policy if policy is not None else ini_policy
    saes = {**(ini_saes if _same_checkpoint(policy, ini_policy) else {}),
            **_site_paths(config.getoption("sae"), here, "--sae")}
    if controller and config.getoption("sae") and policy is not None and policy.is_file():
        _check_sae_sites(policy, [entry.partition("=")[0] for entry in config.getoption("sae")])
    compare = config.getoption("claims_compare")
    return ClaimsOptions(
        report_dir=report_dir,
        run=run_name,
        policy=policy,
        saes=MappingProxyType(saes),
        sampling_seed=seed,
        alpha=alpha,
        strict=config.getoption("claims_strict"),
        compare=None if compare is None else _resolve_compare(compare, here, report_dir, run_name),
        named=named,
        overwrite=overwrite,
        heavy=config.getoption("claims_heavy") or "heavy" in (config.getoption("markexpr") or ""),
    )


def reserve_run_dir(options: ClaimsOptions) -> ClaimsOptions:
    """Create the run's folder, so no other run can write there: a named run takes its name (checked free at the
    start unless ``--claims-overwrite``), an unnamed one its start time, or that time suffixed ``-2``, ``-3``, ...
    when another run started in the same second.  Returns the options with the name taken."""
    options.report_dir.mkdir(parents=True, exist_ok=True)
    if options.named:
        options.run_dir.mkdir(exist_ok=True)
        return options
    for suffix in ("", *(f"-{i}" for i in range(2, 1000))):
        try:
            (options.report_dir / f"{options.run}{suffix}").mkdir()
        except FileExistsError:
            continue
        return replace(options, run=f"{options.run}{suffix}")
    raise ClaimError(f"999 runs named {options.run}-* already exist under {options.report_dir}; name this run")


def _same_checkpoint(policy: Path | None, ini_policy: Path | None) -> bool:
    """Whether ``policy`` is the ini's ``heist_policy``: the same path, or files of the same content (the ini's
    SAEs were trained on that policy, and are no SAEs of another)."""
    if policy == ini_policy:
        return True
    if policy is None or ini_policy is None or not policy.is_file() or not ini_policy.is_file():
        return False
    from harness.policy.models import checkpoint_sha256

    return checkpoint_sha256(policy) == checkpoint_sha256(ini_policy)


def _check_sae_sites(policy: Path, sites: list[str]) -> None:
    """Refuse, before any claim runs, a ``--sae SITE=PATH`` whose site the policy does not have (this loads the
    policy, so only when ``--sae`` is given; a policy that does not load is left for its fixture to report)."""
    from harness.errors import HarnessError
    from harness.policy.models import load_policy
    from harness.policy.sites import site_modules

    try:
        valid = list(site_modules(load_policy(policy)))
    except HarnessError:
        return
    unknown = [site for site in sites if site not in valid]
    if unknown:
        raise pytest.UsageError(f"--sae {unknown[0]}=...: the policy {policy.name} has no site {unknown[0]!r}; "
                                f"valid sites: {', '.join(valid)}")


def _check_writable(run_dir: Path) -> None:
    """Refuse, before any claim runs, a run directory that could not be written: a file in its place or on its
    path, or a nearest existing folder the user may not write to."""
    for path in (run_dir, *run_dir.parents):
        if path.exists():
            if not path.is_dir():
                raise pytest.UsageError(f"cannot write reports to {run_dir}: {path} is a file, not a folder; "
                                        "pass --claims-report-dir DIR naming a folder")
            if not os.access(path, os.W_OK | os.X_OK):
                raise pytest.UsageError(f"cannot write reports to {run_dir}: no permission to write in {path}")
            return


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
