"""Interventions as data: where (a :class:`~harness.policy.sites.Site`) and what, run by :func:`harness.policy.runner.run`.

Vocabulary (after pyvene): :class:`Cache` records; :class:`Zero`, :class:`Clamp`, :class:`Mean`,
:class:`Resample`, :class:`Patch` replace the selected units; :class:`AddDirection` adds to them;
:class:`KeepTopEigen` keeps only the leading eigencomponents of a bilinear layer's quadratic form.  Units outside
the site's channel/position selection are left untouched.  Tensors given to an intervention hold full
per-example site shapes (e.g. ``(32, 16, 16)`` for ``conv3a``), whatever the selection.

Each intervention checks its data against the activation it meets and raises :class:`InterventionError`.
``bind(n_examples)`` makes the per-run hook ``(activation chunk, global rows of the chunk) -> new activation``;
rows let per-example data (:class:`Patch`, :class:`Resample`) follow the runner's chunking.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from harness.errors import InterventionError
from harness.policy.sites import Site, select, selection_mask

__all__ = [
    "AddDirection",
    "Cache",
    "Clamp",
    "Intervention",
    "KeepTopEigen",
    "Mean",
    "Patch",
    "Resample",
    "Zero",
    "mean_difference",
]

Hook = Callable[[Tensor, slice], Tensor]
"""A bound intervention: ``(activation chunk (n, *shape), global rows of the chunk) -> new activation``."""


def _as_float_tensor(name: str, value: Tensor | np.ndarray) -> Tensor:
    if not isinstance(value, Tensor | np.ndarray):
        raise InterventionError(f"{name} must be a tensor or numpy array, got {type(value).__name__}")
    tensor = torch.as_tensor(value, dtype=torch.float32)
    if not bool(torch.isfinite(tensor).all()):
        raise InterventionError(f"{name} holds NaN or infinite values (or values beyond float32's range)")
    return tensor


def _check_shape(what: str, site: Site, found: tuple[int, ...], expected: tuple[int, ...]) -> None:
    if found != expected:
        raise InterventionError(
            f"{what} for site {site.name!r} is shaped {found}, but the site's activation is {expected} per example;"
            f" pass activations cached at {site.name!r} (the full site, whatever channels/positions you select)"
        )


def _source_rows(what: str, site: Site, source: Tensor, rows: slice | Tensor, act: Tensor) -> Tensor:
    """``source[rows]`` on ``act``'s device, after checking its per-example shape against ``act``."""
    _check_shape(what, site, tuple(source.shape[1:]), tuple(act.shape[1:]))
    return source[rows].to(act)


def _merge(site: Site, act: Tensor, new: Tensor) -> Tensor:
    """``act`` with the units ``site`` selects replaced by ``new`` (broadcast to ``act``)."""
    mask = selection_mask(site, tuple(act.shape[1:]))
    out = torch.empty_like(act)  # keeps act's memory format (channels_last)
    if mask is None:
        return out.copy_(new.expand_as(act))
    return out.copy_(torch.where(mask.to(act.device), new, act))


@dataclass(frozen=True, kw_only=True, eq=False)
class Intervention:
    """Base of the vocabulary: ``site`` (a :class:`Site` or a bare site name) and what to do there."""

    site: Site

    def __post_init__(self) -> None:
        if isinstance(self.site, str):
            object.__setattr__(self, "site", Site(self.site))
        if not isinstance(self.site, Site):
            raise InterventionError(f"site must be a Site or a site name, got {type(self.site).__name__}")

    def __str__(self) -> str:
        return f"{type(self).__name__} at {self.site}"

    def bind(self, n_examples: int) -> Hook:
        """The hook for one run over ``n_examples`` examples."""
        return lambda act, rows: _merge(self.site, act, self._replacement(act, rows))

    def _replacement(self, act: Tensor, rows: slice) -> Tensor:
        """New values for the selected units, broadcastable to ``act``."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True, eq=False)
class Cache(Intervention):
    """Record the (selected part of the) activation; the run returns it under the site name.

    Selections are stored compactly, as :func:`harness.policy.sites.select` describes.
    """

    def bind(self, n_examples: int) -> "Recording":
        return Recording(site=self.site)


class Recording:
    """The hook of a :class:`Cache`: keeps each chunk's selected activation and passes the activation on."""

    def __init__(self, *, site: Site) -> None:
        self.site = site
        self.chunks: list[Tensor] = []

    def __call__(self, act: Tensor, rows: slice) -> Tensor:
        self.chunks.append(select(self.site, act))
        return act


@dataclass(frozen=True, kw_only=True, eq=False)
class Zero(Intervention):
    """Set the selected units to 0."""

    def _replacement(self, act: Tensor, rows: slice) -> Tensor:
        return act.new_zeros(())


@dataclass(frozen=True, kw_only=True, eq=False)
class Clamp(Intervention):
    """Set the selected units to ``value``."""

    value: float

    def _replacement(self, act: Tensor, rows: slice) -> Tensor:
        return act.new_full((), float(self.value))


@dataclass(frozen=True, kw_only=True, eq=False)
class Mean(Intervention):
    """Replace the selected units with ``mean``, the per-unit mean over a reference sample of levels.

    Build it with :meth:`from_activations` (or :func:`harness.policy.runner.reference_mean` from observations).
    """

    mean: Tensor

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "mean", _as_float_tensor("mean", self.mean))

    @classmethod
    def from_activations(cls, reference: Tensor, *, site: Site | str) -> "Mean":
        """Mean over the examples of ``reference``, full-site activations ``(M, *shape)`` cached at ``site``."""
        reference = _as_float_tensor("reference", reference)
        if reference.ndim < 2 or len(reference) == 0:
            raise InterventionError(f"reference activations must be shaped (M >= 1, *shape), got {reference.shape}")
        return cls(site=site, mean=reference.mean(0))

    def _replacement(self, act: Tensor, rows: slice) -> Tensor:
        _check_shape("mean", self.site, tuple(self.mean.shape), tuple(act.shape[1:]))
        return self.mean.to(act)


@dataclass(frozen=True, kw_only=True, eq=False)
class Patch(Intervention):
    """Replace the selected units of example ``i`` with ``source[i]``, activations of a source run.

    ``source`` is ``(N, *shape)``, one row per example of the run (e.g. cached on corrupted levels to patch into
    clean ones, or the reverse).
    """

    source: Tensor

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "source", _as_float_tensor("source", self.source))

    def bind(self, n_examples: int) -> Hook:
        if len(self.source) != n_examples:
            raise InterventionError(
                f"Patch at {self.site.name!r} has {len(self.source)} source rows for a run of {n_examples} examples;"
                " pass one source activation per observation"
            )
        return super().bind(n_examples)

    def _replacement(self, act: Tensor, rows: slice) -> Tensor:
        return _source_rows("Patch source", self.site, self.source, rows, act)


@dataclass(frozen=True, kw_only=True, eq=False)
class Resample(Intervention):
    """Replace each example's selected units with those of a random row of ``source`` (other levels).

    ``source`` is ``(M, *shape)``, activations cached on levels other than the run's.  Rows are drawn uniformly
    with replacement from a generator seeded with ``seed``; :meth:`indices` tells which row each example got.
    """

    source: Tensor
    seed: int

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "source", _as_float_tensor("source", self.source))
        if self.source.ndim < 2 or len(self.source) == 0:
            raise InterventionError(f"Resample source must be shaped (M >= 1, *shape), got {self.source.shape}")

    def indices(self, n_examples: int) -> Tensor:
        """The source row used for each of ``n_examples`` examples."""
        generator = torch.Generator().manual_seed(self.seed)
        return torch.randint(len(self.source), (n_examples,), generator=generator)

    def bind(self, n_examples: int) -> Hook:
        drawn = self.indices(n_examples)
        return lambda act, rows: _merge(
            self.site, act, _source_rows("Resample source", self.site, self.source, drawn[rows], act)
        )


@dataclass(frozen=True, kw_only=True, eq=False)
class AddDirection(Intervention):
    """Add ``coefficient * direction`` to the selected units.

    ``direction`` is a channel vector ``(C,)`` broadcast over positions, or a full per-example map ``(C, H, W)``
    (for flat sites, ``(F,)``).  :func:`mean_difference` makes steering directions.
    """

    direction: Tensor
    coefficient: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "direction", _as_float_tensor("direction", self.direction))

    def _replacement(self, act: Tensor, rows: slice) -> Tensor:
        shape, found = tuple(act.shape[1:]), tuple(self.direction.shape)
        if found == shape[:1] and len(shape) == 3:
            direction = self.direction.view(-1, 1, 1)
        elif found == shape:
            direction = self.direction
        else:
            raise InterventionError(
                f"AddDirection direction for site {self.site.name!r} is shaped {found}; the site is {shape} per "
                f"example, so pass a channel vector ({shape[0]},) or the full map {shape}"
            )
        return act + float(self.coefficient) * direction.to(act)


def mean_difference(acts_a: Tensor, acts_b: Tensor) -> Tensor:
    """``mean(acts_a) - mean(acts_b)`` over examples: a steering direction from two sets of activations.

    Both are ``(N, *shape)`` with the same per-example shape; the result is ``shape``.  Average it over
    positions (``.mean((1, 2))``) for a channel vector.
    """
    acts_a, acts_b = _as_float_tensor("acts_a", acts_a), _as_float_tensor("acts_b", acts_b)
    if acts_a.ndim < 2 or acts_a.shape[1:] != acts_b.shape[1:] or not len(acts_a) or not len(acts_b):
        raise InterventionError(
            f"mean_difference needs two non-empty batches with one per-example shape, got {tuple(acts_a.shape)}"
            f" and {tuple(acts_b.shape)}"
        )
    return acts_a.mean(0) - acts_b.mean(0)


@dataclass(frozen=True, kw_only=True, eq=False)
class KeepTopEigen(Intervention):
    """At a bilinear layer's output ``h`` (``site``, e.g. ``"fc1"``), replace the read-out ``u . h`` by its
    quadratic form with only the given eigencomponents: ``sum_i values[i] (vectors[:, i] . x)^2 + linear . x +
    constant``, ``x`` the layer's flattened input (read at ``site + ".input"`` in the same pass).

    ``h`` moves along ``u`` only, by the gap between the full and the truncated form, so ``u . h`` becomes the
    truncated form and any other read-out changes by its overlap with ``u``.  With every eigencomponent kept the
    output is the clean one.  Build it with :meth:`harness.lenses.bilinear.QuadraticForm.keep_top`::

        form = interaction(policy, logits=logit_difference(Action.UP, Action.DOWN))
        run(policy, frames, interventions=[form.keep_top(8)])
    """

    direction: Tensor
    """``u``, in the layer's output space ``(d_out,)``."""
    values: Tensor
    """Kept eigenvalues ``(k,)``."""
    vectors: Tensor
    """Kept unit eigenvectors as columns ``(d_in, k)``."""
    linear: Tensor
    """The linear term of the layer's form for ``u``, ``(d_in,)``."""
    constant: float
    """The constant of the layer's form for ``u`` (the layer's biases only, not later layers')."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("direction", "values", "vectors", "linear"):
            object.__setattr__(self, name, _as_float_tensor(name, getattr(self, name)).double())
        d_in = len(self.linear)
        if self.direction.ndim != 1 or not bool(self.direction.any()):
            raise InterventionError(f"KeepTopEigen direction must be a non-zero vector (d_out,), got shape "
                                    f"{tuple(self.direction.shape)}")
        if self.linear.ndim != 1 or self.vectors.ndim != 2 or self.vectors.shape[0] != d_in \
                or self.values.shape != self.vectors.shape[1:]:
            raise InterventionError(
                f"KeepTopEigen needs vectors (d_in, k), values (k,) and linear (d_in,) that agree; got vectors "
                f"{tuple(self.vectors.shape)}, values {tuple(self.values.shape)}, linear {tuple(self.linear.shape)}")

    @property
    def input_site(self) -> str:
        """The site whose output is the layer's flattened input."""
        return f"{self.site.name}.input"

    def bind(self, n_examples: int) -> "InputReadingHook":
        if self.site.channels is not None or self.site.positions is not None:
            raise InterventionError(f"{self} acts on the whole layer output; pass the site without a selection")
        return InputReadingHook(self)

    def truncated(self, x: Tensor) -> Tensor:
        """The truncated form at flattened inputs ``x`` ``(N, d_in)``, in float64."""
        x, vectors, values, linear = (t.to(x.device).double() for t in (x, self.vectors, self.values, self.linear))
        return ((x @ vectors) ** 2) @ values + x @ linear + self.constant


class InputReadingHook:
    """The hook of a :class:`KeepTopEigen`: ``read`` keeps the layer's input (hooked at ``input_site``), and the
    call at the layer's output uses it; the runner installs both."""

    def __init__(self, intervention: KeepTopEigen) -> None:
        self.intervention, self.input_site, self.x = intervention, intervention.input_site, None

    def read(self, x: Tensor) -> Tensor:
        self.x = x
        return x

    def __call__(self, act: Tensor, rows: slice) -> Tensor:
        iv, x, self.x = self.intervention, self.x, None
        if x is None:
            raise InterventionError(f"{iv} found no input at {self.input_site!r} in this forward pass; the site must "
                                    "be the flattened input of the bilinear layer at " + repr(iv.site.name))
        _check_shape("KeepTopEigen direction", iv.site, tuple(iv.direction.shape), tuple(act.shape[1:]))
        _check_shape("KeepTopEigen vectors", iv.site, tuple(iv.vectors.shape[:1]), tuple(x.shape[1:]))
        u = iv.direction.to(act.device)
        gap = iv.truncated(x) - act.double() @ u
        return (act.double() + gap[:, None] * u / (u @ u)).to(act.dtype)
