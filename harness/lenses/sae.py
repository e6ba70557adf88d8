"""Sparse autoencoders (SAEs) on a policy's conv sites, spliced into the policy as sites like any other.

Architectures
-------------
Both encode every spatial position on its own with 1x1 convolutions: ``conv_enc`` maps the site's C channels to
``expansion * C`` latents, ``conv_dec`` maps them back, so an activation ``(N, C, H, W)`` has latents
``(N, L, H, W)``.  A flat site such as ``fc1`` (rows ``(N, C)``) works the same, one position per frame.

- :class:`ConvSAE` (the researcher's): ReLU latents, trained with the penalty ``l1 * sum of latents``;
- :class:`TopKSAE`: per position only the ``k`` largest pre-activations pass (then a ReLU); no penalty.

Inputs are multiplied by ``config.scale`` before encoding and reconstructions divided by it, so latents live in
normalised units; :func:`normalising_scale` picks the scale that makes the mean squared norm per position C.

Splicing
--------
``with spliced(policy, sae, error_term=...)`` registers the SAE under the policy and routes the site's output
through it; its hook points are then sites that :func:`harness.policy.runner.run` interventions reach:
``{site}.sae.latents`` and, with ``error_term=True``, ``{site}.sae.error`` (``x - decode(encode(x))`` for the
unedited latents, added back so the spliced policy computes the clean one up to float rounding and only edits of
the latents change it).  Without the error term the policy sees the plain reconstruction.

Checkpoints
-----------
A dict whose ``model_state_dict`` holds ``conv_enc.{weight,bias}`` and ``conv_dec.{weight,bias}``.  The
researcher's files stop there (other top-level keys are ignored): they load as a :class:`ConvSAE` with scale 1
and need the site passed.  Ours add ``config`` (architecture, site, channels, expansion, scale, l1 or k) and
``training`` (command, data, history), all plain types, read with ``torch.load(weights_only=True)``.

Command line
------------
    python -m harness.lenses.sae train --policy P --site conv3a --out fixtures/saes/customcnn_bc_conv3a/sae.pt \\
        [--expansion 4 --l1 0.3 | --topk 8] [--frames 20000 --steps 10000 --seed 0]
    python -m harness.lenses.sae card --policy P --sae fixtures/saes/customcnn_bc_conv3a/sae.pt [--frames 1024 --levels 100]

``train`` records frames on ``training``-range levels (first frames and the agent's own episodes), caches the
site at random positions, trains with progress lines and saves the checkpoint; ``card`` evaluates it on the
``selection`` range (metrics beside zero- and mean-ablation of the site) and writes ``<checkpoint>.card.md``.
Run ``python -m harness.lenses.sae train --help`` for every option.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import CheckpointError, SAEError
from harness.policy.interventions import Intervention, Mean, Zero
from harness.heist.levels import HeistLevel
from harness.policy.models import _mismatches, _state_dict, checkpoint_sha256, load_policy
from harness.heist.engine import render
from harness.policy.rollouts import play, rollout, sample_actions
from harness.policy.runner import run
from harness.heist.sampling import sample_levels
from harness.policy.sites import HookPoint, hooked, sites
from harness.stats import Estimate, wilson_interval

__all__ = [
    "DEAD_FREQUENCY",
    "DENSE_FREQUENCY",
    "SAE",
    "ConvSAE",
    "ConvSAEConfig",
    "Fidelity",
    "SAECard",
    "SAEConfig",
    "TopKSAE",
    "TopKSAEConfig",
    "TrainingConfig",
    "TrainingRun",
    "action_agreement",
    "agent_frames",
    "build_sae",
    "collect_frames",
    "dead_fraction",
    "dense_fraction",
    "evaluate_sae",
    "firing_rates",
    "fraction_of_variance_unexplained",
    "kl_divergence",
    "l0",
    "latent_maxima",
    "load_sae",
    "normalising_scale",
    "save_sae",
    "site_positions",
    "spliced",
    "train_sae",
]

DEAD_FREQUENCY = 0.0
"""A latent is dead when its firing rate over the evaluation positions is at most this: it never fires."""
DENSE_FREQUENCY = 0.1
"""A latent is dense when it fires at more than this fraction of the evaluation positions."""


# ------------------------------------------------------------------------------------------------ configs
@dataclass(frozen=True, kw_only=True)
class SAEConfig:
    """What every architecture records; use :class:`ConvSAEConfig` or :class:`TopKSAEConfig`."""

    architecture: ClassVar[str]

    site: str
    """The site the SAE reads and replaces, e.g. ``conv3a``."""
    channels: int
    """Channels C of the site."""
    expansion: int = 4
    """Latents per channel: the SAE has ``expansion * channels`` latents."""
    scale: float = 1.0
    """Inputs are multiplied by it before encoding, reconstructions divided by it (see normalising_scale)."""

    def __post_init__(self) -> None:
        if not isinstance(self.site, str) or not self.site:
            raise SAEError(f"site must be a site name such as 'conv3a', got {self.site!r}")
        for name in ("channels", "expansion"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SAEError(f"{name} must be a positive int, got {value!r}")
        if not (isinstance(self.scale, int | float) and math.isfinite(self.scale) and self.scale > 0):
            raise SAEError(f"scale must be a finite positive number, got {self.scale!r}")

    @property
    def latents(self) -> int:
        return self.expansion * self.channels

    def sparsity(self) -> str:
        """How sparsity is obtained, for cards."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, object]:
        """Plain types, as stored in checkpoints."""
        return {"architecture": self.architecture, **dataclasses.asdict(self)}

    @staticmethod
    def from_dict(stored: Mapping[str, object]) -> SAEConfig:
        """The config a checkpoint stored with :meth:`to_dict`."""
        fields = dict(stored)
        kind = fields.pop("architecture", None)
        if kind not in _CONFIGS:
            raise CheckpointError(f"stored SAE config names architecture {kind!r}; expected one of {sorted(_CONFIGS)}")
        try:
            return _CONFIGS[kind](**fields)
        except TypeError as exc:
            raise CheckpointError(f"stored {kind} SAE config does not fit {_CONFIGS[kind].__name__}: {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class ConvSAEConfig(SAEConfig):
    """The researcher's ConvSAE: ReLU latents, L1 penalty."""

    architecture: ClassVar[str] = "conv"

    l1: float | None = 0.3
    """Weight of the sum of latents (in normalised units, per position) against the squared error; None: not
    recorded (the researcher's checkpoints), and such an SAE cannot be trained further until it is set."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.l1 is not None and not (isinstance(self.l1, int | float) and math.isfinite(self.l1) and self.l1 >= 0):
            raise SAEError(f"l1 must be a finite number >= 0 or None, got {self.l1!r}")

    def sparsity(self) -> str:
        return "L1 penalty, coefficient not recorded" if self.l1 is None else f"L1 penalty, coefficient {self.l1:g}"


@dataclass(frozen=True, kw_only=True)
class TopKSAEConfig(SAEConfig):
    """TopK latents: only the ``k`` largest per position pass."""

    architecture: ClassVar[str] = "topk"

    k: int = 8
    """Latents that pass per position (fewer when some of the k largest are <= 0)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= self.latents:
            raise SAEError(f"k must be an int in 1..{self.latents} (the number of latents), got {self.k!r}")

    def sparsity(self) -> str:
        return f"TopK, k={self.k}"


_CONFIGS: Mapping[str, type[SAEConfig]] = MappingProxyType({"conv": ConvSAEConfig, "topk": TopKSAEConfig})


# ------------------------------------------------------------------------------------------------ modules
class SAE(nn.Module):
    """1x1 conv encoder and decoder with hook points; subclasses choose how latents are activated.

    Fresh weights: unit-norm decoder columns, the encoder their transpose, zero biases.
    """

    def __init__(self, config: SAEConfig) -> None:
        super().__init__()
        self.config = config
        self.conv_enc = nn.Conv2d(config.channels, config.latents, 1)
        self.conv_dec = nn.Conv2d(config.latents, config.channels, 1)
        self.hook_latents = HookPoint(self.latent_site)
        self.hook_error = HookPoint(self.error_site)
        with torch.no_grad():
            self.normalise_decoder()
            self.conv_enc.weight.copy_(self.conv_dec.weight.transpose(0, 1))
            self.conv_enc.bias.zero_()
            self.conv_dec.bias.zero_()

    @property
    def latent_site(self) -> str:
        """Site name of the latents while spliced, e.g. ``conv3a.sae.latents``."""
        return f"{self.config.site}.sae.latents"

    @property
    def error_site(self) -> str:
        """Site name of the reconstruction error while spliced with the error term, e.g. ``conv3a.sae.error``."""
        return f"{self.config.site}.sae.error"

    def encode(self, x: Tensor) -> Tensor:
        """Latents ``(N, L, ...)`` of site activations ``(N, C, ...)``: maps ``(N, C, H, W)`` or rows ``(N, C)``.

        Each position is encoded on its own (what the 1x1 ``conv_enc`` computes), as one matrix product.
        """
        pre = F.linear(x.movedim(1, -1) * self.config.scale, self.conv_enc.weight.flatten(1), self.conv_enc.bias)
        return self._activate(pre).movedim(-1, 1)

    def decode(self, z: Tensor) -> Tensor:
        """Reconstructed site activations ``(N, C, ...)`` of latents ``(N, L, ...)`` (the 1x1 ``conv_dec``)."""
        weight = self.conv_dec.weight.flatten(1)
        return F.linear(z.movedim(1, -1), weight, self.conv_dec.bias).movedim(-1, 1) / self.config.scale

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction ``decode(encode(x))``."""
        return self.decode(self.encode(x))

    def splice(self, x: Tensor, *, error_term: bool) -> Tensor:
        """What the policy sees at the site while spliced; the latents (and error) pass through hook points."""
        z = self.encode(x)
        out = self.decode(self.hook_latents(z))
        if error_term:
            out = out + self.hook_error(x - self.decode(z))
        return out

    def sparsity_loss(self, z: Tensor) -> Tensor:
        """The architecture's penalty on latents ``(N, L, ...)``, averaged over positions."""
        return z.new_zeros(())

    def revival_gain(self, *, live_norm: Tensor, live_max: Tensor, reach: Tensor) -> Tensor:
        """Encoder gain of resampled latents: 0.2 x ``live_norm``, the mean encoder norm of live latents (Anthropic's
        rule: a small start that training grows if the latent helps).  ``live_max``: the largest live
        pre-activation on each latent's input; ``reach``: its pre-activation there per unit gain."""
        return 0.2 * live_norm.expand_as(reach)

    def normalise_decoder(self) -> None:
        """Scale every decoder column (one latent's direction) to unit norm."""
        weight = self.conv_dec.weight
        weight /= weight.norm(dim=0, keepdim=True).clamp_min(1e-8)

    def _activate(self, pre: Tensor) -> Tensor:
        """Latents from pre-activations, latents on the last axis."""
        raise NotImplementedError


class ConvSAE(SAE):
    """The researcher's ConvSAE: ``relu(conv_enc(x))``, decoded by ``conv_dec``; L1 penalty."""

    config: ConvSAEConfig

    def _activate(self, pre: Tensor) -> Tensor:
        return F.relu(pre)

    def sparsity_loss(self, z: Tensor) -> Tensor:
        if self.config.l1 is None:
            raise SAEError("this ConvSAE does not record its L1 coefficient; set one with "
                           "sae.config = dataclasses.replace(sae.config, l1=...)")
        return self.config.l1 * z.sum(1).mean()


class TopKSAE(SAE):
    """Only the ``k`` largest pre-activations per position pass, through a ReLU."""

    config: TopKSAEConfig

    def _activate(self, pre: Tensor) -> Tensor:
        top = pre.topk(self.config.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, top.indices, F.relu(top.values))

    def revival_gain(self, *, live_norm: Tensor, live_max: Tensor, reach: Tensor) -> Tensor:
        """As large as the strongest live latent on the resampled latent's input, so that it enters the top k there
        (a smaller start would never pass the TopK and never get a gradient)."""
        return live_max.clamp_min(1e-3) / reach


_MODULES: Mapping[str, type[SAE]] = MappingProxyType({"conv": ConvSAE, "topk": TopKSAE})


def build_sae(config: SAEConfig) -> SAE:
    """A fresh SAE of the config's architecture."""
    return _MODULES[config.architecture](config)


# ------------------------------------------------------------------------------------------------ files
def save_sae(sae: SAE, path: str | PathLike, *, training: Mapping[str, object] | None = None) -> None:
    """Write ``sae`` with its config and an optional ``training`` record (plain types only)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in sae.state_dict().items()}
    torch.save({"model_state_dict": state, "config": sae.config.to_dict(), "training": dict(training or {})}, path)


def _stored(path: str | PathLike, key: str) -> Mapping[str, object] | None:
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    return loaded.get(key) if isinstance(loaded, dict) else None


def load_sae(path: str | PathLike, *, site: str | None = None) -> SAE:
    """Load our format or the researcher's; returns the SAE in eval mode.

    ``site`` is checked against the stored one (a mismatch raises :class:`SAEError`); files without a config
    (the researcher's) need it.  Missing, unexpected or misshapen weights raise :class:`CheckpointError`.
    """
    state = _state_dict(path)
    stored = _stored(path, "config")
    if stored is not None:
        config = SAEConfig.from_dict(stored)
        if site is not None and site != config.site:
            raise SAEError(f"{path} holds an SAE trained on site {config.site!r}, not {site!r}; load the SAE of "
                           f"{site!r} or pass site={config.site!r}")
    else:
        if site is None:
            raise SAEError(f"{path} does not record its site (researcher format); pass site=, e.g. site='conv3a'")
        weight = state.get("conv_enc.weight")
        if weight is None or weight.ndim != 4:
            raise CheckpointError(f"{path}: layer conv_enc: missing conv_enc.weight shaped (latents, C, 1, 1)")
        latents, channels = weight.shape[:2]
        if latents % channels:
            raise CheckpointError(f"{path}: conv_enc has {latents} latents, not a multiple of its {channels} channels")
        config = ConvSAEConfig(site=site, channels=int(channels), expansion=int(latents // channels), l1=None)
    sae = build_sae(config)
    problems = _mismatches(sae.state_dict(), state)
    if problems:
        raise CheckpointError(f"{path} does not fit {type(sae).__name__}:\n  " + "\n  ".join(problems))
    sae.load_state_dict(state)
    return sae.eval()


# ------------------------------------------------------------------------------------------------ splicing
@contextmanager
def spliced(policy: nn.Module, sae: SAE, *, error_term: bool = True) -> Iterator[SAE]:
    """Route the output of ``sae.config.site`` through ``sae`` inside the block; yields the SAE.

    The SAE is registered under the policy (so its hook points are sites) and a forward hook on the site replaces
    the output with :meth:`SAE.splice`; both are removed on exit, also when the block raises.  Hooks that
    :func:`harness.policy.runner.run` puts on the site itself run after the splice and see what the network downstream
    sees.  One SAE per site at a time.
    """
    site = sae.config.site
    name = "sae_" + site.replace(".", "_")
    if name in dict(policy.named_children()):
        raise SAEError(f"an SAE is already spliced at {site!r}; leave its spliced() block first")
    shapes = sites(policy)
    policy.add_module(name, sae)
    try:
        with hooked(policy, [(site, partial(sae.splice, error_term=error_term))]):
            shape = shapes.get(site)
            if shape is None or shape[0] != sae.config.channels:
                found = "is not computed in the forward pass" if shape is None else f"is shaped {shape}"
                raise SAEError(f"the SAE takes {sae.config.channels} channels at {site!r}, but that site of "
                               f"{type(policy).__name__} {found}; load the SAE trained on this policy's site")
            yield sae
    finally:
        delattr(policy, name)


# ------------------------------------------------------------------------------------------------ metrics
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


def dense_fraction(rates: Tensor) -> float:
    """Fraction of latents whose firing rate exceeds :data:`DENSE_FREQUENCY`."""
    return float((rates > DENSE_FREQUENCY).float().mean())


def kl_divergence(clean_logits: Tensor, logits: Tensor) -> float:
    """Mean over examples of KL(clean || other) between the action distributions, in nats."""
    return float(F.kl_div(logits.log_softmax(-1), clean_logits.log_softmax(-1), log_target=True, reduction="batchmean"))


def action_agreement(clean_logits: Tensor, logits: Tensor) -> float:
    """Fraction of examples whose most probable action is unchanged."""
    return float((clean_logits.argmax(-1) == logits.argmax(-1)).float().mean())


def latent_maxima(policy: nn.Module, sae: SAE, frames: np.ndarray, *, batch_size: int = 256) -> Tensor:
    """Each latent's largest value ``(L,)`` over ``frames`` (every position) of the clean policy.

    For the clamped-feature experiment: inside ``spliced(policy, sae)`` run with
    ``Clamp(site=Site(sae.latent_site, channels=(i,)), value=3 * maxima[i])``.
    """
    site = sae.config.site
    maxima = []
    for start in range(0, len(frames), batch_size):
        x = run(policy, frames[start:start + batch_size], cache=[site]).activations[site]
        with torch.no_grad():
            maxima.append(_positions(sae.encode(x)).amax(0))
    return torch.stack(maxima).amax(0)


# ------------------------------------------------------------------------------------------------ data
def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _rate(done: int, total: int, started: float, unit: str) -> str:
    rate = done / max(time.time() - started, 1e-9)
    return f"{rate:,.0f} {unit}/s | ETA {max(total - done, 0) / max(rate, 1e-9) / 60:.1f} min"


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


def collect_frames(policy: nn.Module, range_name: str, n: int, *, seed: int, mode: str = "easy",
                   played: float = 0.5, max_steps: int = 250,
                   log: Callable[[str], None] = _log) -> np.ndarray:
    """``n`` frames the agent sees: the first frames of ``n - round(played * n)`` distinct levels of the seed
    range, then ``round(played * n)`` frames drawn uniformly from the agent's own episodes (sampled actions,
    cut at ``max_steps``) on those levels, played at most 64 at a time until enough frames are recorded."""
    if n < 1 or not 0 <= played <= 1:
        raise SAEError(f"need n >= 1 and played in [0, 1], got n={n}, played={played}")
    n_played = round(played * n)
    levels = sample_levels(range_name, max(n - n_played, n_played, 1), seed=seed, mode=mode)
    frames = [render(levels[:n - n_played])]
    log(f"rendered the first frames of {n - n_played} levels of the {range_name} range")
    recorded: list[np.ndarray] = []
    count, start, length, started = 0, 0, float(max_steps), time.time()
    while count < n_played and start < len(levels):
        size = min(64, len(levels) - start, math.ceil((n_played - count) / length))  # to give the missing frames
        recorded.append(agent_frames(policy, levels[start:start + size], seed=seed + len(recorded),
                                     max_steps=max_steps))
        count, start = count + len(recorded[-1]), start + size
        length = count / start  # mean episode length so far
        log(f"played {start} levels, {count:,}/{n_played:,} frames | {_rate(count, n_played, started, 'frames')}")
    if n_played:
        pool = np.concatenate(recorded)
        frames.append(pool[np.sort(np.random.default_rng(seed).choice(len(pool), n_played, replace=False))])
    return np.concatenate(frames)


def site_positions(policy: nn.Module, frames: np.ndarray, *, site: str, per_frame: int, seed: int,
                   batch_size: int = 256, log: Callable[[str], None] = _log) -> Tensor:
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
            log(f"cached {site} on {done:,}/{len(frames):,} frames | {_rate(done, len(frames), started, 'frames')}")
    return torch.cat(rows)


def normalising_scale(activations: Tensor) -> float:
    """The factor that makes the mean squared norm of the rows ``(P, C)`` equal to C."""
    return math.sqrt(activations.shape[1] / float(activations.double().square().sum(1).mean()))


# ------------------------------------------------------------------------------------------------ training
@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Optimisation of an SAE on cached positions (Adam, decoder columns kept at unit norm)."""

    steps: int = 10_000
    """Gradient steps; the learning rate decays linearly to 0 over the last 20%."""
    batch_size: int = 4096
    """Positions per step, drawn uniformly with replacement."""
    lr: float = 1e-3
    seed: int = 0
    """Seeds the batches and the resampling draws."""
    resample_every: int | None = 1000
    """Every this many steps of the first half of training, latents that did not fire during the last
    ``resample_every`` steps are resampled toward inputs of high loss (see :func:`train_sae`); None: never."""
    log_every: int = 500
    """Steps between progress lines."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "resample_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SAEError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise SAEError(f"lr must be > 0, got {self.lr}")


@dataclass(frozen=True, kw_only=True, eq=False)
class TrainingRun:
    """What :func:`train_sae` did."""

    sae: SAE
    history: tuple[Mapping[str, float], ...]
    """One row per progress line: step, loss, mse (normalised units, per position), l0, quiet (latents that
    did not fire since the previous line), resampled (so far)."""
    resampled: int
    """Latents resampled in all."""
    seconds: float


def train_sae(sae: SAE, activations: Tensor, *, training: TrainingConfig,
              log: Callable[[str], None] = _log) -> TrainingRun:
    """Train ``sae`` in place on site activations at positions, rows ``(P, C)`` in raw units.

    The loss per position is the squared error in normalised units plus the architecture's sparsity penalty;
    decoder columns are renormalised to unit length after every step.  Dead latents are resampled (no auxiliary
    loss): every ``resample_every`` steps of the first half of training, each latent that fired on no position
    of the last ``resample_every`` batches is pointed at an input drawn from ``8 * batch_size`` random rows with
    probability proportional to its squared loss (see ``_resample``), and counts as fresh again.
    """
    if activations.ndim != 2 or activations.shape[1] != sae.config.channels or not len(activations):
        raise SAEError(f"activations must be rows (P >= 1, {sae.config.channels}), got {tuple(activations.shape)}")
    generator = torch.Generator().manual_seed(training.seed)
    data = activations.float()
    optimizer = torch.optim.Adam(sae.parameters(), lr=training.lr)
    decay_from = 0.8 * training.steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (training.steps - s) / max(training.steps - decay_from, 1)))
    last_fired = torch.zeros(sae.config.latents, dtype=torch.long)
    fired_since_log = torch.zeros(sae.config.latents, dtype=torch.bool)
    history: list[dict[str, float]] = []
    resampled, started = 0, time.time()
    sae.train()
    for step in range(1, training.steps + 1):
        x = data[torch.randint(len(data), (training.batch_size,), generator=generator)]
        z = sae.encode(x)
        mse = ((sae.decode(z) - x) * sae.config.scale).square().sum(1).mean()
        loss = mse + sae.sparsity_loss(z)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            sae.normalise_decoder()
        fired = (z > 0).any(0)
        last_fired[fired] = step
        fired_since_log |= fired
        every = training.resample_every
        if every and step % every == 0 and 2 * step <= training.steps:
            dead = torch.nonzero(step - last_fired >= every).flatten()
            if len(dead):
                sample = data[torch.randint(len(data), (8 * training.batch_size,), generator=generator)]
                _resample(sae, optimizer, dead, sample, generator)
                last_fired[dead] = step
                resampled += len(dead)
        if step % training.log_every == 0 or step == training.steps:
            row = {"step": step, "loss": loss.item(), "mse": mse.item(), "l0": l0(z.detach()),
                   "quiet": int((~fired_since_log).sum()), "resampled": resampled}
            history.append(row)
            fired_since_log[:] = False
            log(f"step {step:,}/{training.steps:,} loss {row['loss']:.4f} mse {row['mse']:.4f} L0 {row['l0']:.2f} "
                f"quiet {row['quiet']}/{sae.config.latents} resampled {resampled} | "
                f"{_rate(step * training.batch_size, training.steps * training.batch_size, started, 'positions')}")
    sae.eval()
    return TrainingRun(sae=sae, history=tuple(history), resampled=resampled, seconds=time.time() - started)


def _resample(sae: SAE, optimizer: torch.optim.Optimizer, dead: Tensor, sample: Tensor,
              generator: torch.Generator) -> None:
    """Point each dead latent at an input drawn with probability proportional to its squared loss (after
    Anthropic's "Towards Monosemanticity"), measured from the decoder bias b (the reconstruction with no latent
    active): decoder column = the unit direction d of c = input - b; the latent reads ``g * (d . (x - b) - |c|/2)``,
    so it fires only on inputs near its own, with the gain g of :meth:`SAE.revival_gain`; Adam moments reset."""
    with torch.no_grad():
        loss = ((sae(sample) - sample) * sae.config.scale).square().sum(1)
        weights = loss.square() if loss.square().sum() > 0 else torch.ones_like(loss)
        chosen = sample[torch.multinomial(weights, len(dead), replacement=True, generator=generator)] * sae.config.scale
        centred = chosen - sae.conv_dec.bias
        reach = 0.5 * centred.norm(dim=1).clamp_min(1e-8)
        directions = centred / (2 * reach[:, None])
        live = torch.ones(sae.config.latents, dtype=torch.bool)
        live[dead] = False
        if not live.any():
            live[:] = True
        pre = F.linear(chosen, sae.conv_enc.weight.flatten(1), sae.conv_enc.bias)[:, live]
        gain = sae.revival_gain(live_norm=sae.conv_enc.weight[live].flatten(1).norm(dim=1).mean(),
                                live_max=pre.amax(1), reach=reach)
        sae.conv_dec.weight[:, dead, 0, 0] = directions.T
        sae.conv_enc.weight[dead, :, 0, 0] = gain[:, None] * directions
        sae.conv_enc.bias[dead] = -gain * (directions @ sae.conv_dec.bias + reach)
    for param, index in ((sae.conv_enc.weight, (dead,)), (sae.conv_enc.bias, (dead,)),
                         (sae.conv_dec.weight, (slice(None), dead))):
        for moment in ("exp_avg", "exp_avg_sq"):
            if moment in optimizer.state.get(param, {}):
                optimizer.state[param][moment][index] = 0.0


# ------------------------------------------------------------------------------------------------ cards
@dataclass(frozen=True, kw_only=True)
class Fidelity:
    """The policy with the site replaced one way, against the clean policy on the same frames and levels."""

    kl: float
    """Mean KL(clean || replaced) of the action distribution over the frames, in nats."""
    agreement: float
    """Fraction of frames whose most probable action is unchanged."""
    success: Estimate | None
    """Rollout success rate with its 95% Wilson interval; None where not played."""


@dataclass(frozen=True, kw_only=True, eq=False)
class SAECard:
    """An SAE's reconstruction metrics and fidelity to the policy, beside ablations of its site."""

    config: SAEConfig
    data: str
    """The evaluation frames and rollout levels."""
    frames: int
    l0: float
    fvu: float
    """Fraction of variance unexplained."""
    dead_fraction: float
    dense_fraction: float
    fidelity: Mapping[str, Fidelity]
    """By replacement: clean, SAE (no error term), SAE + error term, zero ablation, mean ablation."""

    def markdown(self, *, provenance: Mapping[str, str] = MappingProxyType({})) -> str:
        """The card as Markdown; ``provenance`` lines (command, checkpoints, training data) come first."""
        c = self.config
        lines = [f"# SAE card: {c.site} ({c.architecture}, {c.latents} latents)", ""]
        lines += [f"- **{key}**: {value}" for key, value in provenance.items()]
        lines += [
            f"- **architecture**: {_MODULES[c.architecture].__name__}, 1x1 conv {c.channels} -> {c.latents} -> "
            f"{c.channels} (expansion {c.expansion}), input scale {c.scale:.4g}",
            f"- **sparsity**: {c.sparsity()}",
            f"- **evaluation data**: {self.data}",
            "",
            "| metric | value |", "|---|---|",
            f"| L0 (mean active latents per position) | {self.l0:.2f} |",
            f"| fraction of variance unexplained | {self.fvu:.4f} |",
            f"| dead latents (never fire on the {self.frames} frames) | {self.dead_fraction:.3f} |",
            f"| dense latents (fire at > {DENSE_FREQUENCY:g} of positions) | {self.dense_fraction:.3f} |",
            "",
            f"| site {c.site} replaced by | KL(clean ‖ replaced), nats | argmax agreement | rollout success |",
            "|---|---|---|---|",
        ]
        for name, f in self.fidelity.items():
            success = f.success.describe() if f.success is not None else "same as clean (exact splice)"
            lines.append(f"| {name} | {f.kl:.4f} | {f.agreement:.3f} | {success} |")
        return "\n".join(lines) + "\n"


def evaluate_sae(policy: nn.Module, sae: SAE, frames: np.ndarray, levels: Sequence[HeistLevel], *, data: str,
                 seed: int, max_steps: int = 1000) -> SAECard:
    """Reconstruction metrics of ``sae`` on ``frames`` and the policy's fidelity when the SAE replaces the site,
    beside zero- and mean-ablation (mean over ``frames``); success rates from sampled rollouts on ``levels``."""
    site = sae.config.site
    clean = run(policy, frames, cache=[site])
    x = clean.activations[site]
    with torch.no_grad():
        z = sae.encode(x)
        x_hat = sae.decode(z)
    rates = firing_rates(z)
    replacements: dict[str, tuple[Callable[[], object], Sequence[Intervention], bool]] = {
        "clean policy": (nullcontext, (), True),
        "SAE, no error term": (lambda: spliced(policy, sae, error_term=False), (), True),
        "SAE + error term": (lambda: spliced(policy, sae, error_term=True), (), False),
        "zero ablation": (nullcontext, (Zero(site=site),), True),
        "mean ablation": (nullcontext, (Mean.from_activations(x, site=site),), True),
    }
    fidelity = {}
    for name, (context, interventions, play_it) in replacements.items():
        with context():
            logits = run(policy, frames, interventions=interventions).logits
            success = None
            if play_it:
                won = rollout(policy, levels, interventions=interventions, seed=seed, max_steps=max_steps).success
                success = wilson_interval(int(won.sum()), len(won))
        fidelity[name] = Fidelity(kl=kl_divergence(clean.logits, logits),
                                  agreement=action_agreement(clean.logits, logits), success=success)
    return SAECard(config=sae.config, data=data, frames=len(frames), l0=l0(z),
                   fvu=fraction_of_variance_unexplained(x, x_hat), dead_fraction=dead_fraction(rates),
                   dense_fraction=dense_fraction(rates), fidelity=MappingProxyType(fidelity))


# ------------------------------------------------------------------------------------------------ command line
def _train(args: argparse.Namespace, command: str) -> None:
    torch.manual_seed(args.seed)
    policy = load_policy(args.policy)
    frames = collect_frames(policy, "training", args.frames, seed=args.seed, mode=args.mode, played=args.played,
                            max_steps=args.max_episode_steps)
    acts = site_positions(policy, frames, site=args.site, per_frame=args.positions_per_frame, seed=args.seed)
    common = {"site": args.site, "channels": acts.shape[1], "expansion": args.expansion,
              "scale": normalising_scale(acts)}
    config = TopKSAEConfig(k=args.topk, **common) if args.topk else ConvSAEConfig(l1=args.l1, **common)
    training = TrainingConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                              resample_every=args.resample_every or None)
    _log(f"training a {config.architecture} SAE on {len(acts):,} positions of {args.site} "
         f"({config.sparsity()}, {config.latents} latents, input scale {config.scale:.4g})")
    result = train_sae(build_sae(config), acts, training=training)
    data = (f"{args.frames} frames of the training seed range (seed {args.seed}, {args.mode}): first frames of "
            f"distinct levels and, for a share of {args.played}, frames of the agent's own episodes (sampled actions, "
            f"cut at {args.max_episode_steps} steps); {len(acts) // len(frames)} random positions per frame, "
            f"{len(acts):,} in all")
    save_sae(result.sae, args.out, training={
        "command": command, "policy": str(args.policy), "policy_sha256": checkpoint_sha256(args.policy),
        "data": data, "config": dataclasses.asdict(training), "history": [dict(r) for r in result.history],
        "resampled": result.resampled, "minutes": round(result.seconds / 60, 2), "torch_threads": torch.get_num_threads()})
    _log(f"saved {args.out}; next: python -m harness.lenses.sae card --policy {args.policy} --sae {args.out}")


def _card(args: argparse.Namespace, command: str) -> None:
    torch.manual_seed(args.seed)
    policy = load_policy(args.policy)
    sae = load_sae(args.sae, site=args.site)
    frames = collect_frames(policy, "selection", args.frames, seed=args.seed, mode=args.mode, played=0.5,
                            max_steps=args.max_steps)
    levels = sample_levels("selection", args.levels, seed=args.seed + 1, mode=args.mode)
    data = (f"{args.frames} frames of the selection seed range (seed {args.seed}, {args.mode}; half first frames "
            f"of levels, half from the agent's own episodes); rollouts on {args.levels} selection levels "
            f"(sampled actions, seed {args.seed}, cut at {args.max_steps} steps)")
    card = evaluate_sae(policy, sae, frames, levels, data=data, seed=args.seed, max_steps=args.max_steps)
    trained = _stored(args.sae, "training") or {}
    sha = checkpoint_sha256(args.policy)
    threads = trained.get("torch_threads")
    provenance = {"card command": f"`{command}`",
                  "training command": f"`{trained['command']}`" if "command" in trained else "not recorded",
                  **({"training threads": f"{threads} (the command gives this checkpoint again only with as many torch "
                                          "threads: with another count the weights differ, at a similar loss)"}
                     if threads else {}),
                  "training data": str(trained.get("data", "not recorded")),
                  "SAE checkpoint": f"{args.sae} (sha256 {checkpoint_sha256(args.sae)[:16]})",
                  "policy": f"{args.policy} (sha256 {sha[:16]})"}
    if trained.get("policy_sha256") not in (None, sha):
        provenance["warning"] = f"the SAE was trained on another policy checkpoint ({trained.get('policy')})"
    text = card.markdown(provenance=provenance)
    out = args.out or Path(args.sae).with_suffix(".card.md")
    Path(out).write_text(text)
    print(text + f"\nwritten to {out}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m harness.lenses.sae", description="Train SAEs and write their cards.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="record frames, cache a site, train an SAE and save it")
    train.add_argument("--policy", type=Path, required=True)
    train.add_argument("--site", required=True, help="a conv site of the policy, e.g. conv3a")
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--expansion", type=int, default=4, help="latents per channel")
    sparsity = train.add_mutually_exclusive_group()
    sparsity.add_argument("--l1", type=float, default=ConvSAEConfig.l1, help="L1 coefficient (ConvSAE)")
    sparsity.add_argument("--topk", type=int, help="train a TopK SAE passing this many latents per position")
    train.add_argument("--frames", type=int, default=20_000)
    train.add_argument("--played", type=float, default=0.5, help="share of frames from the agent's own episodes")
    train.add_argument("--max-episode-steps", type=int, default=250)
    train.add_argument("--positions-per-frame", type=int, default=64)
    train.add_argument("--steps", type=int, default=TrainingConfig.steps)
    train.add_argument("--batch-size", type=int, default=TrainingConfig.batch_size)
    train.add_argument("--lr", type=float, default=TrainingConfig.lr)
    train.add_argument("--resample-every", type=int, default=TrainingConfig.resample_every, help="0: never")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--mode", default="easy", choices=("easy", "hard"))
    card = commands.add_parser("card", help="evaluate an SAE and write its Markdown card")
    card.add_argument("--policy", type=Path, required=True)
    card.add_argument("--sae", type=Path, required=True)
    card.add_argument("--site", help="needed only for checkpoints that do not record their site")
    card.add_argument("--frames", type=int, default=1024, help="evaluation frames")
    card.add_argument("--levels", type=int, default=100, help="levels played per replacement")
    card.add_argument("--max-steps", type=int, default=1000, help="episode cut (the engine's own is 1000)")
    card.add_argument("--seed", type=int, default=0)
    card.add_argument("--mode", default="easy", choices=("easy", "hard"))
    card.add_argument("--out", type=Path, help="Markdown path; default: beside the SAE, .card.md")
    args = parser.parse_args(argv)
    command = "python -m harness.lenses.sae " + shlex.join(argv)
    (_train if args.command == "train" else _card)(args, command)


if __name__ == "__main__":
    main()
