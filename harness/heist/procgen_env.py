"""The one import of procgen: vectors of Heist environments, for the engine pools and the render worker."""

from __future__ import annotations

import warnings

OBS_SIZE = 64
"""Observations are (64, 64, 3) uint8 frames."""
HIRES_SIZE = 512
"""Pictures for reports (``render_mode="rgb_array"``) are (512, 512, 3)."""
MODES = ("easy", "hard")
"""The distribution modes the harness plays."""


def make_env(num: int, mode: str, *, hires: bool = False):
    """``num`` Heist environments of distribution ``mode``, on any level seed (pools set the level themselves)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gym's deprecation notice on import
        from procgen import ProcgenGym3Env
    kwargs = {"render_mode": "rgb_array"} if hires else {}
    return ProcgenGym3Env(num=num, env_name="heist", distribution_mode=mode, start_level=0, num_levels=0, **kwargs)
