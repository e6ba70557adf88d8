"""Feature-visualisation claim: an image optimised for the last conv block's UP channel drives it beyond any dataset
frame.

Source: the feature-visualisation note of the Heist goal-selection project (../shared/seeds/001_755052fb6169fe95.txt,
"Feature visualisation results"): gradient ascent on Heist CNN channels gave white or noisy images, and the note
names what was missing, a Fourier parameterisation, colour decorrelation from the game's frames and transformation
robustness, next to its dataset examples (the most activating patches).  Olah et al. ("Feature Visualization",
Distill 2017) motivate optimisation by exactly this comparison: dataset examples show what the unit responds to
in the data, the optimised image what drives it most, and the second is meaningful only if it really drives the
unit harder than the data does.

Unit: the channel of the last conv block (the ``last_conv`` role: conv4a in CustomCNN, IMPALA's ``stack3.res2``)
that claims/test_channels.py selects, by its own function (the channel whose zeroing lowers
P(UP) most on 256 target-up selection levels, :func:`claims.test_channels.rank_up_channels`), computed once per
model and sampling seed through the plugin's ``selection_cache``.  Objective: the channel's pre-ReLU
activation averaged over its 8x8 map, on the optimised image quantised to uint8 and on each dataset frame alike.

FV1. (exploratory, heavy) Of RESTARTS independent visualisations (harness.lenses.visualise defaults: Fourier
     spectrum with 1/f scaling, colour decorrelation from Heist training frames, jitter/scale/rotation each step;
     STEPS Adam steps; restart seeds from VIS_SEED), more than half drive the channel above its highest value on
     the first frames of DATASET_LEVELS confirmation levels.  Unit of analysis: the restart (Clopper-Pearson interval
     over restarts; Wilson's before, which a verdict no longer takes).  Bound 0.5, fixed before any run: "most restarts beat the best of the data" is the premise the
     method rests on; below it the visualisation would show a weaker stimulus than a frame the agent meets, and
     the dataset examples would be the better picture of the channel.
     Heavy: 16 x 256 steps of ascent take about a minute on a free core (bench/bench_visualise.py), plus the
     selection (32 ablation passes on 256 levels) when no other claim of the run has made it.
"""

import numpy as np
import pytest

from claims.test_channels import SELECTION_LEVELS, SITE, rank_up_channels, target_is_up
from harness import render
from harness.lenses.visualise import Objective, visualise
from harness.stats import proportion

RESTARTS = 16
STEPS = 256
VIS_SEED = 0
DATASET_LEVELS = 512
MIN_SHARE = 0.5
TOP_EXAMPLES = 8


# The science, as a plain function the test below calls with the policy under test.


def restarts_beating_data(policy, channel, levels, *, restarts=RESTARTS, steps=STEPS, seed=VIS_SEED):
    """The visualisation of ``channel`` (mean over the map) with ``levels`` as its dataset, and a boolean per
    restart: its uint8 image drives the channel above the best of the levels' first frames."""
    vis = visualise(policy, Objective(site=SITE, channel=channel), restarts=restarts, steps=steps, seed=seed,
                    levels=levels, top_n=TOP_EXAMPLES)
    return vis, vis.values > vis.dataset_best


# Selection (selection seeds only), then the claim (confirmation seeds).


@pytest.fixture(scope="module")
def up_channel(policy, level_sampler, selection_cache):
    """The selection step of claims/test_channels.py: its top UP channel of the last conv block on the selection
    seeds."""
    return selection_cache("FV-up-channel", lambda: rank_up_channels(
        policy, render(level_sampler("selection", SELECTION_LEVELS, where=target_is_up)))[0][0])


@pytest.mark.heavy
@pytest.mark.claim(
    id="FV1-visualisation-beats-data",
    statement=f"Optimised images (Fourier, decorrelated colour, transformation robust) drive the selected UP channel "
              f"of the last conv block above its best on {DATASET_LEVELS} confirmation levels in more than half of {RESTARTS} "
              f"restarts.",
    sites=[f"{SITE}:selected"], metric=f"share of restarts above the best of {DATASET_LEVELS} dataset frames",
    lower_bound_above=MIN_SHARE, seeds="confirmation", selected_on="selection", n=RESTARTS, unit="restarts",
    family="exploratory",
)
def test_visualisation_beats_data(claim, policy, sample_levels, up_channel):
    claim.select(channel=int(up_channel))
    vis, beats = restarts_beating_data(policy, up_channel, sample_levels(n=DATASET_LEVELS))
    claim.attach(vis.figure(), f"above: {RESTARTS} optimised images of {SITE}:{up_channel} (mean over the map "
                               f"{vis.values.min():.3g} to {vis.values.max():.3g}); below: the {TOP_EXAMPLES} "
                               f"confirmation levels where it peaks (patch at its maximum, outlined); the best "
                               f"level's mean over the map is {vis.dataset_best:.3g}")
    claim.check(proportion(beats, unit="restarts", confidence=claim.confidence))
