"""Planted mechanisms: networks whose truth is known by construction, to calibrate claims on (docs/statistics.md
item 9).  The caller says what is planted (a per-frame flag, a per-frame quadrant); ``tests/calibration.py``
plants "the target lies up" and "the target's quadrant" and runs the shipped claims' own functions on them.

Every model is a :class:`TabledCNN`: CustomCNN from ``conv4a`` or ``conv3a`` on, with CustomCNN's module names and
sites there, whose input is what a seeded orthogonal-init CustomCNN computes before that layer, run once per
frame of a :class:`Sample` and looked up by the frame.  With the trunk of the same seed it is exactly that
CustomCNN; running the trunk once instead of in each of the ~150 ablation passes a claim makes is what makes
calibration affordable on a CPU.

* :func:`up_channel_model` (planted A): input channel ``CARRIER`` of conv4a is replaced by a flag given per frame
  (a frame -> truth table, not a pixel detector).  conv4a channel ``CHANNEL`` reads only that flag (a constant map
  of ``LEVEL``), nothing else reads it, and one fc1 and one fc2 unit carry its mean alone to the UP logit:
  ``UP logit += PUSH * mean(conv4a.relu[CHANNEL]) / LEVEL``.  Zeroing the channel removes exactly that push, on
  exactly the flagged frames.
* :func:`quadrant_code_model` (planted B): input channels ``CODE_CHANNELS`` of conv3a carry +-1 for "up" and
  "right" of a quadrant given per frame; conv3a adds ``STRENGTH`` times them along two fixed random orthonormal
  directions over its 32 channels, at every position, to its random output.
* Nulls: :func:`random_model`, the architecture re-initialised with nothing planted, and :func:`shuffled`, every
  parameter tensor of a model permuted (of planted A: the flag is still in the input, its wiring is gone).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from harness.errors import ObservationError, PlantedModelError
from harness.heist.actions import Action
from harness.heist.levels import HeistLevel
from harness.policy.models import CustomCNN, orthogonal_init, preprocess
from harness.policy.runner import run

__all__ = ["CARRIER", "CHANNEL", "CODE_CHANNELS", "LEVEL", "PUSH", "STRENGTH", "Sample", "TabledCNN",
           "quadrant_code_model", "random_model", "shuffled", "up_channel_model"]

CHANNEL, CARRIER, UNIT, LEVEL, PUSH = 7, 11, 0, 4.0, 1.0
"""Planted A: conv4a channel, its input (trunk) channel, its fc1/fc2 unit, its activation, the UP logit push."""
CODE_CHANNELS, STRENGTH = (5, 21), 4.0
"""Planted B: the two conv3a input channels carrying the code, and its size (conv3a's own spread is about 3.6)."""
_WIDTH = 32  # channels of conv3a and conv4a
_TAILS = {
    "conv4a": ("conv4a", "conv4a_relu", "pool4", "fc1", "fc1_relu", "fc2", "fc2_relu", "fc3", "value_fc"),
    "conv3a": ("conv3a", "conv3a_relu", "pool3", "conv4a", "conv4a_relu", "pool4", "fc1", "fc1_relu", "fc2",
               "fc2_relu", "fc3", "value_fc"),
}  # fmt: skip
_INPUT_SITE = {"conv4a": "pool3", "conv3a": "pool2"}


def _seeded_cnn(seed: int) -> CustomCNN:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return orthogonal_init(CustomCNN()).eval()


def _frame_key(inputs: Tensor) -> list[bytes]:
    """Per preprocessed frame, a key to look it up by: a digest of all its pixels (every fourth pixel, as first
    keyed, collided on two of 1,056 calibration levels; the full frame is still compared after the look-up)."""
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in inputs.contiguous().numpy()]


@dataclass(frozen=True, kw_only=True, eq=False)
class Sample:
    """Levels (start or mid-episode states) rendered once, with a seeded random trunk's features on them."""

    frames: np.ndarray
    inputs: Tensor
    """The frames as models take them, ``preprocess(frames)``."""
    index: Mapping[bytes, int]
    """Look-up key of each frame (a few of its pixels) -> row."""
    features: Mapping[str, Tensor]
    """Start layer (``conv3a``, ``conv4a``) -> its input on every frame, from a seeded random CustomCNN trunk."""

    @classmethod
    def of(cls, levels: Sequence[HeistLevel], *, trunk_seed: int) -> Sample:
        """``levels`` rendered, with the trunk of an orthogonal-init CustomCNN of seed ``trunk_seed`` run on them."""
        from harness.heist.engine import render

        frames = render(list(levels))
        inputs = preprocess(frames)
        index = {key: i for i, key in enumerate(_frame_key(inputs))}
        if len(index) != len(frames):
            raise PlantedModelError(f"{len(frames) - len(index)} of {len(frames)} frames share a look-up key with "
                                    "another; a tabled sample needs frames that differ")
        acts = run(_seeded_cnn(trunk_seed), frames, cache=list(_INPUT_SITE.values())).activations
        return cls(frames=frames, inputs=inputs, index=index,
                   features={start: acts[site].contiguous() for start, site in _INPUT_SITE.items()})

    def per_frame(self, values: object, name: str) -> np.ndarray:
        """``values`` as an array with one entry per frame, or a :class:`PlantedModelError` naming ``name``."""
        array = np.asarray(values)
        if array.shape != (len(self.frames),):
            raise PlantedModelError(f"{name} needs one value per frame of the sample ({len(self.frames)}), got "
                                    f"shape {array.shape}")
        return array


class TabledCNN(nn.Module):
    """CustomCNN from layer ``start`` (``conv3a`` or ``conv4a``) on, with CustomCNN's module names and sites from
    there; the layers before it are ``table``, their output on each frame of a sample, looked up by the frame's
    bytes (a frame outside the sample raises).  The blank frame (all zeros, never a Heist frame) looks up zeros:
    :func:`~harness.policy.run_from` traces the order of a model's layers on it, and then replaces every layer
    before its site.  Dropout, inactive in eval mode, is left out."""

    def __init__(self, *, start: str, table: Tensor, sample: Sample, seed: int) -> None:
        super().__init__()
        if start not in _TAILS:
            raise PlantedModelError(f"a tabled CustomCNN starts at one of {sorted(_TAILS)}, not {start!r}")
        net = _seeded_cnn(seed)
        self.start, self.sample = start, sample
        for name in _TAILS[start]:
            self.add_module(name, getattr(net, name))
        self.SITES = {site: path for site, path in CustomCNN.SITES.items() if path in _TAILS[start]}
        self.register_buffer("table", table, persistent=False)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        rows = torch.tensor([self.sample.index.get(key, -1) for key in _frame_key(obs.cpu())])
        known, blank = rows >= 0, ~obs.cpu().flatten(1).any(1)
        if not bool((known | blank).all()) or not torch.equal(obs.cpu()[known], self.sample.inputs[rows[known]]):
            raise ObservationError("a frame outside this model's calibration sample; a TabledCNN knows only the "
                                   "frames of the sample it was built on")
        x = self.table.new_zeros((len(rows), *self.table.shape[1:]))
        x[known.to(x.device)] = self.table[rows[known].to(x.device)]
        x = x.to(obs.device)
        if self.start == "conv3a":
            x = self.pool3(self.conv3a_relu(self.conv3a(x)))
        x = self.pool4(self.conv4a_relu(self.conv4a(x)))
        x = self.fc2_relu(self.fc2(self.fc1_relu(self.fc1(x.flatten(1)))))
        return self.fc3(x), self.value_fc(x).squeeze(-1)


def random_model(sample: Sample, *, start: str, seed: int) -> TabledCNN:
    """Null: the architecture re-initialised (seed ``seed``) on the sample's plain trunk features."""
    return TabledCNN(start=start, table=sample.features[start], sample=sample, seed=seed).eval()


def up_channel_model(sample: Sample, *, flag: object, seed: int) -> TabledCNN:
    """Planted A: conv4a channel ``CHANNEL`` is ``LEVEL`` exactly on the frames where ``flag`` (one bool per frame)
    is true and adds ``PUSH`` to the UP logit through fc1/fc2 unit ``UNIT``; nothing else reads it or its input."""
    flag = sample.per_frame(flag, "flag").astype(bool)
    table = sample.features["conv4a"].clone()
    table[:, CARRIER] = torch.as_tensor(flag, dtype=table.dtype)[:, None, None]
    model = random_model(sample, start="conv4a", seed=seed)
    model.table = table
    cols = slice(CHANNEL * 16, (CHANNEL + 1) * 16)  # pool4 of the channel in fc1's input: 4x4, each 2 * LEVEL
    with torch.no_grad():
        model.conv4a.weight[:, CARRIER] = 0
        model.conv4a.weight[CHANNEL] = 0
        model.conv4a.weight[CHANNEL, CARRIER, 2, 2] = LEVEL  # centre tap: a constant map of LEVEL * flag
        model.conv4a.bias[CHANNEL] = 0
        for layer, inputs in ((model.fc1, cols), (model.fc2, UNIT)):
            layer.weight[:, inputs] = 0
            layer.weight[UNIT] = 0
            layer.bias[UNIT] = 0
        model.fc1.weight[UNIT, cols] = 1 / 32  # = mean(conv4a.relu[CHANNEL]) for a constant map
        model.fc2.weight[UNIT, UNIT] = 1
        model.fc3.weight[:, UNIT] = 0
        model.fc3.weight[Action.UP, UNIT] = PUSH / LEVEL
        model.value_fc.weight[:, UNIT] = 0
    return model


def quadrant_code_model(sample: Sample, *, quadrant: object, seed: int) -> TabledCNN:
    """Planted B: conv3a's output plus ``STRENGTH * (up * d1 + right * d2)`` at every position, where up and
    right are +-1 from ``quadrant`` (one per frame: 0 up-left, 1 up-right, 2 down-left, 3 down-right) and d1, d2
    fixed random orthonormal directions over the 32 channels."""
    quadrant = sample.per_frame(quadrant, "quadrant")
    if not np.isin(quadrant, (0, 1, 2, 3)).all():
        raise PlantedModelError(f"quadrants are 0, 1, 2 or 3, got {sorted(set(quadrant.tolist()) - {0, 1, 2, 3})}")
    code = torch.as_tensor(np.stack([np.where(quadrant < 2, 1.0, -1.0),
                                     np.where(quadrant % 2 == 1, 1.0, -1.0)], 1), dtype=torch.float32)
    table = sample.features["conv3a"].clone()
    table[:, list(CODE_CHANNELS)] = code[:, :, None, None]
    model = random_model(sample, start="conv3a", seed=seed)
    model.table = table
    directions, _ = torch.linalg.qr(torch.randn(_WIDTH, 2, generator=torch.Generator().manual_seed(seed)))
    with torch.no_grad():
        model.conv3a.weight[:, list(CODE_CHANNELS)] = 0
        for k, channel in enumerate(CODE_CHANNELS):
            model.conv3a.weight[:, channel, 2, 2] = STRENGTH * directions[:, k]
    return model


def shuffled(model: TabledCNN, *, seed: int) -> TabledCNN:
    """Null: the same model with every parameter tensor's entries permuted (seeded); its input is unchanged."""
    copy = TabledCNN(start=model.start, table=model.table, sample=model.sample, seed=0)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for (_, source), (_, target) in zip(model.named_parameters(), copy.named_parameters(), strict=True):
            flat = source.detach().flatten()
            target.copy_(flat[torch.randperm(flat.numel(), generator=generator)].view(source.shape))
    return copy.eval()
