"""An SAE's card: reconstruction metrics and the policy's fidelity with the SAE in place of its site, beside
zero- and mean-ablation of the site."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch
from torch import nn

from harness.heist.levels import HeistLevel
from harness.lenses.sae import (ARCHITECTURES, DENSE_FREQUENCY, SAE, SAEConfig, action_agreement, dead_fraction,
                                dense_fraction, firing_rates, fraction_of_variance_unexplained, kl_divergence, l0,
                                spliced)
from harness.policy.interventions import Intervention, Mean, Zero
from harness.policy.rollouts import rollout
from harness.policy.runner import run
from harness.stats import Estimate, wilson_interval


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
            f"- **architecture**: {ARCHITECTURES[c.architecture].__name__}, 1x1 conv {c.channels} -> {c.latents} -> "
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
