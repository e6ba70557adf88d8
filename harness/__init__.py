"""Test-driven mechanistic verification of CNN policies on Procgen Heist.

The public names below are imported lazily, on first use, so that ``import harness`` (which pytest does at every
start, through the plugin) does not load torch or the game engine.
"""

from importlib import import_module

_EXPORTS = {
    "generate": "harness.heist.engine", "render": "harness.heist.engine", "render_hires": "harness.heist.engine",
    "HarnessError": "harness.errors",
    "HeistLevel": "harness.heist.levels", "Action": "harness.heist.actions", "guide": "harness.heist.oracle",
    "sample_levels": "harness.heist.sampling", "SEED_RANGES": "harness.heist.sampling",
    "load_policy": "harness.policy.models", "CustomCNN": "harness.policy.models", "ImpalaCNN": "harness.policy.models",
    "preprocess": "harness.policy.models", "BilinearCNN": "harness.policy.bilinear_model",
    "Site": "harness.policy.sites", "sites": "harness.policy.sites",
    "Cache": "harness.policy.interventions", "Zero": "harness.policy.interventions", "Mean": "harness.policy.interventions",
    "Resample": "harness.policy.interventions", "Patch": "harness.policy.interventions", "AddDirection": "harness.policy.interventions",
    "Clamp": "harness.policy.interventions", "KeepTopEigen": "harness.policy.interventions",
    "run": "harness.policy.runner", "RunResult": "harness.policy.runner", "run_from": "harness.policy.from_site",
    "rollout": "harness.policy.rollouts", "play": "harness.policy.rollouts",
    "load_sae": "harness.lenses.sae", "spliced": "harness.lenses.sae",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
