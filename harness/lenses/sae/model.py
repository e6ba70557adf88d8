"""The SAE modules and their configs: :class:`ConvSAE` (ReLU latents, L1 penalty) and :class:`TopKSAE` (the k
largest latents per position pass), both 1x1 convolutions with hook points for splicing."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import CheckpointError, SAEError
from harness.policy.sites import HookPoint


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
    """Inputs are multiplied by it before encoding, reconstructions divided by it (the trainer sets it with
    :func:`harness.training.sae_data.normalising_scale`)."""

    def __post_init__(self) -> None:
        if not hasattr(type(self), "architecture"):
            raise SAEError("SAEConfig is the base of the configs; use ConvSAEConfig or TopKSAEConfig")
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


class SAE(nn.Module):
    """1x1 conv encoder and decoder with hook points; subclasses choose how latents are activated.

    Fresh weights: unit-norm decoder columns, the encoder their transpose, zero biases.
    """

    def __init__(self, config: SAEConfig) -> None:
        if type(self) is SAE:
            raise SAEError("SAE is the base of the modules; build_sae(config) builds the config's architecture")
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


ARCHITECTURES: Mapping[str, type[SAE]] = MappingProxyType({"conv": ConvSAE, "topk": TopKSAE})
"""The SAE class of each architecture name that configs record."""


def build_sae(config: SAEConfig) -> SAE:
    """A fresh SAE of the config's architecture."""
    return ARCHITECTURES[config.architecture](config)
