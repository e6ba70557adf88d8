"""Pair families keep what they promise, checked against the oracle here (not through the Pair's own fields);
sample_pairs returns exactly n, the same on every call; pairs render; the strategy shrinks to the nearest edit;
channel sums for every channel come from one pass and match the runner; bad requests fail clearly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import find, given, settings
from hypothesis.errors import InvalidArgument

from harness.errors import HarnessError, LevelEditError, SamplingError
from harness.heist.oracle import guide, shortest_path
from harness.heist.pairs import (FAMILIES, Pair, euclidean_vs_path, gem_moved, on_segment, render_pairs, route_cells,
                                 sample_pairs)
from harness.heist.strategies import differing_parts, pairs, pool_level
from harness.lenses.measures import MeasureError, channel_activation, channel_sums, paired_channel_sums
from harness.policy.models import CustomCNN, orthogonal_init
from harness.policy.runner import run

LEVELS = 40
RNGS = 3


def oracle(level):
    g = guide(level)
    return (None, None) if g is None else (g.target.name, g.first_step)


def line_cells(a, b):
    """Cells the segment between two cell centres enters, by dense sampling (independent of on_segment)."""
    t = np.linspace(0, 1, 4001)[:, None]
    points = (np.array(a) + 0.5) * (1 - t) + (np.array(b) + 0.5) * t
    return {(int(x), int(y)) for x, y in np.floor(points)}


def family_pairs(name):
    """The family's pairs on the first LEVELS pool levels, first candidate and RNGS seeded choices each."""
    out = []
    for i in range(LEVELS):
        level = pool_level(i)
        for rng in [None] + [np.random.default_rng(s) for s in range(RNGS)]:
            pair = FAMILIES[name](level, rng)
            if pair is not None:
                out.append(pair)
    return out


def check_wall_flip(pair, *, step_changes, on_line):
    base, edited = pair.base, pair.edited
    assert differing_parts(base, edited) == {"cells"}
    (cell,) = [divmod(i, base.grid_w)[::-1] for i, (a, b) in enumerate(zip(base.cells, edited.cells)) if a != b]
    assert pair.cells == (cell,) and str(cell) in pair.edit
    (t0, s0), (t1, s1) = oracle(base), oracle(edited)
    assert t0 is not None and t0 == t1 and s0 is not None and s1 is not None and (s0 != s1) == step_changes
    if on_line is not None:
        target = guide(base).target.cell
        assert (cell in line_cells(base.agent.cell, target)) == on_line
    if not step_changes:  # the gem stays reachable with every door open
        gem, agent = edited.gem.cell, edited.agent.cell
        assert shortest_path(edited, agent, gem, held=frozenset(edited.locks)) is not None


@pytest.mark.parametrize("name, step_changes, on_line", [
    ("wall_flip_first_step", True, None), ("wall_flip_first_step_on_line", True, True),
    ("wall_flip_same_step_on_line", False, True), ("wall_flip_same_step_off_line", False, False)])
def test_wall_flips_keep_the_target_and_change_or_keep_the_first_step(name, step_changes, on_line):
    found = family_pairs(name)
    assert len(found) >= 10
    assert {p.edit.split(" at ")[0] for p in found} >= {"wall cleared"}
    for pair in found:
        assert pair.factor == name
        check_wall_flip(pair, step_changes=step_changes, on_line=on_line)


@pytest.mark.parametrize("name, part", [("gem_moved", "gem"), ("key_moved", "key"), ("agent_moved", "agent"),
                                        ("key_removed", "key"), ("lock_removed", "lock")])
def test_entity_families_change_one_entity(name, part):
    found = family_pairs(name)
    assert len(found) >= 20
    for pair in found:
        (changed,) = differing_parts(pair.base, pair.edited)
        assert changed.endswith(part) and pair.factor == name
        before = [e for e in pair.base.entities if e.type in (0, 1, 2, 9)]
        after = [e for e in pair.edited.entities if e.type in (0, 1, 2, 9)]
        assert len(after) == len(before) - (name in ("key_removed", "lock_removed"))
        if name in ("gem_moved", "key_moved", "agent_moved"):
            assert pair.cells[0] != pair.cells[1] and not pair.edited.is_wall(pair.cells[1])


def test_distractor_key_is_unneeded_and_off_the_route():
    found = family_pairs("distractor_key")
    assert len(found) >= 20
    for pair in found:
        base, edited = pair.base, pair.edited
        (colour,) = set(edited.keys) - set(base.keys)
        assert colour not in base.locks and colour not in edited.locks
        cell = edited.keys[colour].cell
        assert oracle(edited) == oracle(base) and oracle(base)[0] is not None
        assert cell not in guide(base).path and cell not in route_cells(base)
        assert differing_parts(base, edited) - {"has_keys", "num_keys", f"{colour} HUD icon"} == {f"{colour} key"}


@pytest.mark.parametrize("name", ["euclidean_closer", "path_closer"])
def test_euclidean_and_path_distance_move_apart(name):
    found = family_pairs(name)
    assert len(found) >= 10
    for pair in found:
        g0, g1 = guide(pair.base), guide(pair.edited)
        assert g0.target.name == g1.target.name and g0.target.kind in ("gem", "key")
        agent = pair.base.agent.cell
        euclid = math.dist(agent, g1.target.cell) - math.dist(agent, g0.target.cell)
        path = g1.distance - g0.distance
        assert (euclid < 0 < path) if name == "euclidean_closer" else (path < 0 < euclid)


def test_on_segment_counts_the_inside_not_corners():
    assert on_segment((0, 0), (2, 2), (1, 1)) and not on_segment((0, 0), (2, 2), (1, 0))
    assert on_segment((0, 0), (3, 0), (2, 0)) and not on_segment((0, 0), (3, 0), (2, 1))
    assert on_segment((0, 0), (2, 1), (1, 0)) and on_segment((0, 0), (2, 1), (1, 1))
    assert not on_segment((0, 0), (2, 1), (0, 1))


def test_sample_pairs_gives_exactly_n_the_same_every_time():
    def key(p):
        return p.base.current_level_seed, p.edit

    up = sample_pairs("wall_flip_first_step", "calibration", 6, seed=0, where=lambda p: p.step_after == "up")
    assert len(up) == 6 and all(p.step_after == "up" and p.step_before != "up" for p in up)
    again = sample_pairs("wall_flip_first_step", "calibration", 6, seed=0, where=lambda p: p.step_after == "up")
    assert [key(p) for p in again] == [key(p) for p in up]
    other = sample_pairs("wall_flip_first_step", "calibration", 6, seed=1, where=lambda p: p.step_after == "up")
    assert [key(p) for p in other] != [key(p) for p in up]
    assert all(p.base.current_level_seed in range(3_000_000, 3_100_000) for p in up)


def test_pairs_render_side_by_side():
    found = sample_pairs("distractor_key", "calibration", 4, seed=0)
    base, edited = render_pairs(found)
    assert base.shape == edited.shape == (4, 64, 64, 3) and base.dtype == np.uint8
    assert all((b != e).any() for b, e in zip(base, edited))
    assert render_pairs(found[:1], hires=True)[0].shape == (1, 512, 512, 3)


def test_bad_requests_fail_clearly():
    with pytest.raises(SamplingError, match="unknown pair family 'walls'.*gem_moved"):
        sample_pairs("walls", "selection", 3, seed=0)
    with pytest.raises(SamplingError, match="pair family 'gem_moved'.*only 0 of 20"):
        sample_pairs("gem_moved", "calibration", 2, seed=0, where=lambda p: False, max_draws=20)
    with pytest.raises(SamplingError, match="unknown seed range"):
        sample_pairs("gem_moved", "tuning", 2, seed=0)
    with pytest.raises(LevelEditError, match="closer must be"):
        euclidean_vs_path(pool_level(0), closer="both")
    with pytest.raises(SamplingError, match="non-empty list of Pair"):
        render_pairs([])
    with pytest.raises(InvalidArgument, match="unknown pair family"):
        pairs("walls")


@settings(deadline=None, max_examples=15)
@given(pair=pairs("wall_flip_same_step_on_line"))
def test_the_strategy_draws_the_family(pair):
    assert isinstance(pair, Pair) and pair.factor == "wall_flip_same_step_on_line"
    check_wall_flip(pair, step_changes=False, on_line=True)


def test_the_strategy_shrinks_to_the_nearest_edit_on_the_lowest_seed():
    pair = find(pairs("gem_moved"), lambda p: True, settings=settings(deadline=None, database=None))
    assert pair.base is pool_level(0) and pair.edit == gem_moved(pool_level(0)).edit


def model():
    torch.manual_seed(0)
    return orthogonal_init(CustomCNN()).eval()


def test_channel_sums_cover_every_channel_in_one_pass():
    policy = model()
    frames = np.random.default_rng(0).integers(0, 256, size=(6, 64, 64, 3), dtype=np.uint8)
    act = run(policy, frames, cache=["conv4a.relu"]).activations["conv4a.relu"].double()
    sums = channel_sums(policy, frames, site="conv4a.relu")
    assert sums.shape == (6, 32)
    np.testing.assert_allclose(sums, act.sum((2, 3)).numpy(), rtol=1e-5)
    np.testing.assert_allclose(channel_sums(policy, frames, site="conv4a.relu", reduce="mean")[:, 5],
                               channel_activation(policy, frames, site="conv4a.relu", channel=5), rtol=1e-6)
    base, edited = paired_channel_sums(policy, frames[:3], frames[3:], site="conv4a.relu")
    np.testing.assert_allclose(np.concatenate([base, edited]), sums, rtol=1e-5)
    with pytest.raises(MeasureError, match="spatial site"):
        channel_sums(policy, frames, site="fc1")
    with pytest.raises(MeasureError, match="reduce must be"):
        channel_sums(policy, frames, site="conv4a", reduce="max")
    with pytest.raises(MeasureError, match="3 base and 2 edited"):
        paired_channel_sums(policy, frames[:3], frames[3:5], site="conv4a")
    assert issubclass(MeasureError, HarnessError) and issubclass(MeasureError, ValueError)
