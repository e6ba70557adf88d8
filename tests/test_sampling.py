"""Seeded samples: reproducible to the byte, from disjoint named ranges, filtered by predicates, failing clearly."""

from __future__ import annotations

import itertools

import pytest

from harness.errors import SamplingError
from harness.heist.engine import generate
from harness.heist.sampling import SEED_RANGES, draw_seeds, sample_levels, seed_range


def no_locks(level) -> bool:
    return not level.locks


def test_same_seed_gives_the_same_levels_byte_for_byte():
    first = sample_levels("selection", 5, seed=7)
    generate([123, 456, 789])  # the engine slots now have another history
    again = sample_levels("selection", 5, seed=7)
    assert [lv.to_bytes() for lv in first] == [lv.to_bytes() for lv in again]
    other = sample_levels("selection", 5, seed=8)
    assert {lv.current_level_seed for lv in other}.isdisjoint({lv.current_level_seed for lv in first})


def test_seed_ranges_are_disjoint_and_draws_stay_inside():
    for a, b in itertools.combinations(SEED_RANGES.values(), 2):
        assert a.stop <= b.start or b.stop <= a.start, f"{a} overlaps {b}"
    for name, r in SEED_RANGES.items():
        seeds = draw_seeds(name, 500, seed=1)
        assert len(set(seeds.tolist())) == 500 and all(s in r for s in seeds.tolist())
    budget = 50 * 3  # sample_levels draws 50 * n seeds and keeps them in order
    assert [lv.current_level_seed for lv in sample_levels("confirmation", 3, seed=2)] == \
        draw_seeds("confirmation", budget, seed=2).tolist()[:3]


def test_predicate_keeps_the_matching_levels_in_draw_order():
    kept = sample_levels("calibration", 4, seed=3, where=no_locks)
    assert len(kept) == 4 and all(no_locks(lv) for lv in kept)
    drawn = generate(draw_seeds("calibration", 50 * 4, seed=3).tolist())  # the default budget: 50 * n draws
    assert [lv.current_level_seed for lv in kept] == [lv.current_level_seed for lv in drawn if no_locks(lv)][:4]


def test_too_rare_a_predicate_fails_with_advice():
    with pytest.raises(SamplingError, match=r"only 0 of 20 levels .* satisfy .* loosen the predicate") as info:
        sample_levels("calibration", 2, seed=0, where=lambda level: False, max_draws=20)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("call", [lambda: sample_levels("testing", 3, seed=0), lambda: draw_seeds("Selection", 3, seed=0),
                                  lambda: seed_range("")], ids=["sample", "draw", "range"])
def test_unknown_range_names_the_valid_ones(call):
    with pytest.raises(SamplingError, match="unknown seed range .*calibration.*confirmation.*selection.*training"):
        call()


@pytest.mark.parametrize("n", [0, -1])
def test_sample_size_must_be_positive(n):
    with pytest.raises(SamplingError, match="n must be"):
        sample_levels("selection", n, seed=0)


@pytest.mark.parametrize("n, seed, needle", [(100_001, 0, r"n must be in 1..100000 for range confirmation"),
                                             (4, -5, "non-negative integer, got -5"),
                                             (4, 1.5, "seed must be an integer, got 1.5"),
                                             (2.0, 0, "n must be an integer")])
def test_requests_the_range_cannot_give_are_refused_before_any_level_is_generated(n, seed, needle, monkeypatch):
    import harness.heist.engine as engine
    monkeypatch.setattr(engine, "generate", lambda *a, **k: pytest.fail("generated levels before refusing"))
    with pytest.raises(SamplingError, match=needle):
        sample_levels("confirmation", n, seed=seed)
