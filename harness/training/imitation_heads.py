"""The networks :mod:`harness.training.imitation` trains, and what it trains them with besides the oracle's actions:
training-only heads on the network's last hidden layer, and an optional teacher policy to distil from.

    model = start_network("impala", init="")               # orthogonal init, or the weights of ``init``
    aux = AuxiliaryHeads(model)                            # reads IMPALA's fc (CustomCNN's fc2) through a hook
    teacher = Teacher("fixtures/agents/customcnn_bc/policy.pt", bf16=True)
    log_probs = teacher.log_probs(frames)                  # (N, 15), stored beside the frames when collecting
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ImitationConfigError
from harness.heist.oracle import NO_STEP, STEP_CLASSES, current_target
from harness.policy.models import (ARCHITECTURES, N_ACTIONS, ResidualBlock, architecture_of, load_policy,
                                   orthogonal_init, preprocess)

AUX_GRID = 16
"""Cells are numbered ``y * 16 + x`` for the auxiliary heads (hard levels are 13 wide)."""

HIDDEN_LAYER = {"custom_cnn": "fc2", "impala": "fc"}
"""The last hidden layer of each architecture, which the training-only heads read (after its ``*_relu``)."""

HEADS = {"custom_cnn": ("fc3", "value_fc"), "impala": ("logits", "value")}
"""Each architecture's policy and value heads, which :func:`orthogonal_init` scales apart from the rest."""


def start_network(architecture: str, init: str = "") -> nn.Module:
    """A fresh ``architecture`` network with orthogonal init, or the weights of ``init``, which must hold that
    architecture (an ImitationConfigError says which one it holds); channels_last either way.

    IMPALA's residual blocks start as the identity (their second conv zero): with every conv orthogonal at gain
    sqrt 2 the six blocks blow its fc features up to a std of 10.9 on training frames, with PyTorch's default init
    they shrink to 0.05 (spread across frames 0.006), and with the blocks at the identity they stay near 1 (1.24;
    measured on 64 training frames)."""
    if architecture not in ARCHITECTURES:
        raise ImitationConfigError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}")
    if not init:
        policy_head, value_head = HEADS[architecture]
        model = orthogonal_init(ARCHITECTURES[architecture](), policy_head=policy_head, value_head=value_head)
        for block in model.modules():
            if isinstance(block, ResidualBlock):  # each block starts as the identity (as Fixup and Goyal et al.)
                nn.init.zeros_(block.conv1.weight)
    else:
        model = load_policy(init)
        if (found := architecture_of(model)) != architecture:
            raise ImitationConfigError(f"init checkpoint {init} holds a {found} network but architecture is "
                                       f"{architecture!r}; pass --architecture {found}")
    return model.to(memory_format=torch.channels_last)


def aux_cells(level) -> tuple[int, int]:
    """Auxiliary targets: the agent's cell and the current target's cell (the agent's own when there is none)."""
    target = current_target(level)
    ax, ay = level.agent.cell
    tx, ty = target.cell if target is not None else (ax, ay)
    return ay * AUX_GRID + ax, ty * AUX_GRID + tx


class AuxiliaryHeads(nn.Module):
    """Training-only heads reading the network's last hidden layer (:data:`HIDDEN_LAYER`, through a forward hook
    on its ReLU): the agent and target cells, and the first step toward the target from every cell."""

    def __init__(self, model: nn.Module):
        super().__init__()
        layer = HIDDEN_LAYER[architecture_of(model)]
        width = getattr(model, layer).out_features
        self.cells = nn.Linear(width, 2 * AUX_GRID**2)
        self.steps = nn.Linear(width, AUX_GRID**2 * (len(STEP_CLASSES) + 1))
        self.features: torch.Tensor | None = None
        getattr(model, f"{layer}_relu").register_forward_hook(
            lambda module, inputs, output: setattr(self, "features", output))

    def losses(self, cells: torch.Tensor, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropies of the cell heads and of the first-step head (cells with no step are ignored)."""
        features = self.features.float()
        scores = self.cells(features).view(-1, 2, AUX_GRID**2)
        loss_cells = F.cross_entropy(scores[:, 0], cells[:, 0]) + F.cross_entropy(scores[:, 1], cells[:, 1])
        step_scores = self.steps(features).view(-1, len(STEP_CLASSES) + 1)
        loss_steps = F.cross_entropy(step_scores, steps.reshape(-1).long(), ignore_index=NO_STEP)
        return loss_cells, loss_steps


class Teacher:
    """A trained policy (any architecture) whose action distribution the network also learns (distillation):
    its log-probabilities are computed once per recorded frame, when collecting, not per gradient step."""

    def __init__(self, path: str, *, bf16: bool):
        self.model, self.bf16 = load_policy(path), bf16

    def log_probs(self, frames: np.ndarray) -> np.ndarray:
        """The teacher's action log-probabilities on uint8 ``frames`` (N, 64, 64, 3), float32 (N, N_ACTIONS)."""
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits, _ = self.model(preprocess(frames))
        return F.log_softmax(logits.float(), dim=1).numpy()


def distillation_loss(logits: torch.Tensor, teacher_log_probs: torch.Tensor) -> torch.Tensor:
    """KL(teacher || network) per frame, averaged over the batch."""
    return F.kl_div(F.log_softmax(logits, dim=1), teacher_log_probs, log_target=True, reduction="batchmean")
