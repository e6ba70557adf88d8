"""The one import of procgen: vectors of Heist environments, for the engine pools and the render worker."""

from __future__ import annotations

import contextlib
import io
import warnings

OBS_SIZE = 64
"""Observations are (64, 64, 3) uint8 frames."""
HIRES_SIZE = 512
"""Pictures for reports (``render_mode="rgb_array"``) are (512, 512, 3)."""
MODES = ("easy", "hard")
"""The distribution modes the harness plays."""


def make_env(num: int, mode: str, *, hires: bool = False, start_level: int = 0, num_levels: int = 0, **options):
    """``num`` Heist environments of distribution ``mode``, by default on any level seed (pools set the level
    themselves); a trainer passes its ``start_level``/``num_levels`` and procgen ``options`` such as ``rand_seed``
    and ``num_threads``."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")  # gym's deprecation notice on import
        from procgen import ProcgenGym3Env
    if hires:
        options["render_mode"] = "rgb_array"
    return ProcgenGym3Env(num=num, env_name="heist", distribution_mode=mode, start_level=start_level,
                          num_levels=num_levels, **options)
