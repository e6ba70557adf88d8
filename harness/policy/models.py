"""Policy architectures, explicit preprocessing and checkpoint loading.

Architectures (:data:`ARCHITECTURES`): ``custom_cnn`` (:class:`CustomCNN`), ``impala`` (:class:`ImpalaCNN`) and
``bilinear_cnn`` (:class:`~harness.policy.bilinear_model.BilinearCNN`, CustomCNN's conv stack from
:mod:`harness.policy.conv_stack` with bilinear layers after it).

How models take input
---------------------
Models never see raw frames.  ``forward`` takes **preprocessed float32 NCHW in [0, 1]**, produced by
:func:`preprocess` from uint8 ``(N, 64, 64, 3)`` frames, and returns ``(logits, value)`` with shapes
``(N, 15)`` and ``(N,)``::

    logits, value = model(preprocess(frames))

:func:`preprocess` returns a tensor in channels_last memory format (a free permute of NHWC frames), and all
models keep their conv weights channels_last, which is the fast layout for these convolutions on CPU.

Each model declares its named activation sites in ``SITES`` (site name -> submodule path); see
:mod:`harness.policy.sites` for the naming scheme.
"""

import hashlib
import pickle
import zipfile
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch
from torch import Tensor, nn

from harness.errors import CheckpointError, ObservationError
from harness.policy.bilinear_model import BilinearCNN
from harness.policy.conv_stack import CONV_SITES, N_ACTIONS, add_lp_conv_stack, check_input, conv, lp_conv_features

__all__ = [
    "ARCHITECTURES",
    "FRAME_SHAPE",
    "N_ACTIONS",
    "BilinearCNN",
    "CustomCNN",
    "ImpalaCNN",
    "architecture_of",
    "checkpoint_mismatches",
    "checkpoint_sha256",
    "load_policy",
    "orthogonal_init",
    "preprocess",
    "read_state_dict",
]

FRAME_SHAPE = (64, 64, 3)
"""Shape of one Procgen frame: height, width, RGB."""


def preprocess(frames: np.ndarray | Tensor) -> Tensor:
    """Turn uint8 frames ``(N, 64, 64, 3)`` (numpy or torch) into float32 NCHW in [0, 1] (channels_last).

    The only scaling is division by 255.  Other dtypes and shapes raise :class:`ObservationError`: the range is
    never guessed from the values.
    """
    if not isinstance(frames, np.ndarray | Tensor):
        raise ObservationError(f"frames must be a numpy array or torch tensor, got {type(frames).__name__}")
    if frames.dtype not in (np.uint8, torch.uint8):
        raise ObservationError(
            f"frames must be uint8 (raw Procgen pixels), got {frames.dtype}; pass the frames the environment "
            "returned, not already-scaled floats"
        )
    if tuple(frames.shape[1:]) != FRAME_SHAPE or frames.ndim != 4:
        hint = "; add a batch axis with frames[None]" if tuple(frames.shape) == FRAME_SHAPE else ""
        raise ObservationError(f"frames must be shaped (N, 64, 64, 3), got {tuple(frames.shape)}{hint}")
    return torch.as_tensor(frames).permute(0, 3, 1, 2).float().div_(255.0)


class CustomCNN(nn.Module):
    """The LP-pooling CNN policy: 5 convs, 4 L2-pools, two fc layers, policy and value heads.

    Module names match the existing checkpoints.  The ``*_relu`` modules are parameter-free and exist so that
    post-ReLU maps are hookable sites; dropout (p=0.01) is inactive in eval mode.
    """

    SITES: Mapping[str, str] = MappingProxyType(
        {**CONV_SITES, "fc1": "fc1", "fc1.relu": "fc1_relu", "fc2": "fc2", "fc2.relu": "fc2_relu",
         "logits": "fc3", "value": "value_fc"}
    )

    def __init__(self) -> None:
        super().__init__()
        add_lp_conv_stack(self, dropout=0.01)
        self.fc1, self.fc1_relu = nn.Linear(32 * 4 * 4, 256), nn.ReLU()
        self.fc2, self.fc2_relu = nn.Linear(256, 512), nn.ReLU()
        self.fc3 = nn.Linear(512, N_ACTIONS)
        self.value_fc = nn.Linear(512, 1)
        self.dropout_fc = nn.Dropout(0.01)
        self.to(memory_format=torch.channels_last)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """``obs``: float NCHW from :func:`preprocess`.  Returns logits ``(N, 15)`` and value ``(N,)``."""
        x = lp_conv_features(self, obs)
        x = self.dropout_fc(self.fc1_relu(self.fc1(x.flatten(1))))
        x = self.dropout_fc(self.fc2_relu(self.fc2(x)))
        return self.fc3(x), self.value_fc(x).squeeze(-1)


def orthogonal_init(model: nn.Module, *, policy_head: str = "fc3", value_head: str = "value_fc") -> nn.Module:
    """Initialise for training from scratch: orthogonal weights (gain sqrt 2, the policy head 0.01, the value
    head 1) and zero biases, as PPO implementations do.  PyTorch's default init shrinks the signal so much over
    CustomCNN's seven layers that its logits barely depend on the frame (spread 0.0007 across frames, measured),
    and imitation stalls at the label entropy.  Returns ``model``."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            gain = 0.01 if name == policy_head else 1.0 if name == value_head else 2**0.5
            weight = torch.empty(module.weight.shape)  # orthogonal_ needs a contiguous tensor, not channels_last
            nn.init.orthogonal_(weight, gain)
            with torch.no_grad():
                module.weight.copy_(weight)
                module.bias.zero_()
    return model


class ResidualBlock(nn.Module):
    """``x + conv1(relu(conv0(relu(x))))`` with 3x3 convs that keep the channel count."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.input_relu, self.conv0 = nn.ReLU(), conv(channels, channels, 3)
        self.conv0_relu, self.conv1 = nn.ReLU(), conv(channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv1(self.conv0_relu(self.conv0(self.input_relu(x))))


class ImpalaStack(nn.Module):
    """One IMPALA stack: 3x3 conv, 3x3 max-pool with stride 2, two residual blocks."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = conv(c_in, c_out, 3)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.res1, self.res2 = ResidualBlock(c_out), ResidualBlock(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.res2(self.res1(self.pool(self.conv(x))))


def _impala_sites() -> dict[str, str]:
    sites: dict[str, str] = {}
    for s in ("stack1", "stack2", "stack3"):
        sites |= {f"{s}.conv": f"{s}.conv", f"{s}.pool": f"{s}.pool"}
        for r in (f"{s}.res1", f"{s}.res2"):
            sites |= {f"{r}.input.relu": f"{r}.input_relu", f"{r}.conv0": f"{r}.conv0"}
            sites |= {f"{r}.conv0.relu": f"{r}.conv0_relu", f"{r}.conv1": f"{r}.conv1", r: r}
    sites |= {"stack3.relu": "stack3_relu", "fc": "fc", "fc.relu": "fc_relu", "logits": "logits", "value": "value"}
    return sites


class ImpalaCNN(nn.Module):
    """The IMPALA CNN of the Procgen paper: stacks of 16, 32, 32 channels, fc 256, policy and value heads."""

    SITES: Mapping[str, str] = MappingProxyType(_impala_sites())

    def __init__(self) -> None:
        super().__init__()
        self.stack1, self.stack2, self.stack3 = ImpalaStack(3, 16), ImpalaStack(16, 32), ImpalaStack(32, 32)
        self.stack3_relu = nn.ReLU()
        self.fc, self.fc_relu = nn.Linear(32 * 8 * 8, 256), nn.ReLU()
        self.logits = nn.Linear(256, N_ACTIONS)
        self.value = nn.Linear(256, 1)
        self.to(memory_format=torch.channels_last)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """``obs``: float NCHW from :func:`preprocess`.  Returns logits ``(N, 15)`` and value ``(N,)``."""
        check_input(obs)
        x = self.stack3_relu(self.stack3(self.stack2(self.stack1(obs))))
        x = self.fc_relu(self.fc(x.flatten(1)))
        return self.logits(x), self.value(x).squeeze(-1)


ARCHITECTURES: Mapping[str, type[nn.Module]] = MappingProxyType(
    {"custom_cnn": CustomCNN, "impala": ImpalaCNN, "bilinear_cnn": BilinearCNN})
"""Architecture names accepted by :func:`load_policy`."""


def architecture_of(model: nn.Module) -> str:
    """The :data:`ARCHITECTURES` name of ``model`` (``"custom_cnn"``, ``"impala"``, ...), so claims and trainers can
    say which architectures they apply to; a model of another class is an error naming it."""
    found = [name for name, cls in ARCHITECTURES.items() if type(model) is cls]
    if not found:
        raise CheckpointError(f"{type(model).__name__} is not one of the harness's architectures "
                              f"{sorted(ARCHITECTURES)}")
    return found[0]


def checkpoint_sha256(path: str | PathLike) -> str:
    """Hex SHA-256 of a checkpoint file, for reports that record which model they tested."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | PathLike) -> dict[str, Tensor]:
    """The tensors of a checkpoint file: a plain ``state_dict`` or one under ``model_state_dict``/``state_dict``
    (for policies and SAEs alike); a CheckpointError says what the file holds instead.  Tensors holding NaN or
    infinity are refused: a model with them gives NaN probabilities, and every verdict drawn from it is void."""
    if not Path(path).is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    _check_torch_file(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds pickled Python objects, which weights_only=True refuses; re-save it as a plain "
            "state_dict with torch.save(model.state_dict(), path)"
        ) from exc
    except Exception as exc:  # torch.load raises many types for damaged files; all mean the same thing here
        raise CheckpointError(f"{path} is not a readable torch checkpoint (truncated or corrupt?): {exc}") from exc
    if isinstance(loaded, dict):
        for key in ("model_state_dict", "state_dict"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise CheckpointError(
            f"{path} holds no state_dict (a dict of tensor names to tensors, possibly under 'model_state_dict' "
            "or 'state_dict'); save one with torch.save(model.state_dict(), path)"
        )
    broken = [f"{k} ({int((~torch.isfinite(v)).sum())} of {v.numel()} values)" for k, v in loaded.items()
              if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise CheckpointError(f"{path} holds NaN or infinite weights in: " + ", ".join(broken)
                              + "; a model with them cannot be tested (did training diverge?)")
    return loaded


def _check_torch_file(path: str | PathLike) -> None:
    """Refuse files that ``torch.save`` cannot have written (text, random bytes) before torch guesses at them:
    its own format is a zip archive, the legacy one a pickle (first byte 0x80, the protocol marker)."""
    if zipfile.is_zipfile(path):
        return
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"PK":
        raise CheckpointError(f"{path} is not a readable torch checkpoint (truncated or corrupt?): its zip archive "
                              "has no central directory")
    if head[:1] != b"\x80":
        raise CheckpointError(
            f"{path} is not a torch checkpoint: it is neither a zip archive (torch.save's format) nor a pickle "
            f"(it starts with {head!r}); pass the file written by torch.save(model.state_dict(), path)"
        )


def checkpoint_mismatches(expected: Mapping[str, Tensor], found: Mapping[str, Tensor]) -> list[str]:
    """Every missing, unexpected, wrongly shaped or non-float (where float is expected) key of ``found`` against
    ``expected``, naming its layer."""
    problems = [
        f"layer {k.rpartition('.')[0]}: missing {k}, expected shape {tuple(v.shape)}"
        for k, v in expected.items()
        if k not in found
    ]
    problems += [
        f"layer {k.rpartition('.')[0]}: unexpected key {k} with shape {tuple(v.shape)}"
        for k, v in found.items()
        if k not in expected
    ]
    problems += [
        f"layer {k.rpartition('.')[0]}: {k} expected shape {tuple(v.shape)}, found {tuple(found[k].shape)}"
        for k, v in expected.items()
        if k in found and v.shape != found[k].shape
    ]
    problems += [  # load_state_dict would cast integer weights silently
        f"layer {k.rpartition('.')[0]}: {k} expected floating point, found {found[k].dtype}"
        for k, v in expected.items()
        if k in found and v.is_floating_point() and not found[k].is_floating_point()
    ]
    return problems


def load_policy(path: str | PathLike, *, architecture: str | None = None) -> nn.Module:
    """Load a checkpoint into a fresh model in eval mode.

    ``architecture`` is one of :data:`ARCHITECTURES`; ``None`` picks it from the keys: IMPALA for ``stack1.*``,
    BilinearCNN for ``fc1.left.*`` (its layer widths too), CustomCNN otherwise.  The file is read with ``weights_only=True`` and may hold a plain
    state_dict or a dict with a ``model_state_dict`` / ``state_dict`` entry.  Any missing or unexpected key or
    shape mismatch raises :class:`CheckpointError` naming the layer and both shapes.
    """
    if architecture is not None and architecture not in ARCHITECTURES:
        raise CheckpointError(f"unknown architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}")
    state = read_state_dict(path)
    if architecture is None:
        architecture = ("impala" if any(k.startswith("stack1.") for k in state)
                        else "bilinear_cnn" if "fc1.left.weight" in state else "custom_cnn")
    cls = ARCHITECTURES[architecture]
    model = cls.for_state_dict(state) if hasattr(cls, "for_state_dict") else cls()
    problems = checkpoint_mismatches(model.state_dict(), state)
    if problems:
        raise CheckpointError(
            f"{path} does not fit {ARCHITECTURES[architecture].__name__}:\n  " + "\n  ".join(problems)
            + "\npass the right architecture= or fix the checkpoint"
        )
    model.load_state_dict(state)
    return model.eval()
