"""Claims as pytest tests: the declaration and its verdict, the run that collects rows across workers, the
pytest plugin (options and fixtures) and the reports.

May import every library subpackage (``heist``, ``policy``, ``lenses``, ``stats``); nothing imports it but tests
and ``harness.training``.
"""
