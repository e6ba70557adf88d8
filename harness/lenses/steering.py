"""Steering: directions in a site's activation space, added with :class:`~harness.policy.interventions.AddDirection`,
and a coefficient sweep that chooses how much to add on selection levels.

Directions come from three places:

- :func:`difference_direction`: the mean activation on one set of frames minus that on another (e.g. frames
  whose current target is a key minus frames whose target is the gem), as is: coefficient 1 adds the whole
  difference;
- :func:`probe_direction`: the input-space weight of a :class:`~harness.lenses.probes.LinearProbe` toward one
  class (or target), unit norm;
- :func:`decoder_direction`: an SAE latent's decoder column in the site's own units, unit norm.

A direction is a channel vector ``(C,)`` (added at every position of a conv map) or a full per-example shape;
apply it with ``AddDirection(site=site, direction=d, coefficient=c)`` in :func:`harness.policy.runner.run` or
:func:`harness.policy.rollouts.rollout`.  :func:`coefficient_sweep` scores a list of coefficients with any score
(run it on selection seeds) and returns the chosen one with its curve; the claim then confirms at that
coefficient on other seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from harness.errors import InterventionError
from harness.lenses.probes import LinearProbe
from harness.lenses.sae import SAE
from harness.policy.interventions import mean_difference
from harness.policy.runner import run

__all__ = ["Sweep", "coefficient_sweep", "decoder_direction", "difference_direction", "probe_direction"]


def _unit(direction: Tensor, what: str) -> Tensor:
    norm = float(direction.norm())
    if not np.isfinite(norm) or norm == 0:
        raise InterventionError(f"{what} has norm {norm}; a steering direction needs a finite non-zero norm")
    return direction / norm


def difference_direction(policy: nn.Module, frames_a: np.ndarray, frames_b: np.ndarray, *, site: str,
                         spatial: bool = False, batch_size: int = 256) -> Tensor:
    """Mean activation of ``site`` on ``frames_a`` minus that on ``frames_b``: a channel vector ``(C,)``
    averaged over positions, or with ``spatial=True`` the full per-example shape ``(C, H, W)``; flat sites give
    ``(F,)``.  Not normalised: coefficient 1 moves an example by the whole difference of the means.

    Example: ``d = difference_direction(policy, render(key_target), render(gem_target), site="conv4a")``.
    """
    acts = [run(policy, frames, cache=[site], batch_size=batch_size).activations[site] for frames in (frames_a,
                                                                                                    frames_b)]
    difference = mean_difference(*acts)
    if difference.ndim == 3 and not spatial:
        difference = difference.mean((1, 2))
    return difference


def probe_direction(probe: LinearProbe, shape: Sequence[int], *, toward: object) -> Tensor:
    """The direction, in the probed activations' own units and ``shape``, that raises the probe's score for class
    ``toward`` against the mean of the other classes (a regression probe: target column ``toward``), unit norm.

    The probe scores standardised features ``(x - mean) / scale``, so the input-space gradient of a score is its
    weight divided by ``scale``.  Example: ``probe_direction(fit_probe(acts, labels), (32, 8, 8), toward="key")``.
    """
    weights = np.asarray(probe.weights, dtype=np.float64)
    if probe.kind == "classification":
        found = np.nonzero(probe.classes == toward)[0]
        if not len(found):
            raise InterventionError(f"the probe has no class {toward!r}; its classes are {list(probe.classes)}")
        column = weights[:, found[0]] - np.delete(weights, found[0], axis=1).mean(1)
    else:
        if not isinstance(toward, int) or not 0 <= toward < weights.shape[1]:
            raise InterventionError(f"a regression probe has target columns 0..{weights.shape[1] - 1}; "
                                    f"got toward={toward!r}")
        column = weights[:, toward]
    if int(np.prod(shape)) != len(column):
        raise InterventionError(f"the probe reads {len(column)} features, but shape {tuple(shape)} holds "
                                f"{int(np.prod(shape))}; pass the per-example shape of the probed site")
    gradient = torch.as_tensor(column / np.asarray(probe.scale, dtype=np.float64).ravel(), dtype=torch.float32)
    return _unit(gradient.reshape(tuple(shape)), f"probe weight toward {toward!r}")


def decoder_direction(sae: SAE, latent: int) -> Tensor:
    """Latent ``latent``'s decoder column in the units of the SAE's site (``(C,)``, unit norm): what raising the
    latent adds at a position.  Apply it at ``sae.config.site`` with no splice:
    ``AddDirection(site=sae.config.site, direction=decoder_direction(sae, 17), coefficient=2.0)``."""
    latents = sae.config.latents
    if isinstance(latent, bool) or not isinstance(latent, int | np.integer) or not 0 <= latent < latents:
        raise InterventionError(f"latent must be an index in 0..{latents - 1}, got {latent!r}")
    column = sae.conv_dec.weight.detach().flatten(1)[:, int(latent)] / sae.config.scale
    return _unit(column.float(), f"decoder column {latent}")


@dataclass(frozen=True, kw_only=True, eq=False)
class Sweep:
    """Scores of a coefficient sweep and the coefficient chosen (the best score, the first on ties)."""

    coefficients: np.ndarray
    scores: np.ndarray
    chosen: float

    @property
    def curve(self) -> list[tuple[float, float]]:
        """``(coefficient, score)`` pairs in sweep order, for the report."""
        return [(float(c), float(s)) for c, s in zip(self.coefficients, self.scores)]


def coefficient_sweep(coefficients: Sequence[float], score: Callable[[float], float]) -> Sweep:
    """Call ``score(coefficient)`` for each coefficient and choose the highest-scoring (the first on ties).

    Run it on selection levels only, then test the chosen coefficient on confirmation levels.  Example::

        def key_first(c):
            steer = AddDirection(site="conv4a", direction=d, coefficient=c)
            return np.mean([...])  # e.g. the rate at which rollouts reach the key first under ``steer``

        sweep = coefficient_sweep([0.5, 1, 2, 4], key_first)  # sweep.chosen, sweep.curve
    """
    values = np.asarray(coefficients, dtype=np.float64)
    if values.ndim != 1 or not len(values) or not np.isfinite(values).all():
        raise InterventionError(f"coefficients must be a non-empty list of finite numbers, got {coefficients!r}")
    scores = np.array([float(score(float(c))) for c in values])
    if not np.isfinite(scores).all():
        bad = values[~np.isfinite(scores)]
        raise InterventionError(f"score returned a non-finite value at coefficients {bad.tolist()}")
    return Sweep(coefficients=values, scores=scores, chosen=float(values[int(np.argmax(scores))]))
