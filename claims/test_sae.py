"""SAE claims: the conv4a sparse autoencoder spliced into the agent.

S1. The SAE is faithful enough to study the policy through it: spliced in place of conv4a *without* its error
    term, it keeps the agent's most likely action on more than 80% of confirmation frames.
S2. (exploratory) One SAE latent steers the agent toward its target: the conv4a latent whose zeroing most lowers
    the probability of the oracle's move on selection levels lowers it on confirmation levels by more than 0.02,
    and by more than random latents of matched firing rate do (SAE spliced with its error term, so only the
    zeroed latent differs from the clean policy).
"""

import numpy as np
import pytest

from harness import Site, Zero, render, run
from harness.heist.actions import Action
from harness.lenses.measures import target_direction
from harness.lenses.sae import firing_rates, sae_latents, spliced
from harness.stats import (Estimate, matched_firing_rate_latents, paired_bootstrap, permutation_test_against_null,
                           wilson_interval)

SITE = "conv4a"
MIN_AGREEMENT = 0.80
MIN_LATENT_DROP = 0.02
SELECTION_LEVELS = 128
NULL_LATENTS = 100
NULL_SEED = 0


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


def move_probabilities(policy, sae, frames, moves, latent=None):
    """Per frame: P(oracle move) with ``sae`` spliced in (with its error term, so only an edit of the latents changes
    the policy), with ``latent`` zeroed (None: no edit, the clean policy up to float rounding)."""
    edits = [] if latent is None else [Zero(site=Site(sae.latent_site, channels=(int(latent),)))]
    with spliced(policy, sae, error_term=True):
        probs = run(policy, frames, interventions=edits).probs.double().numpy()
    return probs[np.arange(len(frames)), moves]


def select_steering_latent(policy, sae, levels) -> tuple[int, np.ndarray]:
    """The live latent whose zeroing most lowers P(oracle move) on ``levels`` (the first, on ties), and every
    latent's firing rate there."""
    frames, moves = render(levels), oracle_moves(levels)
    rates = firing_rates(sae_latents(policy, sae, frames)).numpy()
    live = np.nonzero(rates > 0)[0]
    clean = move_probabilities(policy, sae, frames, moves)
    scores = [(clean - move_probabilities(policy, sae, frames, moves, i)).mean() for i in live]
    return int(live[int(np.argmax(scores))]), rates


def latent_drop_against_matched_latents(policy, sae, frames, moves, chosen: int, rates, *,
                                        confidence: float) -> Estimate:
    """S2's statistic: the mean drop in P(oracle move) from zeroing latent ``chosen`` (paired bootstrap at
    ``confidence``), with its permutation p-value against NULL_LATENTS other latents of matched firing rate."""
    clean = move_probabilities(policy, sae, frames, moves)
    drops = clean - move_probabilities(policy, sae, frames, moves, chosen)
    null_latents = matched_firing_rate_latents(rates, [chosen], NULL_LATENTS, seed=NULL_SEED, tolerance=0.5,
                                               exclude=[chosen])[:, 0]
    null = [(clean - move_probabilities(policy, sae, frames, moves, i)).mean() for i in null_latents]
    return permutation_test_against_null(paired_bootstrap(drops, confidence=confidence), null)


# Selection (selection seeds only), then the claims (confirmation seeds).


@pytest.fixture(scope="module")
def steering_latent(policy, saes, level_sampler):
    """The selection step: :func:`select_steering_latent` on the selection seeds; the latent and the firing rates."""
    return select_steering_latent(policy, saes[SITE], level_sampler("selection", SELECTION_LEVELS,
                                                                     where=has_direction))


@pytest.mark.claim(
    id="S1-conv4a-sae-fidelity",
    statement=f"Spliced without its error term, the conv4a SAE keeps the agent's most likely action on more than "
              f"{MIN_AGREEMENT:.0%} of confirmation frames.",
    sites=[f"{SITE}.sae"], metric="argmax-action agreement", lower_bound_above=MIN_AGREEMENT,
    seeds="confirmation", n=512,
)
def test_sae_fidelity(claim, policy, saes, sample_levels):
    frames = render(sample_levels())
    agree = argmax_agreement(policy, saes[SITE], frames)
    claim.check(wilson_interval(int(agree.sum()), len(frames), confidence=claim.confidence))


@pytest.mark.claim(
    id="S2-conv4a-sae-steering-latent",
    statement=f"Zeroing the conv4a SAE latent selected on the selection seeds lowers P(oracle move) by more than "
              f"{MIN_LATENT_DROP} and more than random latents of matched firing rate do.",
    sites=[f"{SITE}.sae.latents:selected"], metric="mean drop in P(oracle move)", lower_bound_above=MIN_LATENT_DROP,
    seeds="confirmation", selected_on="selection", n=256, family="exploratory",
)
def test_sae_steering_latent(claim, policy, saes, sample_levels, steering_latent):
    chosen, rates = steering_latent
    claim.select(latent=chosen)
    levels = sample_levels(where=has_direction)
    frames, moves = render(levels), oracle_moves(levels)
    claim.attach(frames[0], f"a confirmation frame (latent {chosen} selected)")
    claim.check(latent_drop_against_matched_latents(policy, saes[SITE], frames, moves, chosen, rates,
                                                    confidence=claim.confidence))
