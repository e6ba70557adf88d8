"""Test-driven mechanistic verification of CNN policies on Procgen Heist."""

from harness.errors import HarnessError
from harness.levels import HeistLevel
from harness.render import generate, render, render_hires

__all__ = ["HarnessError", "HeistLevel", "generate", "render", "render_hires"]
