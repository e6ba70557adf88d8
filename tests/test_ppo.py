import json
import math

import numpy as np
import pytest
import torch

from harness.errors import PPOConfigError, TrainingInputError
from harness.policy.models import CustomCNN, ImpalaCNN, checkpoint_sha256, load_policy
from harness.training.ppo import PPOConfig, log_path, main, train
from harness.training.ppo_pieces import EpisodeTracker, RewardNormalizer, compute_gae, ppo_loss

TINY = dict(num_envs=4, num_steps=16, total_steps=128, epochs=1, minibatches=2, device="cpu", env_threads=1,
            architecture="custom_cnn", seed=0)


@pytest.fixture(scope="module")
def one_thread():
    """Keep the training smoke runs to one CPU thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------------ config


def test_defaults_are_the_procgen_paper_easy_mode_hyperparameters():
    cfg = PPOConfig()
    paper = dict(num_envs=64, num_steps=256, gamma=0.999, gae_lambda=0.95, epochs=3, minibatches=8, clip_coef=0.2,
                 entropy_coef=0.01, value_coef=0.5, lr=5e-4, max_grad_norm=0.5, total_steps=25_000_000,
                 distribution_mode="easy", architecture="impala", normalize_rewards=True, anneal_lr=False)
    assert {k: getattr(cfg, k) for k in paper} == paper
    assert (cfg.start_level, cfg.num_levels) == (0, 1_000_000)  # the "training" seed range, never num_levels=0
    assert cfg.batch_size == 16_384 and cfg.minibatch_size == 2_048 and cfg.updates == 1_525


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (dict(num_levels=0), "num_levels must be positive"),
        (dict(start_level=999_990, num_levels=20), "training"),
        (dict(start_level=2_000_000, num_levels=10), "training"),
        (dict(num_envs=3, num_steps=5, minibatches=2), "equal minibatches"),
        (dict(total_steps=100), "less than one rollout"),
        (dict(architecture="resnet"), "custom_cnn"),
        (dict(distribution_mode="memory"), "easy"),
    ],
)
def test_inconsistent_configs_are_refused_with_the_reason(overrides, needle):
    with pytest.raises(PPOConfigError, match=needle):
        PPOConfig(**overrides)


# ------------------------------------------------------------------------------------------------ GAE


def test_gae_matches_a_hand_computed_rollout_with_episode_ends():
    gamma = lam = 0.5
    # env 0 ends its episode with the action of step 1; env 1 with the action of the last step.
    rewards = [[1.0, 0.0], [0.0, 0.0], [2.0, 0.0]]
    values = [[0.5, 1.0], [1.0, 1.0], [0.0, 1.0]]
    dones = [[0, 0], [1, 0], [0, 1]]
    last_value = [4.0, 8.0]
    # env 0: A2 = 2 + .5*4 - 0 = 4;  A1 = 0 - 1 = -1 (no bootstrap past the end);  A0 = (1 + .5*1 - .5) + .25*(-1)
    # env 1: A2 = 0 - 1 = -1 (last_value ignored);  A1 = (.5 - 1) + .25*(-1) = -.75;  A0 = -.5 + .25*(-.75)
    expected_adv = torch.tensor([[0.75, -0.6875], [-1.0, -0.75], [4.0, -1.0]])
    adv, ret = compute_gae(np.array(rewards), torch.tensor(values), np.array(dones), torch.tensor(last_value),
                           gamma=gamma, lam=lam)
    torch.testing.assert_close(adv, expected_adv)
    torch.testing.assert_close(ret, expected_adv + torch.tensor(values))
    assert adv.dtype == ret.dtype == torch.float32


def test_gae_with_lambda_1_is_the_discounted_return_minus_the_value():
    rng = np.random.default_rng(0)
    r, v, last = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), rng.normal(size=3)
    adv, ret = compute_gae(r, v, np.zeros((6, 3)), last, gamma=0.9, lam=1.0)
    mc = last.copy()
    for t in range(5, -1, -1):
        mc = r[t] + 0.9 * mc
        np.testing.assert_allclose(ret[t].numpy(), mc, rtol=1e-5)


def test_gae_rejects_mismatched_shapes():
    with pytest.raises(TrainingInputError, match=r"\(T, N\)"):
        compute_gae(np.zeros((4, 2)), np.zeros((4, 2)), np.zeros((4, 3)), np.zeros(2), gamma=0.99, lam=0.95)


# ------------------------------------------------------------------------------------------------ loss


def _clip_case():
    """Uniform logits over 3 actions; ratios 1.5, 0.5, 1.5, 0.5 against advantages +1, +1, -1, -1."""
    logits = torch.zeros(4, 3, requires_grad=True)
    ratio = torch.tensor([1.5, 0.5, 1.5, 0.5])
    return dict(
        logits=logits,
        values=torch.tensor([1.0, 1.0, 0.5, -1.0]),
        actions=torch.tensor([0, 1, 2, 0]),
        old_logprobs=-math.log(3) - ratio.log(),
        old_values=torch.tensor([0.0, 0.0, 0.4, 0.0]),
        advantages=torch.tensor([1.0, 1.0, -1.0, -1.0]),
        returns=torch.tensor([0.0, 1.0, 0.0, -1.0]),
    )


def test_clipped_loss_matches_a_manual_computation():
    loss = ppo_loss(**_clip_case(), clip_coef=0.2, value_coef=0.5, entropy_coef=0.01, normalize_advantages=False)
    # policy: -min(1.5, 1.2), -min(.5, .8), max(1.5, 1.2), max(.5, .8)  -> (-1.2 - .5 + 1.5 + .8) / 4
    assert loss.policy.item() == pytest.approx(0.15)
    # value: max of unclipped and clipped (old + clip(v - old, +-.2)) squared errors: 1, .64, .25, .64
    assert loss.value.item() == pytest.approx(0.5 * (1 + 0.64 + 0.25 + 0.64) / 4)
    assert loss.entropy.item() == pytest.approx(math.log(3))
    assert loss.total.item() == pytest.approx(0.15 + 0.5 * 0.31625 - 0.01 * math.log(3))
    kl = ((1.5 - 1 - math.log(1.5)) + (0.5 - 1 - math.log(0.5))) / 2
    assert loss.approx_kl.item() == pytest.approx(kl, rel=1e-5)
    assert loss.clip_fraction.item() == 1.0


def test_unclipped_value_loss_and_normalised_advantages():
    case = _clip_case()
    loss = ppo_loss(**case, clip_coef=0.2, value_coef=0.5, entropy_coef=0.0, clip_value_loss=False)
    assert loss.value.item() == pytest.approx(0.5 * (1 + 0 + 0.25 + 0) / 4)
    # advantages +-1 have mean 0 and population std 1: normalising leaves them (nearly) unchanged
    assert loss.policy.item() == pytest.approx(0.15, abs=1e-6)
    scaled = ppo_loss(**{**case, "advantages": 3 * case["advantages"] + 2}, clip_coef=0.2, value_coef=0.5,
                      entropy_coef=0.0, clip_value_loss=False)
    assert scaled.policy.item() == pytest.approx(loss.policy.item(), abs=1e-6)


def test_clipped_samples_give_no_policy_gradient():
    case = _clip_case()
    loss = ppo_loss(**case, clip_coef=0.2, value_coef=0.0, entropy_coef=0.0, normalize_advantages=False)
    loss.policy.backward()
    grad_norm = case["logits"].grad.norm(dim=1)
    # rows 0 and 3 sit on the clipped branch (ratio past the clip in the advantage's direction): no gradient
    assert grad_norm[0] == 0 and grad_norm[3] == 0
    assert grad_norm[1] > 0 and grad_norm[2] > 0


# ------------------------------------------------------------------------------------------------ trackers


def test_episode_tracker_counts_returns_lengths_and_successes():
    tracker = EpisodeTracker(2, window=10)
    assert tracker.summary()["mean_return"] is None
    tracker.update(np.array([0.0, 0.0]), np.array([False, False]))
    tracker.update(np.array([10.0, 0.0]), np.array([True, False]))  # env 0 collects the gem on its 2nd step
    tracker.update(np.array([0.0, 0.0]), np.array([False, True]))  # env 1 times out after 3 steps
    summary = tracker.summary()
    assert summary == {"episodes": 2, "window": 2, "mean_return": 5.0, "success_rate": 0.5, "mean_length": 2.5}
    assert tracker.running_return.tolist() == [0.0, 0.0] and tracker.running_length.tolist() == [1, 0]


def test_reward_normalizer_divides_by_the_running_std_of_discounted_returns():
    norm = RewardNormalizer(2, gamma=0.9, clip=10.0)
    rewards = np.array([[1.0, 0.0], [1.0, 2.0], [0.0, 2.0], [1.0, 0.0]])
    dones = np.array([[False, False], [True, False], [False, False], [False, True]])
    seen, ret = [], np.zeros(2)
    for r, d in zip(rewards, dones):
        ret = 0.9 * ret + r
        seen.append(ret.copy())
        scaled = norm(r, d)
        ret[d] = 0
        np.testing.assert_allclose(scaled, r / np.sqrt(np.var(seen) + 1e-8), rtol=1e-3)
    assert norm.ret.tolist() == [1.0, 0.0]  # env 0 restarted after step 1, then earned 0 and 1


# ------------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("ppo") / "agent.pt"
    log = train(PPOConfig(**TINY), out)
    return out, log


def test_smoke_run_writes_a_loadable_checkpoint_that_moved(smoke):
    out, log = smoke
    model = load_policy(out)
    assert isinstance(model, CustomCNN)
    torch.manual_seed(TINY["seed"])  # the config's seed fixes the initial weights
    initial = CustomCNN().state_dict()
    trained = model.state_dict()
    assert all(torch.isfinite(v).all() for v in trained.values())
    changed = [k for k in initial if not torch.equal(initial[k], trained[k])]
    assert len(changed) == len(initial), f"unchanged: {sorted(set(initial) - set(changed))}"
    assert log["updates_done"] == 2 and log["steps_done"] == 128 and not log["interrupted"]


def test_smoke_run_writes_its_json_log_beside_the_checkpoint(smoke):
    out, log = smoke
    saved = json.loads(log_path(out).read_text())
    assert log_path(out) == out.with_name("agent.train.json")
    assert saved == json.loads(json.dumps(log))
    assert saved["config"]["num_envs"] == 4 and saved["checkpoint"]["sha256"] == checkpoint_sha256(out)
    assert [u["update"] for u in saved["updates"]] == [1, 2]
    for key in ("steps_per_s", "policy", "value", "entropy", "approx_kl", "clip_fraction", "reward_scale",
                "success_rate", "mean_return", "episodes"):
        assert key in saved["updates"][-1]
    assert saved["final"]["steps_per_s"] > 0


def test_fine_tuning_starts_from_the_init_checkpoint(smoke, tmp_path, one_thread):
    init, _ = smoke
    out = tmp_path / "tuned.pt"
    cfg = PPOConfig(**{**TINY, "init": str(init), "lr": 0.0, "total_steps": 64, "seed": 1})
    log = train(cfg, out)  # a zero learning rate leaves the loaded weights exactly as they were
    assert log["config"]["init"] == str(init)
    expected, tuned = load_policy(init).state_dict(), load_policy(out).state_dict()
    assert all(torch.equal(expected[k], tuned[k]) for k in expected)


def test_init_checkpoint_of_another_architecture_is_refused(tmp_path):
    init = tmp_path / "custom.pt"
    torch.save(CustomCNN().state_dict(), init)
    with pytest.raises(PPOConfigError, match="--architecture custom_cnn"):
        train(PPOConfig(**{**TINY, "architecture": "impala", "init": str(init)}), tmp_path / "out.pt")


def test_cli_trains_impala_and_prints_progress(tmp_path, capsys, one_thread):
    out = tmp_path / "impala.pt"
    main(["--out", str(out), "--device", "cpu", "--architecture", "impala", "--num-envs", "2", "--num-steps", "8",
          "--total-steps", "16", "--epochs", "1", "--minibatches", "1", "--env-threads", "1", "--no-normalize-rewards"])
    printed = capsys.readouterr().out
    assert "steps/s" in printed and "ETA" in printed and "success" in printed
    assert isinstance(load_policy(out), ImpalaCNN)
    assert json.loads(log_path(out).read_text())["config"]["normalize_rewards"] is False


def test_missing_init_checkpoint_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "out.pt"), "--device", "cpu", "--init", str(tmp_path / "missing.pt")])
    assert "missing.pt does not exist" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_a_gpu_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(PPOConfigError, match="device='cpu'"):
        train(PPOConfig(**{**TINY, "device": "cuda"}), tmp_path / "out.pt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_smoke_run(tmp_path):
    out = tmp_path / "cuda.pt"
    log = train(PPOConfig(**{**TINY, "device": "cuda", "architecture": "impala"}), out)
    assert log["device"].startswith("cuda") and log["steps_done"] == 128
    assert isinstance(load_policy(out), ImpalaCNN)


def test_cli_help_lists_every_config_field_with_its_docstring(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    printed = capsys.readouterr().out
    assert "--gae-lambda" in printed and "--no-anneal-lr" in printed and "--init" in printed
    assert "Lambda of generalised advantage estimation" in printed
