"""The hypothesis strategies: real pooled levels, valid edits, single-factor counterfactual pairs (and the checker
that guards them), and shrinking toward small edits on low seeds."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from harness.errors import LevelEditError
from harness.heist.levels import LOCK
from harness.heist.engine import MODES
from harness.heist.sampling import seed_range
from harness.heist.pairs import Pair
from harness.heist.strategies import (FACTORS, POOL_SIZE, check_single_factor, counterfactual_pairs, differing_parts,
                                      edited_levels, levels, pool_level)

START = seed_range("calibration").start


def manhattan(a, b) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


@settings(deadline=None, max_examples=30)
@given(level=levels(modes=MODES))
def test_levels_are_generated_levels_from_the_pool(level):
    index = level.current_level_seed - START
    assert 0 <= index < POOL_SIZE and level is pool_level(index, level.distribution_mode)
    assert level.cur_time == 0 and not level.held_keys


@settings(deadline=None)
@given(level=edited_levels(modes=MODES))
def test_edited_levels_are_valid_engine_states(level, serialise):
    data = level.to_bytes()
    assert serialise(type(level).from_bytes(data)) == data


def entity_cells(level, kind: str) -> dict:
    return {"gem": {"gem": level.gem.cell}, "agent": {"agent": level.agent.cell},
            "key": {c: e.cell for c, e in level.keys.items()}}[kind]


@pytest.mark.parametrize("factor", FACTORS)
@settings(deadline=None, max_examples=20)
@given(data=st.data())
def test_pairs_differ_in_their_factor_only(factor, data):
    """Checked field by field here, independently of check_single_factor."""
    pair = data.draw(counterfactual_pairs(factors=(factor,), modes=MODES))
    base, edited = pair.base, pair.edited
    assert isinstance(pair, Pair) and pair.factor == factor and pair.edit
    others = {f.name for f in dataclasses.fields(base)} - {"entities", "cells", "has_keys"}
    assert all(getattr(base, f) == getattr(edited, f) for f in others)
    assert (base.cells != edited.cells) == (factor == "wall")
    assert (base.has_keys != edited.has_keys) == (factor == "held_key")
    if factor == "wall":
        assert sum(a != b for a, b in zip(base.cells, edited.cells)) == 1
    if factor == "held_key":
        assert sum(a != b for a, b in zip(base.has_keys, edited.has_keys)) == 1
    changed = [e for e in edited.entities if e not in base.entities]
    removed = [e for e in base.entities if e not in edited.entities]
    if factor in ("wall", "held_key"):
        assert not changed and not removed
    elif factor == "lock":
        assert not changed and len(removed) == 1 and removed[0].type == LOCK
    else:
        assert len(changed) == len(removed) == 1 and changed[0].cell != removed[0].cell
        assert (changed[0].type, changed[0].image_theme) == (removed[0].type, removed[0].image_theme)


SHRINK = settings(derandomize=True, database=None)


@pytest.mark.parametrize("factor, kind", [("gem_cell", "gem"), ("agent_cell", "agent"), ("key_cell", "key")])
def test_shrinking_moves_toward_near_cells_on_low_seeds(factor, kind):
    def moved_by(pair) -> int:
        before, after = entity_cells(pair.base, kind), entity_cells(pair.edited, kind)
        return max(manhattan(before[k], after[k]) for k in before)

    pair = find(counterfactual_pairs(factors=(factor,)), lambda p: moved_by(p) >= 3, settings=SHRINK)
    assert moved_by(pair) in (3, 4) and pair.base.current_level_seed - START < 16, pair


def test_edited_levels_shrink_to_one_edit_on_the_first_level():
    edited = find(edited_levels(), lambda level: level.gem is None, settings=SHRINK)
    assert edited == pool_level(0).remove_gem()


# ------------------------------------------------------------------------------------------------ the checker
def test_checker_accepts_each_single_factor_edit():
    level = pool_level(0)
    free = (4, 6)
    assert not level.is_wall(free) and level.occupant(free) is None
    for factor, edited in [("gem_cell", level.move_gem(free)), ("key_cell", level.move_key("green", free)),
                           ("lock", level.remove_lock("blue")), ("wall", level.add_wall(free)),
                           ("agent_cell", level.move_agent(free)), ("held_key", level.give_key("blue"))]:
        check_single_factor(factor, level, edited)


def nudged(level, entity):
    """``level`` with ``entity`` shifted a little inside its cell."""
    return dataclasses.replace(level, entities=tuple(dataclasses.replace(e, x=e.x + 0.05) if e is entity else e
                                                     for e in level.entities))


def checker_failures():
    """(factor, edit of pool level 0, message pattern) that the checker must refuse."""
    free, other = (4, 6), (4, 4)
    return {
        "two factors": ("gem_cell", lambda lv: lv.move_gem(free).add_wall(other), r"differs in \['cells', 'gem'\]"),
        "wrong factor": ("agent_cell", lambda lv: lv.move_gem(free), r"differs in \['gem'\]"),
        "nothing changed": ("wall", lambda lv: lv, r"differs in \[\]"),
        "two keys moved": ("key_cell", lambda lv: lv.move_key("green", free).move_key("blue", other),
                           r"\['blue key', 'green key'\]"),
        "clock changed": ("held_key", lambda lv: dataclasses.replace(lv.give_key("blue"), cur_time=5), "cur_time"),
        "gem moved in its cell": ("gem_cell", lambda lv: nudged(lv, lv.gem), "another cell"),
        "key moved in its cell": ("key_cell", lambda lv: nudged(lv, lv.keys["blue"]), "another cell"),
        "unknown factor": ("colour", lambda lv: lv, "unknown factor"),
    }


@pytest.mark.parametrize("case", list(checker_failures()))
def test_checker_refuses_pairs_that_differ_otherwise(case):
    factor, edit, pattern = checker_failures()[case]
    level = pool_level(0)
    with pytest.raises(LevelEditError, match=pattern):
        check_single_factor(factor, level, edit(level))


def test_differing_parts_names_entities_and_fields():
    level = pool_level(0)
    assert differing_parts(level, level) == frozenset()
    assert differing_parts(level, level.remove_key("green").give_key("green")) == {"green key", "has_keys"}
    assert differing_parts(level, pool_level(1)) >= {"cells", "agent", "gem", "current_level_seed"}


@pytest.mark.parametrize("make", [lambda: levels(modes=("medium",)), lambda: levels(pool_size=0),
                                  lambda: counterfactual_pairs(factors=("colour",)), lambda: edited_levels(max_edits=-1)],
                         ids=["mode", "pool size", "factor", "edits"])
def test_bad_strategy_arguments_are_refused(make):
    with pytest.raises(InvalidArgument):
        find(make(), lambda x: True)
