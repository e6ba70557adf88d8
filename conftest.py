"""Hypothesis profiles for this repository's tests.

The claims fixtures (``policy``, ``saes``, ``sample_levels``, ``level_sampler``) come from the plugin
(:mod:`harness.claims.plugin`); the shipped models are their defaults through ``heist_policy`` and ``heist_saes`` in
``pyproject.toml``.
"""

import os

from hypothesis import HealthCheck, settings

# Forward passes are slow, so no deadline; CI derandomises and keeps no example database.
settings.register_profile("dev", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", parent=settings.get_profile("dev"), derandomize=True, database=None,
                          max_examples=25)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
