"""The model under test: architectures and checkpoint loading, named activation sites, interventions as frozen
data, the one forward-pass entry point (``run``), rollouts in the real game, and planted models whose mechanism is
known by construction (``planted``), to calibrate claims on.

May import ``harness.heist`` and ``harness.errors``.
"""
