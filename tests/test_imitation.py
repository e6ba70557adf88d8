"""Imitation: a tiny schedule runs end to end, learns on labelled frames, and saves a loadable agent."""

import json

import numpy as np
import pytest
import torch

from harness.training.imitation import MULTI_LOCK, ImitationConfig, ImitationConfigError, _LevelStream, main, part_played
from harness.policy.models import CustomCNN, load_policy
from harness.heist.oracle import guide
from harness.policy.rollouts import oracle_chooser, play
from harness.heist.sampling import draw_seeds, sample_levels


def test_tiny_schedule_saves_a_loadable_agent(tmp_path):
    out = tmp_path / "agent.pt"
    main(["--out", str(out), "--iterations", "1", "--expert-frames", "800", "--frames-per-iteration", "128",
          "--steps-per-iteration", "3", "--batch-size", "16", "--engines", "8", "--part-played", "0.5"])
    assert isinstance(load_policy(out), CustomCNN)
    log = json.loads(out.with_suffix(".train.json").read_text())
    assert [it["iteration"] for it in log["iterations"]] == [0, 1]
    first = log["iterations"][0]
    assert first["collect_episodes"] > 0 and first["collect_success_rate"] == 1.0  # iteration 0: the oracle plays
    assert log["config"]["seed_range"] == ImitationConfig().seed_range == "training"


def test_continued_training_starts_from_the_given_weights(tmp_path):
    """With ``--init`` and a learning rate of 0, the saved weights are the initial ones."""
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    tiny = ["--iterations", "0", "--expert-frames", "64", "--steps-per-iteration", "2", "--batch-size", "8",
            "--engines", "8"]
    main(["--out", str(first), *tiny])
    main(["--out", str(second), "--init", str(first), "--lr", "0", "--seed", "1", *tiny])
    a, b = load_policy(first).state_dict(), load_policy(second).state_dict()
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_part_played_levels_are_states_the_game_can_reach_and_finish():
    """Every stage of play is drawn, the agent stands where the target can be reached, and the oracle, playing
    from the edited state in the real engine, reaches the gem."""
    levels = sample_levels("training", 48, seed=3)
    rng = np.random.default_rng(0)
    started = [part_played(level, rng) for level in levels]
    stages = set()
    for before, after in zip(levels, started):
        assert guide(after) is not None and guide(after).distance > 0
        opened = set(before.locks) - set(after.locks)
        assert opened <= after.held_keys and not (after.held_keys & set(after.keys))
        stages.add((len(after.held_keys), len(opened)))
    assert {(0, 0), (1, 0), (1, 1)} <= stages
    assert play(started, oracle_chooser).success.all()


def test_a_multi_lock_share_of_one_draws_only_levels_with_several_locks_and_zero_keeps_the_plain_draw():
    plain = ImitationConfig(seed=5)
    stream = _LevelStream(plain, salt=1)
    drawn = [stream.next().current_level_seed for _ in range(300)]
    again = _LevelStream(plain, salt=1)
    assert [again.next().current_level_seed for _ in range(300)] == drawn  # seeded
    first_batch = draw_seeds(plain.seed_range, 256, seed=plain.seed * 1_000_003 + 7919)
    assert drawn[:256] == [int(seed) for seed in first_batch[::-1]]  # the draw the shipped stages were trained on
    assert min(len(level.locks) for level in stream.queue) < MULTI_LOCK  # the plain draw keeps every level
    only_multi = _LevelStream(ImitationConfig(seed=5, multi_lock_share=1.0), salt=1)
    assert all(len(only_multi.next().locks) >= MULTI_LOCK for _ in range(300))
    half = _LevelStream(ImitationConfig(seed=5, multi_lock_share=0.5), salt=1)
    share = np.mean([len(half.next().locks) >= MULTI_LOCK for _ in range(400)])
    assert 0.6 < share < 0.9  # half from the multi-lock queue, and about half of the others have several locks


def test_shares_outside_zero_to_one_are_refused():
    with pytest.raises(ImitationConfigError, match="multi_lock_share"):
        ImitationConfig(multi_lock_share=1.5)
    with pytest.raises(ImitationConfigError, match="part_played"):
        main(["--out", "unused.pt", "--part-played", "-0.1"])
