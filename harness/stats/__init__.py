"""Estimates and tests behind claim verdicts (docs/statistics.md), in plain numpy/scipy.

Every estimate or test returns an :class:`Estimate` (or a subclass that only adds fields): a point estimate, its
interval and ``interval_at`` (the same method at another confidence), the number of independent units ``n``
(levels, pairs, episodes, latents...: the unit the claim declares), the method in words, and a p-value with the
hypothesis it tests (``alternative``, ``null_value``) where a test was run.  Paired inputs hold one value per
unit, in the same unit order.

One module per topic; import the public names from here:

- :mod:`~harness.stats.estimates`: the result types;
- :mod:`~harness.stats.proportions`: intervals for rates and shares of any unit, paired binary outcomes (exact
  McNemar);
- :mod:`~harness.stats.resampling`: the bootstrap over any unit, paired continuous outcomes (studentized or BCa
  bootstrap and sign-flip test), the permutation test against a null baseline;
- :mod:`~harness.stats.bounded`: the mean of values within known bounds (a betting interval, valid at any n);
- :mod:`~harness.stats.intervals`: the bounds behind them and the smallest n each method accepts;
- :mod:`~harness.stats.nulls`: samplers of null baselines (random channels, matched latents, random directions);
- :mod:`~harness.stats.equivalence`: TOST;
- :mod:`~harness.stats.multiplicity`: Holm and Benjamini-Hochberg;
- :mod:`~harness.stats.power`: power and sample sizes;
- :mod:`~harness.stats.sequential`: SPRT with an anytime-valid interval;
- :mod:`~harness.stats.checks`: the input checks they share.
"""

from harness.stats.bounded import PROBABILITY_CHANGE, bounded_mean
from harness.stats.equivalence import tost
from harness.stats.estimates import Equivalence, Estimate, SequentialResult
from harness.stats.multiplicity import benjamini_hochberg, holm
from harness.stats.nulls import matched_firing_rate_latents, random_channel_sets, random_directions_like
from harness.stats.power import (
    paired_binary_power,
    paired_binary_sample_size,
    paired_mean_power,
    paired_mean_sample_size,
    two_proportion_power,
    two_proportion_sample_size,
)
from harness.stats.proportions import (
    clopper_pearson_interval,
    confidence_sequence_interval,
    mcnemar_exact,
    proportion,
    wilson_interval,
)
from harness.stats.resampling import bootstrap, paired_bootstrap, permutation_test_against_null
from harness.stats.sequential import BernoulliSPRT

__all__ = [
    "PROBABILITY_CHANGE",
    "BernoulliSPRT",
    "Equivalence",
    "Estimate",
    "SequentialResult",
    "benjamini_hochberg",
    "bootstrap",
    "bounded_mean",
    "clopper_pearson_interval",
    "confidence_sequence_interval",
    "holm",
    "matched_firing_rate_latents",
    "mcnemar_exact",
    "paired_binary_power",
    "paired_binary_sample_size",
    "paired_bootstrap",
    "paired_mean_power",
    "paired_mean_sample_size",
    "permutation_test_against_null",
    "proportion",
    "random_channel_sets",
    "random_directions_like",
    "tost",
    "two_proportion_power",
    "two_proportion_sample_size",
    "wilson_interval",
]
