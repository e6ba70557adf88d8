"""Imitation: a tiny schedule runs end to end, learns on labelled frames, and saves a loadable agent."""

import json

import numpy as np
import torch

from harness.imitation import ImitationConfig, main, part_played
from harness.models import CustomCNN, load_policy
from harness.oracle import guide
from harness.rollouts import oracle_chooser, play
from harness.sampling import sample_levels


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
