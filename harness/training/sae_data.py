"""What SAEs are trained on: frames the agent sees (level starts and its own episodes) and a site's activations
at random positions of them."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from harness.errors import SAEError
from harness.heist.engine import render
from harness.heist.levels import HeistLevel
from harness.heist.sampling import sample_levels
from harness.policy.rollouts import play, sample_actions
from harness.policy.runner import run
from harness.training import progress


def agent_frames(policy: nn.Module, levels: Sequence[HeistLevel], *, seed: int, max_steps: int = 1000) -> np.ndarray:
    """Every frame ``policy`` sees, in order, while playing one episode per level with sampled actions: the
    frames of ``rollout(policy, levels, seed=seed, max_steps=max_steps)``."""
    rng = np.random.default_rng(seed)
    seen: list[np.ndarray] = []

    def choose(frames: np.ndarray, _: list[HeistLevel]) -> np.ndarray:
        seen.append(frames.copy())
        return sample_actions(run(policy, frames).probs.double().numpy(), rng)

    play(levels, choose, max_steps=max_steps)
    return np.concatenate(seen)


def collect_frames(policy: nn.Module, seeds: str, n: int, *, seed: int, mode: str = "easy",
                   played: float = 0.5, max_steps: int = 250,
                   log: Callable[[str], None] = progress.log) -> np.ndarray:
    """``n`` frames the agent sees: the first frames of ``n - round(played * n)`` distinct levels of the seed
    range, then ``round(played * n)`` frames drawn uniformly from the agent's own episodes (sampled actions,
    cut at ``max_steps``) on those levels, played at most 64 at a time until enough frames are recorded."""
    if n < 1 or not 0 <= played <= 1:
        raise SAEError(f"need n >= 1 and played in [0, 1], got n={n}, played={played}")
    n_played = round(played * n)
    levels = sample_levels(seeds, max(n - n_played, n_played, 1), seed=seed, mode=mode)
    frames = [render(levels[:n - n_played])]
    log(f"rendered the first frames of {n - n_played} levels of the {seeds} range")
    recorded: list[np.ndarray] = []
    count, start, length, started = 0, 0, float(max_steps), time.time()
    while count < n_played and start < len(levels):
        size = min(64, len(levels) - start, math.ceil((n_played - count) / length))  # to give the missing frames
        recorded.append(agent_frames(policy, levels[start:start + size], seed=seed + len(recorded),
                                     max_steps=max_steps))
        count, start = count + len(recorded[-1]), start + size
        length = count / start  # mean episode length so far
        log(f"played {start} levels, {count:,}/{n_played:,} frames | {progress.rate(count, n_played, started, 'frames')}")
    if n_played:
        pool = np.concatenate(recorded)
        frames.append(pool[np.sort(np.random.default_rng(seed).choice(len(pool), n_played, replace=False))])
    return np.concatenate(frames)


def site_positions(policy: nn.Module, frames: np.ndarray, *, site: str, per_frame: int, seed: int,
                   batch_size: int = 256, log: Callable[[str], None] = progress.log) -> Tensor:
    """Activations of ``site`` at up to ``per_frame`` random positions of each frame, as rows ``(P, C)``."""
    generator = torch.Generator().manual_seed(seed)
    rows: list[Tensor] = []
    started = time.time()
    for start in range(0, len(frames), batch_size):
        act = run(policy, frames[start:start + batch_size], cache=[site]).activations[site]
        n, c = act.shape[:2]
        act = act.reshape(n, c, -1)  # positions on the last axis (one for flat sites)
        keep = torch.rand(n, act.shape[2], generator=generator).argsort(1)[:, :per_frame]
        rows.append(act.gather(2, keep[:, None, :].expand(n, c, -1)).transpose(1, 2).reshape(-1, c))
        done = min(start + batch_size, len(frames))
        if done == len(frames) or (start // batch_size) % 20 == 19:
            log(f"cached {site} on {done:,}/{len(frames):,} frames | {progress.rate(done, len(frames), started, 'frames')}")
    return torch.cat(rows)


def normalising_scale(activations: Tensor) -> float:
    """The factor that makes the mean squared norm of the rows ``(P, C)`` equal to C."""
    return math.sqrt(activations.shape[1] / float(activations.double().square().sum(1).mean()))
