"""The pieces of PPO that touch no environment, each testable on small arrays: generalised advantage estimates,
the clipped loss of one minibatch, reward normalisation and episode bookkeeping."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Categorical

from harness.errors import TrainingInputError

__all__ = ["EpisodeTracker", "PPOLoss", "RewardNormalizer", "compute_gae", "ppo_loss"]


def compute_gae(rewards: Tensor | np.ndarray, values: Tensor | np.ndarray, dones: Tensor | np.ndarray,
                last_value: Tensor | np.ndarray, *, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and value targets for a rollout of ``T`` steps of ``N`` environments.

    ``rewards[t]``, ``values[t]`` (shape ``(T, N)``): the reward of the action taken at step ``t`` and the value of
    the observation it was taken in.  ``dones[t]``: that action ended the episode, so the next observation
    starts a new one (gym3's ``first`` flag of step ``t + 1``).  ``last_value`` ``(N,)``: the value of the
    observation after the last step.  With ``m_t = 1 - dones[t]``::

        delta_t = r_t + gamma * m_t * V_{t+1} - V_t
        A_t     = delta_t + gamma * lam * m_t * A_{t+1}

    Returns ``(advantages, returns)``, both float32 ``(T, N)`` on the device of ``values``, with
    ``returns = advantages + values`` (the value-function targets).
    """
    values = torch.as_tensor(values, dtype=torch.float32)
    rewards = torch.as_tensor(rewards, dtype=torch.float32, device=values.device)
    not_done = 1.0 - torch.as_tensor(dones, device=values.device).float()
    last_value = torch.as_tensor(last_value, dtype=torch.float32, device=values.device)
    if not rewards.shape == values.shape == not_done.shape or values.ndim != 2 or last_value.shape != values.shape[1:]:
        raise TrainingInputError(
            f"rewards, values, dones must share a (T, N) shape and last_value be (N,); got {tuple(rewards.shape)}, "
            f"{tuple(values.shape)}, {tuple(not_done.shape)}, {tuple(last_value.shape)}"
        )
    advantages = torch.zeros_like(values)
    next_advantage = torch.zeros_like(last_value)
    next_value = last_value
    for t in range(values.shape[0] - 1, -1, -1):
        delta = rewards[t] + gamma * not_done[t] * next_value - values[t]
        next_advantage = delta + gamma * lam * not_done[t] * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages, advantages + values


@dataclass(frozen=True, kw_only=True)
class PPOLoss:
    """The terms of one PPO minibatch loss; ``total`` is what is minimised."""

    total: Tensor
    """policy + value_coef * value - entropy_coef * entropy."""
    policy: Tensor
    """Clipped surrogate loss: mean of max(-A * r, -A * clip(r, 1 - eps, 1 + eps))."""
    value: Tensor
    """0.5 * mean squared error to the returns (the max of clipped and unclipped errors when clipping)."""
    entropy: Tensor
    """Mean entropy of the action distribution."""
    approx_kl: Tensor
    """Estimate of KL(old || new), mean of (r - 1) - log r; no gradient."""
    clip_fraction: Tensor
    """Fraction of samples whose ratio left [1 - eps, 1 + eps]; no gradient."""


def ppo_loss(logits: Tensor, values: Tensor, *, actions: Tensor, old_logprobs: Tensor, old_values: Tensor,
             advantages: Tensor, returns: Tensor, clip_coef: float, value_coef: float, entropy_coef: float,
             clip_value_loss: bool = True, normalize_advantages: bool = True) -> PPOLoss:
    """The PPO-clip loss of baselines' ppo2 for one minibatch.

    ``logits`` ``(B, A)`` and ``values`` ``(B,)`` come from the current network; ``actions``, ``old_logprobs``,
    ``old_values``, ``advantages``, ``returns`` ``(B,)`` from the rollout.  With ``normalize_advantages`` the
    advantages are standardised within the minibatch (population std, plus 1e-8), as ppo2 does.
    """
    dist = Categorical(logits=logits)
    log_ratio = dist.log_prob(actions) - old_logprobs
    ratio = log_ratio.exp()
    if normalize_advantages and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std(unbiased=False) + 1e-8)
    policy = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
    squared_error = (values - returns) ** 2
    if clip_value_loss:
        clipped = old_values + (values - old_values).clamp(-clip_coef, clip_coef)
        squared_error = torch.max(squared_error, (clipped - returns) ** 2)
    value = 0.5 * squared_error.mean()
    entropy = dist.entropy().mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clip_fraction = ((ratio - 1).abs() > clip_coef).float().mean()
    return PPOLoss(total=policy + value_coef * value - entropy_coef * entropy, policy=policy, value=value,
                   entropy=entropy, approx_kl=approx_kl, clip_fraction=clip_fraction)


class RewardNormalizer:
    """Scale rewards by the running std of each environment's discounted return (baselines' ``VecNormalize``).

    Per step: ``ret = gamma * ret + r``; the running mean/variance of ``ret`` (over all envs and steps) is
    updated; the reward is divided by ``sqrt(var + eps)`` and clipped; ``ret`` is reset where an episode ended.
    The value head therefore learns returns in these scaled units: multiply by :attr:`scale` for raw returns.
    """

    def __init__(self, num_envs: int, *, gamma: float, clip: float, eps: float = 1e-8):
        self.gamma, self.clip, self.eps = gamma, clip, eps
        self.ret = np.zeros(num_envs, dtype=np.float64)
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def _update(self, x: np.ndarray) -> None:
        batch_mean, batch_var, n = float(x.mean()), float(x.var()), x.size
        delta, total = batch_mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.count = total

    @property
    def scale(self) -> float:
        """The divisor applied to rewards: sqrt(var + eps) of the discounted return."""
        return math.sqrt(self.var + self.eps)

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        self.ret = self.ret * self.gamma + rewards
        self._update(self.ret)
        scaled = np.clip(rewards / self.scale, -self.clip, self.clip)
        self.ret[dones] = 0.0
        return scaled.astype(np.float32)


class EpisodeTracker:
    """Raw episode returns and lengths from per-step rewards and end-of-episode flags.

    A Heist episode succeeds when the gem is collected, the only rewarded event (+10), so success is return > 0.
    """

    def __init__(self, num_envs: int, *, window: int):
        self.running_return = np.zeros(num_envs, dtype=np.float64)
        self.running_length = np.zeros(num_envs, dtype=np.int64)
        self.returns: deque[float] = deque(maxlen=window)
        self.lengths: deque[int] = deque(maxlen=window)
        self.episodes = self.successes = 0

    def update(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """``rewards`` of the actions just taken; ``dones``: those actions ended the episode."""
        self.running_return += rewards
        self.running_length += 1
        for i in np.flatnonzero(dones):
            self.returns.append(float(self.running_return[i]))
            self.lengths.append(int(self.running_length[i]))
            self.episodes += 1
            self.successes += int(self.running_return[i] > 0)
        self.running_return[dones] = 0.0
        self.running_length[dones] = 0

    def summary(self) -> dict:
        """Mean return, success rate and mean length over the recent window (None before any episode ends)."""
        if not self.returns:
            return {"episodes": self.episodes, "window": 0, "mean_return": None, "success_rate": None,
                    "mean_length": None}
        returns = np.array(self.returns)
        return {"episodes": self.episodes, "window": len(returns), "mean_return": float(returns.mean()),
                "success_rate": float((returns > 0).mean()), "mean_length": float(np.mean(self.lengths))}
