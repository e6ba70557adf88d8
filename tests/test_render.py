"""Rendering through the real engine: frames as a fresh procgen env shows them, mixed and large batches, hires
pictures, and edits checked by the engine itself (pixels, reward, opened doors, finished episodes)."""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings

from harness.errors import EngineError, RenderWorkerError
from harness.heist.actions import Action
from harness.heist.engine import (MODES, WORKER_MIN_LEVELS, EnginePool, generate, render, render_hires,
                                  shared_pool)
from harness.heist.levels import Entity, HeistLevel
from harness.heist.oracle import oracle_action, shortest_path
from harness.heist.procgen_env import OBS_SIZE
from harness.heist.sampling import seed_range
from harness.heist.strategies import POOL_SIZE, counterfactual_pairs, differing_parts, pool_level


def test_render_gives_uint8_frames_one_per_level():
    frames = render([pool_level(0), pool_level(1), pool_level(0)])
    assert frames.shape == (3, OBS_SIZE, OBS_SIZE, 3) and frames.dtype == np.uint8
    assert (frames[0] == frames[2]).all() and (frames[0] != frames[1]).any()


@pytest.mark.parametrize("mode", MODES)
def test_generated_levels_look_as_a_fresh_env_shows_them(mode):
    """A fresh env starts each slot on a level of its seed range; generate(seed) must render identically."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from procgen import ProcgenGym3Env
    env = ProcgenGym3Env(num=6, env_name="heist", distribution_mode=mode,
                         start_level=seed_range("calibration").start, num_levels=POOL_SIZE)
    seeds = [info["level_seed"] for info in env.get_info()]
    assert (render(generate(seeds, mode=mode)) == env.observe()[1]["rgb"]).all()


def test_mixed_batch_keeps_order_across_modes():
    levels = [pool_level(0, "easy"), pool_level(0, "hard"), pool_level(1, "easy"), pool_level(1, "hard")]
    mixed = render(levels)
    assert (mixed == np.concatenate([render([level]) for level in levels])).all()


def test_batches_larger_than_the_pool_render_like_small_ones():
    levels = [pool_level(i) for i in range(150)]
    assert len(levels) > shared_pool("easy").size
    whole = render(levels)
    assert (whole == np.concatenate([render(levels[i:i + 50]) for i in range(0, 150, 50)])).all()


@pytest.fixture
def worker_pool():
    pool = EnginePool(mode="easy", size=64, render_worker=True)
    yield pool
    if pool._worker is not None:
        proc = pool._worker.proc
        pool._worker.close()
        assert proc.returncode is not None, "closing the render worker left its process running"


def worker_batch() -> list[HeistLevel]:
    """Enough levels for the worker to take part, some of them edited."""
    levels = [pool_level(i % POOL_SIZE) for i in range(WORKER_MIN_LEVELS + 40)]
    return [lv.remove_gem() if i % 3 == 0 else lv for i, lv in enumerate(levels)]


def test_render_worker_renders_large_batches_exactly_as_one_process_does(worker_pool):
    levels = worker_batch()
    assert (worker_pool.render(levels) == EnginePool(mode="easy", size=64).render(levels)).all()
    assert worker_pool._worker is not None and worker_pool._worker.proc.poll() is None


def test_a_dead_render_worker_raises_with_its_status_and_the_next_render_starts_a_new_one(worker_pool):
    levels = worker_batch()
    expected = worker_pool.render(levels)
    worker_pool._worker.proc.kill()
    worker_pool._worker.proc.wait()
    with pytest.raises(RenderWorkerError, match="exited with status -9"):
        worker_pool.render(levels)
    assert (worker_pool.render(levels) == expected).all()


def test_hires_pictures_show_the_same_level():
    levels = [pool_level(2), pool_level(3)]
    hires, low = render_hires(levels), render(levels).astype(float)
    assert hires.shape == (2, 512, 512, 3) and hires.dtype == np.uint8
    shrunk = hires.reshape(2, 64, 8, 64, 8, 3).mean(axis=(2, 4))
    own = np.abs(shrunk - low).mean(axis=(1, 2, 3))
    swapped = np.abs(shrunk - low[::-1]).mean(axis=(1, 2, 3))
    assert (own < swapped / 2).all(), (own, swapped)


# ------------------------------------------------------------------------------------------------ edits, seen
def pixel_box(level: HeistLevel, x0: float, y0: float, x1: float, y1: float, margin: int = 1) -> np.ndarray:
    """Mask of the pixels covering world rectangle [x0, x1] x [y0, y1] (y up), grown by ``margin`` pixels:
    columns [x0 u, x1 u), rows [(W - y1) u, (W - y0) u) with u = 64 / W (heist-state.md, section 4)."""
    unit, dim = OBS_SIZE / level.world_dim, level.world_dim
    mask = np.zeros((OBS_SIZE, OBS_SIZE), dtype=bool)
    rows = slice(max(math.floor((dim - y1) * unit) - margin, 0), math.ceil((dim - y0) * unit) + margin)
    cols = slice(max(math.floor(x0 * unit) - margin, 0), math.ceil(x1 * unit) + margin)
    mask[rows, cols] = True
    return mask


def entity_box(level: HeistLevel, e: Entity) -> np.ndarray:
    return pixel_box(level, e.x - e.rx, e.y - e.ry, e.x + e.rx, e.y + e.ry)


def changed_boxes(pair) -> list[np.ndarray]:
    """Where a pair's edit may change pixels: the moved entity's old and new boxes, or the wall's cell."""
    if pair.factor == "wall":
        (x, y), = {(x, y) for x in range(pair.base.grid_w) for y in range(pair.base.grid_h)
                   if pair.base.is_wall((x, y)) != pair.edited.is_wall((x, y))}
        return [pixel_box(pair.base, x, y, x + 1, y + 1)]
    (part,) = differing_parts(pair.base, pair.edited)  # "gem", "agent" or "<colour> key"
    pick = {"gem": lambda lv: lv.gem, "agent": lambda lv: lv.agent}.get(part, lambda lv: lv.keys[part.split()[0]])
    return [entity_box(pair.base, pick(pair.base)), entity_box(pair.edited, pick(pair.edited))]


@settings(deadline=None, max_examples=40)
@given(pair=counterfactual_pairs(factors=("gem_cell", "key_cell", "agent_cell", "wall"), modes=MODES))
def test_an_edit_changes_pixels_only_where_predicted(pair):
    before, after = render([pair.base, pair.edited])
    changed = (before != after).any(axis=-1)
    boxes = changed_boxes(pair)
    assert not (changed & ~np.logical_or.reduce(boxes)).any(), f"{pair.edit}: pixels changed outside the boxes"
    for box in boxes:
        assert (changed & box).any(), f"{pair.edit}: nothing changed in a predicted box"


def far_cell(level: HeistLevel, origin: tuple[int, int], min_distance: int) -> tuple[int, int]:
    """The first free floor cell at least ``min_distance`` (Manhattan) from ``origin`` and the agent."""
    x0, y0, x1, y1 = level.maze_bounds
    return next((x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)
                if not level.is_wall((x, y)) and level.occupant((x, y)) is None
                and min(abs(x - c[0]) + abs(y - c[1]) for c in (origin, level.agent.cell)) >= min_distance)


def test_the_oracle_reaches_a_moved_gem_and_gets_the_reward(oracle_play):
    levels = [lv.move_gem(far_cell(lv, lv.gem.cell, 3)) for lv in map(pool_level, range(12))]
    raw, rewards = [], np.zeros(len(levels))
    episodes = oracle_play(shared_pool("easy"), levels, max_steps=300, capture=raw, rewards=rewards)
    assert episodes.success.all() and (rewards == 10).all(), rewards
    for i, level in enumerate(levels):  # the last frame before the reward is next to the new gem cell
        last = HeistLevel.from_bytes(raw[(episodes.steps[i] - 1) * episodes.n + i])
        (ax, ay), (gx, gy) = last.agent.cell, level.gem.cell
        assert abs(ax - gx) + abs(ay - gy) <= 1, (i, last.agent.cell, level.gem.cell)


def without_locks(level: HeistLevel) -> HeistLevel:
    return functools.reduce(HeistLevel.remove_lock, level.locks, level)


def test_removed_locks_let_the_agent_through_and_kept_ones_block_it(oracle_play):
    """An oracle that ignores locks reaches the gem where locks and keys were removed, and never where only the
    keys were removed: the engine really opened (or kept) the doors."""
    behind = [lv for lv in map(pool_level, range(40))
              if shortest_path(lv, lv.agent.cell, lv.gem.cell, held=frozenset()) is None][:8]
    assert len(behind) == 8
    opened = [functools.reduce(HeistLevel.remove_key, lv.keys, without_locks(lv)) for lv in behind]
    locked = [functools.reduce(HeistLevel.remove_key, lv.keys, lv) for lv in behind]
    for lv, original in zip(opened, behind):  # the way to the gem crosses a removed door
        doors = {e.cell for e in original.locks.values()}
        assert doors & set(shortest_path(lv, lv.agent.cell, lv.gem.cell))
    episodes = oracle_play(shared_pool("easy"), opened + locked, max_steps=150,
                           policy=lambda lv: oracle_action(without_locks(lv)))
    assert episodes.success[:8].all() and not episodes.success[8:].any()


def test_a_finished_episode_is_not_continued_on_the_regenerated_level():
    pool = shared_pool("easy")
    level = pool_level(4)
    near_gem = level.move_gem(next(c for c in ((level.agent.cell[0] + dx, level.agent.cell[1] + dy)
                                               for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)))
                                   if not level.is_wall(c) and level.occupant(c) is None))
    episodes = pool.episodes([near_gem, pool_level(5)])
    for _ in range(10):
        last_frame = episodes.observe()[0].copy()
        ended = episodes.step(np.array([oracle_action(near_gem if s is None else s) for s in episodes.states()]))
        if ended[0]:
            break
    assert ended[0] and episodes.success[0] and not episodes.active[0] and episodes.active[1]
    assert episodes.states()[0] is None
    regenerated = pool.env.observe()[1]["rgb"][0]
    assert (episodes.observe()[0] == last_frame).all() and (regenerated != last_frame).any()
    steps = episodes.steps[0]
    episodes.step(np.array([Action.NOOP, Action.NOOP]))
    assert (episodes.observe()[0] == last_frame).all() and episodes.steps[0] == steps and not episodes.active[0]


def test_the_render_worker_renders_observations_only():
    with pytest.raises(EngineError, match="64x64 observations only"):
        EnginePool(mode="easy", size=4, hires=True, render_worker=True)


@pytest.mark.parametrize("seeds", [[1.7], [3, 2.0], [True]])
def test_generate_never_rounds_a_seed(seeds):
    with pytest.raises(EngineError, match="level seeds must be integers"):
        generate(seeds)
