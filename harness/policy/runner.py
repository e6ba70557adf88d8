"""The one runner: a batch of frames through a policy under interventions, checked that every one fired.

``run`` preprocesses uint8 frames, runs the policy in eval mode under ``torch.no_grad`` in chunks of
``batch_size``, applies the interventions through forward hooks that are removed even when the forward raises,
and returns a frozen :class:`RunResult`.  Every intervention must fire exactly once per forward pass; one that
never fires (its module was not called) raises :class:`InterventionError` instead of passing as "no effect".
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch
from torch import Tensor, nn

from harness.errors import InterventionError, ModelOutputError, ObservationError
from harness.policy.interventions import Cache, InputReadingHook, Intervention, Mean, Recording
from harness.policy.models import preprocess
from harness.policy.sites import Site, hooked

__all__ = ["RunResult", "reference_mean", "run"]


@dataclass(frozen=True, kw_only=True, eq=False)
class RunResult:
    """What a run produced, one row per observation."""

    logits: Tensor
    """Policy logits ``(N, 15)``."""
    probs: Tensor
    """Softmax of the logits ``(N, 15)``."""
    value: Tensor
    """Value estimates ``(N,)``."""
    actions_argmax: Tensor
    """Most probable action per observation ``(N,)``, int64."""
    activations: Mapping[str, Tensor]
    """Cached activations by site name, ``(N, ...)`` (compact when the cached Site selects units)."""


def run(
    policy: nn.Module,
    observations: np.ndarray | Tensor,
    *,
    interventions: Sequence[Intervention] = (),
    batch_size: int = 256,
    cache: Sequence[str | Site] = (),
) -> RunResult:
    """Run ``policy`` on uint8 frames ``(N, 64, 64, 3)`` under ``interventions``, caching the ``cache`` sites.

    Interventions at one site apply in the given order; the ``cache`` sites are recorded after all of them
    (what the network downstream saw).  A :class:`Cache` inside ``interventions`` records at its place in the
    order.  Each site name may be cached once.
    """
    if batch_size < 1:
        raise ObservationError(f"batch_size must be >= 1, got {batch_size}")
    n = len(observations)
    if n == 0:
        raise ObservationError("observations are empty; pass at least one frame shaped (64, 64, 3)")
    applied = (*interventions, *(Cache(site=site) for site in cache))
    bad = [iv for iv in applied if not isinstance(iv, Intervention)]
    if bad:
        raise InterventionError(f"interventions must be Intervention instances (Zero, Patch, ...), got {bad[0]!r}")
    hooks = [iv.bind(n) for iv in applied]
    recordings = _recordings(applied, hooks)
    counts = [0] * len(applied)
    chunk = slice(0, 0)

    def counted(i: int, hook: Callable[[Tensor, slice], Tensor]) -> Callable[[Tensor], Tensor]:
        def fire(act: Tensor) -> Tensor:
            counts[i] += 1
            return hook(act, chunk)

        return fire

    logits, values = [], []
    device = next(policy.parameters()).device
    was_training = policy.training
    policy.eval()
    try:
        installed = []
        for i, (iv, hook) in enumerate(zip(applied, hooks, strict=True)):
            if isinstance(hook, InputReadingHook):  # its layer's input is read first, in the same pass
                installed.append((hook.input_site, hook.read))
            installed.append((iv.site.name, counted(i, hook)))
        with hooked(policy, installed):
            with torch.no_grad():
                for start in range(0, n, batch_size):
                    chunk = slice(start, min(start + batch_size, n))
                    counts[:] = [0] * len(applied)
                    chunk_logits, chunk_value = policy(preprocess(observations[chunk]).to(device))
                    _check_fired(applied, counts)
                    _check_finite(chunk_logits, chunk_value, chunk, interventions)
                    logits.append(chunk_logits)
                    values.append(chunk_value)
    finally:
        policy.train(was_training)
    all_logits = torch.cat(logits)
    return RunResult(
        logits=all_logits,
        probs=all_logits.softmax(-1),
        value=torch.cat(values),
        actions_argmax=all_logits.argmax(-1),
        activations=MappingProxyType({name: torch.cat(rec.chunks) for name, rec in recordings.items()}),
    )


def _recordings(applied: Sequence[Intervention], hooks: Sequence[Callable]) -> dict[str, Recording]:
    recordings: dict[str, Recording] = {}
    for iv, hook in zip(applied, hooks, strict=True):
        if isinstance(iv, Cache):
            if iv.site.name in recordings:
                raise InterventionError(
                    f"site {iv.site.name!r} is cached twice; cache it once (select units afterwards if needed)"
                )
            recordings[iv.site.name] = hook
    return recordings


def _check_fired(applied: Sequence[Intervention], counts: Sequence[int]) -> None:
    for iv, count in zip(applied, counts, strict=True):
        if count == 0:
            raise InterventionError(
                f"{iv} never fired: the module behind site {iv.site.name!r} was not called in the forward pass; "
                "use a site on the path from input to outputs (see harness.policy.sites.sites(policy))"
            )
        if count > 1:
            raise InterventionError(
                f"{iv} fired {count} times in one forward pass: the module behind site {iv.site.name!r} is called "
                "more than once, so the site is ambiguous; give each call its own module"
            )


def _check_finite(logits: Tensor, value: Tensor, chunk: slice, interventions: Sequence[Intervention]) -> None:
    bad = ~(torch.isfinite(logits).all(-1) & torch.isfinite(value))
    if bool(bad.any()):
        rows = (torch.nonzero(bad).flatten() + chunk.start)[:5].tolist()
        under = f"under {list(interventions)}" if interventions else "with no intervention (are its weights broken?)"
        raise ModelOutputError(
            f"the policy gave NaN or infinite logits or values for {int(bad.sum())} observations (first rows "
            f"{rows}) {under}; probabilities and actions from them would be meaningless"
        )


def reference_mean(
    policy: nn.Module, reference_observations: np.ndarray | Tensor, *, site: Site | str, batch_size: int = 256
) -> Mean:
    """A :class:`Mean` ablation for ``site`` whose mean is taken over ``reference_observations``."""
    site = Site(site) if isinstance(site, str) else site
    result = run(policy, reference_observations, cache=(site.name,), batch_size=batch_size)
    return Mean.from_activations(result.activations[site.name], site=site)
