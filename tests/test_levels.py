"""HeistLevel: exact round trip of engine states, the readable view, every edit and its errors, and validation of
hostile buffers (in process, and in a subprocess where an engine abort would show as a failed exit)."""

from __future__ import annotations

import copy as copy_module
import dataclasses
import math
import pickle
import struct
import subprocess
import sys
import textwrap
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import LevelEditError, LevelFormatError
from harness.heist.levels import AGENT, COLOURS, FLOOR, GEM, KEY, KEY_ON_RING, WALL, HeistLevel
from harness.heist.engine import MODES, shared_pool
from harness.heist.strategies import differing_parts, edited_levels, pool_level

PLAYED_LEVELS, PLAYED_STEPS = 32, 40


@pytest.fixture(scope="module")
def played(oracle_play) -> dict[str, tuple[list[HeistLevel], list[bytes]]]:
    """Per mode: 32 generated levels and the raw engine states of every slot at each of the first 40 oracle
    steps (fresh levels, moving agents, keys held, locks opened)."""
    out = {}
    for mode in MODES:
        starts = [pool_level(i, mode) for i in range(PLAYED_LEVELS)]
        raw: list[bytes] = []
        oracle_play(shared_pool(mode), starts, max_steps=PLAYED_STEPS, capture=raw)
        out[mode] = (starts, raw)
    return out


def with_colours(n: int, mode: str = "easy") -> HeistLevel:
    """The first pool level with exactly ``n`` colours, each with its key and lock, and ``num_keys == n``."""
    return next(lv for lv in map(lambda i: pool_level(i, mode), range(64))
                if len(lv.keys) == len(lv.locks) == lv.num_keys == n)


def unchecked_bytes(level: HeistLevel) -> bytes:
    """Serialise without validation, to build hostile buffers."""
    with mock.patch("harness.heist.levels.check_state", lambda *args, **kwargs: None):
        return dataclasses.replace(level).to_bytes()


def layout(level: HeistLevel) -> dict[str, int]:
    """Byte offsets of every length and count field and of the end marker, worked out from the layout table of
    heist-state.md (independently of the parser)."""
    at = {"name length": 4}
    at["level seed rng length"] = 8 + len(level.game_name) + 17 * 4 + 4
    at["rng length"] = at["level seed rng length"] + 4 + len(level.level_seed_rng.text) + 4
    at["entity count"] = at["rng length"] + 4 + len(level.rng.text) + 16 * 4
    at["asset rng length"] = at["entity count"] + 4 + 124 * len(level.entities) + 19 * 4 + 4
    at["cell count"] = at["asset rng length"] + 4 + len(level.asset_rng.text) + 9 * 4 + 8
    at["has_keys count"] = at["cell count"] + 4 + 4 * len(level.cells) + 8
    at["end marker"] = at["has_keys count"] + 4 + 4 * len(level.has_keys)
    return at


def field_starts(level: HeistLevel) -> list[int]:
    """Offsets of every 4-byte field: everything but the game name and the three random-generator texts."""
    at = layout(level)
    texts = [(8, 8 + len(level.game_name))] + [(at[k] + 4, at[k] + 4 + len(rng.text)) for k, rng in (
        ("level seed rng length", level.level_seed_rng), ("rng length", level.rng),
        ("asset rng length", level.asset_rng))]
    bounds = [0] + [b for span in texts for b in span] + [at["end marker"] + 4]
    return [o for start, stop in zip(bounds[::2], bounds[1::2]) for o in range(start, stop, 4)]


# ------------------------------------------------------------------------------------------------ round trip
def test_round_trip_is_byte_identical_on_fresh_and_played_states(played, serialise):
    n_states = held = opened = 0
    for starts, raw in played.values():
        for i, data in enumerate(raw):
            level = HeistLevel.from_bytes(data)
            assert serialise(level) == data, f"state {i} ({level!r}) does not round-trip"
            n_states += 1
            held += any(level.has_keys)
            opened += len(level.locks) < len(starts[i % len(starts)].locks)
    assert n_states >= 1000 and held >= 100 and opened >= 50, (n_states, held, opened)


def test_layout_helper_matches_the_buffer():
    level = pool_level(0)
    data, at = level.to_bytes(), layout(level)
    assert struct.unpack_from("<I", data, at["end marker"])[0] == 0xCAFECAFE
    assert at["end marker"] + 4 == len(data)
    assert struct.unpack_from("<i", data, at["entity count"])[0] == len(level.entities)
    assert struct.unpack_from("<i", data, at["cell count"])[0] == len(level.cells)
    starts = field_starts(level)
    assert len(starts) == (len(data) - len(level.game_name) - sum(
        len(r.text) for r in (level.level_seed_rng, level.rng, level.asset_rng))) // 4
    assert {at[k] for k in at} <= set(starts)


# ------------------------------------------------------------------------------------------------ view
def test_walls_are_indexed_y_up_like_the_engine_grid():
    level = pool_level(3)
    h, w = level.walls.shape
    assert (h, w) == (level.grid_h, level.grid_w) == (9, 9)
    for y in range(h):
        for x in range(w):
            assert level.walls[y, x] == (level.cells[y * w + x] == WALL) == level.is_wall((x, y))
    assert level.is_wall((-1, 0)) and level.is_wall((0, h))
    x0, y0, x1, y1 = level.maze_bounds
    floor = ~level.walls
    assert floor[y0].any() and floor[y1].any() and floor[:, x0].any() and floor[:, x1].any()
    assert not floor[:y0].any() and not floor[y1 + 1:].any()


def test_text_picture_shows_the_top_row_first_with_entities_and_held_keys():
    level = with_colours(2)
    lines = level.text().splitlines()
    assert len(lines) == level.grid_h + 1 and lines[-1] == "held: none"
    symbol = {level.agent.cell: "A", level.gem.cell: "*"}
    symbol |= {e.cell: e.colour[0] for e in level.keys.values()}
    symbol |= {e.cell: e.colour[0].upper() for e in level.locks.values()}
    for y in range(level.grid_h):
        for x in range(level.grid_w):
            expected = symbol.get((x, y), "#" if level.walls[y, x] else ".")
            assert lines[level.grid_h - 1 - y][x] == expected, (x, y)
    assert level.give_key("green").text().splitlines()[-1] == "held: green"
    assert repr(level).splitlines()[1:] == lines


def test_accessors_name_the_level_entities():
    level = with_colours(3)
    assert level.agent.type == AGENT and level.gem.type == GEM
    assert set(level.keys) == set(level.locks) == set(COLOURS) == set(level.colours)
    assert all(e.type == KEY and e.colour == c for c, e in level.keys.items())
    assert level.occupant(level.gem.cell) is level.gem and level.occupant(level.agent.cell) is level.agent
    assert level.distribution_mode == "easy" and pool_level(0, "hard").distribution_mode == "hard"
    assert [e.image_theme for e in level.entities if e.type == KEY_ON_RING] == [0, 1, 2]


# ------------------------------------------------------------------------------------------------ edits
def free_cells(level: HeistLevel) -> list[tuple[int, int]]:
    x0, y0, x1, y1 = level.maze_bounds
    return [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)
            if not level.is_wall((x, y)) and level.occupant((x, y)) is None]


def inside_wall(level: HeistLevel) -> tuple[int, int]:
    x0, y0, x1, y1 = level.maze_bounds
    return next((x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1) if level.is_wall((x, y)))


def assert_reparses(level: HeistLevel, serialise) -> None:
    """An edited level serialises to a valid state that parses and serialises back to the same bytes."""
    data = level.to_bytes()
    assert serialise(HeistLevel.from_bytes(data)) == data


@pytest.mark.parametrize("what", ["agent", "gem", "key", "lock"])
def test_move_changes_only_that_entity(what, serialise):
    level = with_colours(2)
    cell = free_cells(level)[-1]
    old = {"agent": level.agent, "gem": level.gem, "key": level.keys["green"], "lock": level.locks["green"]}[what]
    edited = {"agent": lambda: level.move_agent(cell), "gem": lambda: level.move_gem(cell),
              "key": lambda: level.move_key("green", cell), "lock": lambda: level.move_lock("green", cell)}[what]()
    new = edited.occupant(cell)
    assert new.type == old.type and new.cell == cell and (new.vx, new.vy) == (0.0, 0.0)
    assert differing_parts(level, edited) == {what if what in ("agent", "gem") else f"green {what}"}
    if what in ("gem", "key"):  # keeps its offset inside the cell
        assert math.isclose(new.x - cell[0], old.x - old.cell[0], abs_tol=1e-6)
    else:
        assert (new.x, new.y) == (cell[0] + 0.5, cell[1] + 0.5)
    assert_reparses(edited, serialise)


@pytest.mark.parametrize("what", ["gem", "key", "lock"])
def test_remove_drops_the_record_and_fixes_the_count(what, serialise):
    level = with_colours(2)
    edited = {"gem": level.remove_gem, "key": lambda: level.remove_key("blue"),
              "lock": lambda: level.remove_lock("blue")}[what]()
    assert len(edited.entities) == len(level.entities) - 1
    assert differing_parts(level, edited) == {what if what == "gem" else f"blue {what}"}
    assert_reparses(edited, serialise)


def hud(level: HeistLevel) -> list:
    return [e for e in level.entities if e.type == KEY_ON_RING]


@pytest.mark.parametrize("colours", [1, 2, 3])
def test_adding_a_colour_matches_a_generated_level_with_that_many(colours, serialise):
    """Key, lock, has_keys, num_keys and the HUD icon, as the engine makes them for that number of colours."""
    level, natural = with_colours(colours - 1), with_colours(colours)
    colour = COLOURS[colours - 1]
    cells = free_cells(level)
    edited = HeistLevel.from_bytes(level.add_key(colour, cells[0]).add_lock(colour, cells[1]).to_bytes())  # float32
    assert edited.keys[colour].cell == cells[0] and edited.locks[colour].cell == cells[1]
    assert (edited.has_keys, edited.num_keys) == (natural.has_keys, natural.num_keys)
    assert hud(edited) == hud(natural)
    for kind in ("keys", "locks"):  # same size and images as generated ones
        made, real = getattr(edited, kind)[colour], getattr(natural, kind)[colour]
        assert (made.rx, made.ry, made.image_type, made.render_z) == (real.rx, real.ry, real.image_type, real.render_z)
    assert_reparses(edited, serialise)


def test_adding_a_removed_colour_back_keeps_has_keys():
    level = with_colours(2)
    edited = level.remove_lock("green").add_lock("green", free_cells(level)[0])
    assert edited.has_keys == level.has_keys and hud(edited) == hud(level)
    assert differing_parts(level, edited) == {"green lock"}


def test_walls_are_added_and_cleared_on_one_cell(serialise):
    level = with_colours(1)
    floor, wall = free_cells(level)[0], inside_wall(level)
    added, cleared = level.add_wall(floor), level.clear_wall(wall)
    assert added.is_wall(floor) and not cleared.is_wall(wall)
    assert differing_parts(level, added) == differing_parts(level, cleared) == {"cells"}
    assert sum(a != b for a, b in zip(level.cells, added.cells)) == 1
    assert added.cells[floor[1] * level.grid_w + floor[0]] == WALL
    assert cleared.cells[wall[1] * level.grid_w + wall[0]] == FLOOR
    assert_reparses(added, serialise)


def test_give_and_take_key_flip_has_keys_only(serialise):
    level = with_colours(2)
    given_ = level.give_key("green")
    assert given_.held_keys == {"green"} and differing_parts(level, given_) == {"has_keys"}
    assert given_.take_key("green") == level
    extended = with_colours(1).give_key("red")  # a colour the level never had: has_keys and HUD grow
    assert extended.has_keys == (0, 0, 1) and [e.image_theme for e in hud(extended)] == [0, 1, 2]
    assert_reparses(extended, serialise)


@pytest.fixture(scope="module")
def edit_case() -> tuple[HeistLevel, dict[str, tuple[int, int]]]:
    """A 2-colour level with a 7x7 maze at (1, 1), and named cells on it."""
    lv = pool_level(1)
    assert lv.maze_bounds == (1, 1, 7, 7) and len(lv.locks) == 2
    return lv, {"wall": inside_wall(lv), "free": free_cells(lv)[0], "outside": (0, 0), "beyond grid": (9, 3),
                "key": lv.keys["blue"].cell, "lock": lv.locks["blue"].cell, "gem": lv.gem.cell,
                "agent": lv.agent.cell}


EDIT_ERRORS = {  # name: (edit of (level, cells), message pattern)
    "agent onto wall": (lambda lv, at: lv.move_agent(at["wall"]), "is a wall"),
    "agent outside maze": (lambda lv, at: lv.move_agent(at["outside"]), "outside the maze"),
    "agent outside grid": (lambda lv, at: lv.move_agent(at["beyond grid"]), "outside the maze"),
    "agent onto key": (lambda lv, at: lv.move_agent(at["key"]), "already holds the blue key"),
    "cell not a tuple": (lambda lv, at: lv.move_agent(list(at["free"])), r"\(x, y\) tuple"),
    "gem onto wall": (lambda lv, at: lv.move_gem(at["wall"]), "is a wall"),
    "gem onto lock": (lambda lv, at: lv.move_gem(at["lock"]), "already holds the blue lock"),
    "gem missing": (lambda lv, at: lv.remove_gem().move_gem(at["free"]), "no gem"),
    "key onto agent": (lambda lv, at: lv.move_key("blue", at["agent"]), "already holds the agent"),
    "key outside": (lambda lv, at: lv.move_key("blue", at["outside"]), "outside the maze"),
    "key unknown colour": (lambda lv, at: lv.move_key("purple", at["free"]), "unknown colour 'purple'"),
    "key missing": (lambda lv, at: lv.remove_key("blue").move_key("blue", at["free"]), "no blue key"),
    "key of absent colour": (lambda lv, at: lv.move_key("red", at["free"]), "no red key"),
    "lock onto gem": (lambda lv, at: lv.move_lock("green", at["gem"]), "already holds the gem"),
    "lock missing": (lambda lv, at: lv.remove_lock("green").move_lock("green", at["free"]), "no green lock"),
    "remove gem twice": (lambda lv, at: lv.remove_gem().remove_gem(), "no gem"),
    "remove absent key": (lambda lv, at: lv.remove_key("red"), "no red key"),
    "remove absent lock": (lambda lv, at: lv.remove_lock("red"), "no red lock"),
    "remove unknown colour": (lambda lv, at: lv.remove_lock("Blue"), "unknown colour"),
    "add key twice": (lambda lv, at: lv.add_key("blue", at["free"]), "already has a blue key"),
    "add lock twice": (lambda lv, at: lv.add_lock("green", at["free"]), "already has a green lock"),
    "add key on wall": (lambda lv, at: lv.add_key("red", at["wall"]), "is a wall"),
    "add lock on agent": (lambda lv, at: lv.add_lock("red", at["agent"]), "already holds the agent"),
    "add lock outside": (lambda lv, at: lv.add_lock("red", at["outside"]), "outside the maze"),
    "add unknown colour": (lambda lv, at: lv.add_key("yellow", at["free"]), "unknown colour"),
    "wall on wall": (lambda lv, at: lv.add_wall(at["wall"]), "already a wall"),
    "wall on gem": (lambda lv, at: lv.add_wall(at["gem"]), "would bury it"),
    "wall outside": (lambda lv, at: lv.add_wall(at["outside"]), "outside the maze"),
    "clear floor": (lambda lv, at: lv.clear_wall(at["free"]), "already floor"),
    "clear outside": (lambda lv, at: lv.clear_wall(at["outside"]), "outside the maze"),
    "take key not held": (lambda lv, at: lv.take_key("blue"), "does not hold the blue key"),
    "give unknown colour": (lambda lv, at: lv.give_key("black"), "unknown colour"),
}


@pytest.mark.parametrize("name", list(EDIT_ERRORS))
def test_invalid_edits_raise_level_edit_error(name, edit_case):
    edit, pattern = EDIT_ERRORS[name]
    with pytest.raises(LevelEditError, match=pattern) as info:
        edit(*edit_case)
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------------------------------------ hostile buffers
def with_entity(lv: HeistLevel, pick, **changes) -> HeistLevel:
    """``lv`` with the entity ``pick(lv)`` changed."""
    old = pick(lv)
    return dataclasses.replace(lv, entities=tuple(dataclasses.replace(e, **changes) if e is old else e
                                                  for e in lv.entities))


def blue_key(lv):
    return lv.keys["blue"]


def agent(lv):
    return lv.agent


def gem(lv):
    return lv.gem


HOSTILE = {  # name: (2-colour level -> level with one field the engine cannot take, message pattern)
    "wrong game name": (lambda lv: dataclasses.replace(lv, game_name=b"heisx"), "game name"),
    "other game": (lambda lv: dataclasses.replace(lv, game_name=b"coinrun"), "game name"),
    "version": (lambda lv: dataclasses.replace(lv, version=1), "serialize version"),
    "generated assets": (lambda lv: dataclasses.replace(lv, options=(0, 1) + lv.options[2:]), "use_generated_assets"),
    "no agent": (lambda lv: dataclasses.replace(lv, entities=tuple(e for e in lv.entities if e.type != AGENT)),
                 "no agent"),
    "colour beyond has_keys": (lambda lv: with_entity(lv, blue_key, image_theme=2), "colour index 2 but has_keys has 2"),
    "negative colour": (lambda lv: with_entity(lv, blue_key, image_theme=-1), "colour index -1"),
    "has_keys of 4": (lambda lv: dataclasses.replace(lv, has_keys=(0, 0, 0, 0)), "has_keys"),
    "has_keys not a flag": (lambda lv: dataclasses.replace(lv, has_keys=(0, 2)), "flags of 0 or 1"),
    "grid width": (lambda lv: dataclasses.replace(lv, grid_w=10), "inconsistent grid"),
    "grid_size": (lambda lv: dataclasses.replace(lv, grid_size=80), "inconsistent grid"),
    "short cells": (lambda lv: dataclasses.replace(lv, cells=lv.cells[:-1]), "inconsistent grid"),
    "world_dim": (lambda lv: dataclasses.replace(lv, world_dim=13), "world_dim"),
    "main size": (lambda lv: dataclasses.replace(lv, main_width=1000), "main size"),
    "cell value": (lambda lv: dataclasses.replace(lv, cells=(7,) + lv.cells[1:]), "cell values"),
    "image type": (lambda lv: with_entity(lv, blue_key, image_type=3), "drawn as image 3"),
    "unknown entity type": (lambda lv: with_entity(lv, blue_key, type=5), "type 5"),
    "gem theme": (lambda lv: with_entity(lv, gem, image_theme=1), "theme 0"),
    "nan position": (lambda lv: with_entity(lv, agent, x=math.nan), "out of range"),
    "runaway speed": (lambda lv: with_entity(lv, agent, vx=1e7), "out of range"),
    "growing size": (lambda lv: with_entity(lv, agent, grow_rate=2.0), "grow_rate 2.0"),
    # these parse, but a few steps into an episode the engine emits a state that cannot be read back:
    "agent erased": (lambda lv: with_entity(lv, agent, will_erase=1), "erase it during the episode"),
    "agent expires": (lambda lv: with_entity(lv, agent, expire_time=3), "erase it during the episode"),
    "shrinking through zero": (lambda lv: with_entity(lv, blue_key, grow_rate=-0.5), "grow_rate -0.5"),
    "turning": (lambda lv: with_entity(lv, blue_key, vrot=0.5), "vrot 0.5"),
    "too many entities": (lambda lv: dataclasses.replace(lv, entities=lv.entities + (lv.keys["blue"],) * 260),
                          r"entit.*\.\.256|at most 256"),
    "background": (lambda lv: dataclasses.replace(lv, background_index=9), "background_index"),
    "waiting for step": (lambda lv: dataclasses.replace(lv, is_waiting_for_step=1), "wait forever"),
    "empty seed range": (lambda lv: dataclasses.replace(lv, level_seed_high=lv.level_seed_low), "seed range"),
    "unseeded rng": (lambda lv: dataclasses.replace(lv, rng=dataclasses.replace(lv.rng, is_seeded=0)), "seeded"),
    "tile ratio": (lambda lv: dataclasses.replace(lv, bg_tile_ratio=-1e-30), "bg_tile_ratio"),
    "speed": (lambda lv: dataclasses.replace(lv, maxspeed=1e9), "maxspeed"),
    "outside is floor": (lambda lv: dataclasses.replace(lv, out_of_bounds_object=FLOOR), "out_of_bounds_object"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_fields_are_refused_when_parsed_and_when_serialised(name):
    make, pattern = HOSTILE[name]
    level = make(with_colours(2))
    data = unchecked_bytes(level)
    with pytest.raises(LevelFormatError, match=pattern):
        HeistLevel.from_bytes(data)
    with pytest.raises(LevelFormatError, match=pattern):
        level.to_bytes()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_fields_set_through_replace_are_refused_by_the_incremental_serialiser(name):
    """``HeistLevel.replace`` re-validates only the sections it changed: each hostile field must still be caught."""
    base = with_colours(2)
    bad = HOSTILE[name][0](base)
    changes = {f.name: getattr(bad, f.name) for f in dataclasses.fields(HeistLevel)
               if getattr(bad, f.name) != getattr(base, f.name) or f.name == "entities" and bad.entities != base.entities}
    with pytest.raises(LevelFormatError, match=HOSTILE[name][1]):
        base.replace(**changes).to_bytes()


def test_edited_levels_pickle_and_copy_as_their_bytes():
    edited = with_colours(2).remove_gem().give_key("blue")
    for copy in (pickle.loads(pickle.dumps(edited)), copy_module.deepcopy(edited)):
        assert copy == edited and copy.to_bytes() == edited.to_bytes()


def test_replace_drops_every_derived_value_whose_fields_changed():
    """Occupants, maze bounds and bytes cached on a level never carry over to a copy whose fields they read."""
    level = with_colours(1)
    x0, y0, x1, y1 = level.maze_bounds
    cell = next((x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)
                if not level.is_wall((x, y)) and level.occupant((x, y)) is None)
    moved = level.move_gem(cell)
    assert moved.occupant(cell) is moved.gem and level.occupant(cell) is None
    walled = level.replace(cells=tuple(WALL if i // level.grid_w == y0 else c for i, c in enumerate(level.cells)))
    assert walled.maze_bounds[1] > y0 and walled.to_bytes() != level.to_bytes()
    assert level.replace(cur_time=7).to_bytes() == dataclasses.replace(level, cur_time=7).to_bytes()


def test_replace_refuses_unknown_fields():
    level = with_colours(1)
    with pytest.raises(LevelEditError, match="no field"):
        level.replace(gems=3)
    with pytest.raises(LevelEditError, match="no field"):
        level.agent.replace(speed=1.0)


@settings(deadline=None, max_examples=60)
@given(level=edited_levels(modes=MODES, max_edits=6))
def test_edits_serialise_incrementally_to_the_same_bytes_as_a_full_pack(level):
    """Edits re-pack only the sections they change; the result equals packing every field afresh."""
    assert level.to_bytes() == dataclasses.replace(level).to_bytes()
    assert HeistLevel.from_bytes(level.to_bytes()) == level


@settings(deadline=None, max_examples=40)
@given(level=edited_levels(modes=MODES, max_edits=2), data=st.data())
def test_moves_of_serialised_levels_patch_their_bytes_to_a_full_pack(level, data):
    """A move of a level that was serialised overwrites one entity record of its bytes; a chain of such moves, each
    serialised, and a further change on top, equal packing every field afresh."""
    level.to_bytes()
    for _ in range(data.draw(st.integers(1, 4))):
        movable = [e for e in level.entities if e.type in (AGENT, GEM, KEY)]
        entity = data.draw(st.sampled_from(movable))
        free = [(x, y) for y in range(level.grid_h) for x in range(level.grid_w)
                if not level.is_wall((x, y)) and level.occupant((x, y)) in (None, entity)]
        cell = data.draw(st.sampled_from(free))
        level = level.move_agent(cell) if entity.type == AGENT else level._move(entity, cell)
        assert "entities" in level._derived, "the moved record was not written into the packed section"
        assert level.to_bytes() == dataclasses.replace(level).to_bytes()
    start = level.as_episode_start()  # a move and then a change to the step data: the patch must not be used
    assert start.to_bytes() == dataclasses.replace(start).to_bytes()


def test_every_truncation_and_any_trailing_byte_is_refused():
    data = pool_level(1).to_bytes()
    for n in range(len(data)):
        with pytest.raises(LevelFormatError):
            HeistLevel.from_bytes(data[:n])
    with pytest.raises(LevelFormatError, match="after the end marker"):
        HeistLevel.from_bytes(data + b"\0")
    with pytest.raises(LevelFormatError, match="expected the bytes"):
        HeistLevel.from_bytes(data.decode("latin-1"))


@pytest.mark.parametrize("field", ["name length", "level seed rng length", "rng length", "entity count",
                                   "asset rng length", "cell count", "has_keys count", "end marker"])
@pytest.mark.parametrize("value", [-1, 2**31 - 1, 1 << 20, "+1", "-1"])
def test_wrong_counts_and_end_marker_are_refused(field, value):
    level = pool_level(1)
    data, at = bytearray(level.to_bytes()), layout(level)
    old = struct.unpack_from("<i", data, at[field])[0]
    struct.pack_into("<i", data, at[field], old + int(value) if isinstance(value, str) else value)
    with pytest.raises(LevelFormatError):
        HeistLevel.from_bytes(bytes(data))


def check_mutant(data: bytes, serialise) -> None:
    """A mutated buffer is either refused with LevelFormatError or accepted and then round-trips exactly."""
    try:
        level = HeistLevel.from_bytes(data)
    except LevelFormatError:
        return
    assert serialise(level) == data


HOSTILE_INTS = [0, 1, -1, 2, 3, 9, 13, 51, 100, 2**31 - 1, -2**31, 0x7FC00000, 0x7F800000, 0x4F000000, 0x3F800000]


@settings(deadline=None)
@given(data=st.data())
def test_fuzzed_buffers_are_refused_or_round_trip(data, serialise):
    level = pool_level(data.draw(st.integers(0, 7)), data.draw(st.sampled_from(MODES)))
    buf = bytearray(level.to_bytes())
    if data.draw(st.booleans(), label="hostile int"):
        at = data.draw(st.sampled_from(field_starts(level)))
        struct.pack_into("<I", buf, at, data.draw(st.sampled_from(HOSTILE_INTS)) & 0xFFFFFFFF)
    else:
        at = data.draw(st.integers(0, len(buf) - 1))
        patch = data.draw(st.binary(min_size=1, max_size=8))
        buf[at:at + len(patch)] = patch
    check_mutant(bytes(buf), serialise)


# The subprocess sends every mutant that parses to the engine; an engine abort (fassert exits the process),
# a crash or a hang shows as a failed exit, and the last printed line names the mutant.
ENGINE_FUZZ = textwrap.dedent("""
    import pickle, random, struct, sys
    import numpy as np
    from harness.errors import LevelFormatError
    from harness.heist.levels import HeistLevel
    from harness.heist.engine import EnginePool
    states, n, seed = pickle.load(open(sys.argv[1], "rb")), int(sys.argv[2]), int(sys.argv[3])
    hostile = [0, 1, -1, 2, 3, 9, 13, 51, 100, 2**31 - 1, -2**31, 0x7FC00000, 0x7F800000, 0x4F000000, 0x3F800000]
    rng = random.Random(seed)
    for mode, samples in states.items():
        pool, sent = EnginePool(mode=mode, size=1), 0
        for _ in range(n):
            data, fields = rng.choice(samples)
            buf = bytearray(data)
            at = rng.choice(fields) if rng.random() < 0.9 else rng.randrange(len(buf) - 4)  # mostly not in texts
            kind = rng.randrange(3)
            if kind == 0:
                size = rng.choice([1, 2, 4])
                buf[at:at + size] = bytes(rng.randrange(256) for _ in range(size))
            elif kind == 1:
                struct.pack_into("<I", buf, at, rng.choice(hostile) & 0xFFFFFFFF)
            else:
                buf[at + 3] = rng.randrange(256)  # a float's sign and exponent
            try:
                HeistLevel.from_bytes(bytes(buf))
            except LevelFormatError:
                continue
            print(mode, "sending mutant", kind, "at", at, flush=True)
            pool.env.call_c_func("set_state", 0, bytes(buf), len(buf))
            pool.env.observe()
            for action in rng.choices(range(9), k=3):
                pool.env.act(np.array([action], dtype=np.int32))
            sent += 1
        print(mode, "sent", sent, "of", n, flush=True)
""")


def run_engine_fuzz(played, tmp_path, mutants: int, seed: int, timeout: float) -> None:
    samples = {}
    for mode, (_, raw) in played.items():
        chosen = raw[::len(raw) // 24][:24]  # fresh and mid-episode states
        samples[mode] = [(data, field_starts(HeistLevel.from_bytes(data))) for data in chosen]
    path = tmp_path / "states.pkl"
    path.write_bytes(pickle.dumps(samples))
    try:
        done = subprocess.run([sys.executable, "-c", ENGINE_FUZZ, str(path), str(mutants), str(seed)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as hang:
        out = hang.stdout.decode() if isinstance(hang.stdout, bytes) else hang.stdout or ""
        pytest.fail(f"engine hung after: {out.strip().splitlines()[-1:]}")
    last = done.stdout.strip().splitlines()[-2:]
    assert done.returncode == 0, f"engine died (exit {done.returncode}) after {last}: {done.stderr[-500:]}"
    assert all(f"{mode} sent" in done.stdout for mode in MODES)


def test_nothing_that_parses_breaks_the_engine(played, tmp_path):
    run_engine_fuzz(played, tmp_path, mutants=600, seed=0, timeout=600)  # generous: the machine is shared


@pytest.mark.slow
def test_nothing_that_parses_breaks_the_engine_long(played, tmp_path):
    run_engine_fuzz(played, tmp_path, mutants=20_000, seed=1, timeout=900)


@pytest.mark.slow
def test_hostile_state_would_kill_the_process_if_sent():
    """The reason for all of the above: the engine exits the whole process on a state with no agent."""
    level = with_colours(1)
    bad = unchecked_bytes(dataclasses.replace(level, entities=tuple(e for e in level.entities if e.type != AGENT)))
    script = textwrap.dedent("""
        import sys
        from harness.heist.engine import EnginePool
        data = open(sys.argv[1], "rb").read()
        EnginePool(mode="easy", size=1).env.call_c_func("set_state", 0, data, len(data))
        print("survived")
    """)
    done = subprocess.run([sys.executable, "-c", script, "/dev/stdin"], input=bad, capture_output=True, timeout=120)
    assert done.returncode != 0 and b"survived" not in done.stdout
