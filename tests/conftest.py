"""Shared helpers: the oracle controller playing episodes, exact re-serialisation, and a seeded random CustomCNN.

Engine pools are the process-wide ones from :func:`harness.heist.engine.shared_pool` (64 engines per mode, created on
first use), so every test file shares them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pytest
import torch

from harness.heist.actions import Action
from harness.heist.engine import EnginePool, Episodes
from harness.heist.levels import HeistLevel
from harness.heist.oracle import oracle_action
from harness.policy.models import CustomCNN


def play_oracle(pool: EnginePool, levels: list[HeistLevel], *, max_steps: int,
                policy: Callable[[HeistLevel], int] = oracle_action, capture: list[bytes] | None = None,
                rewards: np.ndarray | None = None) -> Episodes:
    """Let ``policy`` (by default :func:`harness.heist.oracle.oracle_action`) play one episode per level for up to
    ``max_steps`` steps.  With ``capture``, append the raw engine state of every slot before each step; with
    ``rewards``, store the reward of each episode's last step."""
    episodes = pool.episodes(levels)
    for _ in range(max_steps):
        if not episodes.active.any():
            break
        raw = pool.env.callmethod("get_state")[:episodes.n]
        if capture is not None:
            capture += raw
        actions = [policy(HeistLevel.from_bytes(r)) if live else Action.NOOP for r, live in zip(raw, episodes.active)]
        ended = episodes.step(np.array(actions, dtype=np.int32))
        if rewards is not None:
            rewards[ended] = pool.env.observe()[0][:episodes.n][ended]
    return episodes


def reserialise(level: HeistLevel) -> bytes:
    """Serialise ``level`` from its fields (a copy, so not the bytes cached when it was parsed)."""
    return dataclasses.replace(level).to_bytes()


@pytest.fixture(scope="session")
def oracle_play():
    """:func:`play_oracle`, for tests."""
    return play_oracle


@pytest.fixture(scope="session")
def serialise():
    """:func:`reserialise`, for tests."""
    return reserialise


@pytest.fixture(scope="module")
def model():
    """A CustomCNN with default init (seed 0), in eval mode; one per test module."""
    torch.manual_seed(0)
    return CustomCNN().eval()
