import numpy as np
import pytest
import torch

from harness.errors import InterventionError
from harness.lenses.features import (diverse_top, entity_activation, entity_masks, entity_profile, entity_profiles,
                                     entity_readings, pair_readings, patch_grid, top_activations)
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
    """The site's activations on the levels' first frames, read with run directly, at ``channel`` (or a slice)."""
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


def test_entity_profiles_of_every_channel_match_the_one_channel_profiles(model, levels):
    profiles = entity_profiles(model, levels, site="conv3a")
    assert profiles.channels == tuple(range(32)) and profiles.mean.shape == (32, len(profiles.entities))
    for channel in (0, 4, 31):
        one, many = entity_profile(model, levels, site="conv3a", channel=channel), profiles.of(channel)
        assert one.levels == dict(many.levels)
        for name, value in one.mean.items():
            assert many.mean[name] == pytest.approx(value, rel=1e-6, abs=1e-9)
    maps = _maps(model, levels, "conv3a", slice(None)).numpy()
    # independent: the per-level dict of entity_activation, averaged by hand
    per_level = [entity_activation(m[7], lv) for m, lv in zip(maps, levels)]
    floor = np.mean([p["floor"] for p in per_level])
    e = profiles.entities
    assert profiles.mean[7, e.index("floor")] == pytest.approx(floor, rel=1e-6)
    gem = profiles.mean[:, e.index("gem")]
    others = np.delete(profiles.mean, e.index("gem"), axis=1).max(1)
    assert profiles.selectivity("gem") == pytest.approx(gem - others)
    with pytest.raises(InterventionError, match="no 'dragon'"):
        profiles.selectivity("dragon")
    with pytest.raises(InterventionError, match="not profiled"):
        entity_profiles(model, levels, site="conv3a", channels=(2, 3)).of(4)


def test_kinds_merge_the_key_colours(levels):
    level = next(lv for lv in levels if len(lv.keys) >= 2)
    coloured, merged = entity_masks(level), entity_masks(level, kinds=True)
    keys = np.logical_or.reduce([coloured[f"{c} key"] for c in level.keys])
    assert (merged["key"] == keys).all() and not any(" key" in name for name in merged)
    act = np.random.default_rng(0).normal(size=(16, 16))
    up = np.repeat(np.repeat(act, 4, 0), 4, 1)
    assert entity_activation(act, level, kinds=True)["key"] == pytest.approx(up[keys].mean())


def test_a_removed_key_is_read_at_the_base_levels_cells(model, levels):
    base = [lv for lv in levels if "blue" in lv.keys]
    removed = [lv.remove_key("blue") for lv in base]
    clean, edited = pair_readings(model, base, removed, site="conv3a", entity="blue key", channels=(1, 5))
    maps = _maps(model, removed, "conv3a", slice(None)).numpy()
    for i, level in enumerate(base):
        mask = entity_masks(level)["blue key"]
        for u, channel in enumerate((1, 5)):
            up = np.repeat(np.repeat(maps[i, channel], 4, 0), 4, 1)
            assert edited[i, u] == pytest.approx(up[mask].mean(), rel=1e-5)
    assert clean.shape == edited.shape == (len(base), 2) and not np.allclose(clean, edited)
    with pytest.raises(InterventionError, match="has no 'blue key'"):
        entity_readings(maps, removed, "blue key")
    keyed = [lv for lv in levels if lv.keys]
    first = [next(iter(lv.keys)) + " key" for lv in keyed]  # one entity per level
    per_level = entity_readings(_maps(model, keyed, "conv3a", slice(None)).numpy(), keyed, first)
    assert per_level[:, 3] == pytest.approx([entity_activation(m, lv)[e] for m, lv, e in
                                             zip(_maps(model, keyed, "conv3a", 3).numpy(), keyed, first)])
    with pytest.raises(InterventionError, match="as many edited"):
        pair_readings(model, base, removed[:-1], site="conv3a", entity="blue key")


def test_diverse_top_skips_repeated_seeds_and_near_duplicate_frames(levels):
    twins = levels + levels[:1]
    scores = np.array([1.0, 5.0, 3.0, 2.0, 0.5, 9.0])  # the best is a repeat of level 0's seed
    assert diverse_top(scores, twins, 3) == [5, 1, 2]
    frames = render(levels[:3])
    near = frames.copy()
    near[2] = frames[1]
    near[2, :2, :2] = 0  # level 2 shows level 1's frame with 4 of 4096 pixels changed: a near-duplicate
    scores = np.array([1.0, 3.0, 2.0])
    assert diverse_top(scores, levels[:3], 3, frames=near) == [1, 0]
    assert diverse_top(scores, levels[:3], 3, frames=near, min_difference=0.0) == [1, 2, 0]
    assert diverse_top(scores, levels[:3], 3, frames=frames) == [1, 2, 0]
    with pytest.raises(InterventionError, match="one score"):
        diverse_top(scores[:2], levels, 2)
