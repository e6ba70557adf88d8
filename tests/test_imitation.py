"""Imitation: a tiny schedule runs end to end, learns on labelled frames, and saves a loadable agent."""

import dataclasses
import json

import numpy as np
import pytest
import torch

import harness.training.imitation as imitation
from harness.errors import ImitationConfigError
from harness.training.imitation import MULTI_LOCK, ImitationConfig, _LevelStream, main, part_played
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


@pytest.mark.parametrize("bad, needle", [({"multi_lock_share": 1.5}, "multi_lock_share"),
                                         ({"oracle_mix": (0.5, -0.1)}, "oracle_mix"),
                                         ({"engines": 0}, "engines"), ({"iterations": -1}, "iterations")])
def test_settings_outside_their_range_are_refused(bad, needle):
    with pytest.raises(ImitationConfigError, match=needle):
        ImitationConfig(**bad)


def test_a_bad_setting_on_the_command_line_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["--out", "unused.pt", "--part-played", "-0.1"])
    assert "part_played is a share and must lie in [0, 1]" in capsys.readouterr().err


@pytest.fixture
def parsed(monkeypatch):
    """Runs ``main`` with training replaced by recording the config it was given."""
    configs = []
    monkeypatch.setattr(imitation, "train", lambda cfg, out: configs.append((cfg, out)) or {})
    return configs


def test_every_config_field_has_its_flag(parsed):
    main(["--out", "a.pt"])
    assert parsed[0][0] == ImitationConfig()  # no flag: every default
    flags = {"seed": "3", "mode": "hard", "iterations": "2", "expert_frames": "9", "frames_per_iteration": "8",
             "expert_noise": "0.1", "oracle_mix": ["0.5", "0.2", "0.1"], "steps_per_iteration": "7",
             "batch_size": "6", "lr": "0.01", "value_coef": "0.2", "aux_coef": "0.3", "field_coef": "0.4",
             "gamma": "0.9", "max_episode_steps": "5", "engines": "4", "argmax_share": "0.25", "bf16": None,
             "time_budget_minutes": "1.5", "seed_range": "selection", "init": "b.pt", "part_played": "0.6",
             "multi_lock_share": "0.7"}
    assert set(flags) == {f.name for f in dataclasses.fields(ImitationConfig)}
    argv = ["--out", "a.pt"]
    for name, value in flags.items():
        option = f"--{name.replace('_', '-')}"
        argv += [f"--no-{option[2:]}"] if value is None else [option, *([value] if isinstance(value, str) else value)]
    main(argv)
    cfg = parsed[1][0]
    assert cfg.oracle_mix == (0.5, 0.2, 0.1) and cfg.mode == "hard" and cfg.bf16 is False
    assert cfg.lr == 0.01 and cfg.engines == 4 and cfg.seed_range == "selection" and cfg.init == "b.pt"
    assert all(getattr(cfg, f.name) != f.default for f in dataclasses.fields(ImitationConfig))


def test_oracle_mix_can_be_left_empty(parsed):
    main(["--out", "a.pt", "--oracle-mix"])
    assert parsed[0][0].oracle_mix == ()  # the network plays alone from iteration 1 on
