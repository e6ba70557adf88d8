"""Calibration of the shipped claims on planted mechanisms (docs/statistics.md item 9): the claims' own functions
(``claims/test_channels.py``, ``claims/test_probes.py``) run on planted and null models of
:mod:`harness.policy.planted`, each result decided by ``Claim.check`` at ``ALPHA`` as a family of one.
Imported by tests/test_calibration.py and bench/bench_calibration.py; it lives outside the library because it
imports the claim suite.

Templates (:data:`TEMPLATES`: the claims' own declarations on the ``calibration`` seeds, and loose variants)
--------------------------------------------------------------------------------------------------------------
* ``CH1``: the conv4a channel ranked first on the selection levels (:func:`claims.test_channels.rank_up_channels`)
  lowers P(UP) on other levels beyond the other 31 (:func:`~claims.test_channels.excess_drop`, paired bootstrap);
  ``CH1 bound 0`` the same at bound 0;
* ``CH3``: the top three channels against random sets of three
  (:func:`~claims.test_channels.group_drop_against_random_sets`); ``CH3 bound 0`` the same at bound 0, where only
  the p-value decides; ``RANDOM_GROUP`` a random group instead of the top three (a null of the permutation test);
* ``McNemar``: zeroing the selected channel lowers the rate of argmax = UP (exact McNemar, Newcombe interval below
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

from claims import test_channels as channels
from claims import test_probes as probes
from harness.claims.calibration import Outcome, decide, declaration_of
from harness.errors import SamplingError
from harness.heist.actions import Action
from harness.heist.sampling import sample_levels
from harness.policy.interventions import Zero
from harness.policy.planted import Sample, TabledCNN, quadrant_code_model, random_model, shuffled, up_channel_model
from harness.policy.runner import run
from harness.policy.sites import Site
from harness.stats import Estimate, mcnemar_exact, paired_bootstrap, random_channel_sets

ALPHA = 0.05
"""Family alpha of every calibrated claim (a family of one)."""
CONFIDENCE = 1 - ALPHA
"""The confidence ``Claim.check`` then asks of a result."""


def _template(test: Callable, **changes: object) -> dict:
    return {**declaration_of(test), "seeds": "calibration", **changes}


TEMPLATES = {
    "CH1": _template(channels.test_up_channel_ablation),
    "CH1 bound 0": _template(channels.test_up_channel_ablation, lower_bound_above=0.0),
    "CH3": _template(channels.test_up_channel_group),
    "CH3 bound 0": _template(channels.test_up_channel_group, lower_bound_above=0.0),
    "McNemar": dict(id="McNemar-up-channel", seeds="calibration", sites=["conv4a:selected"], upper_bound_below=0.0,
                    statement="Zeroing the selected conv4a channel lowers the rate of choosing UP on target-up levels.",
                    metric="change in the rate of argmax UP (ablated - clean)"),
    "P1": _template(probes.test_target_quadrant_probe),
    "P1 bound 0.25": _template(probes.test_target_quadrant_probe, lower_bound_above=0.25),
}
"""Each template's declaration (n is the design's): the claim's own, and with the loosest sensible bound (0, and
chance for four classes), where only the interval or the permutation p-value stands between a null model and
"supported"."""
RANDOM_GROUP = "CH3 bound 0, random group"
"""CH3 at bound 0 for a random group of channels instead of the selected one: a null of its permutation test."""


def _verdict(template: str, result: Estimate, n: int, **selected: object) -> str:
    return decide({**TEMPLATES[template], "n": n}, result, alpha=ALPHA, selected=selected)


def channel_verdicts(model: TabledCNN, frames: np.ndarray, *, selection: int, n: int, null_sets: int, seed: int,
                     random_group_seed: int | None = None) -> tuple[dict[str, str], list[int]]:
    """CH1, CH3 and McNemar: channels ranked on the first ``selection`` target-up ``frames``, the claims tested on
    the next ``n``; CH3's random sets drawn with ``seed``.  With ``random_group_seed``, also ``RANDOM_GROUP`` for
    a group drawn with that seed.  Returns the verdicts and the ranking."""
    if len(frames) < selection + n:
        raise SamplingError(f"{len(frames)} target-up frames given; {selection + n} are needed")
    confirm = frames[selection:selection + n]
    ranked, _ = channels.rank_up_channels(model, frames[:selection])
    chosen = ranked[0]

    def against_random_sets(group) -> Estimate:
        return channels.group_drop_against_random_sets(model, confirm, group, confidence=CONFIDENCE,
                                                       null_sets=null_sets, seed=seed)

    excess = paired_bootstrap(channels.excess_drop(model, confirm, chosen), confidence=CONFIDENCE)
    top = against_random_sets(ranked[:channels.GROUP_SIZE])
    clean = run(model, confirm).actions_argmax == Action.UP
    ablated = run(model, confirm, interventions=[Zero(site=Site(channels.SITE, channels=(chosen,)))]).actions_argmax
    fewer_up = mcnemar_exact(clean.numpy(), (ablated == Action.UP).numpy(), confidence=CONFIDENCE)
    group = ranked[:channels.GROUP_SIZE]
    verdicts = {"CH1": _verdict("CH1", excess, n, channel=chosen),
                "CH1 bound 0": _verdict("CH1 bound 0", excess, n, channel=chosen),
                "CH3": _verdict("CH3", top, n, channels=group),
                "CH3 bound 0": _verdict("CH3 bound 0", top, n, channels=group),
                "McNemar": _verdict("McNemar", fewer_up, n)}
    if random_group_seed is not None:
        random_group = [int(c) for c in random_channel_sets(channels.CHANNELS, channels.GROUP_SIZE, 1,
                                                            seed=random_group_seed)[0]]
        verdicts[RANDOM_GROUP] = _verdict("CH3 bound 0", against_random_sets(random_group), n, channels=random_group)
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


def probe_verdicts(model: TabledCNN, frames: np.ndarray, quadrants: np.ndarray, *, train: int, n: int,
                   shuffles: int, seed: int) -> dict[str, str]:
    """P1 (and P1 at chance): the claim's probe fit on the first ``train`` frames, tested on the next ``n``,
    against ``shuffles`` label shuffles drawn with ``seed``."""
    if len(frames) < train + n:
        raise SamplingError(f"{len(frames)} frames given; {train + n} are needed")
    result = probes.probe_accuracy(model, frames[:train], quadrants[:train], frames[train:train + n],
                                   quadrants[train:train + n], confidence=CONFIDENCE, shuffles=shuffles, seed=seed)
    probe = f"ridge l2={probes.L2:g}, fit on {train} calibration states"
    return {template: _verdict(template, result, n, probe=probe) for template in ("P1", "P1 bound 0.25")}


@dataclass(frozen=True, kw_only=True)
class Design:
    """Sizes of one repetition: levels to select channels on, the claims' n, null draws, probe training states."""

    selection: int = 32
    n: int = 64
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
    sample, up = target_up_sample(design.selection + design.n, seed=seed, trunk_seed=seed)
    truth_sample, truth_up = target_up_sample(design.truth, seed=_TRUTH_SEEDS + seed, trunk_seed=seed)
    group_seed = _GROUP_SEEDS + seed if design.random_group else None
    for name in CHANNEL_MODELS:
        found, ranked = channel_verdicts(channel_model(name, sample, up, seed=seed), sample.frames,
                                         selection=design.selection, n=design.n, null_sets=design.null_sets,
                                         seed=seed, random_group_seed=group_seed)
        truths = {} if name == PLANTED else channel_truths(channel_model(name, truth_sample, truth_up, seed=seed),
                                                           truth_sample.frames, ranked, null_sets=design.null_sets,
                                                           seed=seed)
        outcomes |= {(template, name): Outcome(verdict, truths.get(template, true_by_construction(template, name)))
                     for template, verdict in found.items()}
    seed = 2 * rep + 1
    sample, quadrants = probe_sample(design.train + design.n, seed=seed)
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
