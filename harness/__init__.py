"""Test-driven mechanistic verification of CNN policies on Procgen Heist.

The public names below are imported lazily, on first use, so that ``import harness`` (which pytest does at every
start, through the plugin) does not load torch or the game engine.
"""

from importlib import import_module

# Eager on purpose: ``harness.render`` is also a submodule, which would shadow the function if imported later.
from harness.render import generate, render, render_hires  # numpy only; procgen loads on first render

_EXPORTS = {
    "HarnessError": "harness.errors",
    "HeistLevel": "harness.levels",
    "sample_levels": "harness.sampling", "SEED_RANGES": "harness.sampling",
    "load_policy": "harness.models", "CustomCNN": "harness.models", "ImpalaCNN": "harness.models",
    "preprocess": "harness.models",
    "Site": "harness.sites", "sites": "harness.sites",
    "Cache": "harness.interventions", "Zero": "harness.interventions", "Mean": "harness.interventions",
    "Resample": "harness.interventions", "Patch": "harness.interventions", "AddDirection": "harness.interventions",
    "Clamp": "harness.interventions",
    "run": "harness.runner", "RunResult": "harness.runner",
    "rollout": "harness.rollouts", "play": "harness.rollouts",
    "load_sae": "harness.sae",
}  # fmt: skip

__all__ = sorted([*_EXPORTS, "generate", "render", "render_hires"])


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
