"""The model under test: architectures and checkpoint loading, named activation sites, interventions as frozen
data, the one forward-pass entry point (``run``) and rollouts in the real game.

May import ``harness.heist`` and ``harness.errors``.
"""
