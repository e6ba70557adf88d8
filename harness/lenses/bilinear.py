"""Bilinear layers read as quadratic forms: interaction matrices, their eigendecomposition, eigenvector maps.

A bilinear layer (:class:`~harness.policy.bilinear_model.Bilinear`) computes ``h = (W x + b) * (V x + c)`` from
its flattened input ``x``.  Any fixed read-out ``u`` of its output is then exactly

    u . h = x^T Q x + l . x + k,   Q = (W^T diag(u) V + V^T diag(u) W) / 2,
                                   l = W^T (u * c) + V^T (u * b),   k = sum(u * b * c),

a quadratic form of ``x`` whose symmetric *interaction matrix* ``Q`` says which pairs of input features matter
for ``u``; its eigenvectors (sorted by |eigenvalue|) are the input patterns that drive ``u`` most, up (positive
eigenvalue) or down (negative).  ``u`` is a direction in the layer's output space (a probe's weight on the layer)
or comes from the logits (an action's logit, a difference of two) through the linear policy head.  The logits are
a quadratic form only of the input of the *last* bilinear layer, the one whose output maps linearly to them: in
a model with two bilinear layers the logits are quartic in the first layer's input, and :func:`interaction`
refuses that request rather than return a form that does not reproduce the output.

    form = interaction(policy, logits=logit_difference(Action.UP, Action.DOWN))   # at fc1, input pool4
    eig = form.eigen()
    eig.maps(4)                      # (4, 32, 4, 4): the top eigenvectors over conv channels and positions
    run(policy, frames, interventions=[form.keep_top(8)])   # only the top 8 eigencomponents of UP - DOWN
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from harness.errors import CheckpointError, InterventionError, UnknownSiteError
from harness.heist.actions import Action
from harness.policy.bilinear_model import Bilinear, BilinearCNN
from harness.policy.conv_stack import N_ACTIONS
from harness.policy.interventions import KeepTopEigen
from harness.policy.sites import sites

__all__ = ["Eigen", "QuadraticForm", "interaction", "logit_difference"]


@dataclass(frozen=True, kw_only=True, eq=False)
class Eigen:
    """Eigendecomposition of an interaction matrix, largest |eigenvalue| first: ``matrix = vectors @
    diag(values) @ vectors.T``, unit eigenvectors as the columns of ``vectors``."""

    values: Tensor
    vectors: Tensor
    input_shape: tuple[int, ...]
    """Per-example shape of the layer's input before flattening, e.g. ``(32, 4, 4)`` for pool4."""

    def maps(self, top: int) -> np.ndarray:
        """The first ``top`` eigenvectors shaped as the layer's input: ``(top, C, H, W)`` for a conv map.

        ``eig.maps(3)[0, c]`` is how much the leading eigenvector reads channel ``c`` at each position."""
        if not 1 <= top <= len(self.values):
            raise InterventionError(f"top must lie in 1..{len(self.values)}, got {top}")
        return self.vectors[:, :top].T.reshape(top, *self.input_shape).numpy()

    def channel_shares(self, index: int = 0) -> np.ndarray:
        """Share of eigenvector ``index``'s squared norm on each input channel ``(C,)`` (sums to 1); the input must
        be a conv map.  ``eig.channel_shares(0).argmax()`` is the channel the leading eigenvector reads most."""
        if len(self.input_shape) != 3:
            raise InterventionError(f"channel shares need a conv-map input (C, H, W); this layer's input is "
                                    f"{self.input_shape}")
        if not 0 <= index < len(self.values):
            raise InterventionError(f"eigenvector index must lie in 0..{len(self.values) - 1}, got {index}")
        squares = self.vectors[:, index].reshape(self.input_shape) ** 2
        return (squares.sum((1, 2)) / squares.sum()).numpy()

    def reconstruct(self, k: int) -> Tensor:
        """The interaction matrix from the first ``k`` eigencomponents only (``k = len(values)``: all of it)."""
        if not 0 <= k <= len(self.values):
            raise InterventionError(f"k must lie in 0..{len(self.values)}, got {k}")
        vectors = self.vectors[:, :k]
        return vectors @ torch.diag(self.values[:k]) @ vectors.T


@dataclass(frozen=True, kw_only=True, eq=False)
class QuadraticForm:
    """``u . h = x^T matrix x + linear . x + layer_constant`` for the output ``h`` of bilinear layer ``layer`` and
    its flattened input ``x``; the read-out the caller asked for (a logit difference, say) adds ``offset``, the
    contribution of the linear layers after it (their biases).  Tensors are float64."""

    layer: str
    direction: Tensor
    """``u``, in the layer's output space."""
    matrix: Tensor
    linear: Tensor
    layer_constant: float
    offset: float
    input_shape: tuple[int, ...]

    @property
    def constant(self) -> float:
        """The read-out's constant: the layer's biases' term plus ``offset``."""
        return self.layer_constant + self.offset

    def __call__(self, x: Tensor) -> Tensor:
        """The read-out at layer inputs ``x``, ``(N, d_in)`` or ``(N, *input_shape)``, in float64 ``(N,)``."""
        x = torch.as_tensor(x).flatten(1).double()
        if x.shape[1] != len(self.linear):
            raise InterventionError(f"inputs of {self.layer} have {len(self.linear)} features, got {x.shape[1]}")
        return ((x @ self.matrix) * x).sum(1) + x @ self.linear + self.constant

    def eigen(self) -> Eigen:
        """The eigendecomposition of :attr:`matrix`, largest |eigenvalue| first."""
        values, vectors = torch.linalg.eigh(self.matrix)
        order = torch.argsort(values.abs(), descending=True, stable=True)
        return Eigen(values=values[order], vectors=vectors[:, order], input_shape=self.input_shape)

    def keep_top(self, k: int) -> KeepTopEigen:
        """An intervention at the layer that keeps only the top ``k`` eigencomponents of this form (the linear
        term and constant stay whole); ``k = len(matrix)`` reproduces the clean output."""
        eig = self.eigen()
        if not 0 <= k <= len(eig.values):
            raise InterventionError(f"k must lie in 0..{len(eig.values)}, got {k}")
        return KeepTopEigen(site=self.layer, direction=self.direction, values=eig.values[:k],
                            vectors=eig.vectors[:, :k], linear=self.linear, constant=self.layer_constant)


def logit_difference(plus: Action | int, minus: Action | int | None = None) -> Tensor:
    """Weights over the 15 logits: ``plus``'s logit, or ``plus``'s minus ``minus``'s, for :func:`interaction`."""
    weights = torch.zeros(N_ACTIONS, dtype=torch.float64)
    for action, sign in ((plus, 1.0), (minus, -1.0)):
        if action is None:
            continue
        if isinstance(action, bool) or not isinstance(action, int | np.integer) or not 0 <= action < N_ACTIONS:
            raise InterventionError(f"actions are Action members or integers 0..{N_ACTIONS - 1}, got {action!r}")
        weights[int(action)] += sign
    if not bool(weights.any()):
        raise InterventionError(f"{plus!r} minus {minus!r} is no direction: pass two different actions")
    return weights


def interaction(model: nn.Module, *, logits: Tensor | np.ndarray | None = None,
                direction: Tensor | np.ndarray | None = None, layer: str | None = None) -> QuadraticForm:
    """The quadratic form of a bilinear layer's input for one read-out: ``logits`` (weights over the 15 logits,
    e.g. :func:`logit_difference`, taken through the policy head) or ``direction`` (a vector in the layer's output
    space, e.g. a probe's weight on site ``layer``).  ``layer`` defaults to the last bilinear layer, the only one
    whose form the logits have.

        form = interaction(policy, logits=logit_difference(Action.UP, Action.DOWN))
        form(run(policy, frames, cache=["fc1.input"]).activations["fc1.input"])  # = logit UP - logit DOWN
    """
    if not isinstance(model, BilinearCNN):
        raise CheckpointError(f"interaction matrices need a BilinearCNN (architecture 'bilinear_cnn'), got "
                              f"{type(model).__name__}")
    layers = model.bilinear_layers
    layer = layers[-1] if layer is None else layer
    if layer not in layers:
        raise UnknownSiteError(f"{layer!r} is not a bilinear layer of this model; its bilinear layers are {layers}")
    if (logits is None) == (direction is None):
        raise InterventionError("pass exactly one of logits= (weights over the 15 logits) or direction= (a vector "
                                f"in {layer}'s output space)")
    bilinear: Bilinear = model.get_submodule(layer)
    W, b = bilinear.left.weight.detach().double(), bilinear.left.bias.detach().double()
    V, c = bilinear.right.weight.detach().double(), bilinear.right.bias.detach().double()
    if logits is not None:
        if layer != layers[-1]:
            raise InterventionError(
                f"the logits are not a quadratic form of {layer}'s input: {layer} feeds the bilinear layer "
                f"{layers[layers.index(layer) + 1]}, so they are of higher degree in it; take layer={layers[-1]!r} "
                f"(whose output maps linearly to the logits) or pass direction= in {layer}'s output space")
        weights = _vector("logits", logits, N_ACTIONS)
        head = model.logits_fc
        u = head.weight.detach().double().T @ weights
        offset = float(head.bias.detach().double() @ weights)
    else:
        u, offset = _vector("direction", direction, W.shape[0]), 0.0
    matrix = W.T @ (u[:, None] * V)
    return QuadraticForm(layer=layer, direction=u, matrix=(matrix + matrix.T) / 2, linear=W.T @ (u * c) + V.T @ (u * b),
                         layer_constant=float((u * b * c).sum()), offset=offset,
                         input_shape=_input_shape(model, layer, W.shape[1]))


def _vector(name: str, value: Tensor | np.ndarray, size: int) -> Tensor:
    if not isinstance(value, Tensor | np.ndarray):
        raise InterventionError(f"{name} must be a tensor or numpy array, got {type(value).__name__}")
    vector = torch.as_tensor(value).double()
    if tuple(vector.shape) != (size,) or not bool(torch.isfinite(vector).all()) or not bool(vector.any()):
        raise InterventionError(f"{name} must be a finite, non-zero vector of shape ({size},), got shape "
                                f"{tuple(vector.shape)}")
    return vector


def _input_shape(model: BilinearCNN, layer: str, d_in: int) -> tuple[int, ...]:
    """The per-example shape of ``layer``'s input before flattening: pool4's map for the first layer."""
    return sites(model)["pool4"] if layer == model.bilinear_layers[0] else (d_in,)
