"""The LP-pooling conv stack that CustomCNN and BilinearCNN share: its layers, their sites and its forward pass.

Both architectures build it with :func:`add_lp_conv_stack`, so their conv modules, state_dict keys and site names
(``conv1a`` ... ``pool4``) are identical: the conv weights of one load into the other, and conv-level claims apply
to both unchanged.
"""

from collections.abc import Mapping
from types import MappingProxyType

from torch import Tensor, nn

from harness.errors import ObservationError

__all__ = ["CONV_SITES", "N_ACTIONS", "add_lp_conv_stack", "check_input", "conv", "lp_conv_features"]

N_ACTIONS = 15
"""Size of the Procgen action space."""

CONV_SITES: Mapping[str, str] = MappingProxyType(
    {
        "conv1a": "conv1a", "conv1a.relu": "conv1a_relu", "pool1": "pool1",
        "conv2a": "conv2a", "conv2a.relu": "conv2a_relu",
        "conv2b": "conv2b", "conv2b.relu": "conv2b_relu", "pool2": "pool2",
        "conv3a": "conv3a", "conv3a.relu": "conv3a_relu", "pool3": "pool3",
        "conv4a": "conv4a", "conv4a.relu": "conv4a_relu", "pool4": "pool4",
    }
)  # fmt: skip
"""Site name -> submodule path of the conv stack."""


def check_input(obs: Tensor) -> None:
    """Fail clearly when a model is handed raw frames instead of ``preprocess(frames)``."""
    if not obs.is_floating_point() or obs.ndim != 4 or obs.shape[1] != 3:
        raise ObservationError(
            f"models take float NCHW input, got {obs.dtype} shaped {tuple(obs.shape)}; call model(preprocess(frames))"
        )


def conv(c_in: int, c_out: int, kernel: int) -> nn.Conv2d:
    """A conv that keeps the spatial size (odd ``kernel``, zero padding)."""
    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)


def _lp_pool() -> nn.LPPool2d:
    return nn.LPPool2d(norm_type=2, kernel_size=2, stride=2)


def add_lp_conv_stack(model: nn.Module, *, dropout: float) -> None:
    """Give ``model`` the conv stack as attributes: 5 convs with ReLUs, 4 L2-pools, and ``dropout_conv``
    (channel dropout with probability ``dropout``, inactive in eval mode).  Output: ``(N, 32, 4, 4)``."""
    model.conv1a, model.conv1a_relu, model.pool1 = conv(3, 16, 7), nn.ReLU(), _lp_pool()
    model.conv2a, model.conv2a_relu = conv(16, 32, 5), nn.ReLU()
    model.conv2b, model.conv2b_relu, model.pool2 = conv(32, 32, 5), nn.ReLU(), _lp_pool()
    model.conv3a, model.conv3a_relu, model.pool3 = conv(32, 32, 5), nn.ReLU(), _lp_pool()
    model.conv4a, model.conv4a_relu, model.pool4 = conv(32, 32, 5), nn.ReLU(), _lp_pool()
    model.dropout_conv = nn.Dropout2d(dropout)


def lp_conv_features(model: nn.Module, obs: Tensor) -> Tensor:
    """The conv stack that :func:`add_lp_conv_stack` gave ``model``, on ``obs`` (checked): pool4's ``(N, 32, 4, 4)``."""
    check_input(obs)
    x = model.dropout_conv(model.pool1(model.conv1a_relu(model.conv1a(obs))))
    x = model.conv2a_relu(model.conv2a(x))
    x = model.dropout_conv(model.pool2(model.conv2b_relu(model.conv2b(x))))
    x = model.dropout_conv(model.pool3(model.conv3a_relu(model.conv3a(x))))
    return model.dropout_conv(model.pool4(model.conv4a_relu(model.conv4a(x))))
