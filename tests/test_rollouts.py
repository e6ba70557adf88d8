"""Rollouts: baselines behave as known, episodes record what happened, snapshots are mid-episode states, and
interventions must fire at every step."""

import numpy as np
import pytest
import torch

from harness.errors import InterventionError
from harness.policy.interventions import Patch, Zero
from harness.policy.models import CustomCNN, orthogonal_init
from harness.policy.rollouts import oracle_chooser, play, random_chooser, rollout, sample_actions
from harness.heist.sampling import sample_levels
from harness.policy.sites import Site


@pytest.fixture(scope="module")
def levels():
    return sample_levels("calibration", 12, seed=3)


def test_oracle_solves_every_level_in_order(levels):
    result = play(levels, oracle_chooser)
    assert result.success.all()
    for episode, level in zip(result.episodes, levels):
        assert episode.seed == level.current_level_seed
        assert episode.reached[-1] == "gem"
        expected = [f"{c} {k}" for c in level.colours if c in level.locks for k in ("key", "lock")]
        assert list(episode.reached[:-1]) == expected
        assert episode.cells[0] == level.agent.cell
        steps = [abs(a[0] - b[0]) + abs(a[1] - b[1]) for a, b in zip(episode.cells, episode.cells[1:])]
        assert all(s == 1 for s in steps)


def test_random_baseline_times_out_at_max_steps(levels):
    result = play(levels, random_chooser(0), max_steps=20)
    assert (result.steps[~result.success] == 20).all()
    assert play(levels, random_chooser(0), max_steps=20).success.tolist() == result.success.tolist()


def test_snapshots_are_mid_episode_states(levels):
    result = play(levels[:4], oracle_chooser, snapshot_at=[0, 5, 10, 500])
    snaps = [e.snapshot for e in result.episodes]
    assert snaps[0].cur_time == 0
    assert snaps[1].cur_time == 5 and snaps[2].cur_time == 10
    assert snaps[3].cur_time == result.episodes[3].steps - 1  # the episode ended first: its last live state


def test_sampled_rollouts_are_seeded_and_interventions_fire(levels):
    torch.manual_seed(0)
    policy = orthogonal_init(CustomCNN()).eval()
    zero = Zero(site=Site("conv4a", channels=(1,)))
    a = rollout(policy, levels[:3], interventions=[zero], seed=7, max_steps=15)
    b = rollout(policy, levels[:3], interventions=[zero], seed=7, max_steps=15)
    assert [e.cells for e in a.episodes] == [e.cells for e in b.episodes]
    with pytest.raises(InterventionError, match="per-example"):
        rollout(policy, levels[:3], interventions=[Patch(site=Site("conv4a"), source=torch.zeros(3, 32, 8, 8))])


def test_sample_actions_follows_the_probabilities():
    probs = np.tile([[0.0, 0.25, 0.75]], (4000, 1))
    counts = np.bincount(sample_actions(probs, np.random.default_rng(0)), minlength=3)
    assert counts[0] == 0 and abs(counts[2] / 4000 - 0.75) < 0.03


def test_stop_when_sees_the_levels_in_order_and_stops_there(levels):
    full = play(levels, oracle_chooser)
    seen = []

    def enough(episodes):
        seen.append([e.seed for e in episodes])
        return sum(e.steps for e in episodes) > 60

    part = play(levels, oracle_chooser, stop_when=enough)
    k = len(part.episodes)
    assert 0 < k < len(levels) and sum(full.steps[:k]) > 60 >= sum(full.steps[:k - 1])
    assert [e.cells for e in part.episodes] == [e.cells for e in full.episodes[:k]]
    assert all(s == [lv.current_level_seed for lv in levels[:len(s)]] for s in seen)
    assert [len(s) for s in seen] == sorted({len(s) for s in seen})


def test_sequential_rate_keeps_its_level_when_looking_after_every_level():
    """At a true rate exactly on the bound, stopping at the first look whose interval excludes it supports the
    claim in at most alpha of runs (the interval is anytime-valid); a fixed-n Wilson interval looked at after every
    level would not (about half the runs at this many looks)."""
    from claims.test_behaviour import sequential_rate

    rng, bound, alpha, supported = np.random.default_rng(0), 0.8, 0.2, 0
    for _ in range(200):
        outcomes = rng.random(96) < bound
        for n in range(1, 97):
            result = sequential_rate(outcomes[:n], bound=bound, confidence=1 - alpha, max_n=96)
            if result.decision != "continue":
                break
        supported += result.decision == "accept H1"
        assert result.n == n and result.max_n == 96 and result.ci_low <= result.estimate <= result.ci_high
    assert supported / 200 <= alpha + 0.085
    clear = sequential_rate(np.ones(40, bool), bound=bound, confidence=0.95, max_n=96)
    assert clear.decision == "accept H1" and clear.ci_low > bound
    assert sequential_rate(np.zeros(20, bool), bound=bound, confidence=0.95, max_n=96).decision == "accept H0"
    assert sequential_rate(np.ones(3, bool), bound=bound, confidence=0.95, max_n=3).decision == "inconclusive"
