"""Claims as pytest tests: the declaration and its verdict, the run that collects rows across workers, the
pytest plugin (options and fixtures), the reports, and saved runs read back as DataFrames.

Modules, from the bottom up: ``records`` (a claim's report row; ``png``, ``charts`` and ``figures`` draw its pictures),
``declaration`` (a claim's declaration and whether it applies to the policy under test), ``claim``
(select-then-confirm and the verdict), ``counterexamples`` (the "for every level" claim form), ``provenance``
(commit, versions, source hashes), ``runs`` (a run's rows and metadata: loading, comparing,
``read_run`` and ``runs_table``), ``report`` (writers: terminal, Markdown, CSV, JSON, HTML), ``options`` and
``session`` (the run inside a pytest session), ``plugin`` (the pytest entry point and fixtures), and
``calibration`` (deciding a claim's results on planted models and summarising false-positive rate and power), and
``series`` (the suite over many checkpoints: ``python -m harness.claims.series``, with ``series_stages``,
``series_checkpoints``, ``series_only``, ``series_ray`` and ``series_report``).

May import every library subpackage (``heist``, ``policy``, ``lenses``, ``stats``); nothing imports it but tests
and ``harness.training``.  Importing this package loads neither pytest nor torch nor pandas.
"""

from harness.claims.runs import load_run, load_series, read_run, read_series, runs_table

__all__ = ["load_run", "load_series", "read_run", "read_series", "runs_table"]
