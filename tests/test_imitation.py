"""Imitation: a tiny schedule runs end to end, learns on labelled frames, and saves a loadable agent."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import harness.training.imitation as imitation
from harness.errors import ImitationConfigError
from harness.training.imitation import MULTI_LOCK, ImitationConfig, _LevelStream, main, part_played
from harness.training.imitation_heads import AuxiliaryHeads, Teacher, distillation_loss, start_network
from harness.policy.models import CustomCNN, ImpalaCNN, load_policy, preprocess
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


SHIPPED_POLICY = str(Path(__file__).resolve().parent.parent / "fixtures" / "agents" / "customcnn_bc" / "policy.pt")


def test_an_impala_agent_trains_with_a_teacher_and_continues_from_its_weights(tmp_path):
    out, continued = tmp_path / "impala.pt", tmp_path / "continued.pt"
    tiny = ["--architecture", "impala", "--iterations", "1", "--expert-frames", "200", "--frames-per-iteration",
            "64", "--steps-per-iteration", "2", "--batch-size", "8", "--engines", "8"]
    main(["--out", str(out), "--teacher", SHIPPED_POLICY, *tiny])
    assert isinstance(load_policy(out), ImpalaCNN)
    log = json.loads(out.with_suffix(".train.json").read_text())
    assert all(it["teacher_kl"] > 0 for it in log["iterations"]) and log["config"]["architecture"] == "impala"
    main(["--out", str(continued), "--init", str(out), "--lr", "0", "--stop-after", "0", *tiny])
    a, b = load_policy(out).state_dict(), load_policy(continued).state_dict()
    assert all(torch.equal(a[name], b[name]) for name in a)
    continued_log = json.loads(continued.with_suffix(".train.json").read_text())
    assert [it["iteration"] for it in continued_log["iterations"]] == [0]  # stopped after iteration 0 of 1
    assert "teacher_kl" not in continued_log["iterations"][0]


def test_collections_that_overshoot_their_frame_count_in_every_iteration_fit_the_data_set(tmp_path):
    """Each collection records whole steps of all engines (16 for 10 asked, 16 for 9): 16 + 4 x 16 frames, more
    than the asked 10 + 4 x 9 plus two steps of slack."""
    out = tmp_path / "agent.pt"
    main(["--out", str(out), "--iterations", "4", "--expert-frames", "10", "--frames-per-iteration", "9",
          "--steps-per-iteration", "1", "--batch-size", "4", "--engines", "8"])
    log = json.loads(out.with_suffix(".train.json").read_text())
    assert [it["dataset_frames"] for it in log["iterations"]] == [16, 32, 48, 64, 80]


def test_an_init_of_another_architecture_is_a_usage_error_naming_both(capsys):
    with pytest.raises(SystemExit):
        main(["--out", "unused.pt", "--architecture", "impala", "--init", SHIPPED_POLICY])
    assert "holds a custom_cnn network but architecture is 'impala'" in capsys.readouterr().err


@pytest.mark.parametrize("architecture, width", [("custom_cnn", 512), ("impala", 256)])
def test_the_training_only_heads_read_the_last_hidden_layer(architecture, width):
    model = start_network(architecture)
    aux = AuxiliaryHeads(model)
    hidden = getattr(model, {"custom_cnn": "fc2_relu", "impala": "fc_relu"}[architecture])
    seen = []
    hidden.register_forward_hook(lambda module, inputs, output: seen.append(output))
    frames = np.random.default_rng(0).integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)
    model(preprocess(frames))
    assert aux.features is seen[0] and aux.features.shape == (3, width) and aux.cells.in_features == width


def test_a_fresh_impala_network_starts_its_residual_blocks_as_the_identity():
    model = start_network("impala")
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    x = model.stack1.pool(model.stack1.conv(preprocess(frames)))
    assert torch.equal(model.stack1.res1(x), x)
    assert model.stack1.res1.conv0.weight.abs().sum() > 0 and model.logits.weight.abs().max() < 0.1


def test_distillation_is_zero_against_itself_and_the_teacher_reads_its_own_policy():
    logits = torch.randn(5, 15)
    assert distillation_loss(logits, torch.log_softmax(logits, 1)).abs() < 1e-6
    assert distillation_loss(logits, torch.log_softmax(-logits, 1)) > 0.1
    teacher = Teacher(SHIPPED_POLICY, bf16=False)
    frames = np.random.default_rng(0).integers(0, 256, size=(4, 64, 64, 3), dtype=np.uint8)
    expected = torch.log_softmax(load_policy(SHIPPED_POLICY)(preprocess(frames))[0], 1).detach().numpy()
    assert np.allclose(teacher.log_probs(frames), expected, atol=1e-5)


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
                                         ({"engines": 0}, "engines"), ({"iterations": -1}, "iterations"),
                                         ({"iterations": 2, "stop_after": 3}, "stop_after")])
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
    flags = {"seed": "3", "architecture": "impala", "teacher": "t.pt", "teacher_coef": "0.5", "mode": "hard",
             "iterations": "2", "expert_frames": "9", "frames_per_iteration": "8",
             "expert_noise": "0.1", "oracle_mix": ["0.5", "0.2", "0.1"], "steps_per_iteration": "7",
             "batch_size": "6", "lr": "0.01", "value_coef": "0.2", "aux_coef": "0.3", "field_coef": "0.4",
             "gamma": "0.9", "max_episode_steps": "5", "engines": "4", "argmax_share": "0.25", "bf16": None,
             "time_budget_minutes": "1.5", "stop_after": "1", "seed_range": "selection", "init": "b.pt",
             "part_played": "0.6", "multi_lock_share": "0.7"}
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
