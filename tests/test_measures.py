"""Per-level measures: ablation drops match hand-made interventions, nulls exclude the claimed channels, and
counterfactual gem pairs differ only in the gem and point the path the asked way."""

import numpy as np
import torch

from harness.heist.actions import Action
from harness.heist.engine import render
from harness.heist.sampling import sample_levels
from harness.lenses.measures import (channel_ablation_drop, channel_activation, gem_moved_pair, random_channel_null,
                                     target_direction, target_quadrant)
from harness.policy.interventions import Zero
from harness.policy.models import CustomCNN, orthogonal_init
from harness.policy.runner import run
from harness.policy.sites import Site


def model():
    torch.manual_seed(0)
    return orthogonal_init(CustomCNN()).eval()


def frames(n=8):
    return np.random.default_rng(0).integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)


def test_channel_ablation_drop_matches_the_runner():
    policy, x = model(), frames()
    drop = channel_ablation_drop(policy, x, site="conv4a", channels=[3, 5], action=Action.UP)
    clean = run(policy, x).probs[:, Action.UP]
    ablated = run(policy, x, interventions=[Zero(site=Site("conv4a", channels=(3, 5)))]).probs[:, Action.UP]
    np.testing.assert_allclose(drop, (clean - ablated).double().numpy(), atol=1e-7)


def test_random_channel_null_draws_every_allowed_set_once():
    policy, x = model(), frames()
    null = random_channel_null(policy, x, site="conv4a", n_channels=32, size=2, action=Action.UP, m=6, seed=0,
                               exclude=range(28))  # 4 channels left: exactly 6 pairs
    pairs = [(a, b) for a in range(28, 32) for b in range(a + 1, 32)]
    expected = [channel_ablation_drop(policy, x, site="conv4a", channels=p, action=Action.UP).mean() for p in pairs]
    np.testing.assert_allclose(np.sort(null), np.sort(expected), atol=1e-7)


def test_channel_activation_is_the_spatial_mean():
    policy, x = model(), frames()
    act = run(policy, x, cache=["conv4a.relu"]).activations["conv4a.relu"][:, 7]
    np.testing.assert_allclose(channel_activation(policy, x, site="conv4a.relu", channel=7),
                               act.flatten(1).mean(1).double().numpy(), rtol=1e-6)


def test_gem_moved_pairs_point_the_path_up_and_down():
    levels = sample_levels("calibration", 6, seed=0, where=lambda lv: gem_moved_pair(lv, "up", "down") is not None)
    for level in levels:
        up, down = gem_moved_pair(level, "up", "down")
        assert target_direction(up) == "up" and target_direction(down) == "down"
        for edited in (up, down):
            assert edited.cells == level.cells and edited.agent == level.agent
            assert [e for e in edited.entities if e.type != 9] == [e for e in level.entities if e.type != 9]
        assert target_quadrant(up) in (0, 1) and target_quadrant(down) in (2, 3)
    assert len(render([p for lv in levels for p in gem_moved_pair(lv, "up", "down")])) == 12
