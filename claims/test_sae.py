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
import torch

from harness import Site, Zero, render, run
from harness.lenses.measures import DIRECTION_ACTIONS, target_direction
from harness.lenses.sae import firing_rates, spliced
from harness.stats import matched_firing_rate_latents, paired_bootstrap, permutation_test_against_null, wilson_interval

SITE = "conv4a"
MIN_AGREEMENT = 0.80
MIN_LATENT_DROP = 0.02
SELECTION_LEVELS = 128
NULL_LATENTS = 100


def has_direction(level):
    return target_direction(level) is not None


def oracle_moves(levels):
    return np.array([DIRECTION_ACTIONS[target_direction(level)] for level in levels])


def drop_toward_target(policy, sae, frames, moves, latent):
    """Per level: P(oracle move) clean minus with ``latent`` zeroed (inside an error-term splice)."""
    zero = Zero(site=Site(sae.latent_site, channels=(int(latent),)))
    rows = np.arange(len(frames))
    with spliced(policy, sae, error_term=True):
        clean = run(policy, frames).probs.double().numpy()[rows, moves]
        edited = run(policy, frames, interventions=[zero]).probs.double().numpy()[rows, moves]
    return clean - edited


@pytest.mark.claim(
    id="S1-conv4a-sae-fidelity",
    statement=f"Spliced without its error term, the conv4a SAE keeps the agent's most likely action on more than "
              f"{MIN_AGREEMENT:.0%} of confirmation frames.",
    sites=[f"{SITE}.sae"], metric="argmax-action agreement", lower_bound_above=MIN_AGREEMENT,
    seeds="confirmation", n=512,
)
def test_sae_fidelity(claim, policy, saes, sample_levels):
    frames = render(sample_levels())
    clean = run(policy, frames).actions_argmax
    with spliced(policy, saes[SITE], error_term=False):
        reconstructed = run(policy, frames).actions_argmax
    claim.check(wilson_interval(int((clean == reconstructed).sum()), len(frames), confidence=claim.confidence))


@pytest.mark.claim(
    id="S2-conv4a-sae-steering-latent",
    statement=f"Zeroing the conv4a SAE latent selected on the selection seeds lowers P(oracle move) by more than "
              f"{MIN_LATENT_DROP} and more than random latents of matched firing rate do.",
    sites=[f"{SITE}.sae.latents:selected"], metric="mean drop in P(oracle move)", lower_bound_above=MIN_LATENT_DROP,
    seeds="confirmation", n=256, family="exploratory",
)
def test_sae_steering_latent(claim, policy, saes, sample_levels):
    from harness.heist.sampling import sample_levels as draw_levels

    sae = saes[SITE]
    selection = draw_levels("selection", SELECTION_LEVELS, seed=0, where=has_direction)
    sel_frames, sel_moves = render(selection), oracle_moves(selection)
    with torch.no_grad():
        rates = firing_rates(sae.encode(run(policy, sel_frames, cache=[SITE]).activations[SITE]))
    live = np.nonzero(rates.numpy() > 0)[0]
    scores = [drop_toward_target(policy, sae, sel_frames, sel_moves, i).mean() for i in live]
    chosen = int(live[int(np.argmax(scores))])

    levels = sample_levels(where=has_direction)
    frames, moves = render(levels), oracle_moves(levels)
    drops = drop_toward_target(policy, sae, frames, moves, chosen)
    null_latents = matched_firing_rate_latents(rates.numpy(), [chosen], NULL_LATENTS, seed=0, tolerance=0.5,
                                               exclude=[chosen])[:, 0]
    null = [drop_toward_target(policy, sae, frames, moves, i).mean() for i in null_latents]
    claim.attach(frames[0], f"a confirmation frame (latent {chosen} selected)")
    claim.check(permutation_test_against_null(paired_bootstrap(drops, confidence=claim.confidence), null))
