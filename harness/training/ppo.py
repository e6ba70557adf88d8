"""Train a Heist policy with PPO, using the hyperparameters of the Procgen paper (Cobbe et al. 2020).

The defaults are the paper's easy-mode setting: 64 environments, 256 steps per rollout, 3 epochs of 8
minibatches, gamma 0.999, GAE lambda 0.95, clip 0.2, entropy 0.01, Adam at 5e-4, 25M steps, the IMPALA network,
and rewards scaled by a running estimate of the std of the discounted return (as baselines' ``VecNormalize``).
Levels come from the ``training`` seed range of :mod:`harness.heist.sampling` only.  A run takes a few hours on one
GPU; on CPU it is for smoke tests.

    python -m harness.training.ppo --out fixtures/agents/impala_ppo/policy.pt --device cuda
    python -m harness.training.ppo --out fixtures/agents/customcnn_bc_ppo/policy.pt --architecture custom_cnn \\
        --init fixtures/agents/customcnn_bc/policy.pt --device cuda

prints one progress line per update (steps/s, ETA, mean return and success rate over recent episodes, losses)
and saves the weights (a plain state_dict that :func:`harness.policy.models.load_policy` reads) and a JSON log
(``<out>.train.json``, e.g. ``policy.train.json`` beside ``policy.pt``) every ``checkpoint_every`` updates and at
the end.  Every field of :class:`PPOConfig` has its flag (``--help`` lists them with their defaults).

Unlike cleanrl's ``ppo_procgen.py``, every piece is an importable function (:func:`train` here; GAE, the loss,
reward normalisation and episode bookkeeping in :mod:`harness.training.ppo_pieces`) and the network sees frames
only through :func:`harness.policy.models.preprocess`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from harness.errors import CheckpointError, PPOConfigError, TrainingInputError
from harness.heist.procgen_env import MODES, make_env
from harness.heist.sampling import seed_range
from harness.policy.models import ARCHITECTURES, architecture_of, checkpoint_sha256, load_policy, preprocess
from harness.training import progress
from harness.training.flags import add_config_flags, check_writable, config_from_args
from harness.training.ppo_pieces import EpisodeTracker, RewardNormalizer, compute_gae, ppo_loss

__all__ = ["PPOConfig", "log_path", "main", "train"]

_TRAINING = seed_range("training")


@dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """Everything that defines a PPO run; the defaults are the Procgen paper's easy-mode hyperparameters."""

    total_steps: int = 25_000_000
    """Environment steps summed over all envs; the run makes ``total_steps // (num_envs * num_steps)`` updates."""
    num_envs: int = 64
    """Parallel environments."""
    num_steps: int = 256
    """Steps per environment per rollout (the rollout holds num_envs * num_steps transitions)."""
    gamma: float = 0.999
    """Discount factor."""
    gae_lambda: float = 0.95
    """Lambda of generalised advantage estimation."""
    epochs: int = 3
    """Passes over each rollout."""
    minibatches: int = 8
    """Minibatches per epoch (each holds num_envs * num_steps / minibatches transitions)."""
    clip_coef: float = 0.2
    """PPO ratio clip range; also clips the value change when clip_value_loss is on."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    lr: float = 5e-4
    """Adam learning rate (constant in the paper)."""
    adam_eps: float = 1e-5
    """Adam epsilon (baselines' and cleanrl's value)."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over the run (cleanrl's default; the paper keeps it constant)."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm to this."""
    clip_value_loss: bool = True
    """Use the clipped value loss of baselines' ppo2 (max of clipped and unclipped squared errors)."""
    normalize_advantages: bool = True
    """Standardise advantages within each minibatch."""
    normalize_rewards: bool = True
    """Divide rewards by the running std of the discounted return (baselines' VecNormalize), then clip."""
    reward_clip: float = 10.0
    """Clip normalised rewards to [-reward_clip, reward_clip]."""
    distribution_mode: str = "easy"
    """Procgen distribution mode: easy or hard."""
    architecture: str = "impala"
    """Network: impala (the paper's) or custom_cnn."""
    init: str | None = None
    """State_dict to start from (fine-tuning, e.g. a behaviour-cloned CustomCNN); None trains from scratch."""
    start_level: int = _TRAINING.start
    """First level seed; episodes draw seeds uniformly from [start_level, start_level + num_levels)."""
    num_levels: int = _TRAINING.stop - _TRAINING.start
    """Number of level seeds; the seeds must lie in the training range."""
    seed: int = 0
    """Seeds torch (initial weights, action sampling, minibatch order) and the environments."""
    device: str = "cuda"
    """Torch device of the network and the rollout buffer: cuda or cpu (the environments always run on CPU)."""
    env_threads: int = 4
    """Threads procgen uses to step the environments."""
    checkpoint_every: int = 50
    """Save the weights and the log every this many updates (and always after the last one)."""
    log_every: int = 1
    """Print a progress line every this many updates."""
    episode_window: int = 100
    """Recent episodes the printed mean return, success rate and length are taken over."""

    def __post_init__(self) -> None:
        positive = ("total_steps", "num_envs", "num_steps", "epochs", "minibatches", "num_levels", "env_threads",
                    "checkpoint_every", "log_every", "episode_window")
        for name in positive:
            if getattr(self, name) <= 0:
                raise PPOConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.distribution_mode not in MODES:
            raise PPOConfigError(f"distribution_mode must be one of {MODES}, got {self.distribution_mode!r}")
        if self.architecture not in ARCHITECTURES:
            raise PPOConfigError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {self.architecture!r}")
        if self.batch_size % self.minibatches:
            raise PPOConfigError(
                f"num_envs * num_steps = {self.batch_size} does not split into {self.minibatches} equal minibatches; "
                "change minibatches, num_envs or num_steps"
            )
        if self.total_steps < self.batch_size:
            raise PPOConfigError(
                f"total_steps = {self.total_steps} is less than one rollout (num_envs * num_steps = {self.batch_size})"
            )
        stop = self.start_level + self.num_levels
        if self.start_level not in _TRAINING or stop - 1 not in _TRAINING:
            raise PPOConfigError(
                f"level seeds [{self.start_level}, {stop}) leave the {_TRAINING} seed range; PPO trains only on "
                "training levels so that selection and confirmation levels stay unseen"
            )
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise PPOConfigError(
                f"gamma must be in (0, 1] and gae_lambda in [0, 1], got {self.gamma} and {self.gae_lambda}"
            )

    @property
    def batch_size(self) -> int:
        """Transitions per rollout: num_envs * num_steps."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.minibatches

    @property
    def updates(self) -> int:
        """Number of rollout + optimisation rounds: total_steps // batch_size."""
        return self.total_steps // self.batch_size


def _make_env(cfg: PPOConfig):
    return make_env(cfg.num_envs, cfg.distribution_mode, start_level=cfg.start_level, num_levels=cfg.num_levels,
                    rand_seed=cfg.seed, num_threads=cfg.env_threads)


def _make_model(cfg: PPOConfig) -> nn.Module:
    if cfg.init is None:
        return ARCHITECTURES[cfg.architecture]()
    if not Path(cfg.init).is_file():
        raise PPOConfigError(f"init checkpoint {cfg.init} does not exist; pass the path of a saved state_dict")
    model = load_policy(cfg.init)  # detects the architecture from the keys; raises CheckpointError naming layers
    found = architecture_of(model)
    if found != cfg.architecture:
        raise PPOConfigError(
            f"init checkpoint {cfg.init} holds a {found} network but architecture is {cfg.architecture!r}; "
            f"pass architecture={found!r} (--architecture {found})"
        )
    return model


def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PPOConfigError(f"device {name!r} requested but CUDA is not available here; pass device='cpu' (--device cpu)")
    return device


def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def _save(model: nn.Module, out: Path, log: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, out)
    log["checkpoint"] = {"path": str(out), "sha256": checkpoint_sha256(out), "update": log["updates_done"],
                         "steps": log["steps_done"]}
    log_path(out).write_text(json.dumps(log, indent=2))


def log_path(out: str | Path) -> Path:
    """Where :func:`train` writes the JSON log of a run saving its weights to ``out``: ``<out>.train.json``."""
    return Path(out).with_suffix(".train.json")


# ----------------------------------------------------------------------------------------------- training


def train(cfg: PPOConfig, out: str | Path) -> dict:
    """Run PPO as ``cfg`` says; save the state_dict to ``out`` and the log beside it; return the log.

    The network stays in eval mode throughout (CustomCNN's dropout off), so the probability ratio compares the
    same function at rollout and update time.  Saves every ``cfg.checkpoint_every`` updates, after the last
    update, and on KeyboardInterrupt (the log then says ``"interrupted": true``).
    """
    out = Path(out)
    device = _device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = _make_model(cfg).to(device).eval()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
    env = _make_env(cfg)
    normalizer = RewardNormalizer(cfg.num_envs, gamma=cfg.gamma, clip=cfg.reward_clip)
    tracker = EpisodeTracker(cfg.num_envs, window=cfg.episode_window)

    T, N = cfg.num_steps, cfg.num_envs
    obs_buf = torch.zeros((T, N, 64, 64, 3), dtype=torch.uint8, device=device)
    actions_buf = torch.zeros((T, N), dtype=torch.long, device=device)
    logprobs_buf = torch.zeros((T, N), device=device)
    values_buf = torch.zeros((T, N), device=device)
    rewards_buf = torch.zeros((T, N), device=device)
    dones_buf = torch.zeros((T, N), device=device)

    log: dict = {
        "config": asdict(cfg), "architecture": cfg.architecture, "levels": f"[{cfg.start_level}, "
        f"{cfg.start_level + cfg.num_levels}) of {_TRAINING}", "device": str(device), "torch": torch.__version__,
        "updates_planned": cfg.updates, "updates_done": 0, "steps_done": 0, "interrupted": False, "updates": [],
    }
    progress.log(f"PPO {cfg.architecture}{' from ' + cfg.init if cfg.init else ''}: {N} envs x {T} steps, "
                 f"{cfg.updates} updates ({cfg.updates * cfg.batch_size:,} steps), {cfg.distribution_mode} levels "
                 f"{log['levels']}, device {device}")

    _, ob, _ = env.observe()
    next_obs = torch.from_numpy(ob["rgb"].copy()).to(device)
    start = time.time()
    try:
        for update in range(1, cfg.updates + 1):
            if cfg.anneal_lr:
                opt.param_groups[0]["lr"] = cfg.lr * (1 - (update - 1) / cfg.updates)
            # -------- rollout
            for t in range(T):
                obs_buf[t] = next_obs
                with torch.no_grad():
                    logits, value = model(preprocess(next_obs))
                dist = Categorical(logits=logits)
                action = dist.sample()
                actions_buf[t], logprobs_buf[t], values_buf[t] = action, dist.log_prob(action), value
                env.act(action.cpu().numpy().astype(np.int32))
                reward, ob, first = env.observe()
                reward, done = reward.astype(np.float64), first.astype(bool)
                tracker.update(reward, done)
                if cfg.normalize_rewards:
                    reward = normalizer(reward, done)
                rewards_buf[t] = torch.from_numpy(np.asarray(reward, dtype=np.float32)).to(device)
                dones_buf[t] = torch.from_numpy(done.astype(np.float32)).to(device)
                next_obs = torch.from_numpy(ob["rgb"].copy()).to(device)
            with torch.no_grad():
                _, last_value = model(preprocess(next_obs))
            advantages, returns = compute_gae(rewards_buf, values_buf, dones_buf, last_value, gamma=cfg.gamma,
                                              lam=cfg.gae_lambda)
            # -------- optimisation
            b_obs = obs_buf.reshape(-1, 64, 64, 3)
            b_actions, b_logprobs = actions_buf.reshape(-1), logprobs_buf.reshape(-1)
            b_values, b_advantages, b_returns = values_buf.reshape(-1), advantages.reshape(-1), returns.reshape(-1)
            sums = dict.fromkeys(("policy", "value", "entropy", "approx_kl", "clip_fraction"), 0.0)
            n_minibatches = 0
            for _ in range(cfg.epochs):
                order = torch.randperm(cfg.batch_size, device=device)
                for lo in range(0, cfg.batch_size, cfg.minibatch_size):
                    idx = order[lo:lo + cfg.minibatch_size]
                    logits, values = model(preprocess(b_obs[idx]))
                    loss = ppo_loss(logits, values, actions=b_actions[idx], old_logprobs=b_logprobs[idx],
                                    old_values=b_values[idx], advantages=b_advantages[idx], returns=b_returns[idx],
                                    clip_coef=cfg.clip_coef, value_coef=cfg.value_coef,
                                    entropy_coef=cfg.entropy_coef, clip_value_loss=cfg.clip_value_loss,
                                    normalize_advantages=cfg.normalize_advantages)
                    opt.zero_grad(set_to_none=True)
                    loss.total.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    opt.step()
                    for k in sums:
                        sums[k] += getattr(loss, k).item()
                    n_minibatches += 1
            # -------- bookkeeping
            elapsed = time.time() - start
            steps = update * cfg.batch_size
            returns_var = b_returns.var().item()
            explained = None if returns_var == 0 else 1 - (b_returns - b_values).var().item() / returns_var
            record = {"update": update, "steps": steps, "elapsed_s": round(elapsed, 2),
                      "steps_per_s": round(steps / elapsed, 1), "lr": opt.param_groups[0]["lr"],
                      **{k: v / n_minibatches for k, v in sums.items()}, "explained_variance": explained,
                      "reward_scale": normalizer.scale if cfg.normalize_rewards else 1.0, **tracker.summary()}
            log["updates"].append(record)
            log["updates_done"], log["steps_done"] = update, steps
            if update % cfg.log_every == 0 or update == cfg.updates:
                eta = (cfg.updates - update) * cfg.batch_size * elapsed / steps
                progress.log(f"update {update}/{cfg.updates} steps {steps:,} | {record['steps_per_s']:,.0f} "
                             f"steps/s | ETA {progress.duration(eta)} | return {_fmt(record['mean_return'], '.2f')} "
                             f"success {_fmt(record['success_rate'], '.3f')} len {_fmt(record['mean_length'], '.0f')} "
                             f"(last {record['window']} of {record['episodes']} episodes) | pi {record['policy']:.4f} "
                             f"v {record['value']:.4f} ent {record['entropy']:.3f} kl {record['approx_kl']:.4f} "
                             f"clip {record['clip_fraction']:.3f} ev {_fmt(explained, '.2f')}")
            if update % cfg.checkpoint_every == 0 or update == cfg.updates:
                log["wall_s"] = round(time.time() - start, 2)
                _save(model, out, log)
                progress.log(f"saved {out} and {log_path(out)} after update {update}")
    except KeyboardInterrupt:
        log["interrupted"] = True
        log["wall_s"] = round(time.time() - start, 2)
        _save(model, out, log)
        progress.log(f"interrupted: saved {out} after update {log['updates_done']}")
        raise
    log["final"] = {**tracker.summary(), "steps_per_s": round(log["steps_done"] / max(log["wall_s"], 1e-9), 1)}
    log_path(out).write_text(json.dumps(log, indent=2))
    return log


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where to save the state_dict")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads; unset: torch's choice")
    add_config_flags(parser, PPOConfig,
                     choices={"architecture": sorted(ARCHITECTURES), "distribution_mode": list(MODES)})
    args = vars(parser.parse_args(argv))
    out, threads = args.pop("out"), args.pop("threads")
    if threads is not None and threads < 1:
        parser.error(f"--threads must be at least 1, got {threads}")
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        check_writable(out, "--out")
        log = train(config_from_args(PPOConfig, args), out)
    except (PPOConfigError, CheckpointError, TrainingInputError) as exc:  # before any training: a usage error
        parser.error(str(exc))
    final = log["final"]
    progress.log(f"done: {out}, log {log_path(out)}; {log['steps_done']:,} steps at {final['steps_per_s']:,.0f} "
                 f"steps/s, success {_fmt(final['success_rate'], '.3f')} over the last {final['window']} episodes")


if __name__ == "__main__":
    main(sys.argv[1:])
