"""A policy whose fully connected part is bilinear: the CustomCNN conv stack, then bilinear layers with no ReLU.

A bilinear layer computes, for its flattened input ``x``::

    h = (W x + b) * (V x + c)          (elementwise; W, V: (d_out, d_in), b, c: (d_out,))

so each output unit, and any fixed linear read-out ``u . h`` of the layer, is a quadratic form of ``x`` plus a
linear term plus a constant: ``u . h = x^T Q x + l . x + k`` with ``Q = (W^T diag(u) V + V^T diag(u) W) / 2``.
:mod:`harness.lenses.bilinear` builds and decomposes those forms.

:class:`BilinearCNN` stacks ``len(widths)`` such layers (``fc1``, ``fc2``, ...) on the flattened pool4 map (512
values) and reads logits and value linearly from the last one.  With the default single layer every logit is an
exact quadratic form of the conv features; with more layers only the last layer's input has one.
"""

from collections.abc import Sequence
from types import MappingProxyType

import torch
from torch import Tensor, nn

from harness.errors import CheckpointError
from harness.policy.conv_stack import CONV_SITES, N_ACTIONS, add_lp_conv_stack, lp_conv_features

__all__ = ["Bilinear", "BilinearCNN"]

CONV_FEATURES = 32 * 4 * 4


class Bilinear(nn.Module):
    """``(W x + b) * (V x + c)`` on the flattened input: ``left`` is ``W x + b``, ``right`` is ``V x + c``.

    Its submodule ``input`` (a flatten) makes the layer's input a site of its own.

        layer = Bilinear(512, 256)
        h = layer(torch.randn(8, 32, 4, 4))  # (8, 256)
    """

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.input = nn.Flatten(1)
        self.left, self.right = nn.Linear(d_in, d_out), nn.Linear(d_in, d_out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.input(x)
        return self.left(x) * self.right(x)


class BilinearCNN(nn.Module):
    """CustomCNN's conv stack (same modules, keys and sites ``conv1a`` ... ``pool4``), then bilinear layers
    ``fc1``, ``fc2``, ... of ``widths`` outputs (no ReLU), a linear policy head ``logits_fc`` and value head
    ``value_fc`` on the last one.

    Sites beyond the conv stack: ``fcK.input`` (the layer's flattened input), ``fcK.left`` and ``fcK.right`` (its
    two linear maps), ``fcK`` (their product), ``logits`` and ``value``.

        model = BilinearCNN()            # one bilinear layer 512 -> 512
        logits, value = model(preprocess(frames))
    """

    def __init__(self, widths: Sequence[int] = (512,)) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1:
            raise CheckpointError(f"BilinearCNN needs at least one bilinear layer of width >= 1, got widths {widths}")
        self.widths = widths
        add_lp_conv_stack(self, dropout=0.0)
        sites = dict(CONV_SITES)
        for i, (d_in, d_out) in enumerate(zip((CONV_FEATURES, *widths), widths), start=1):
            self.add_module(f"fc{i}", Bilinear(d_in, d_out))
            sites |= {f"fc{i}.input": f"fc{i}.input", f"fc{i}.left": f"fc{i}.left", f"fc{i}.right": f"fc{i}.right",
                      f"fc{i}": f"fc{i}"}
        self.logits_fc, self.value_fc = nn.Linear(widths[-1], N_ACTIONS), nn.Linear(widths[-1], 1)
        self.SITES = MappingProxyType(sites | {"logits": "logits_fc", "value": "value_fc"})
        self.to(memory_format=torch.channels_last)

    @property
    def bilinear_layers(self) -> tuple[str, ...]:
        """Names of the bilinear layers, input first: ``("fc1",)`` by default."""
        return tuple(f"fc{i}" for i in range(1, len(self.widths) + 1))

    @classmethod
    def for_state_dict(cls, state: dict[str, Tensor]) -> "BilinearCNN":
        """A fresh model with the layer widths that ``state`` (a BilinearCNN state_dict) holds."""
        widths, i = [], 1
        while f"fc{i}.left.weight" in state:
            widths.append(state[f"fc{i}.left.weight"].shape[0])
            i += 1
        return cls(widths) if widths else cls()

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """``obs``: float NCHW from ``preprocess``.  Returns logits ``(N, 15)`` and value ``(N,)``."""
        return self.head(lp_conv_features(self, obs))

    def head(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Logits and value from pool4 features ``(N, 32, 4, 4)`` (or flattened ``(N, 512)``): the bilinear part
        alone, as a distillation on cached conv features trains it."""
        x = features
        for name in self.bilinear_layers:
            x = getattr(self, name)(x)
        return self.logits_fc(x), self.value_fc(x).squeeze(-1)
