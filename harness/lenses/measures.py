"""Per-level measurements that claims hand to statistics: intervention effects on action probabilities, the
same effect under random sites (the null), unit activations (every channel of a site in one pass, for levels or
for both members of counterfactual pairs), and :func:`gem_moved_pair` (defined with the other pair families in
:mod:`harness.heist.pairs`).

Every function returns one number per level (or one per null draw), never a verdict: the unit of analysis is
the level, and the statistic is chosen in the claim.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from torch import nn

from harness.errors import HarnessError
from harness.heist.actions import CARDINAL, Action
from harness.heist.levels import HeistLevel
from harness.heist.oracle import current_target, guide
from harness.heist.pairs import gem_moved_pair
from harness.policy.from_site import run_from
from harness.policy.interventions import Intervention, Zero
from harness.policy.runner import run
from harness.policy.sites import Site
from harness.stats import random_channel_sets

__all__ = ["DIRECTION_ACTIONS", "MeasureError", "channel_ablation_drop", "channel_activation", "channel_sums",
           "gem_moved_pair", "paired_channel_sums", "probability_drop", "random_channel_null", "target_direction",
           "target_quadrant"]


class MeasureError(HarnessError, ValueError):
    """A measurement asked of the wrong kind of site or of mismatched frames."""


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
    clean = run(policy, frames, cache=[site])
    null = []
    for channels in sets:  # from the site onward only (run_from): the layers before it do not change
        zero = Zero(site=Site(site, channels=tuple(int(c) for c in channels)))
        ablated = run_from(policy, site, clean.activations[site], interventions=[zero]).probs[:, action]
        null.append(float((clean.probs[:, action] - ablated).mean()))
    return np.array(null)


def channel_activation(policy: nn.Module, frames: np.ndarray, *, site: str, channel: int) -> np.ndarray:
    """Per level: the mean over positions of one channel of a spatial site."""
    return channel_sums(policy, frames, site=site, reduce="mean")[:, channel]


def channel_sums(policy: nn.Module, frames: np.ndarray, *, site: str, reduce: str = "sum") -> np.ndarray:
    """Per level and channel, ``(n, channels)``: every channel of a spatial site summed (or averaged, ``reduce=
    "mean"``) over positions, from one forward pass.  ``channel_sums(policy, render(levels), site="conv4a.relu")``."""
    if reduce not in ("sum", "mean"):
        raise MeasureError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
    act = run(policy, frames, cache=[site]).activations[site]
    if act.ndim != 4:
        raise MeasureError(f"site {site!r} has activations shaped {tuple(act.shape[1:])} per frame; channel sums need "
                           "a spatial site (channels, height, width), e.g. 'conv4a' or 'conv4a.relu'")
    flat = act.flatten(2)
    return (flat.sum(2) if reduce == "sum" else flat.mean(2)).double().numpy()


def paired_channel_sums(policy: nn.Module, base_frames: np.ndarray, edited_frames: np.ndarray, *, site: str,
                        reduce: str = "sum") -> tuple[np.ndarray, np.ndarray]:
    """:func:`channel_sums` of the base and the edited member of each pair, ``(n, channels)`` each, from one
    forward pass over both.  ``base, edited = paired_channel_sums(policy, *render_pairs(pairs), site="conv4a")``."""
    if len(base_frames) != len(edited_frames):
        raise MeasureError(f"a pair needs a base and an edited frame: got {len(base_frames)} base and "
                           f"{len(edited_frames)} edited frames")
    sums = channel_sums(policy, np.concatenate([base_frames, edited_frames]), site=site, reduce=reduce)
    return sums[:len(base_frames)], sums[len(base_frames):]


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
