"""Per-level measurements that claims hand to statistics: intervention effects on action probabilities, the
same effect under random sites (the null), unit activations, and counterfactual level pairs.

Every function returns one number per level (or one per null draw), never a verdict: the unit of analysis is
the level, and the statistic is chosen in the claim.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from torch import nn

from harness.heist.actions import CARDINAL, Action
from harness.heist.levels import HeistLevel
from harness.heist.oracle import current_target, guide
from harness.policy.interventions import Intervention, Zero
from harness.policy.runner import run
from harness.policy.sites import Site
from harness.stats import random_channel_sets

DIRECTION_ACTIONS: dict[str, Action] = {action.direction: action for action in CARDINAL}
"""The action of each cardinal move, by the direction names of :func:`target_direction`."""


def probability_drop(policy: nn.Module, frames: np.ndarray, *, interventions: Sequence[Intervention],
                     action: int) -> np.ndarray:
    """Per level: P(action) on the clean frame minus P(action) under ``interventions``."""
    clean = run(policy, frames).probs[:, action]
    edited = run(policy, frames, interventions=interventions).probs[:, action]
    return (clean - edited).double().numpy()


def channel_ablation_drop(policy: nn.Module, frames: np.ndarray, *, site: str, channels: Sequence[int],
                          action: int) -> np.ndarray:
    """Per level: the drop in P(action) when ``channels`` of ``site`` are zeroed."""
    zero = Zero(site=Site(site, channels=tuple(int(c) for c in channels)))
    return probability_drop(policy, frames, interventions=[zero], action=action)


def random_channel_null(policy: nn.Module, frames: np.ndarray, *, site: str, n_channels: int, size: int,
                        action: int, m: int, seed: int, exclude: Sequence[int] = ()) -> np.ndarray:
    """Mean drop in P(action) for each of ``m`` random sets of ``size`` channels of ``site`` (``exclude`` left
    out): what ablating that many channels does when the channels are not the claimed ones."""
    sets = random_channel_sets(n_channels, size, m, seed=seed, exclude=tuple(exclude))
    clean = run(policy, frames).probs[:, action]
    null = []
    for channels in sets:
        zero = Zero(site=Site(site, channels=tuple(int(c) for c in channels)))
        null.append(float((clean - run(policy, frames, interventions=[zero]).probs[:, action]).mean()))
    return np.array(null)


def channel_activation(policy: nn.Module, frames: np.ndarray, *, site: str, channel: int) -> np.ndarray:
    """Per level: the mean over positions of one channel of a spatial site."""
    act = run(policy, frames, cache=[site]).activations[site]
    return act[:, channel].flatten(1).mean(1).double().numpy()


def target_direction(level: HeistLevel) -> str | None:
    """"up", "down", "left" or "right": the first step of the shortest path to the current target."""
    guidance = guide(level)
    return None if guidance is None else guidance.first_step


def target_quadrant(level: HeistLevel) -> int | None:
    """Where the current target lies from the agent: 0 up-left, 1 up-right, 2 down-left, 3 down-right (a target
    in the agent's own row counts as up, in its own column as right); None without a target."""
    target = current_target(level)
    if target is None:
        return None
    dx, dy = target.entity.x - level.agent.x, target.entity.y - level.agent.y
    return (0 if dy >= 0 else 2) + (1 if dx >= 0 else 0)


def gem_moved_pair(level: HeistLevel, first: str, second: str) -> tuple[HeistLevel, HeistLevel] | None:
    """The level twice, with the gem moved to the nearest free cells from which the agent's shortest path to
    it starts ``first`` and ``second`` respectively (only for levels whose current target is the gem); None if
    no such cells exist.  Everything else is the same level."""
    target = current_target(level)
    if target is None or target.kind != "gem":
        return None
    moved = []
    for direction in (first, second):
        candidate = _nearest_gem_cell(level, direction)
        if candidate is None:
            return None
        moved.append(level.move_gem(candidate))
    return moved[0], moved[1]


def _nearest_gem_cell(level: HeistLevel, direction: str) -> tuple[int, int] | None:
    agent, gem = level.agent.cell, level.gem
    cells = [(x, y) for y in range(level.grid_h) for x in range(level.grid_w)
             if not level.is_wall((x, y)) and (level.occupant((x, y)) in (None, gem)) and (x, y) != agent]
    cells.sort(key=lambda c: (abs(c[0] - agent[0]) + abs(c[1] - agent[1]), c))
    for cell in cells:
        moved = level.move_gem(cell)
        if target_direction(moved) == direction:
            return cell
    return None
