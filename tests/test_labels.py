"""Entity labels (harness.heist.labels) on hand-built levels: which entity is next as the target order moves on,
quadrants from cell positions placed by hand, and agreement with target_quadrant for the next entity."""

import pytest

from harness.heist.labels import QUADRANTS, entity_labels, labels_by_name, quadrant
from harness.heist.oracle import current_target
from harness.heist.strategies import pool_level
from harness.lenses.measures import target_quadrant


@pytest.fixture(scope="module")
def level():
    """A generated level with a blue and a green key and lock (and the gem)."""
    return next(lv for lv in map(pool_level, range(64)) if set(lv.locks) == set(lv.keys) == {"blue", "green"})


def nexts(level):
    return [label.name for label in entity_labels(level) if label.next]


def test_next_follows_the_target_order_and_non_next_are_the_rest(level):
    assert [label.name for label in entity_labels(level)] == ["blue key", "green key", "blue lock", "green lock",
                                                               "gem"]
    assert nexts(level) == ["blue key"]
    assert nexts(level.give_key("blue")) == ["blue lock"]
    opened = level.give_key("blue").remove_key("blue").remove_lock("blue")
    assert nexts(opened) == ["green key"] and "blue key" not in labels_by_name(opened)
    assert nexts(opened.remove_key("green").remove_lock("green")) == ["gem"]
    assert nexts(level.remove_key("blue")) == []  # the blue lock can never open: no target


def test_colour_kind_and_cell_of_each(level):
    labels = labels_by_name(level)
    for name, label in labels.items():
        kind = name.split()[-1]
        assert label.kind == kind and label.colour == (None if kind == "gem" else name.split()[0])
    assert labels["green key"].cell == level.keys["green"].cell
    assert labels["blue lock"].cell == level.locks["blue"].cell and labels["gem"].cell == level.gem.cell


def test_quadrants_of_entities_placed_by_hand(level):
    free = [(x, y) for y in range(level.grid_h) for x in range(level.grid_w)
            if not level.is_wall((x, y)) and level.occupant((x, y)) is None]
    agent = free[len(free) // 2]
    placed = level.move_agent(agent)
    expected_of = {(-1, 1): "up-left", (1, 1): "up-right", (-1, -1): "down-left", (1, -1): "down-right"}
    checked = set()
    for cell in free:
        sx, sy = (cell[0] > agent[0]) - (cell[0] < agent[0]), (cell[1] > agent[1]) - (cell[1] < agent[1])
        if (sx, sy) not in expected_of or (sx, sy) in checked:
            continue
        moved = placed.move_key("green", cell)
        label = labels_by_name(moved)["green key"]
        assert QUADRANTS[label.quadrant] == expected_of[(sx, sy)], (agent, cell)
        assert label.cell == cell and label.offset == (moved.keys["green"].x - agent[0] - 0.5,
                                                       moved.keys["green"].y - agent[1] - 0.5)
        checked.add((sx, sy))
    assert len(checked) >= 3
    # a lock is centred in its cell, as the agent is: straight above counts as right, level with it as up
    x, y = agent
    for cell, name in (((x, y + 1), "up-right"), ((x - 1, y), "up-left"), ((x, y - 1), "down-right")):
        if cell in free:
            assert QUADRANTS[labels_by_name(placed.move_lock("blue", cell))["blue lock"].quadrant] == name


def test_the_next_entitys_quadrant_is_target_quadrant():
    for level in map(pool_level, range(48)):
        target = current_target(level)
        labels = [label for label in entity_labels(level) if label.next]
        assert [label.quadrant for label in labels] == ([] if target is None else [target_quadrant(level)])
        if target is not None:
            assert quadrant(level, target.entity) == target_quadrant(level)
