"""Calibration of the shipped claims on planted mechanisms (docs/statistics.md item 9): the claims' own functions
(``claims/test_channels.py``, ``claims/test_probes.py``) run on planted and null models of
:mod:`harness.policy.planted`, each result decided by ``Claim.check`` at ``ALPHA`` as a family of one.
Imported by tests/test_calibration.py and bench/bench_calibration.py; it lives outside the library because it
imports the claim suite.

Templates (:data:`TEMPLATES`: the claims' own declarations on the ``calibration`` seeds, and loose variants)
--------------------------------------------------------------------------------------------------------------
* ``CH1``: the conv4a channel ranked first on the selection levels (:func:`claims.test_channels.rank_up_channels`)
  lowers P(UP) on other levels beyond the other 31 (:func:`~claims.test_channels.excess_drop`, betting interval);
  ``CH1 bound 0`` the same at bound 0;
* ``CH3``: the top three channels against random sets of three
  (:func:`~claims.test_channels.group_drop_against_random_sets`); ``CH3 bound 0`` the same at bound 0, where only
  the p-value decides; ``RANDOM_GROUP`` a random group instead of the top three (a null of the permutation test);
* ``McNemar``: zeroing the selected channel lowers the rate of argmax = UP (exact McNemar, betting interval below
  0), B2's paired binary design on a channel (no shipped claim runs it on a network);
* ``P1``: the claim's probe (:func:`claims.test_probes.probe_accuracy`) on the claim's mid-episode oracle states
  (:func:`~claims.test_probes.states_with_targets`); ``P1 bound 0.25`` the same above chance.

The channel templates run on the start states of target-up levels, as the channel claims do, with the claims' tie
order.  A claim fixes one draw of its null (random channel sets, shuffled labels: seed 1 and 0); a repetition draws
a fresh one with its own seed, as a permutation test keeps alpha over the draw of its null as well (with one fixed
draw, a random group beats a null that happens to miss a dominant channel in every repetition).

Planted A's flag is "the target lies up", planted B's code the target's quadrant.  Null models: the architecture
re-initialised, the planted model with its parameters permuted, and for P1 also planted B probed for labels
permuted across states (the true accuracy is then chance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from claims import test_behaviour as behaviour
from claims import test_channels as channels
from claims import test_probes as probes
from claims import test_sae as sae_claims
from harness.claims.calibration import Outcome, decide, declaration_of
from harness.errors import SamplingError, StatisticsError
from harness.heist.actions import Action
from harness.heist.sampling import sample_levels
from harness.policy.interventions import Zero
from harness.policy.planted import Sample, TabledCNN, quadrant_code_model, random_model, shuffled, up_channel_model
from harness.policy.runner import run
from harness.policy.sites import Site
from harness.stats import PROBABILITY_CHANGE, Estimate, bounded_mean, mcnemar_exact, random_channel_sets

ALPHA = 0.05
"""Family alpha of every calibrated claim (a family of one)."""
CONFIDENCE = 1 - ALPHA
"""The confidence ``Claim.check`` then asks of a result."""


def _template(test: Callable, **changes: object) -> dict:
    """The claim's declaration on the calibration seeds; exploratory, as a confirmatory claim must be tested on
    "confirmation" (the family does not change a verdict taken alone)."""
    return {**declaration_of(test), "seeds": "calibration", "family": "exploratory", **changes}


TEMPLATES = {
    "CH1": _template(channels.test_up_channel_ablation),
    "CH1 bound 0": _template(channels.test_up_channel_ablation, lower_bound_above=0.0),
    "CH3": _template(channels.test_up_channel_group),
    "CH3 bound 0": _template(channels.test_up_channel_group, lower_bound_above=0.0),
    "McNemar": dict(id="McNemar-up-channel", seeds="calibration", family="exploratory", sites=["conv4a:selected"],
                    upper_bound_below=0.0, n=256,
                    statement="Zeroing the selected conv4a channel lowers the rate of choosing UP on target-up levels.",
                    metric="change in the rate of argmax UP (ablated - clean)"),
    "P1": _template(probes.test_target_quadrant_probe),
    "P1 bound 0.25": _template(probes.test_target_quadrant_probe, lower_bound_above=0.25),
}
"""Each template's declaration, n included: the claim's own, and with the loosest sensible bound (0, and chance for
four classes), where only the interval or the permutation p-value stands between a null model and "supported".
McNemar's n is B2's (256), the paired binary design it stands for."""
RANDOM_GROUP = "CH3 bound 0, random group"
"""CH3 at bound 0 for a random group of channels instead of the selected one: a null of its permutation test."""


REFUSED = "refused"
"""The verdict of a repetition whose statistic refused its sample (too small for its skewness, no spread): no
interval, so not supported; it counts against power and never as a false positive."""


def _verdict(template: str, result: Estimate | None, n: int, **selected: object) -> str:
    if result is None:
        return REFUSED
    return decide({**TEMPLATES[template], "n": n}, result, alpha=ALPHA, selected=selected)


def _unless_refused(compute: Callable[[], Estimate]) -> Estimate | None:
    try:
        return compute()
    except StatisticsError:
        return None


SIZED_CHANNEL_TEMPLATES = ("CH1", "CH3", "McNemar")
"""The channel templates that set how many levels they are tested on (the bound-0 variants and ``RANDOM_GROUP``
share their claim's)."""


def tested_n(template: str, n: int | None = None) -> int:
    """The levels ``template`` is tested on: ``n`` where given, else the claim's own declared n (a claim's power
    depends on its n: the betting interval cannot tell CH3's planted drop of 0.096 from its bound 0.02 at n=64)."""
    return TEMPLATES[template]["n"] if n is None else n


def channel_verdicts(model: TabledCNN, frames: np.ndarray, *, selection: int, n: int | None, null_sets: int,
                     seed: int, random_group_seed: int | None = None) -> tuple[dict[str, str], list[int]]:
    """CH1, CH3 and McNemar: channels ranked on the first ``selection`` target-up ``frames``, each claim tested on
    the next :func:`tested_n` of them; CH3's random sets drawn with ``seed``.  With ``random_group_seed``, also
    ``RANDOM_GROUP`` for a group drawn with that seed.  Returns the verdicts and the ranking."""
    sizes = {template: tested_n(template, n) for template in SIZED_CHANNEL_TEMPLATES}
    if len(frames) < selection + max(sizes.values()):
        raise SamplingError(f"{len(frames)} target-up frames given; {selection + max(sizes.values())} are needed")
    confirm = {template: frames[selection:selection + size] for template, size in sizes.items()}
    ranked, _ = channels.rank_up_channels(model, frames[:selection])
    chosen = ranked[0]
    group = ranked[:channels.GROUP_SIZE]

    def against_random_sets(group) -> Estimate | None:
        return _unless_refused(lambda: channels.group_drop_against_random_sets(
            model, confirm["CH3"], group, confidence=CONFIDENCE, null_sets=null_sets, seed=seed))

    drops = channels.excess_drop(model, confirm["CH1"], chosen)
    excess = bounded_mean(drops, bounds=PROBABILITY_CHANGE, confidence=CONFIDENCE)
    top = against_random_sets(group)
    clean = run(model, confirm["McNemar"]).actions_argmax == Action.UP
    ablated = run(model, confirm["McNemar"],
                  interventions=[Zero(site=Site(channels.SITE, channels=(chosen,)))]).actions_argmax
    fewer_up = mcnemar_exact(clean.numpy(), (ablated == Action.UP).numpy(), confidence=CONFIDENCE)
    verdicts = {"CH1": _verdict("CH1", excess, sizes["CH1"], channel=chosen),
                "CH1 bound 0": _verdict("CH1 bound 0", excess, sizes["CH1"], channel=chosen),
                "CH3": _verdict("CH3", top, sizes["CH3"], channels=group),
                "CH3 bound 0": _verdict("CH3 bound 0", top, sizes["CH3"], channels=group),
                "McNemar": _verdict("McNemar", fewer_up, sizes["McNemar"])}
    if random_group_seed is not None:
        count = channels.channel_count(model, frames)
        random_group = [int(c) for c in random_channel_sets(count, channels.GROUP_SIZE, 1, seed=random_group_seed)[0]]
        verdicts[RANDOM_GROUP] = _verdict("CH3 bound 0", against_random_sets(random_group), sizes["CH3"],
                                          channels=random_group)
    return verdicts, ranked


def channel_truths(model: TabledCNN, frames: np.ndarray, ranked: list[int], *, null_sets: int,
                   seed: int) -> dict[str, bool]:
    """Whether each channel template's claim is true of ``model`` for the channels ranked on the selection levels,
    measured on many fresh target-up ``frames`` (a large sample standing in for the population): CH1 its mean
    excess drop above the bound; CH3 its group's mean drop above the bound and above the mean of random sets;
    McNemar the argmax-UP rate lower with the channel zeroed.  Selection makes these claims true of some null
    networks (a permuted network can have a channel that truly lowers P(UP) by 0.02 more than the others), and
    "supported" is a false positive only where the claim is false."""
    chosen = ranked[0]
    excess = float(channels.excess_drop(model, frames, chosen).mean())
    group_drop = float(channels.up_drops(model, frames, ranked[:channels.GROUP_SIZE]).mean())
    random_sets = float(channels.random_group_drops(model, frames, null_sets=null_sets, seed=seed).mean())
    zeroed = [Zero(site=Site(channels.SITE, channels=(chosen,)))]
    rate_change = float((run(model, frames, interventions=zeroed).actions_argmax == Action.UP).float().mean()
                        - (run(model, frames).actions_argmax == Action.UP).float().mean())
    truths = {"McNemar": rate_change < 0}
    for template in ("CH1", "CH1 bound 0"):
        truths[template] = excess > TEMPLATES[template]["lower_bound_above"]
    for template in ("CH3", "CH3 bound 0"):
        truths[template] = group_drop > max(TEMPLATES[template]["lower_bound_above"], random_sets)
    return truths


def probe_verdicts(model: TabledCNN, frames: np.ndarray, quadrants: np.ndarray, *, train: int, n: int | None,
                   shuffles: int, seed: int) -> dict[str, str]:
    """P1 (and P1 at chance): the claim's probe fit on the first ``train`` frames, tested on the next
    :func:`tested_n`, against ``shuffles`` label shuffles drawn with ``seed``."""
    n = tested_n("P1", n)
    if len(frames) < train + n:
        raise SamplingError(f"{len(frames)} frames given; {train + n} are needed")
    result = probes.probe_accuracy(model, frames[:train], quadrants[:train], frames[train:train + n],
                                   quadrants[train:train + n], confidence=CONFIDENCE, shuffles=shuffles, seed=seed)
    probe = f"ridge l2={probes.L2:g}, fit on {train} calibration states"
    return {template: _verdict(template, result, n, probe=probe) for template in ("P1", "P1 bound 0.25")}


# ------------------------------------------------------------ statistics at the claims' own level (items 12, 13)
#
# The cheap part, run by the default tests: each statistic a verdict uses, at the claims' level alpha/m and n, on
# populations shaped like the claims' own data, with the population's mean placed exactly at the claim's bound
# (the hardest null).  The supported rate there is the claim's size; it must not reach twice nominal.

FAMILY = 16
"""m of the shipped confirmatory family (B1-B3, CH1-CH3, D1, D2, P1, PR1, R2, S1, SE2-SE5)."""
CLAIM_CONFIDENCE = 1 - ALPHA / FAMILY
"""The confidence a claim's interval is computed at: 99.6875%."""
NOMINAL_SIZE = ALPHA / FAMILY / 2
"""A one-sided bound's nominal false-positive rate at CLAIM_CONFIDENCE: 0.15625%."""

PER_LEVEL_VALUES = {
    "CH1": (
        "0.002797 0 0.2373 -0.004957 0 0 0.09127 0.02057 0.006863 0.6815 0.0008925 0.003121 0.001662 0.1943 0.000429 0 0 "
        "0 -0.0003742 0.001613 0.0001704 0.00362 0.3963 0.0006318 0 0.003989 0 0.0003365 0 0 0.004492 0.00104 0 0 "
        "0.000312 0.000154 0.0008522 -0.005137 -0.0002946 0.7264 0.08641 0.004783 -0.001875 0 0.06407 0.001331 -0.0001776 "
        "0.002162 -0.001782 0.2936 0 0.04012 0.002764 0.2682 -0.000962 0.3761 -0.0001161 0.00231 0.2242 -0.00011 0.07737 "
        "0.003812 0.000497 0 0.06191 0.01283 0.005994 0 0 0.1344 0.06543 0.02456 0.009464 0.002246 0.001687 -0.002781 0 0 "
        "0 0 0.007586 0.0002611 0.01091 0.001271 -0.001274 0.1861 0.1228 0.001508 -0.004262 0.000241 0.4149 0.002512 0 "
        "0.5484 0 0.09439 0.0002675 0 0.01444 0.01067 0.2075 0.0009156 0 0.007342 0 0 0.00206 -0.0002314 0 0.0452 0 0.076 "
        "0.09639 0 0 0 0.5495 0.002441 0.0001158 -0.03428 0 -0.004497 0.0003419 -0.0009073 0 -0.03036 -0.0001836 0.03793 "
        "0.1898 0.04158 -0.0002878 0.01973 0.008049 0.2884 0.4207 0.0001871 0.202 0.0008322 0.004588 -0.02077 -0.02194 "
        "0.003173 0 0 0 0.6035 -0.003767 0.05144 0 0 -0.001775 0 0.1538 0.0004662 0.04803 0.006681 -0.0004898 0.002599 "
        "0.01408 0 0 0.009829 0.0002731 0 0.05855 0.0729 0.0005056 0.006654 0.09953 0 0.001028 0.00755 0.002093 0.005827 "
        "0 0.001217 0 0.09512 0.2013 0.003594 0.2669 0 -0.01963 0 0.5307 0.03988 0.000122 0.0004607 0.001805 0.003944 "
        "0.001451 -0.05808 0 0.0003296 -0.1712 0.003979 0 0 0.03974 -0.07441 0.0009483 0.00608 0.001594 0.0005388 "
        "0.0002247 0.002517 0.3157 0.001087 -0.1531 0.0001281 0 0.06954 0.001164 0.0001167 -0.01094 0.001792 0.01559 "
        "0.7017 0 -0.001376 0.02868 0.4954 0 0 -0.0001545 0.09382 0.001874 0 0.0004116 0.1927 0.000104 -0.001541 0 "
        "0.002856 -0.0004623 -0.001 0.004513 0.0007021 0.05622 0.07527 0.005512 0.0001679 0.008766 0.0007182 0.00029 "
        "0.044 0.03899 0.06852 0.0003541 0 0 0.2761 0.003332 0.249 -0.0007792 0.2635 "
    ),
    "CH3": (
        "0.6115 0.01691 0.3998 0.2686 0.05011 0.007501 0.907 0.6341 0.6229 0.682 0.7114 0.6062 0.5632 0.9768 0.3056 "
        "0.01355 0.001569 0.02433 0.2563 0.1052 0.004603 0.6341 0.88 0.01579 0.02415 0.6835 0.002518 0.4411 0.03042 "
        "0.0002027 0.6237 0.04538 0.002527 0.002374 0.239 0.3414 0.01552 0.8641 0.002191 0.8275 0.9554 0.4962 0.5078 "
        "0.001736 0.9456 0.9884 0.652 0.02665 0.6081 0.9863 0.03973 0.6457 0.643 0.2123 0.01861 -0.02415 0.0249 0.0004624 "
        "0.8825 0.02858 0.9856 0.9338 0.07016 0.0007311 0.9192 0.9868 0.9199 0.0008627 0.0001661 0.9838 0.1955 0.6751 "
        "0.8707 0.1017 0.05517 0.8228 0.005149 0.001376 0.937 0.003789 0.9408 0.00448 0.313 0.007093 0.4918 0.9139 0.4004 "
        "0.001457 0.1227 0.00122 0.9507 0.3727 0.0001746 0.5749 0.02614 0.972 0.0368 0.0002409 0.5936 0.5433 0.7011 "
        "0.04015 0.002927 0.08487 0 0.008881 0.0272 0.07386 0.003499 0.8614 0.001143 0.0009114 0.6858 0.05721 0.0395 "
        "0.2077 0.9816 0.02417 0.0007625 0.9416 0.02973 0.005355 0.02923 0.1911 0.0004163 0.9734 0.02728 0.2068 0.8232 "
        "0.9352 0.0132 0.2298 0.02453 0.9292 0.9403 0.09477 0.06018 0.05716 0.008766 0.9794 0.007198 0.9235 0.3302 "
        "0.008208 0.08747 0.9848 0.05849 0.1534 0.0334 0.002251 0.4071 0.001339 0.09148 0.002137 0.8319 0.9107 0.001474 "
        "0.5644 0.02525 0.0004457 0.006106 0.07645 0.2027 0.01286 0.03058 0.9774 0.03943 0.03209 0.8446 0.0112 0.06966 "
        "0.259 0.008676 0.0184 0.01634 0.9799 0.001006 0.9524 0.1144 0.1389 0.9767 0.01049 0.6537 0.001546 0.9765 0.07282 "
        "0 0.02676 0.9762 0.7586 0.9203 0.966 0.005596 0.008074 0.853 0.01883 0.0001025 0.04908 0.1655 0.965 0.296 "
        "0.01303 0.007724 0.01644 0.006263 0.03957 0.259 0.01587 0.7217 0.01165 0.0005065 0.9567 0.06347 0.04575 0.9834 "
        "0.03448 0.057 0.1417 0.07113 0 0.6849 0.464 0.06079 0.001253 0.01858 0.9709 0.1475 0.009623 0.006641 0.8121 "
        "0.03376 0.9835 0.005633 0.6497 0.03109 0.1831 0.2072 0.099 0.8801 0.2589 0.08822 0.0004402 0.01086 0.8759 "
        "0.0001956 0.9486 0.9054 0.1873 0.002363 0.006551 0 0.9439 0.2933 0.9368 0.9677 0.2004 "
    ),
    "S2": (
        "0 0 0 0 0 0 -0.2225 0 0.002649 0.2937 0.00547 0 -0.001828 0.0002392 0.003497 0.003257 0 0 0 0.001778 0 "
        "-0.0007887 0 -0.01774 0.2227 0 0 0.06245 0 0.02974 -0.0004786 0.0002171 0 0.2412 0.06039 -0.000232 0 0.4239 "
        "0.0271 0 0 0 -0.0002109 0 0.001781 -0.0004915 0 0.2691 0 0 0.007486 0.0001019 0.0004885 0 0.005616 0 0.01208 "
        "0.0001135 0 0 0 -0.0001355 -0.002858 -0.0006493 0.6211 0.5781 0 0 0.01286 -0.00134 0 0.01011 -0.8336 0.1383 "
        "0.1151 0 -0.003321 0 0.6296 0 0.4642 0 0 0 0 0 -0.000197 0 0 0.03713 0.02329 0 0 0.001861 -0.05827 0 0 0.1448 "
        "0.005008 0 0 0 0.07026 0.0001031 0 -0.0003186 0.02098 -0.0493 0.01462 0.001333 -0.001941 0 0.8933 0 0 0 0.03874 "
        "0 0 0.1174 0 0.7523 0 0 0 -0.0001037 -0.0002059 0.0002137 0 0 0.0009429 -0.000438 0 0.5296 0 0.01305 0 0.4219 0 "
        "0 0.000919 -0.08405 0.0005081 0.0006478 0 -0.0003419 0 0.02328 0.0002521 0 0.006885 0.08707 -0.1714 0.002837 0 "
        "-0.04239 0.000197 0.3322 0.0007362 0 0.002707 0 0 0.000169 0.1139 0.006299 -0.01922 0.004474 0 0 0.07296 0 "
        "-0.0304 0.0007608 0.0006966 0.8804 -0.0003896 0 0 0 0 0.02427 0 -0.000249 0 0.004994 0 0 0.0006858 0.004411 "
        "-0.01165 0.07192 0 0 -0.000225 0 0.1899 0 -0.01071 0 0.01206 0 0.007279 -0.0003333 -0.04734 0.002299 0.0002863 "
        "-0.06012 0 0.004958 -0.08932 0 -0.0032 0.3034 0.0003523 0.2437 0.0002819 0 0 0 -0.001787 0 0 0.001261 0 0 0 "
        "0.007587 -0.002785 0.1557 0 -0.0174 0.0193 -0.0001742 0.09173 -0.0009003 0.0002776 0 0 0 -0.002788 0 0 0.05658 "
        "0.03059 0 -0.03677 -0.00853 0.03566 0.004488 0 0.0007942 -0.0002127 -0.001717 0 0 "
    ),
}
"""Per-level values of the shipped claims on their confirmation levels (sampling seed 0, shipped policy and SAE,
CH1's channel 6, CH3's group 6, 17, 5, S2's latent 15), to 4 significant digits: CH1's excess drop in P(UP)
(skewness 3.1), CH3's group drop (0.7), S2's drop in P(oracle move) (2.5).  Regenerate with
``python bench/bench_calibration.py --per-level-values OUT.npz``."""


def claim_values(name: str) -> np.ndarray:
    """The per-level values of shipped claim ``name`` (:data:`PER_LEVEL_VALUES`)."""
    return np.array("".join(PER_LEVEL_VALUES[name]).split(), dtype=float)


def at_bound(values: np.ndarray, bound: float) -> np.ndarray:
    """``values`` shifted so that their mean is exactly ``bound``: a null placed on the bound."""
    return values - values.mean() + bound


MEAN_CLAIMS = {"CH1": (channels.MIN_EXCESS_DROP, 1024), "CH3": (channels.MIN_GROUP_DROP, 256),
               "S2": (sae_claims.MIN_LATENT_DROP, 512)}
"""Claims whose verdict is the betting interval of a mean change of probability (within [-1, 1]): their lower bound
and n."""
RATE_CLAIMS = {"S1": (sae_claims.MIN_AGREEMENT, 512), "P1": (probes.MIN_ACCURACY, 512)}
"""Claims whose verdict is a Clopper-Pearson interval of a rate: their lower bound and n."""
SEQUENTIAL_CLAIMS = {"B1": (behaviour.MIN_SUCCESS, 512), "B3": (behaviour.MIN_IN_ORDER, 256)}
"""Claims whose verdict is a rate tested after every level (a confidence sequence): their lower bound and most n."""
B2 = (behaviour.GEM_MOVE_MARGIN, 256)
"""B2's equivalence margin and n (exact McNemar with the betting interval of the paired difference)."""


@dataclass(frozen=True, kw_only=True)
class Design:
    """Sizes of one repetition: levels to select channels on, the claims' n, null draws, probe training states."""

    selection: int = 32
    n: int | None = None
    """Levels each claim is tested on; None: each claim's own declared n (:func:`tested_n`)."""
    null_sets: int = 19
    train: int = 128
    shuffles: int = 19
    random_group: bool = True
    """Also decide ``RANDOM_GROUP`` (one more null baseline per channel model)."""
    truth: int = 256
    """Fresh target-up levels on which the channel claims' truth is measured for the null networks."""


PLANTED = "planted"
CHANNEL_MODELS = (PLANTED, "re-initialised", "shuffled")
"""Planted A, a fresh CustomCNN, planted A with its parameters permuted."""
PROBE_MODELS = (PLANTED, "re-initialised", "shuffled", "labels permuted")
"""Planted B, a fresh CustomCNN, that network with its parameters permuted, planted B probed for permuted labels."""
CHANNEL_TEMPLATES = ("CH1", "CH1 bound 0", "CH3", "CH3 bound 0", "McNemar", RANDOM_GROUP)
PROBE_TEMPLATES = ("P1", "P1 bound 0.25")
CELLS = tuple((t, m) for t in CHANNEL_TEMPLATES for m in CHANNEL_MODELS) + tuple(
    (t, m) for t in PROBE_TEMPLATES for m in PROBE_MODELS)
"""Every (template, model) pair a repetition decides."""


def true_by_construction(template: str, model: str) -> bool:
    """Whether the claim is true by construction: on the planted model, except for a random group of channels.
    The channel claims' truth on null networks is measured instead (:func:`channel_truths`); P1's is taken from
    the construction (no code is planted in them; for permuted labels there is none to find)."""
    return model == PLANTED and template != RANDOM_GROUP


MEASURED_TRUTH = ("CH1", "CH1 bound 0", "CH3", "CH3 bound 0", "McNemar")
"""Templates whose truth on a null network is measured (:func:`channel_truths`), every channel template: at bound 0
a random network's selected channel truly lowers P(UP) a little, and zeroing one may truly change the argmax; at the
declared bounds a permuted planted network can still hold a channel that lowers P(UP) by 0.01 more than the others
(0.023 in repetition 0: the planted weights are moved, not removed), which CH1 at its own n=1024 then rightly
supports."""
_TRUTH_SEEDS = 1_000_000
"""Offset of the seeds that draw the truth levels (apart from every repetition's own)."""
_GROUP_SEEDS = 2_000_000
"""Offset of the seeds that draw ``RANDOM_GROUP``'s group (apart from the null sets it is compared with: drawn with
the same seed, the group would be the first null set, tie with it, and never reach p <= alpha)."""


def target_up_sample(n: int, *, seed: int, trunk_seed: int) -> tuple[Sample, np.ndarray]:
    """``n`` target-up calibration levels (start states, as the channel claims take them) drawn with ``seed``,
    tabled on the trunk of ``trunk_seed``, and per level whether the target lies up (planted A's flag)."""
    levels = sample_levels("calibration", n, seed=seed, where=channels.target_is_up)
    return Sample.of(levels, trunk_seed=trunk_seed), np.array([channels.target_is_up(level) for level in levels])


def probe_sample(n: int, *, seed: int) -> tuple[Sample, np.ndarray]:
    """``n`` mid-episode states of calibration levels drawn with ``seed``, by P1's own sampler, tabled on the trunk
    of ``seed``, and their target quadrants."""
    states, quadrants = probes.states_with_targets(sample_levels("calibration", n + probes.OVERSAMPLE, seed=seed),
                                                   seed=seed)
    if len(states) < n:
        raise SamplingError(f"only {len(states)} of {n + probes.OVERSAMPLE} calibration states had a reachable "
                            f"target; {n} are needed")
    return Sample.of(states[:n], trunk_seed=seed), quadrants[:n]


def channel_model(name: str, sample: Sample, up: np.ndarray, *, seed: int) -> TabledCNN:
    """One of CHANNEL_MODELS on ``sample``: planted A with flag ``up``, the re-initialised network, or planted A
    with its parameters permuted."""
    if name == "re-initialised":
        return random_model(sample, start="conv4a", seed=seed)
    planted = up_channel_model(sample, flag=up, seed=seed)
    return planted if name == PLANTED else shuffled(planted, seed=seed)


def repetition(rep: int, design: Design) -> dict[tuple[str, str], Outcome]:
    """Every template on every model, on fresh levels (seeded by ``rep``): (template, model) -> outcome.

    A model shares its seed with its sample's trunk, so "re-initialised" is exactly a fresh orthogonal-init
    CustomCNN and "planted" that network with the mechanism wired in."""
    outcomes: dict[tuple[str, str], Outcome] = {}
    seed = 2 * rep
    confirm = max(tested_n(template, design.n) for template in SIZED_CHANNEL_TEMPLATES)
    sample, up = target_up_sample(design.selection + confirm, seed=seed, trunk_seed=seed)
    truth_sample, truth_up = target_up_sample(design.truth, seed=_TRUTH_SEEDS + seed, trunk_seed=seed)
    group_seed = _GROUP_SEEDS + seed if design.random_group else None
    for name in CHANNEL_MODELS:
        found, ranked = channel_verdicts(channel_model(name, sample, up, seed=seed), sample.frames,
                                         selection=design.selection, n=design.n, null_sets=design.null_sets,
                                         seed=seed, random_group_seed=group_seed)
        truths = {} if name == PLANTED else channel_truths(channel_model(name, truth_sample, truth_up, seed=seed),
                                                           truth_sample.frames, ranked, null_sets=design.null_sets,
                                                           seed=seed)
        outcomes |= {(template, name): Outcome(verdict, truths[template] if template in MEASURED_TRUTH and truths
                                               else true_by_construction(template, name))
                     for template, verdict in found.items()}
    seed = 2 * rep + 1
    sample, quadrants = probe_sample(design.train + tested_n("P1", design.n), seed=seed)
    planted = quadrant_code_model(sample, quadrant=quadrants, seed=seed)
    random = random_model(sample, start="conv3a", seed=seed)
    permuted = np.random.default_rng(seed).permutation(quadrants)
    models = {PLANTED: (planted, quadrants), "re-initialised": (random, quadrants),
              "shuffled": (shuffled(random, seed=seed), quadrants), "labels permuted": (planted, permuted)}
    for name in PROBE_MODELS:
        model, labels = models[name]
        found = probe_verdicts(model, sample.frames, labels, train=design.train, n=design.n, shuffles=design.shuffles,
                               seed=seed)
        outcomes |= {(template, name): Outcome(verdict, true_by_construction(template, name))
                     for template, verdict in found.items()}
    return outcomes


def calibrate(reps: range, design: Design, *,
              progress: Callable[[int], None] | None = None) -> dict[tuple[str, str], list[Outcome]]:
    """:func:`repetition` for each of ``reps``: (template, model) -> the outcomes, one per repetition."""
    cells: dict[tuple[str, str], list[Outcome]] = {}
    for rep in reps:
        for cell, outcome in repetition(rep, design).items():
            cells.setdefault(cell, []).append(outcome)
        if progress is not None:
            progress(rep)
    return cells
