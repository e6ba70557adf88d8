"""Imitation: a tiny schedule runs end to end, learns on labelled frames, and saves a loadable agent."""

import json

import torch

from harness.imitation import ImitationConfig, main
from harness.models import CustomCNN, load_policy


def test_tiny_schedule_saves_a_loadable_agent(tmp_path):
    out = tmp_path / "agent.pt"
    main(["--out", str(out), "--iterations", "1", "--expert-frames", "800", "--frames-per-iteration", "128",
          "--steps-per-iteration", "3", "--batch-size", "16", "--engines", "8"])
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
