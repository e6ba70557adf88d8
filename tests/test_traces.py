"""Rollout traces against what produced them (a seeded random chooser's own draws, the oracle's known order, the
entities' positions), and the order helpers on hand-made traces."""

import numpy as np
import pytest

from harness.errors import RolloutError
from harness.heist.sampling import sample_levels
from harness.policy.rollouts import oracle_chooser, play, random_chooser
from harness.policy.traces import (Trace, first_reached, first_reached_all, reach_steps, reached_before,
                                   reached_before_all)


@pytest.fixture(scope="module")
def levels():
    return sample_levels("calibration", 6, seed=5, where=lambda level: bool(level.locks))


@pytest.fixture(scope="module")
def oracle_run(levels):
    return play(levels, oracle_chooser, trace=True, max_steps=400)


def test_traces_follow_the_episode(levels, oracle_run):
    for level, episode in zip(levels, oracle_run.episodes):
        trace = episode.trace
        assert trace.steps == episode.steps == len(trace.positions) and trace.positions.dtype == np.float32
        assert tuple(trace.positions[0]) == (np.float32(level.agent.x), np.float32(level.agent.y))
        cells = [tuple(int(v) for v in p) for p in trace.positions]
        assert tuple(c for i, c in enumerate(cells) if i == 0 or c != cells[i - 1]) == episode.cells
        assert trace.reached == episode.reached and trace.reached_at["gem"] == episode.steps
        for name, step in trace.reached_at.items():  # the agent is on the entity when it is reached
            if name == "gem":
                continue
            colour, kind = name.split()
            entity = (level.keys if kind == "key" else level.locks)[colour]
            assert np.hypot(*(trace.positions[step] - (entity.x, entity.y))) < 1.0, name
            assert np.hypot(*(trace.positions[step - 1] - (entity.x, entity.y))) < 1.5, name


def test_traced_actions_are_the_choosers_and_tracing_changes_nothing(levels):
    plain, traced = (play(levels[:1], random_chooser(3), max_steps=40, trace=t) for t in (False, True))
    draws = np.random.default_rng(3)
    expected = [int(draws.integers(0, 15, size=1)[0]) for _ in range(traced.episodes[0].steps)]
    assert traced.episodes[0].trace.actions.tolist() == expected
    assert plain.episodes[0].trace is None
    assert [(e.cells, e.reached, e.steps) for e in plain.episodes] == \
           [(e.cells, e.reached, e.steps) for e in traced.episodes]


def test_order_helpers_on_real_and_hand_made_traces(oracle_run):
    assert all(first_reached(e) == "blue key" for e in oracle_run.episodes)  # every level here has a blue lock
    assert reached_before_all(oracle_run, "blue key", "gem").all()
    assert not reached_before_all(oracle_run.episodes, "gem", "blue lock").any()
    steps = reach_steps(oracle_run, ["blue key", "blue lock", "gem"])
    assert (steps[:, 0] < steps[:, 1]).all() and (steps[:, 2] == oracle_run.steps).all()

    trace = Trace(actions=np.zeros(9, np.int8), positions=np.zeros((9, 2), np.float32),
                  reached_at={"green key": 4, "blue key": 7, "gem": 9})
    assert trace.reached == ("green key", "blue key", "gem")
    assert first_reached(trace, among=("blue key", "gem")) == "blue key"
    assert first_reached(trace, among=("red key",)) is None
    assert reached_before(trace, "green key", "gem") and not reached_before(trace, "gem", "green key")
    assert reached_before(trace, "blue key", "red key") and not reached_before(trace, "red key", "blue key")
    assert first_reached_all([trace, trace], among=("gem",)).tolist() == ["gem", "gem"]


def test_helpers_refuse_bad_names_and_missing_traces(levels, oracle_run):
    with pytest.raises(RolloutError, match="unknown entity"):
        reached_before(oracle_run.episodes[0], "blue door", "gem")
    with pytest.raises(RolloutError, match="two different"):
        reached_before(oracle_run.episodes[0], "gem", "gem")
    plain = play(levels[:1], oracle_chooser, max_steps=5)
    with pytest.raises(RolloutError, match="trace=True"):
        reach_steps(plain, ["gem"])
