"""What an SAE's latents do: the latents of a batch of frames, firing rates, L0, dead and dense fractions, reconstruction error (FVU), the policy's
change when the SAE replaces its site (KL, argmax agreement), and each latent's largest value."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import SAEError
from harness.lenses.sae.model import SAE
from harness.policy.runner import run


DEAD_FREQUENCY = 0.0
"""A latent is dead when its firing rate over the evaluation positions is at most this: it never fires."""
DENSE_FREQUENCY = 0.1
"""A latent is dense when it fires at more than this fraction of the evaluation positions."""


def _positions(z: Tensor) -> Tensor:
    """Maps ``(N, L, H, W)`` (or rows ``(N, L)``) as rows of positions ``(N*H*W, L)``."""
    return z.movedim(1, -1).reshape(-1, z.shape[1])


def firing_rates(latents: Tensor) -> Tensor:
    """Per latent, the fraction of positions ``(n, h, w)`` where it is > 0; latents ``(N, L, H, W)`` -> ``(L,)``."""
    return (_positions(latents) > 0).float().mean(0)


def l0(latents: Tensor) -> float:
    """Mean number of latents > 0 per position."""
    return float((_positions(latents) > 0).sum(1).float().mean())


def fraction_of_variance_unexplained(x: Tensor, x_hat: Tensor) -> float:
    """``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` over positions; ``mean(x)`` is the per-channel mean over
    every position of the sample.  Maps ``(N, C, H, W)``."""
    x, x_hat = _positions(x).double(), _positions(x_hat).double()
    return float((x - x_hat).square().sum() / (x - x.mean(0)).square().sum())


def dead_fraction(rates: Tensor) -> float:
    """Fraction of latents whose firing rate is at most :data:`DEAD_FREQUENCY`."""
    return float((rates <= DEAD_FREQUENCY).float().mean())


def dense_fraction(rates: Tensor, *, above: float = DENSE_FREQUENCY) -> float:
    """Fraction of latents whose firing rate exceeds ``above`` (:data:`DENSE_FREQUENCY` by default)."""
    return float((rates > above).float().mean())


def kl_divergence(clean_logits: Tensor, logits: Tensor) -> float:
    """Mean over examples of KL(clean || other) between the action distributions, in nats."""
    return float(F.kl_div(logits.log_softmax(-1), clean_logits.log_softmax(-1), log_target=True, reduction="batchmean"))


def action_agreement(clean_logits: Tensor, logits: Tensor) -> float:
    """Fraction of examples whose most probable action is unchanged."""
    return float((clean_logits.argmax(-1) == logits.argmax(-1)).float().mean())


def sae_latents(policy: nn.Module, sae: SAE, frames: np.ndarray, *, reduce: str | None = None,
                batch_size: int = 256) -> Tensor:
    """The SAE's latents on the clean policy's ``frames``, in one call: maps ``(N, L, H, W)`` (flat sites
    ``(N, L)``), or per frame and latent ``(N, L)`` with ``reduce="sum"`` or ``"max"`` over positions.

    Encoded ``batch_size`` frames at a time, so a reduced call never holds every map.  Example: the fraction of
    frames on which each latent fires anywhere, ``firing_rates(sae_latents(policy, sae, frames, reduce="max"))``.
    """
    if reduce not in (None, "sum", "max"):
        raise SAEError(f"reduce must be None, 'sum' or 'max', got {reduce!r}")
    if len(frames) == 0 or batch_size < 1:
        raise SAEError(f"need at least one frame and batch_size >= 1, got {len(frames)} frames, {batch_size}")
    site = sae.config.site
    chunks = []
    for start in range(0, len(frames), batch_size):
        x = run(policy, frames[start:start + batch_size], cache=[site], batch_size=batch_size).activations[site]
        with torch.no_grad():
            z = sae.encode(x)
        if reduce is not None and z.ndim > 2:
            z = z.flatten(2).sum(2) if reduce == "sum" else z.flatten(2).amax(2)
        chunks.append(z)
    return torch.cat(chunks)


def latent_maxima(policy: nn.Module, sae: SAE, frames: np.ndarray, *, batch_size: int = 256) -> Tensor:
    """Each latent's largest value ``(L,)`` over ``frames`` (every position) of the clean policy.

    For the clamped-feature experiment: inside ``spliced(policy, sae)`` run with
    ``Clamp(site=Site(sae.latent_site, channels=(i,)), value=3 * maxima[i])``.
    """
    return sae_latents(policy, sae, frames, reduce="max", batch_size=batch_size).amax(0)
