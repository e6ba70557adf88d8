"""The oracle against an independent brute-force search on real and edited levels, its target rules on
constructed cases, and its controller playing the real game."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings

from harness.heist.actions import Action
from harness.heist.engine import MODES, shared_pool
from harness.heist.levels import COLOURS, HeistLevel
from harness.heist.oracle import (MOVES, NO_STEP, ON_TARGET, STEP_CLASSES, Guidance, current_target, decision_cells,
                                  distances_from, first_steps, guide, oracle_action, shortest_path)
from harness.heist.sampling import sample_levels
from harness.heist.strategies import edited_levels, levels, pool_level


def brute_force_distances(level: HeistLevel, start, held: frozenset[str]) -> dict[tuple[int, int], int]:
    """Breadth-first search written from the rules alone: 4-neighbours, walls (and outside) block, a closed lock
    blocks unless its key is held."""
    closed = {e.cell for colour, e in level.locks.items() if colour not in held}
    dist, queue = {start: 0}, deque([start])
    while queue:
        x, y = queue.popleft()
        for nxt in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if nxt not in dist and not level.is_wall(nxt) and nxt not in closed:
                dist[nxt] = dist[(x, y)] + 1
                queue.append(nxt)
    return dist


def goals(level: HeistLevel) -> list[tuple[int, int]]:
    return [e.cell for e in [*level.keys.values(), *level.locks.values(), level.gem] if e is not None]


def assert_valid_minimal_path(level: HeistLevel, start, goal, held: frozenset[str]) -> None:
    path = shortest_path(level, start, goal, held)
    truth = brute_force_distances(level, start, held)
    closed = {e.cell for colour, e in level.locks.items() if colour not in held}
    if goal in closed:  # a closed lock is a goal one step beyond its nearest reachable neighbour
        x, y = goal
        near = [truth[c] for c in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)) if c in truth]
        if near:
            truth[goal] = min(near) + 1
    if goal not in truth:
        assert path is None, f"path to unreachable {goal}: {path}"
        return
    assert path is not None and path[0] == start and path[-1] == goal
    assert len(path) - 1 == truth[goal], "not a shortest path"
    for (x0, y0), (x1, y1) in zip(path, path[1:]):
        assert abs(x1 - x0) + abs(y1 - y0) == 1, "not 4-neighbours"
    for cell in path[1:-1]:
        assert not level.is_wall(cell) and cell not in closed, f"path passes through blocked cell {cell}"
    assert not level.is_wall(path[-1])


@settings(deadline=None)
@given(level=edited_levels(modes=MODES))
def test_paths_are_valid_minimal_and_respect_locks(level):
    start = level.agent.cell
    for goal in goals(level):
        assert_valid_minimal_path(level, start, goal, level.held_keys)
        assert_valid_minimal_path(level, start, goal, frozenset())
        assert_valid_minimal_path(level, start, goal, frozenset(COLOURS))


@settings(deadline=None)
@given(level=levels(modes=MODES))
def test_distance_map_matches_brute_force(level):
    truth = brute_force_distances(level, level.agent.cell, level.held_keys)
    dist = distances_from(level, level.agent.cell)
    for y in range(level.grid_h):
        for x in range(level.grid_w):
            assert dist[y, x] == truth.get((x, y), -1), (x, y)


@settings(deadline=None)
@given(level=edited_levels())
def test_first_step_and_decision_cells_follow_the_target_path(level):
    guidance = guide(level)
    if guidance is None:
        target = current_target(level)
        assert target is None or shortest_path(level, level.agent.cell, target.cell) is None
        assert decision_cells(level) == {}
        return
    path = guidance.path
    assert path == shortest_path(level, level.agent.cell, guidance.target.cell)
    if len(path) > 1:
        assert MOVES[guidance.first_step] == (path[1][0] - path[0][0], path[1][1] - path[0][1])
    entities = {f"{c} key": e for c, e in level.keys.items()} | {f"{c} lock": e for c, e in level.locks.items()}
    for name, cell in decision_cells(level).items():  # the last cell the two paths share
        other = shortest_path(level, level.agent.cell, (entities.get(name) or level.gem).cell)
        i = path.index(cell)
        assert other[:i + 1] == path[:i + 1], f"{name}: paths differ before its decision cell"
        assert i + 1 in (len(path), len(other)) or other[i + 1] != path[i + 1], f"{name}: paths go on together"


def test_first_step_is_none_on_the_target_cell():
    target = current_target(pool_level(0))
    assert Guidance(target=target, path=(target.cell,)).first_step is None


def two_colour_level() -> HeistLevel:
    return next(lv for lv in map(pool_level, range(64)) if set(lv.locks) == set(lv.keys) == {"blue", "green"})


@settings(deadline=None)
@given(level=edited_levels(modes=MODES))
def test_first_steps_walk_every_cell_to_the_target_along_a_shortest_path(level):
    steps, target, guidance = first_steps(level), current_target(level), guide(level)
    if target is None:
        assert (steps == NO_STEP).all()
        return
    truth = brute_force_distances(level, target.cell, level.held_keys)
    assert {(x, y) for y, x in zip(*(steps != NO_STEP).nonzero())} == set(truth)
    for (x, y), distance in truth.items():
        for _ in range(distance):
            dx, dy = MOVES[STEP_CLASSES[steps[y, x]]]
            x, y = x + dx, y + dy
        assert steps[y, x] == ON_TARGET, "following the steps does not reach the target in the shortest distance"
    if guidance is not None:
        ax, ay = level.agent.cell
        expected = ON_TARGET if guidance.first_step is None else STEP_CLASSES.index(guidance.first_step)
        assert steps[ay, ax] == expected


def name(level: HeistLevel) -> str | None:
    target = current_target(level)
    return None if target is None else target.name


def test_target_order_key_then_its_lock_then_the_next_colour_then_the_gem():
    level = two_colour_level()
    assert name(level) == "blue key"
    assert name(level.give_key("blue")) == "blue lock"
    assert name(level.give_key("blue").remove_lock("blue")) == "green key"
    assert name(level.give_key("green")) == "blue key"  # colours are taken in order
    assert name(level.give_key("blue").give_key("green").remove_lock("blue")) == "green lock"
    assert name(level.remove_lock("blue").remove_lock("green")) == "gem"
    assert current_target(level.remove_lock("blue").remove_lock("green")).entity == level.gem


def test_no_target_when_a_closed_locks_key_is_gone():
    level = two_colour_level()
    assert name(level.remove_key("blue")) is None
    assert name(level.remove_lock("blue").remove_key("green")) is None
    assert name(level.give_key("blue").remove_key("blue")) == "blue lock"  # held keys still open
    assert guide(level.remove_key("blue")) is None and oracle_action(level.remove_key("blue")) == Action.NOOP


def test_no_target_without_a_gem_once_doors_are_open():
    level = two_colour_level().remove_lock("blue").remove_lock("green").remove_gem()
    assert current_target(level) is None


def test_decision_cells_name_the_keys_off_the_way_to_the_gem():
    level = two_colour_level().remove_lock("blue").remove_lock("green")  # target: the gem; keys lie off the way
    assert name(level) == "gem" and set(decision_cells(level)) == {"blue key", "green key"}


def test_a_path_to_a_closed_lock_ends_on_the_lock_without_passing_another():
    level = two_colour_level()  # both locks closed, no key held; green's lock lies behind blue's
    for colour, held in (("blue", frozenset()), ("green", frozenset({"blue"}))):
        lock = level.locks[colour].cell
        path = shortest_path(level, level.agent.cell, lock, held)
        assert path is not None and path[-1] == lock, colour
        assert not {e.cell for c, e in level.locks.items() if c not in held} & set(path[:-1])
    cells = decision_cells(level)  # target: the blue key; the blue lock is one of the others
    assert "blue lock" in cells and "green lock" not in cells
    assert shortest_path(level, level.agent.cell, level.locks["blue"].cell)[-1] == level.locks["blue"].cell
    wall = next((x, y) for y in range(level.grid_h) for x in range(level.grid_w) if level.is_wall((x, y)))
    assert shortest_path(level, level.agent.cell, wall) is None


def test_the_oracle_solves_nearly_every_easy_level(oracle_play):
    """The controller reaches the gem in at least 95% of a seeded sample of easy levels."""
    sample = sample_levels("calibration", 24, seed=11)
    episodes = oracle_play(shared_pool("easy"), sample, max_steps=400)
    assert episodes.success.mean() >= 0.95, [lv.current_level_seed for lv, ok in zip(sample, episodes.success)
                                            if not ok]
