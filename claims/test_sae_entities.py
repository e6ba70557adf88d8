"""SAE entity claims: an entity-selective latent, and the shipped SAEs' dead and dense latents.

Sources: the Heist goal-selection project (../shared/seeds/000_77e42c2f625ff90c.txt), which trains SAEs on the
CNN layers of a Heist agent to find how it identifies the entity that is its current goal, and the SAE study of
a game agent in ../shared/seeds/003_c8b2def68e54662c.txt (an SAE on a DQN playing Ms. Pacman: interpretable
latents, but "almost 80% of features are dead", which "limited the sparsity of the remaining live features").

Sites by role (harness.policy.roles): the middle conv block (``mid_conv``: conv3a in CustomCNN, IMPALA's
``stack2.res2``) and the last (``last_conv``: conv4a, ``stack3.res2``).  Each claim needs an SAE on its site for
the policy under test (``saes=[...]``); where none is loaded (``--sae SITE=PATH``), it is skipped with that reason.

SE1. (exploratory) The middle conv block's SAE has a key detector: the latent most selective for keys on the selection seeds
     (its mean activation on key cells minus its largest mean on any other entity, wall or floor; colours
     merged) loses more than half of its activation at a key's cells when that key is removed from the level.
     Per confirmation level with a key: the latent read at the key's cells of the base level (first key in the
     level's colour order, the ``key_removed`` pair family), on the level and on the same level without that
     key, the difference divided by the
     latent's mean activation on keys over the selection levels; paired bootstrap.  Threshold 0.5: halfway
     between a latent that ignores the key (0) and one that reads nothing but the key (1).  The middle block
     rather than the last: its 16x16 map gives a key one or two map cells of its own; at 8x8 a key shares its cell
     with walls.
SE2-SE5. Dead and dense latents of each SAE (middle and last conv block), counted on the first frames of 512
     confirmation levels: a latent is dead when it is never active (> 0) anywhere on those frames, dense when it
     is active somewhere on more than half of them.  The unit is the latent (128 per SAE; exact Clopper-Pearson
     interval over latents; the report's n counts latents).
     Dead (SE2, SE3): fewer than 20% of the latents.  The study above found ~80% dead and called it a limitation;
     20% is a quarter of that, a dictionary that keeps at least four in five of its latents.
     Dense (SE4, SE5): fewer than 10% of the latents.  A latent that fires on most frames acts as a bias rather
     than a sparse feature; SAE practice treats dense latents as a small minority, and 10% is that minority.
"""

import numpy as np
import pytest

from harness import render, render_hires
from harness.lenses.features import entity_profiles, pair_readings
from harness.heist.pairs import key_removed
from harness.lenses.sae import DEAD_FREQUENCY, firing_rates, sae_latents, spliced
from harness.stats import Estimate, paired_bootstrap, proportion

ENTITY_SITE = "mid_conv"
BLOCKS = {"mid_conv": "middle conv block", "last_conv": "last conv block"}
SELECTION_LEVELS = 128
MIN_DROP_SHARE = 0.5
FRAMES = 512
MAX_DEAD = 0.20
MAX_DENSE = 0.10
DENSE_FRAME_SHARE = 0.5


def has_key(level):
    return bool(level.keys)


# The science, as plain functions the tests below call with the policy under test and its SAEs.


def select_key_latent(policy, sae, levels) -> tuple[int, float]:
    """The latent most selective for keys on ``levels`` (the first, on ties) and its mean activation on keys."""
    with spliced(policy, sae):
        profiles = entity_profiles(policy, levels, site=sae.latent_site, kinds=True)
    latent = int(np.argmax(profiles.selectivity("key")))
    return latent, float(profiles.mean[latent, profiles.entities.index("key")])


def removed_key(pair) -> str:
    """The name of the key a ``key_removed`` pair removes, e.g. "blue key"."""
    (colour,) = set(pair.base.keys) - set(pair.edited.keys)
    return f"{colour} key"


def removal_drop_share(policy, sae, pairs, latent: int, key_mean: float) -> np.ndarray:
    """Per pair: ``latent`` read at the removed key's cells of the base level, on the base level minus on the
    level without the key, over ``key_mean``."""
    if not key_mean > 0:
        raise ValueError(f"latent {latent} has mean {key_mean} on keys; it cannot lose a share of it")
    with spliced(policy, sae):
        clean, edited = pair_readings(policy, [p.base for p in pairs], [p.edited for p in pairs], channels=(latent,),
                                      site=sae.latent_site, entity=[removed_key(p) for p in pairs])
    return (clean - edited)[:, 0] / key_mean


def latent_fractions(policy, sae, frames, *, confidence: float) -> tuple[Estimate, Estimate]:
    """The fractions of the SAE's latents that are dead (never active on ``frames``) and dense (active on more
    than DENSE_FRAME_SHARE of them), each with its exact interval over latents."""
    frame_rates = firing_rates(sae_latents(policy, sae, frames, reduce="max")).numpy()
    return (proportion(frame_rates <= DEAD_FREQUENCY, unit="latents", confidence=confidence),
            proportion(frame_rates > DENSE_FRAME_SHARE, unit="latents", confidence=confidence))


# Selection (selection seeds only), then the claims (confirmation seeds).


@pytest.fixture(scope="module")
def key_latent(policy, saes, level_sampler):
    """The selection step: :func:`select_key_latent` on the selection seeds."""
    return select_key_latent(policy, saes[ENTITY_SITE], level_sampler("selection", SELECTION_LEVELS, where=has_key))


@pytest.mark.claim(
    id="SE1-conv3a-key-latent-removal",
    statement=f"The middle conv block's SAE latent most selective for keys on the selection seeds loses more than "
              f"{MIN_DROP_SHARE:.0%} of its mean key activation at a key's cells when that key is removed.",
    sites=[f"{ENTITY_SITE}.sae.latents:selected"],
    metric="latent at the key's cells, level minus key removed, over its selection mean on keys",
    lower_bound_above=MIN_DROP_SHARE, seeds="confirmation", selected_on="selection", n=128, unit="pairs",
    family="exploratory", saes=[ENTITY_SITE],
)
def test_key_latent_removal(claim, policy, saes, sample_levels, key_latent):
    latent, key_mean = key_latent
    claim.select(latent=latent, key_mean=key_mean)
    pairs = [key_removed(level) for level in sample_levels(where=has_key)]
    claim.attach(render_hires([pairs[0].base])[0], f"a confirmation level; latent {latent} is read at its "
                                                   f"{removed_key(pairs[0])}")
    claim.attach(render_hires([pairs[0].edited])[0], f"the same level, {pairs[0].edit}")
    drops = removal_drop_share(policy, saes[ENTITY_SITE], pairs, latent, key_mean)
    claim.check(paired_bootstrap(drops, unit="pairs", confidence=claim.confidence))


def _fraction_claim(site: str, kind: str, claim_id: str, bound: float, rule: str):
    return pytest.mark.claim(
        id=claim_id, statement=f"Fewer than {bound:.0%} of the {BLOCKS[site]}'s SAE's latents are {kind}: {rule}.",
        sites=[f"{site}.sae.latents"], metric=f"fraction of the {BLOCKS[site]}'s SAE's latents that are {kind}",
        upper_bound_below=bound, seeds="confirmation", n=128, unit="latents", saes=[site])


DEAD_RULE = f"never active on the first frames of {FRAMES} confirmation levels"
DENSE_RULE = f"active on more than {DENSE_FRAME_SHARE:.0%} of the first frames of {FRAMES} confirmation levels"


def _check_fraction(claim, policy, sae, sample_levels, kind: str) -> None:
    dead, dense = latent_fractions(policy, sae, render(sample_levels(n=FRAMES)), confidence=claim.confidence)
    claim.check(dead if kind == "dead" else dense)


@_fraction_claim("mid_conv", "dead", "SE2-conv3a-sae-dead-latents", MAX_DEAD, DEAD_RULE)
def test_mid_conv_dead_latents(claim, policy, saes, sample_levels):
    _check_fraction(claim, policy, saes["mid_conv"], sample_levels, "dead")


@_fraction_claim("last_conv", "dead", "SE3-conv4a-sae-dead-latents", MAX_DEAD, DEAD_RULE)
def test_last_conv_dead_latents(claim, policy, saes, sample_levels):
    _check_fraction(claim, policy, saes["last_conv"], sample_levels, "dead")


@_fraction_claim("mid_conv", "dense", "SE4-conv3a-sae-dense-latents", MAX_DENSE, DENSE_RULE)
def test_mid_conv_dense_latents(claim, policy, saes, sample_levels):
    _check_fraction(claim, policy, saes["mid_conv"], sample_levels, "dense")


@_fraction_claim("last_conv", "dense", "SE5-conv4a-sae-dense-latents", MAX_DENSE, DENSE_RULE)
def test_last_conv_dense_latents(claim, policy, saes, sample_levels):
    _check_fraction(claim, policy, saes["last_conv"], sample_levels, "dense")
