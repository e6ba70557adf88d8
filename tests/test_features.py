import numpy as np
import pytest
import torch

from harness.errors import InterventionError
from harness.lenses.features import entity_activation, entity_masks, entity_profile, patch_grid, top_activations
from harness.heist.engine import generate, render
from harness.lenses.sae import ConvSAE, ConvSAEConfig, spliced


@pytest.fixture(scope="module")
def levels():
    return generate([11, 12, 13, 14, 15])


def test_entity_masks_follow_the_pixel_boxes_and_partition_the_frame(levels):
    level = levels[0]
    masks = entity_masks(level)
    assert {"agent", "gem", "wall", "floor"} <= set(masks)
    assert {f"{c} key" for c in level.keys} | {f"{c} lock" for c in level.locks} <= set(masks)
    unit = 64 / level.world_dim
    rows, cols = np.nonzero(masks["agent"])
    a = level.agent
    assert cols.min() + 0.5 >= (a.x - a.rx) * unit and cols.max() + 0.5 < (a.x + a.rx) * unit
    assert rows.min() + 0.5 >= (level.world_dim - a.y - a.ry) * unit  # y up: rows count from the top
    assert abs(masks["agent"].sum() - (2 * a.rx * unit) * (2 * a.ry * unit)) < 4 * 2 * a.rx * unit
    everything = np.logical_or.reduce(list(masks.values()))
    assert everything.all() and not (masks["wall"] & masks["floor"]).any()
    assert abs(masks["wall"].mean() - level.walls.mean()) < 0.03  # entities never lie on walls
    top_row_walls = level.walls[-1]  # y up: the last grid row is the top of the picture
    assert (masks["wall"][0, 4:60:8] == top_row_walls[(np.arange(4, 60, 8) / unit).astype(int)]).all()


@pytest.mark.parametrize("size", [16, 8])
def test_entity_activation_averages_the_map_over_each_mask(levels, size):
    level = levels[1]
    act = np.random.default_rng(size).normal(size=(size, size))
    profile = entity_activation(act, level)
    upsampled = np.repeat(np.repeat(act, 64 // size, 0), 64 // size, 1)
    for name, mask in entity_masks(level).items():
        assert profile[name] == pytest.approx(upsampled[mask].mean())


def test_entity_activation_on_a_constructed_map(levels):
    level = levels[2]
    agent = entity_masks(level)["agent"].reshape(16, 4, 16, 4).any((1, 3))
    act = np.where(agent, 5.0, 0.0)
    profile = entity_activation(act, level)
    assert profile["agent"] == pytest.approx(5.0)
    assert profile["gem"] == 0.0 and profile["wall"] < 1.0 and profile["floor"] < 1.0
    with pytest.raises(InterventionError, match="dividing 64"):
        entity_activation(np.zeros((6, 6)), level)


def test_entity_profile_averages_over_levels(model, levels):
    profile = entity_profile(model, levels, site="conv3a", channel=4)
    assert profile.levels["agent"] == profile.levels["floor"] == len(levels)
    maps = torch.stack([torch.as_tensor(m) for m in _maps(model, levels, "conv3a", 4)])
    per_level = [entity_activation(m.numpy(), lv)["agent"] for m, lv in zip(maps, levels)]
    assert profile.mean["agent"] == pytest.approx(np.mean(per_level), rel=1e-5)
    assert profile.above_floor["agent"] == pytest.approx(profile.mean["agent"] - profile.mean["floor"])
    with pytest.raises(InterventionError, match="flat"):
        entity_profile(model, levels, site="fc1", channel=0)


def _maps(model, levels, site, channel):
    from harness.policy.runner import run
    return run(model, render(levels), cache=[site]).activations[site][:, channel]


def test_top_activations_one_per_level_strongest_first(model, levels):
    doubled = levels + levels[:2]  # the same seeds twice: still one example each
    top = top_activations(model, doubled, site="conv3a", channel=3, n=4, crop=16, upscale=2, columns=3)
    assert len(top.levels) == 4 and len({lv.current_level_seed for lv in top.levels}) == 4
    assert (np.diff(top.values) <= 0).all()
    maps = _maps(model, levels, "conv3a", 3)
    by_seed = {lv.current_level_seed: m for lv, m in zip(levels, maps)}
    for level, value, (r, c) in zip(top.levels, top.values, top.positions):
        assert by_seed[level.current_level_seed][r, c] == pytest.approx(value)
        assert by_seed[level.current_level_seed].max() == pytest.approx(value)
    assert top.grid.dtype == np.uint8 and top.grid.shape == (2 * 32 + 2, 3 * 32 + 2 * 2, 3)


def test_patch_grid_crops_around_the_position_and_outlines_the_cell():
    frames = np.random.default_rng(0).integers(0, 200, (2, 64, 64, 3), dtype=np.uint8)
    grid = patch_grid(frames, [(5, 7), (0, 15)], (16, 16), crop=12, upscale=3, columns=2, gap=2)
    assert grid.shape == (36, 36 * 2 + 2, 3)
    first = grid[:36, :36]
    crop = frames[0, 22 - 6:22 + 6, 30 - 6:30 + 6]  # map cell (5, 7) covers rows 20..23, cols 28..31
    inside = np.repeat(np.repeat(crop, 3, 0), 3, 1)
    assert (first[:, :12] == inside[:, :12]).all()  # left of the outlined cell: the frame, upscaled
    assert (first[12, 12:24] == [255, 0, 255]).all()  # top edge of the cell outline
    second = grid[:36, 38:]
    assert (second[0, -12:] == [255, 0, 255]).all()  # a corner cell: the crop is shifted inside the frame
    whole = patch_grid(frames, None, None, upscale=1, columns=1)
    assert whole.shape == (64 * 2 + 2, 64, 3) and (whole[:64] == frames[0]).all()


def test_sae_latents_and_flat_sites_are_units_too(model, levels):
    sae = ConvSAE(ConvSAEConfig(site="conv3a", channels=32, expansion=2))
    with spliced(model, sae):
        top = top_activations(model, levels, site=sae.latent_site, channel=0, n=2, crop=8, upscale=1, columns=2)
    assert top.grid.shape == (8, 18, 3)
    flat = top_activations(model, levels, site="fc1", channel=0, n=2, upscale=1, columns=2)
    assert flat.positions is None and flat.grid.shape == (64, 130, 3)
