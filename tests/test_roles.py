"""Site roles (harness.policy.roles): each architecture's site for a role, roles wherever a site name is taken, and
the errors of a role that does not resolve."""

import numpy as np
import pytest
import torch
from torch import nn

from harness import Site, Zero, run
from harness.errors import UnknownSiteError
from harness.policy.models import CustomCNN, ImpalaCNN
from harness.policy.roles import ROLE_NAMES, ROLES, is_role, role_site

FRAMES = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"custom_cnn": CustomCNN().eval(), "impala": ImpalaCNN().eval()}


@pytest.mark.parametrize(("architecture", "expected"), [
    ("custom_cnn", {"mid_conv": "conv3a", "last_conv": "conv4a", "last_conv.relu": "conv4a.relu",
                    "pre_head": "fc2.relu"}),
    ("impala", {"mid_conv": "stack2.res2", "last_conv": "stack3.res2", "last_conv.relu": "stack3.relu",
                "pre_head": "fc.relu"}),
])  # fmt: skip
def test_each_architecture_resolves_every_role(models, architecture, expected):
    assert {role: role_site(models[architecture], role) for role in ROLE_NAMES} == expected


@pytest.mark.parametrize("architecture", ["custom_cnn", "impala"])
def test_a_role_reads_and_edits_the_site_it_names(models, architecture):
    model = models[architecture]
    sites = [role_site(model, role) for role in ROLE_NAMES]
    by_role = run(model, FRAMES, cache=ROLE_NAMES).activations
    by_site = run(model, FRAMES, cache=sites).activations
    for role, site in zip(ROLE_NAMES, sites, strict=True):
        assert torch.equal(by_role[role], by_site[site])
    zeroed = [run(model, FRAMES, interventions=[Zero(site=Site(name, channels=(3,)))]).logits
              for name in ("last_conv", role_site(model, "last_conv"))]
    assert torch.equal(*zeroed) and not torch.equal(zeroed[0], run(model, FRAMES).logits)


def test_the_roles_have_the_same_shape_across_architectures(models):
    """Why each IMPALA site is the counterpart: the conv roles are the same maps, 32 channels at the same size."""
    shapes = {name: {role: tuple(act.shape[1:]) for role, act in run(model, FRAMES[:1], cache=ROLE_NAMES[:3])
                     .activations.items()} for name, model in models.items()}  # fmt: skip
    assert shapes["custom_cnn"] == shapes["impala"] == {
        "mid_conv": (32, 16, 16), "last_conv": (32, 8, 8), "last_conv.relu": (32, 8, 8)}


def test_a_mistyped_role_gets_the_nearest_names(models):
    with pytest.raises(UnknownSiteError, match="unknown site 'last_cnv'; did you mean 'last_conv'"):
        run(models["impala"], FRAMES, cache=["last_cnv"])
    with pytest.raises(UnknownSiteError, match="'penultimate' is no role; roles: mid_conv, last_conv"):
        role_site(models["impala"], "penultimate")
    assert is_role("last_conv") and not is_role("conv4a")


class Tail(nn.Module):
    """A model outside ARCHITECTURES that declares one of CustomCNN's site names, as planted models do."""

    SITES = {"conv4a": "conv", "logits": "head"}

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 32, 1), nn.Linear(32, 15)

    def forward(self, obs):
        return self.head(self.conv(obs).mean((2, 3))), obs.sum((1, 2, 3))


def test_a_model_outside_the_architectures_resolves_the_sites_it_declares():
    assert role_site(Tail(), "last_conv") == "conv4a"
    with pytest.raises(UnknownSiteError) as error:
        role_site(Tail(), "mid_conv")
    message = str(error.value)
    assert "role 'mid_conv' does not resolve in Tail (none of the architectures" in message
    assert "conv3a in custom_cnn, stack2.res2 in impala" in message and "declares none of those sites" in message
    assert "roles: mid_conv, last_conv, last_conv.relu, pre_head" in message


def test_the_table_names_real_sites(models):
    for architecture, model in models.items():
        assert set(ROLES[architecture]) == set(ROLE_NAMES)
        assert set(ROLES[architecture].values()) <= set(model.SITES)
