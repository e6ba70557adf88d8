"""The shipped claim suite: one file per family of claims about the bundled agent.

Each file keeps its science in plain module-level functions (the statistic a claim checks, or its per-level
effect) and its selection step in one named fixture; the tests draw levels, call those functions and check the
result.  ``tests/calibration.py`` imports the same functions to run them on planted and null models, which is why
this is a package.
"""
