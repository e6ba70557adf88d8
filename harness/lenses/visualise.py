"""Feature visualisation by optimisation: 64x64 RGB images that drive one unit up, found by gradient ascent.

The method is the one of Olah et al., "Feature Visualization" (Distill, 2017), which the feature-visualisation
note in ``../shared/seeds/`` found missing from plain pixel-space ascent (which gave white or noisy images):

* **Fourier parameterisation**: each restart is a spectrum ``(3, 64, 33)`` of complex coefficients, scaled by
  ``1 / max(f, 1/64)`` (``f`` the spatial frequency in cycles per pixel), so that every frequency takes steps of
  the size natural images have (1/f) and the ascent does not drift into high-frequency noise;
* **colour decorrelation**: the inverse FFT gives three decorrelated channels, mixed into RGB by a fixed 3x3
  transform, the square root of the RGB covariance of rendered Heist frames (:func:`colour_decorrelation`; by
  default computed once from the first frames of :data:`COLOUR_LEVELS` training levels), then a sigmoid to [0, 1];
* **transformation robustness**: each step, every restart is seen jittered by up to :data:`JITTER` pixels,
  scaled by ``1 +- SCALE`` and rotated by up to :data:`ROTATE` degrees (one affine resampling, reflected at the
  border), so that the image must drive the unit in all of them.

Gradients: :func:`harness.policy.runner.run` runs without gradients and :func:`~harness.policy.models.preprocess`
takes only uint8 frames.  ``preprocess`` does nothing but divide by 255 into float32 NCHW (channels_last), so
the sigmoid image, already float32 NCHW in [0, 1] and made channels_last, is exactly what the model takes; it is
passed to the model directly and the unit's site is read through :func:`~harness.policy.sites.hooked`.  Only the
spectrum gets gradients (``torch.autograd.grad``), so the model's ``.grad`` stays untouched.  The returned images
are quantised to uint8 and measured again through ``run``: the reported values are what the policy gives on
real frames.

Threads: the ascent runs with one torch intra-op thread (``torch.set_num_threads(1)``, restored after).  Forward
and backward passes on batches of 2-16 images gain nothing from a second thread and, on a busy machine, lose
badly: on two shared cores (load 20) one image-step took 53-70 ms with one thread and 266-1355 ms with two, which
also burnt 5-20 times the CPU time spinning (bench/bench_visualise.py).

Everything random (the initial spectra, every transform) comes from one CPU ``torch.Generator`` seeded with
``seed``: on CPU the same call gives the same images, bit for bit.  The ascent runs on the policy's device
(untested on GPUs, where convolutions need not be deterministic).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import HarnessError
from harness.heist.levels import HeistLevel
from harness.lenses.features import TopActivations, patch_grid, top_activations
from harness.policy.models import FRAME_SHAPE
from harness.policy.runner import run
from harness.policy.sites import Site, hooked, selection_mask

__all__ = ["COLOUR_LEVELS", "JITTER", "ROTATE", "SCALE", "Objective", "Visualisation", "VisualisationError",
           "colour_decorrelation", "heist_colour_transform", "visualise"]

JITTER, SCALE, ROTATE = 2.0, 0.05, 5.0
"""Per-step robustness: shift up to 2 px (of 64), scale by 0.95-1.05, rotate by up to 5 degrees; the seed note's
16/8 px jitter on 224 px images, 0.95-1.05 scales and +-5 degrees, with the jitter taken to 64 px."""
COLOUR_LEVELS = 64
"""Training levels whose first frames give the default colour transform."""
_SIZE = FRAME_SHAPE[0]


class VisualisationError(HarnessError, ValueError):
    """A visualisation was asked for inconsistently (an objective naming both a channel and a function, an
    objective that does not return one value per image, restarts or steps below 1, a bad colour transform)."""


@dataclass(frozen=True, kw_only=True)
class Objective:
    """What to maximise at ``site``: channel ``channel``'s mean over the map (its sum / H*W; a flat site's unit
    itself), or its value at map cell ``position``; or, with ``fn``, any ``fn(activation (N, *shape)) -> (N,)``
    (e.g. a direction in an SAE's latents).  ``Objective(site="conv4a", channel=6)``"""

    site: str
    channel: int | None = None
    position: tuple[int, int] | None = None
    fn: Callable[[Tensor], Tensor] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.site, str) or not self.site:
            raise VisualisationError(f"Objective.site must name a site, e.g. 'conv4a', got {self.site!r}")
        if (self.channel is None) == (self.fn is None):
            raise VisualisationError(f"an Objective at {self.site!r} takes either channel= or fn=, exactly one")
        if self.fn is not None and self.position is not None:
            raise VisualisationError("position= selects a map cell of a channel; an fn= objective reads it itself")
        if self.channel is not None and (isinstance(self.channel, bool) or not isinstance(self.channel, int)):
            raise VisualisationError(f"Objective.channel must be an int index, got {self.channel!r}")
        if self.position is not None and (not isinstance(self.position, tuple | list) or len(self.position) != 2
                                          or not all(isinstance(i, int) for i in self.position)):
            raise VisualisationError(f"Objective.position must be a (row, col) pair of ints, got {self.position!r}")
        if self.channel is not None:  # Site checks the indices and says what is wrong
            site = Site(self.site, channels=(self.channel,), positions=None if self.position is None
                        else (tuple(self.position),))
            object.__setattr__(self, "channel", site.channels[0])
            object.__setattr__(self, "position", None if site.positions is None else site.positions[0])

    def __str__(self) -> str:
        if self.fn is not None:
            return f"{getattr(self.fn, '__name__', 'fn')}({self.site})"
        where = "mean" if self.position is None else f"at {self.position}"
        return f"{self.site}:{self.channel} ({where})"

    def __call__(self, activation: Tensor) -> Tensor:
        """The objective's value per image, ``(N,)``, from the site's activation ``(N, *shape)``."""
        if self.fn is not None:
            value = self.fn(activation)
            if not isinstance(value, Tensor) or tuple(value.shape) != (len(activation),):
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise VisualisationError(f"objective {self} must return one value per image, a tensor shaped "
                                         f"({len(activation)},), got {shape}")
            return value
        unit = activation[:, self.channel]
        if self.position is not None:
            return unit[:, self.position[0], self.position[1]]
        return unit.flatten(1).mean(1) if unit.ndim > 1 else unit


@dataclass(frozen=True, kw_only=True, eq=False)
class Visualisation:
    """Optimised images for one objective, one per restart, with the dataset's best for comparison."""

    objective: Objective
    seed: int
    images: np.ndarray
    """uint8 ``(restarts, 64, 64, 3)``."""
    values: np.ndarray
    """The objective on each uint8 image, through :func:`~harness.policy.runner.run` ``(restarts,)``."""
    trace: np.ndarray
    """The objective during the ascent, on the transformed float images ``(restarts, steps)``."""
    dataset_values: np.ndarray | None
    """The same objective on the first frame of each level passed as ``levels`` (None without levels)."""
    top: TopActivations | None
    """:func:`~harness.lenses.features.top_activations` of the objective's channel on ``levels`` (None without
    levels or for an ``fn`` objective); it ranks by the channel's maximum, so its pictures are for looking at and
    ``dataset_values`` is the comparison."""

    @property
    def best(self) -> int:
        """Index of the restart with the highest value."""
        return int(np.argmax(self.values))

    @property
    def dataset_best(self) -> float | None:
        """The highest objective on the dataset's frames (None without levels)."""
        return None if self.dataset_values is None else float(self.dataset_values.max())

    def grid(self, *, upscale: int = 4, columns: int | None = None) -> np.ndarray:
        """The images side by side (upscaled, white gaps), for ``claim.attach(vis.grid(), caption)``."""
        return patch_grid(self.images, None, None, upscale=upscale, columns=columns or len(self.images))

    def figure(self, *, gap: int = 8) -> np.ndarray:
        """The images (four to a row, 128 px each) above the top dataset patches of :attr:`top` (as
        ``top_activations`` draws them by default: 32 px crops at 4x, four to a row), ``gap`` white rows between;
        without ``top``, the images alone.  ``claim.attach(vis.figure(), caption)``"""
        images = self.grid(upscale=2, columns=4)
        if self.top is None:
            return images
        top = self.top.grid
        width = max(images.shape[1], top.shape[1])
        pad = [np.pad(g, ((0, 0), (0, width - g.shape[1]), (0, 0)), constant_values=255) for g in (images, top)]
        return np.concatenate([pad[0], np.full((gap, width, 3), 255, dtype=np.uint8), pad[1]])


def colour_decorrelation(frames: np.ndarray) -> np.ndarray:
    """The 3x3 transform from decorrelated channels to RGB: the square root of the frames' RGB covariance
    (eigenvectors times square-rooted eigenvalues), divided by its largest column norm.

    ``colour_decorrelation(render(levels))`` on uint8 frames ``(N, 64, 64, 3)``."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise VisualisationError(f"colour_decorrelation takes uint8 frames (N, H, W, 3), got {frames.dtype} "
                                 f"{frames.shape}")
    pixels = frames.reshape(-1, 3).astype(np.float64) / 255.0
    values, vectors = np.linalg.eigh(np.cov(pixels, rowvar=False))
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    if np.linalg.matrix_rank(root) < 3:
        raise VisualisationError("the frames' colours span fewer than three directions; pass varied frames")
    return root / np.linalg.norm(root, axis=0).max()


@lru_cache(maxsize=1)
def heist_colour_transform() -> np.ndarray:
    """:func:`colour_decorrelation` of the first frames of :data:`COLOUR_LEVELS` training levels (seed 0),
    computed once per process: ``visualise``'s default colour transform."""
    from harness.heist.engine import render
    from harness.heist.sampling import sample_levels

    transform = colour_decorrelation(render(sample_levels("training", COLOUR_LEVELS, seed=0)))
    transform.setflags(write=False)
    return transform


@lru_cache(maxsize=1)
def _scale() -> Tensor:
    """The 1/f amplitude of each rfft2 coefficient of a 64x64 image, ``(64, 33)``."""
    fy = torch.fft.fftfreq(_SIZE, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(_SIZE, dtype=torch.float64)[None, :]
    return (1.0 / torch.clamp((fx**2 + fy**2).sqrt(), min=1.0 / _SIZE) * _SIZE).float()


def _images(spectrum: Tensor, colour: Tensor) -> Tensor:
    """Float images ``(R, 3, 64, 64)`` in [0, 1], channels_last, from spectra ``(R, 3, 64, 33, 2)``."""
    coefficients = torch.view_as_complex(spectrum) * _scale().to(spectrum.device)
    decorrelated = torch.fft.irfft2(coefficients, s=(_SIZE, _SIZE)) / 4.0
    rgb = torch.einsum("ij,rjhw->rihw", colour, decorrelated)
    return torch.sigmoid(rgb).contiguous(memory_format=torch.channels_last)


def _transformed(images: Tensor, generator: torch.Generator) -> Tensor:
    """Each image shifted, scaled and rotated by its own random draw, resampled on the same 64x64 grid."""
    n = len(images)
    draw = (torch.rand(n, 4, generator=generator) * 2 - 1).to(images.device)  # each in [-1, 1), drawn on CPU
    angle = draw[:, 0] * math.radians(ROTATE)
    scale = 1 + draw[:, 1] * SCALE
    shift = draw[:, 2:] * JITTER * 2 / _SIZE  # normalised coordinates span 2 over 64 pixels
    cos, sin = angle.cos() / scale, angle.sin() / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.contiguous(memory_format=torch.channels_last)


def _check(policy: nn.Module, objective: Objective, restarts: int, steps: int, lr: float,
           colour: np.ndarray | None) -> Tensor:
    """Validate the request (an unknown site gets the nearest names, a channel or position outside the site its
    range) and return the colour transform as a tensor."""
    if not isinstance(objective, Objective):
        raise VisualisationError(f"objective must be an Objective, e.g. Objective(site='conv4a', channel=6), got "
                                 f"{objective!r}")
    for name, value in (("restarts", restarts), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise VisualisationError(f"{name} must be an int >= 1, got {value!r}")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise VisualisationError(f"lr must be a positive finite number, got {lr!r}")
    probe = run(policy, np.zeros((1, *FRAME_SHAPE), dtype=np.uint8), cache=[objective.site])
    activation = probe.activations[objective.site]
    if objective.channel is not None:
        positions = None if objective.position is None else (objective.position,)
        selection_mask(Site(objective.site, channels=(objective.channel,), positions=positions),
                       tuple(activation.shape[1:]))
    objective(activation)  # an fn objective with the wrong output shape fails here, before any ascent
    matrix = heist_colour_transform() if colour is None else np.asarray(colour, dtype=np.float64)
    if matrix.shape != (3, 3) or not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-9:
        raise VisualisationError(f"colour must be an invertible finite 3x3 matrix, got shape {matrix.shape}")
    return torch.tensor(matrix, dtype=torch.float32)


def visualise(policy: nn.Module, objective: Objective, *, restarts: int = 4, steps: int = 256, lr: float = 0.05,
              seed: int = 0, levels: Sequence[HeistLevel] | None = None, top_n: int = 8,
              colour: np.ndarray | None = None) -> Visualisation:
    """``restarts`` images (one batch) that maximise ``objective``, each by ``steps`` Adam steps of size ``lr``
    on its Fourier spectrum, with colour decorrelation (``colour``, default :func:`heist_colour_transform`) and
    random jitter, scale and rotation at every step; seeded.  With ``levels``, the objective is measured on their
    first frames too, and the ``top_n`` of them are kept as pictures.  Inside ``with spliced(policy, sae):`` an
    SAE latent is a channel of its latents site.  The policy is left as it was (mode and gradients)::

        vis = visualise(policy, Objective(site="conv4a", channel=6), levels=sample_levels("selection", 256, seed=0))
        vis.values, vis.dataset_best  # each restart's uint8 image against the best level
    """
    device = next(policy.parameters()).device
    colour_t = _check(policy, objective, restarts, steps, lr, colour).to(device)
    generator = torch.Generator().manual_seed(int(seed))  # on CPU, so a seed draws the same numbers on any device
    spectrum = torch.randn(restarts, 3, _SIZE, _SIZE // 2 + 1, 2, generator=generator) * 0.01
    spectrum = spectrum.to(device).requires_grad_()
    optimiser = torch.optim.Adam([spectrum], lr=lr)
    captured: list[Tensor] = []
    trace = np.empty((restarts, steps), dtype=np.float32)
    was_training, threads = policy.training, torch.get_num_threads()
    policy.eval()
    torch.set_num_threads(1)
    try:
        with hooked(policy, [(objective.site, lambda out: captured.append(out) or out)]):
            for step in range(steps):
                captured.clear()
                policy(_transformed(_images(spectrum, colour_t), generator))
                value = objective(captured[-1])
                spectrum.grad = torch.autograd.grad(-value.sum(), [spectrum])[0]
                optimiser.step()
                trace[:, step] = value.detach().cpu().numpy()
    finally:
        torch.set_num_threads(threads)
        policy.train(was_training)
    with torch.no_grad():
        floats = _images(spectrum, colour_t).permute(0, 2, 3, 1)
    images = (floats * 255).round().to(torch.uint8).cpu().numpy()
    dataset_values, top = None, None
    if levels is not None:
        from harness.heist.engine import render

        dataset_values = _measure(policy, render(levels), objective)
        if objective.channel is not None:
            top = top_activations(policy, levels, site=objective.site, channel=objective.channel, n=top_n)
    return Visualisation(objective=objective, seed=int(seed), images=images, values=_measure(policy, images, objective),
                         trace=trace, dataset_values=dataset_values, top=top)


def _measure(policy: nn.Module, frames: np.ndarray, objective: Objective) -> np.ndarray:
    """The objective on uint8 frames, through ``run``, as float64 ``(N,)``."""
    activation = run(policy, frames, cache=[objective.site]).activations[objective.site]
    return objective(activation).double().cpu().numpy()
