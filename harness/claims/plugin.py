"""pytest plugin for claims: the ``claim`` marker, the run's options, and the fixtures claims build on.

Registered through the ``pytest11`` entry point ``heist_claims`` (or ``-p harness.claims.plugin`` when not
installed), so any repository that installs the package gets these fixtures:

* ``claim``: the claim the test declares with ``@pytest.mark.claim`` (:mod:`harness.claims.claim`);
* ``policy``: the policy under test (``--policy PATH``, default the ini's ``heist_policy``), checksum recorded;
* ``saes``: SAEs by site or role (``--sae SITE=PATH``, defaults the ini's ``heist_saes`` when the policy is the
  ini's ``heist_policy``), checksums recorded;
* ``sample_levels(seeds=None, n=None, *, where=None, mode="easy")``: levels drawn with the run's
  ``--sampling-seed``; ``seeds`` and ``n`` default to the claim's declaration, and a claim that declares
  ``selected_on`` may draw from its ``seeds`` and ``selected_on`` ranges only;
* ``level_sampler``: the same draw, ``draw(seeds, n, *, where=None, mode="easy")``, for module- or
  session-scoped fixtures (a selection fixture shared by several claims), which cannot use the function-scoped
  ``sample_levels``; it knows no claim, so it names its range and n every time;
* ``selection_cache(name, select)``: a selection step's result computed once per model, sampling seed and source,
  shared by xdist workers and later runs;
* ``claims_options``: the resolved options (:class:`~harness.claims.options.ClaimsOptions`).

Fixtures of one's own record model checksums with :func:`record_checksum` and anything else worth keeping with
:func:`record_run_metadata`.  The run itself (collecting rows, merging xdist workers, writing reports) is
:class:`~harness.claims.session.ClaimRun`.
"""

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.claims.claim import Claim
from harness.claims.declaration import CONFIRMATION
from harness.claims.options import ClaimsOptions, add_options
from harness.claims.provenance import file_sha256, harness_sha256
from harness.claims.session import CLAIM, ClaimRun
from harness.errors import ClaimError, SamplingError, UnknownSiteError
from harness.policy.roles import is_role, role_site

__all__ = ["SAEs", "record_checksum", "record_run_metadata"]

RUN = pytest.StashKey[ClaimRun]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "claim(id, statement, sites, metric, seeds, n, lower_bound_above|upper_bound_below|equivalent_within, "
        "family='confirmatory', selected_on=None, unit='levels', architectures=None, saes=()): declare the claim this "
        "test checks (see harness.claims.claim)",
    )
    config.addinivalue_line(
        "markers", "heavy: a claim too slow for the default run (over ~30 s); deselected unless --claims-heavy or -m "
        "heavy",
    )
    _share_the_cores(config)
    run = ClaimRun(config)
    config.stash[RUN] = run
    config.pluginmanager.register(run, "heist_claims_run")


def _share_the_cores(config: pytest.Config) -> None:
    """Give each xdist worker its share of the cores for torch: ``-n 2`` on 2 cores otherwise runs 4 threads that
    spin against each other.  An explicit ``OMP_NUM_THREADS`` is the user's choice and is kept."""
    workers = getattr(config, "workerinput", {}).get("workercount")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


def record_run_metadata(config: pytest.Config, key: str, value: Any) -> None:
    """Keep ``key: value`` (plain JSON) in the run's metadata, e.g. seed ranges; works in xdist workers too."""
    config.stash[RUN].add("metadata", key, value)


def record_checksum(config: pytest.Config, name: str, digest: str) -> None:
    """Record a model's checksum (e.g. ``policy``, ``sae:conv3a``): in the run and in every later claim row."""
    if not isinstance(digest, str) or not digest:
        raise ClaimError(f"checksum of {name!r} must be a non-empty string, got {digest!r}")
    config.stash[RUN].add("checksums", name, digest)


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


@pytest.fixture(scope="session")
def policy(claims_options: ClaimsOptions, pytestconfig: pytest.Config):
    """The policy under test, in eval mode (``--policy PATH`` or the ini's ``heist_policy``)."""
    from harness.policy.models import checkpoint_sha256, load_policy

    path = claims_options.policy
    if path is None:
        pytest.fail("no policy to test: pass --policy PATH (a CustomCNN or IMPALA state_dict), or set heist_policy "
                    "in the ini file", pytrace=False)  # fmt: skip
    if not path.is_file():
        pytest.fail(f"policy checkpoint {path} does not exist; pass --policy PATH to a CustomCNN or IMPALA state_dict",
                    pytrace=False)  # fmt: skip
    record_checksum(pytestconfig, "policy", checkpoint_sha256(path))
    loaded = pytestconfig.stash[RUN].policy_model  # loaded once, at collection
    return load_policy(path) if loaded is None else loaded


class SAEs(Mapping):
    """SAEs by the site they sit on; a role reads the SAE on the site it names in the policy (``saes["last_conv"]``
    is the SAE on ``conv4a`` for a CustomCNN, on ``stack3.res2`` for an IMPALA policy)."""

    def __init__(self, by_site: Mapping[str, Any], policy: Callable[[], Any]) -> None:
        self._by_site, self._policy = dict(by_site), policy  # policy(): the policy under test, asked for by roles

    def __getitem__(self, name: str) -> Any:
        site = role_site(self._policy(), name) if is_role(name) else name
        if site not in self._by_site:
            raise UnknownSiteError(f"no SAE on {site!r} is loaded for this policy (loaded: {', '.join(self) or 'none'}); "
                             f"pass --sae {site}=PATH, and declare saes=[{name!r}] in the claim so that it is skipped "
                             "where none is")
        return self._by_site[site]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_site)

    def __len__(self) -> int:
        return len(self._by_site)


@pytest.fixture(scope="session")
def saes(claims_options: ClaimsOptions, pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> SAEs:
    """SAEs by site (``--sae SITE=PATH``, over the ini's ``heist_saes`` when the policy is the ini's
    ``heist_policy``), also by role (:class:`SAEs`)."""
    from harness.lenses.sae import load_sae
    from harness.policy.models import checkpoint_sha256

    paths = claims_options.saes
    if not paths:
        pytest.fail("no SAEs to test: pass --sae SITE=PATH (repeatable), or set heist_saes in the ini file",
                    pytrace=False)  # fmt: skip
    missing = [f"{site}={path}" for site, path in paths.items() if not path.is_file()]
    if missing:
        pytest.fail(f"SAE checkpoints missing: {', '.join(missing)}; pass --sae SITE=PATH", pytrace=False)
    for site, path in paths.items():
        record_checksum(pytestconfig, f"sae:{site}", checkpoint_sha256(path))
    return SAEs({site: load_sae(path, site=site) for site, path in paths.items()},
                lambda: request.getfixturevalue("policy"))


@pytest.fixture(scope="session")
def level_sampler(claims_options: ClaimsOptions) -> Callable:
    """``draw(seeds, n, *, where=None, mode="easy")``: ``n`` levels from the named seed range, drawn with the
    run's ``--sampling-seed``; for module- or session-scoped selection fixtures, e.g. one that selects a channel on
    ``"selection"``.  It refuses ``"confirmation"``: selection never sees the levels a claim is confirmed on (a claim
    draws those itself, with ``sample_levels``, after ``claim.select``)."""
    def draw(seeds: str, n: int, *, where=None, mode: str = "easy") -> list:
        if seeds == CONFIRMATION:
            raise ClaimError(
                f"level_sampler draws for selection fixtures, which never see {CONFIRMATION!r} levels; a claim draws "
                "them in its test with sample_levels(), after claim.select(...)"
            )
        return _draw(claims_options, seeds, n, where=where, mode=mode)

    return draw


@pytest.fixture(scope="session")
def selection_cache(claims_options: ClaimsOptions) -> Callable:
    """``selection_cache(name, select)``: ``select()``'s result (plain JSON, e.g. a list of channels), computed once
    and then read back by every pytest-xdist worker and every later run while nothing it could depend on changed:
    the model checkpoints, the sampling seed, the file that defines ``select`` and the harness's own source.  Kept
    under ``<report dir>/.selection-cache/`` behind a file lock, so workers wait for one computation::

        @pytest.fixture(scope="module")
        def up_channels(policy, level_sampler, selection_cache):
            return selection_cache("up_channels", lambda: rank(policy, level_sampler("selection", 256)))
    """
    folder = claims_options.report_dir / ".selection-cache"
    base = _selection_key_base(claims_options)

    def cached(name: str, select: Callable[[], Any]) -> Any:
        source = Path(select.__code__.co_filename)
        key = hashlib.sha256(f"{base}|{name}|{file_sha256(source)}".encode()).hexdigest()[:32]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}-{key}.json"
        with open(folder / f"{name}-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not path.is_file():
                value = json.dumps(select(), allow_nan=False)
                temporary = path.with_suffix(f".{os.getpid()}.tmp")
                temporary.write_text(value, encoding="utf-8")
                os.replace(temporary, path)
            return json.loads(path.read_text(encoding="utf-8"))

    return cached


def _selection_key_base(options: ClaimsOptions) -> str:
    """What every cached selection depends on besides its own file: the checkpoints (by content), the sampling
    seed and the harness's source."""
    models = [options.policy, *options.saes.values()]
    checkpoints = [file_sha256(path) if path is not None and path.is_file() else "-" for path in models]
    return f"{checkpoints}|{options.sampling_seed}|{harness_sha256()}"


def _draw(options: ClaimsOptions, seeds: str, n: int, *, where=None, mode: str = "easy") -> list:
    from harness.heist import sampling

    return sampling.sample_levels(seeds, n, seed=options.sampling_seed, where=where, mode=mode)


@pytest.fixture
def sample_levels(claims_options: ClaimsOptions, request: pytest.FixtureRequest) -> Callable:
    """``sample_levels(seeds=None, n=None, *, where=None, mode="easy")``: levels drawn with the run's
    ``--sampling-seed``; ``seeds`` and ``n`` default to the claim's declaration.  A claim draws from its ``seeds``
    and ``selected_on`` ranges only, and one that declares ``selected_on`` draws its ``seeds`` (confirmation)
    levels only after ``claim.select``, so its choice cannot see them."""
    found = request.node.stash.get(CLAIM, None)
    spec = None if found is None else found.spec
    declared = {} if spec is None else {"seeds": spec.seeds, "n": spec.n}

    def sample(seeds: str | None = None, n: int | None = None, *, where=None, mode: str = "easy") -> list:
        seeds = declared.get("seeds") if seeds is None else seeds
        n = declared.get("n") if n is None else n
        if seeds is None or n is None:
            raise SamplingError(
                f"sample_levels in {request.node.nodeid} needs seeds and n, given here or in a @pytest.mark.claim"
            )
        if spec is not None and seeds not in spec.seed_ranges:
            allowed = f"seeds={spec.seeds!r}" + ("" if spec.selected_on is None else
                                                   f" and selected_on={spec.selected_on!r} ranges")
            raise ClaimError(f"claim {spec.id!r} draws levels from {seeds!r}, but it may draw only from its {allowed}")
        if spec is not None and spec.selected_on is not None and seeds == spec.seeds and found.selected is None:
            raise ClaimError(
                f"claim {spec.id!r} draws its {seeds!r} levels before claim.select(...); choose the unit on "
                f"{spec.selected_on!r} first, so the choice cannot see the levels it is tested on"
            )
        return _draw(claims_options, seeds, n, where=where, mode=mode)

    return sample
