"""Sparse autoencoders (SAEs) on a policy's conv sites, spliced into the policy as sites like any other.

Architectures (:mod:`~harness.lenses.sae.model`)
------------------------------------------------
Both encode every spatial position on its own with 1x1 convolutions: ``conv_enc`` maps the site's C channels to
``expansion * C`` latents, ``conv_dec`` maps them back, so an activation ``(N, C, H, W)`` has latents
``(N, L, H, W)``.  A flat site such as ``fc1`` (rows ``(N, C)``) works the same, one position per frame.

- :class:`ConvSAE` (the researcher's): ReLU latents, trained with the penalty ``l1 * sum of latents``;
- :class:`TopKSAE`: per position only the ``k`` largest pre-activations pass (then a ReLU); no penalty.

Inputs are multiplied by ``config.scale`` before encoding and reconstructions divided by it, so latents live in
normalised units (the trainer picks the scale that makes the mean squared norm per position C).

Splicing (:mod:`~harness.lenses.sae.splice`)
--------------------------------------------
``with spliced(policy, sae, error_term=...)`` registers the SAE under the policy and routes the site's output
through it; its hook points are then sites that :func:`harness.policy.runner.run` interventions reach:
``{site}.sae.latents`` and, with ``error_term=True``, ``{site}.sae.error`` (``x - decode(encode(x))`` for the
unedited latents, added back so the spliced policy computes the clean one up to float rounding and only edits of
the latents change it).  Without the error term the policy sees the plain reconstruction.

Checkpoints (:mod:`~harness.lenses.sae.formats`)
------------------------------------------------
A dict whose ``model_state_dict`` holds ``conv_enc.{weight,bias}`` and ``conv_dec.{weight,bias}``.  The
researcher's files stop there (other top-level keys are ignored): they load as a :class:`ConvSAE` with scale 1
and need the site passed.  Ours add ``config`` (architecture, site, channels, expansion, scale, l1 or k) and
``training`` (command, data, history), all plain types, read with ``torch.load(weights_only=True)``.

Metrics (:mod:`~harness.lenses.sae.metrics`): the latents of a batch of frames (:func:`sae_latents`, maps or
summed per frame), firing rates, L0, FVU, dead and dense fractions, KL, agreement,
latent maxima.  Training SAEs and writing their cards is not part of the library: ``python -m
harness.training.sae train|card`` (:mod:`harness.training.sae`).
"""

from harness.lenses.sae.formats import load_sae, save_sae, training_record
from harness.lenses.sae.metrics import (
    DEAD_FREQUENCY,
    DENSE_FREQUENCY,
    action_agreement,
    dead_fraction,
    dense_fraction,
    firing_rates,
    fraction_of_variance_unexplained,
    kl_divergence,
    l0,
    latent_maxima,
    sae_latents,
)
from harness.lenses.sae.model import (
    ARCHITECTURES,
    SAE,
    ConvSAE,
    ConvSAEConfig,
    SAEConfig,
    TopKSAE,
    TopKSAEConfig,
    build_sae,
)
from harness.lenses.sae.splice import spliced

__all__ = [
    "ARCHITECTURES",
    "DEAD_FREQUENCY",
    "DENSE_FREQUENCY",
    "SAE",
    "ConvSAE",
    "ConvSAEConfig",
    "SAEConfig",
    "TopKSAE",
    "TopKSAEConfig",
    "action_agreement",
    "build_sae",
    "dead_fraction",
    "dense_fraction",
    "firing_rates",
    "fraction_of_variance_unexplained",
    "kl_divergence",
    "l0",
    "latent_maxima",
    "load_sae",
    "sae_latents",
    "save_sae",
    "spliced",
    "training_record",
]
