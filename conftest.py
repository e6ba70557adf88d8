"""Session fixtures claims build on: the policy under test, its SAEs, and a level sampler; hypothesis profiles.

The policy is the shipped agent unless ``--policy PATH`` names another compatible checkpoint; SAEs are the
shipped ones unless ``--sae SITE=PATH`` replaces them.  Their checksums go into every claim's report row.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, settings

from harness.claims.plugin import ClaimsOptions, record_checksum

ROOT = Path(__file__).parent
SHIPPED_POLICY = ROOT / "fixtures" / "agents" / "customcnn_bc" / "policy.pt"
SHIPPED_SAES = {"conv3a": ROOT / "fixtures" / "saes" / "customcnn_bc_conv3a" / "sae.pt", "conv4a": ROOT / "fixtures" / "saes" / "customcnn_bc_conv4a" / "sae.pt"}

# Forward passes are slow, so no deadline; CI derandomises and keeps no example database.
settings.register_profile("dev", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", parent=settings.get_profile("dev"), derandomize=True, database=None,
                          max_examples=25)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def policy(claims_options: ClaimsOptions, pytestconfig: pytest.Config):
    """The policy under test, in eval mode (``--policy`` or the shipped agent)."""
    from harness.policy.models import checkpoint_sha256, load_policy

    path = claims_options.policy or SHIPPED_POLICY
    if not Path(path).is_file():
        pytest.fail(f"policy checkpoint {path} does not exist; pass --policy PATH to a CustomCNN or IMPALA state_dict")
    record_checksum(pytestconfig, "policy", checkpoint_sha256(path))
    return load_policy(path)


@pytest.fixture(scope="session")
def saes(claims_options: ClaimsOptions, pytestconfig: pytest.Config) -> dict:
    """SAEs by site (``--sae SITE=PATH`` or the shipped ones)."""
    from harness.policy.models import checkpoint_sha256
    from harness.lenses.sae import load_sae

    paths = {**SHIPPED_SAES, **claims_options.saes}
    missing = [f"{site}={path}" for site, path in paths.items() if not Path(path).is_file()]
    if missing:
        pytest.fail(f"SAE checkpoints missing: {', '.join(missing)}; pass --sae SITE=PATH")
    for site, path in paths.items():
        record_checksum(pytestconfig, f"sae:{site}", checkpoint_sha256(path))
    return {site: load_sae(path, site=site) for site, path in paths.items()}


@pytest.fixture
def sample_levels(claims_options: ClaimsOptions, request: pytest.FixtureRequest) -> Callable:
    """``sample_levels(n=None, *, seeds=None, where=None, mode="easy")``: levels from a named seed range, drawn
    with the run's ``--sampling-seed``; ``seeds`` and ``n`` default to the claim's declaration."""
    from harness import sampling

    marker = request.node.get_closest_marker("claim")
    declared = marker.kwargs if marker else {}

    def sample(n: int | None = None, *, seeds: str | None = None, where=None, mode: str = "easy"):
        range_name, count = seeds or declared.get("seeds"), n or declared.get("n")
        if range_name is None or count is None:
            raise ValueError("sample_levels needs n and seeds, given here or in the claim's declaration")
        return sampling.sample_levels(range_name, count, seed=claims_options.sampling_seed, where=where, mode=mode)

    return sample
