"""SAE claims: the sparse autoencoder of the last conv block spliced into the agent.

The last conv block is the site role ``last_conv`` (harness.policy.roles): conv4a in CustomCNN, IMPALA's
``stack3.res2``.  Both claims need an SAE on that site for the policy under test (``saes=[SITE]``); where none is
loaded (``--sae SITE=PATH``), they are skipped with that reason.

S1. The SAE is faithful enough to study the policy through it: spliced in place of that site *without* its error
    term, it keeps the agent's most likely action on more than 80% of confirmation frames.
S2. (exploratory) One SAE latent steers the agent toward its target: the latent whose zeroing most lowers
    the probability of the oracle's move on selection levels lowers it on confirmation levels by more than 0.02
    more than zeroing a latent of matched firing rate does (per level: its drop minus the mean drop of every other
    latent whose firing rate is within 50% of its own, so within [-1, 1]; betting interval over levels,
    ``bounded_mean``, which holds its level at any n and shape; a studentized bootstrap until 2026-12-03).  SAE spliced with its error
    term, so only the zeroed latent differs from the clean policy.
    Until issue 21 this was a permutation test of the drop against 100 matched latents; those were draws with
    repeats from the 16 latents that match the selected one (latent 15), and a null of 16 distinct latents can
    never give p below 1/17, so the comparison is now per level against all of them, as CH1 does for channels.
    n = 512 levels since issue 20: on the bilinear agent (the same conv stack and SAE, another head) the n = 256
    sample was refused by the studentized bootstrap (skewness 3.32 needs n >= 330 at 99.29%), an error before any
    verdict there; on the shipped agent n = 256 gave inconclusive, 0.021 [0.001, 0.048]; the bound is unchanged.
"""

import numpy as np
import pytest

from harness import Site, Zero, render, run, run_from
from harness.heist.actions import Action
from harness.lenses.measures import target_direction
from harness.lenses.sae import firing_rates, sae_latents, spliced
from harness.stats import PROBABILITY_CHANGE, bounded_mean, proportion

SITE = "last_conv"
START = "mid_conv"
"""Latent ablations run from this block onward (it precedes the SAE's site in every architecture)."""
MIN_AGREEMENT = 0.80
MIN_LATENT_DROP = 0.02
SELECTION_LEVELS = 128
MATCH_TOLERANCE = 0.5


def has_direction(level):
    return target_direction(level) is not None


# The science, as plain functions the tests below call with the policy under test and its SAE.


def oracle_moves(levels):
    return np.array([Action.toward(target_direction(level)) for level in levels])


def argmax_agreement(policy, sae, frames) -> np.ndarray:
    """Per frame: whether the agent's most likely action is the same with ``sae`` spliced in (no error term)."""
    clean = run(policy, frames).actions_argmax
    with spliced(policy, sae, error_term=False):
        reconstructed = run(policy, frames).actions_argmax
    return (clean == reconstructed).numpy()


def start_activations(policy, frames):
    """The policy's ``START`` activations on ``frames``, from which :func:`move_probabilities` runs the rest."""
    return run(policy, frames, cache=[START]).activations[START]


def move_probabilities(policy, sae, start, moves, latent=None):
    """Per frame: P(oracle move) with ``sae`` spliced in (with its error term, so only an edit of the latents changes
    the policy), with ``latent`` zeroed (None: no edit, the clean policy up to float rounding).  ``start``:
    :func:`start_activations` of the frames; only the layers after ``START`` run (``run_from``, the same numbers)."""
    edits = [] if latent is None else [Zero(site=Site(sae.latent_site, channels=(int(latent),)))]
    with spliced(policy, sae, error_term=True):
        probs = run_from(policy, START, start, interventions=edits).probs.double().numpy()
    return probs[np.arange(len(start)), moves]


def select_steering_latent(policy, sae, levels) -> tuple[int, np.ndarray]:
    """The live latent whose zeroing most lowers P(oracle move) on ``levels`` (the first, on ties), and every
    latent's firing rate there."""
    frames, moves = render(levels), oracle_moves(levels)
    rates = firing_rates(sae_latents(policy, sae, frames)).numpy()
    live = np.nonzero(rates > 0)[0]
    start = start_activations(policy, frames)
    clean = move_probabilities(policy, sae, start, moves)
    scores = [(clean - move_probabilities(policy, sae, start, moves, i)).mean() for i in live]
    return int(live[int(np.argmax(scores))]), rates


def matched_latents(rates, chosen: int) -> np.ndarray:
    """Every latent other than ``chosen`` whose firing rate is within MATCH_TOLERANCE (relative) of its rate."""
    rates = np.asarray(rates, dtype=float)
    close = np.abs(rates - rates[chosen]) <= MATCH_TOLERANCE * rates[chosen]
    return np.flatnonzero(close & (np.arange(len(rates)) != chosen))


def latent_excess_drop(policy, sae, frames, moves, chosen: int, rates) -> np.ndarray:
    """S2's effect per level: the drop in P(oracle move) from zeroing latent ``chosen`` minus the mean drop from
    zeroing each of its :func:`matched_latents`."""
    matched = matched_latents(rates, chosen)
    if not len(matched):
        raise ValueError(f"no latent fires within {MATCH_TOLERANCE:.0%} of latent {chosen}'s rate")
    start = start_activations(policy, frames)
    clean = move_probabilities(policy, sae, start, moves)
    drops = [clean - move_probabilities(policy, sae, start, moves, i) for i in (chosen, *matched)]
    return drops[0] - np.mean(drops[1:], axis=0)


# Selection (selection seeds only), then the claims (confirmation seeds).


@pytest.fixture(scope="module")
def steering_latent(policy, saes, level_sampler):
    """The selection step: :func:`select_steering_latent` on the selection seeds; the latent and the firing rates."""
    return select_steering_latent(policy, saes[SITE], level_sampler("selection", SELECTION_LEVELS,
                                                                     where=has_direction))


@pytest.mark.claim(
    id="S1-conv4a-sae-fidelity",
    statement=f"Spliced without its error term, the last conv block's SAE keeps the agent's most likely action on "
              f"more than {MIN_AGREEMENT:.0%} of confirmation frames.",
    sites=[f"{SITE}.sae"], metric="argmax-action agreement", lower_bound_above=MIN_AGREEMENT,
    seeds="confirmation", n=512, saes=[SITE],
)
def test_sae_fidelity(claim, policy, saes, sample_levels):
    frames = render(sample_levels())
    agree = argmax_agreement(policy, saes[SITE], frames)
    claim.check(proportion(agree, confidence=claim.confidence))


@pytest.mark.claim(
    id="S2-conv4a-sae-steering-latent",
    statement=f"Zeroing the last conv block's SAE latent selected on the selection seeds lowers P(oracle move) by more than "
              f"{MIN_LATENT_DROP} more than zeroing a latent of matched firing rate does.",
    sites=[f"{SITE}.sae.latents:selected"], metric="drop in P(oracle move) minus the mean drop of matched latents",
    lower_bound_above=MIN_LATENT_DROP,
    seeds="confirmation", selected_on="selection", n=512, family="exploratory", saes=[SITE],
)
def test_sae_steering_latent(claim, policy, saes, sample_levels, steering_latent):
    chosen, rates = steering_latent
    claim.select(latent=chosen)
    levels = sample_levels(where=has_direction)
    frames, moves = render(levels), oracle_moves(levels)
    claim.attach(frames[0], f"a confirmation frame (latent {chosen} selected)")
    claim.check(bounded_mean(latent_excess_drop(policy, saes[SITE], frames, moves, chosen, rates),
                             bounds=PROBABILITY_CHANGE, confidence=claim.confidence))
