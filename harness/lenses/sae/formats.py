"""SAE checkpoints: ours (weights, config and training record) and the researcher's (``model_state_dict`` with
``conv_enc.*`` and ``conv_dec.*`` only), read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path

import torch

from harness.errors import CheckpointError, SAEError
from harness.lenses.sae.model import SAE, ConvSAEConfig, SAEConfig, build_sae
from harness.policy.models import checkpoint_mismatches, read_state_dict


def save_sae(sae: SAE, path: str | PathLike, *, training: Mapping[str, object] | None = None) -> None:
    """Write ``sae`` with its config and an optional ``training`` record (plain types only)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in sae.state_dict().items()}
    torch.save({"model_state_dict": state, "config": sae.config.to_dict(), "training": dict(training or {})}, path)


def _stored(path: str | PathLike, key: str) -> Mapping[str, object] | None:
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    return loaded.get(key) if isinstance(loaded, dict) else None


def training_record(path: str | PathLike) -> Mapping[str, object]:
    """The ``training`` record that :func:`save_sae` stored (command, data, history); empty where none was."""
    return _stored(path, "training") or {}


def load_sae(path: str | PathLike, *, site: str | None = None) -> SAE:
    """Load our format or the researcher's; returns the SAE in eval mode.

    ``site`` is checked against the stored one (a mismatch raises :class:`SAEError`); files without a config
    (the researcher's) need it.  Missing, unexpected or misshapen weights raise :class:`CheckpointError`.
    """
    state = read_state_dict(path)
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
    problems = checkpoint_mismatches(sae.state_dict(), state)
    if problems:
        raise CheckpointError(f"{path} does not fit {type(sae).__name__}:\n  " + "\n  ".join(problems))
    sae.load_state_dict(state)
    return sae.eval()
