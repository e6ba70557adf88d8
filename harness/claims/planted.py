"""Planted mechanisms: models whose truth is known by construction, and the claim templates run on them, so that
the harness can be calibrated on itself (docs/statistics.md item 9).

Templates
---------
Those of ``claims/test_channels.py`` and ``claims/test_probes.py`` (see :data:`TEMPLATES`), each decided by the
real :meth:`harness.claims.claim.Claim.check` at ``ALPHA`` as a family of one:

* ``CH1``: the conv4a channel selected on selection levels (largest mean drop in P(UP)) lowers P(UP) on other
  levels by more than 0.01 beyond the other 31 (per level: its drop minus their mean drop; paired bootstrap);
  ``CH1 bound 0`` the same at bound 0;
* ``CH3``: the top three channels lower P(UP) by more than 0.02, and by more than random sets of three of the 32
  channels do (permutation p); ``CH3 bound 0`` the same at bound 0, where only the p-value decides;
* ``McNemar``: zeroing the selected channel lowers the rate of argmax = UP (exact McNemar, Newcombe interval
  below 0), the paired binary design of B2;
* ``P1``: a ridge probe on conv3a tells the target's quadrant on held-out levels with accuracy above 0.40 and
  above shuffled-label probes (permutation p); ``P1 bound 0.25`` the same above chance.

The channel templates run on target-up levels, P1 on levels with a target, all from the ``calibration`` seeds and
in their start state (P1's claim uses mid-episode states).

Models
------
Every model is a :class:`TabledCNN`: CustomCNN from ``conv4a`` (channel templates) or ``conv3a`` (P1) on, with
CustomCNN's module names and sites there, whose input is what a seeded orthogonal-init CustomCNN computes before
that layer, run once per calibration frame and looked up by the frame.  With the trunk of the same seed it is
exactly that CustomCNN; running the trunk once instead of in each of the ~150 ablation passes per sample is
what makes calibration affordable on a CPU.

* :func:`up_channel_model` (planted A): input channel ``CARRIER`` of conv4a is replaced by a flag, 1 exactly when
  the current target lies up (``target_direction(level) == "up"``, read from the level when the sample is drawn:
  a frame -> truth table, not a pixel detector).  conv4a channel ``CHANNEL`` reads only that flag (a constant
  map of ``LEVEL``), nothing else reads it, and one fc1 and one fc2 unit carry its mean alone to the UP logit:
  ``UP logit += PUSH * mean(conv4a.relu[CHANNEL]) / LEVEL``.  Zeroing the channel removes exactly that push,
  on exactly the target-up levels.
* :func:`quadrant_code_model` (planted B): input channels ``CODE_CHANNELS`` of conv3a carry +-1 for "target up"
  and "target right" (from ``target_quadrant``); conv3a adds ``STRENGTH`` times them along two fixed random
  orthonormal directions over its 32 channels, at every position, to its random output.
* Null models (:data:`CHANNEL_MODELS`, :data:`PROBE_MODELS`): :func:`random_model`, the architecture
  re-initialised with no planted input, and :func:`shuffled`, every parameter tensor permuted (of planted A: the
  flag is still in the input, its wiring is gone; for P1 of the random model, as planted B's code would still
  reach conv3a through any weights).  For P1 also planted B probed for labels permuted across levels: the true
  accuracy is then chance, an exact null.  For CH3 also a random group instead of the selected one
  (``RANDOM_GROUP``), on every model.

The bounds of ``CH1``, ``CH3`` and ``P1`` are those the claims in ``claims/`` declare; the loose variants show why
the claims need them (see ``DEFECTS`` in tests/test_calibration.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from harness.claims.claim import Claim, ClaimRefuted, ClaimSpec
from harness.errors import ObservationError, SamplingError
from harness.policy.interventions import Zero
from harness.lenses.measures import (DIRECTION_ACTIONS, channel_ablation_drop, random_channel_null, target_direction,
                              target_quadrant)
from harness.policy.models import CustomCNN, orthogonal_init, preprocess
from harness.lenses.probes import fit_probe, shuffled_label_scores
from harness.policy.runner import run
from harness.policy.sites import Site
from harness.stats import (Estimate, clopper_pearson_interval, mcnemar_exact, paired_bootstrap,
                           permutation_test_against_null, random_channel_sets, wilson_interval)

__all__ = [
    "ALPHA", "CELLS", "PLANTED", "TEMPLATES", "Design", "Outcome", "Sample", "TabledCNN", "calibrate",
    "channel_truths", "channel_verdicts", "draw_sample", "false_positive_rate", "power", "probe_verdicts",
    "quadrant_code_model", "random_model", "rate", "repetition", "shuffled", "true_by_construction",
    "up_channel_model",
]

ALPHA = 0.05
"""Family alpha of every calibrated claim (a family of one, so claim.confidence = 0.95)."""
UP = DIRECTION_ACTIONS["up"]
CHANNELS = 32
GROUP_SIZE = 3
L2 = 10.0  # as in claims/test_probes.py
CHANNEL, CARRIER, UNIT, LEVEL, PUSH = 7, 11, 0, 4.0, 1.0
"""Planted A: conv4a channel, its input (trunk) channel, its fc1/fc2 unit, its activation, the UP logit push."""
CODE_CHANNELS, STRENGTH = (5, 21), 4.0
"""Planted B: the two conv3a input channels carrying the code, and its size (conv3a's own spread is about 3.6)."""
_TAILS = {
    "conv4a": ("conv4a", "conv4a_relu", "pool4", "fc1", "fc1_relu", "fc2", "fc2_relu", "fc3", "value_fc"),
    "conv3a": ("conv3a", "conv3a_relu", "pool3", "conv4a", "conv4a_relu", "pool4", "fc1", "fc1_relu", "fc2",
               "fc2_relu", "fc3", "value_fc"),
}  # fmt: skip
_INPUT_SITE = {"conv4a": "pool3", "conv3a": "pool2"}


@dataclass(frozen=True, kw_only=True, eq=False)
class Sample:
    """Calibration levels rendered once: frames, the truths read off the levels, and a trunk's features."""

    frames: np.ndarray
    up: np.ndarray
    """Per level: the shortest path to the current target starts up."""
    quadrant: np.ndarray
    """Per level: :func:`harness.lenses.measures.target_quadrant` (0 up-left, 1 up-right, 2 down-left, 3 down-right)."""
    inputs: Tensor
    """The frames as models take them, ``preprocess(frames)``."""
    index: Mapping[bytes, int]
    """Look-up key of each frame (a few of its pixels) -> row."""
    features: Mapping[str, Tensor]
    """Start layer (``conv3a``, ``conv4a``) -> its input on every frame, from a seeded random CustomCNN trunk."""


def _seeded_cnn(seed: int) -> CustomCNN:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return orthogonal_init(CustomCNN()).eval()


def _frame_key(inputs: Tensor) -> list[bytes]:
    """Per preprocessed frame, a key to look it up by: every fourth pixel's bytes (the full frame is compared
    after the look-up)."""
    return [row.tobytes() for row in inputs[:, :, ::4, ::4].contiguous().numpy()]


def draw_sample(n: int, *, seed: int, where: Callable | None = None, trunk_seed: int | None = None) -> Sample:
    """``n`` calibration levels (``where`` filters them) drawn with ``seed``, rendered, with the trunk of seed
    ``trunk_seed`` (default ``seed``) run on them."""
    from harness.heist.engine import render
    from harness.heist.sampling import sample_levels

    levels = sample_levels("calibration", n, seed=seed,
                           where=lambda level: target_quadrant(level) is not None and (where is None or where(level)))
    frames = render(levels)
    inputs = preprocess(frames)
    index = {key: i for i, key in enumerate(_frame_key(inputs))}
    if len(index) != n:
        raise SamplingError(f"{n - len(index)} of {n} calibration frames share a look-up key with another")
    acts = run(_seeded_cnn(seed if trunk_seed is None else trunk_seed), frames, cache=list(_INPUT_SITE.values())).activations
    return Sample(
        frames=frames, up=np.array([target_direction(level) == "up" for level in levels]),
        quadrant=np.array([target_quadrant(level) for level in levels]), inputs=inputs, index=index,
        features={start: acts[site].contiguous() for start, site in _INPUT_SITE.items()},
    )  # fmt: skip


class TabledCNN(nn.Module):
    """CustomCNN from layer ``start`` (``conv3a`` or ``conv4a``) on, with CustomCNN's module names and sites from
    there; the layers before it are ``table``, their output on each frame of a sample, looked up by the frame's
    bytes (a frame outside the sample raises).  Dropout, inactive in eval mode, is left out."""

    def __init__(self, *, start: str, table: Tensor, sample: Sample, seed: int) -> None:
        super().__init__()
        net = _seeded_cnn(seed)
        self.start, self.sample = start, sample
        for name in _TAILS[start]:
            self.add_module(name, getattr(net, name))
        self.SITES = {site: path for site, path in CustomCNN.SITES.items() if path in _TAILS[start]}
        self.register_buffer("table", table, persistent=False)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        rows = [self.sample.index.get(key, -1) for key in _frame_key(obs.cpu())]
        if min(rows) < 0 or not torch.equal(obs.cpu(), self.sample.inputs[rows]):
            raise ObservationError("a frame outside this model's calibration sample; a TabledCNN knows only the "
                                   "frames of the sample it was built on")
        x = self.table[rows].to(obs.device)
        if self.start == "conv3a":
            x = self.pool3(self.conv3a_relu(self.conv3a(x)))
        x = self.pool4(self.conv4a_relu(self.conv4a(x)))
        x = self.fc2_relu(self.fc2(self.fc1_relu(self.fc1(x.flatten(1)))))
        return self.fc3(x), self.value_fc(x).squeeze(-1)


def random_model(sample: Sample, *, start: str, seed: int) -> TabledCNN:
    """Null: the architecture re-initialised (seed ``seed``) on the sample's plain trunk features."""
    return TabledCNN(start=start, table=sample.features[start], sample=sample, seed=seed).eval()


def up_channel_model(sample: Sample, *, seed: int) -> TabledCNN:
    """Planted A: conv4a channel ``CHANNEL`` is ``LEVEL`` exactly on target-up frames and adds ``PUSH`` to the UP
    logit through fc1/fc2 unit ``UNIT``; nothing else reads it or its input."""
    table = sample.features["conv4a"].clone()
    table[:, CARRIER] = torch.as_tensor(sample.up, dtype=table.dtype)[:, None, None]
    model = random_model(sample, start="conv4a", seed=seed)
    model.table = table
    cols = slice(CHANNEL * 16, (CHANNEL + 1) * 16)  # pool4 of the channel in fc1's input: 4x4, each 2 * LEVEL
    with torch.no_grad():
        model.conv4a.weight[:, CARRIER] = 0
        model.conv4a.weight[CHANNEL] = 0
        model.conv4a.weight[CHANNEL, CARRIER, 2, 2] = LEVEL  # centre tap: a constant map of LEVEL * flag
        model.conv4a.bias[CHANNEL] = 0
        for layer, inputs in ((model.fc1, cols), (model.fc2, UNIT)):
            layer.weight[:, inputs] = 0
            layer.weight[UNIT] = 0
            layer.bias[UNIT] = 0
        model.fc1.weight[UNIT, cols] = 1 / 32  # = mean(conv4a.relu[CHANNEL]) for a constant map
        model.fc2.weight[UNIT, UNIT] = 1
        model.fc3.weight[:, UNIT] = 0
        model.fc3.weight[UP, UNIT] = PUSH / LEVEL
        model.value_fc.weight[:, UNIT] = 0
    return model


def quadrant_code_model(sample: Sample, *, seed: int) -> TabledCNN:
    """Planted B: conv3a's output plus ``STRENGTH * (up * d1 + right * d2)`` (up, right = +-1 from the target's
    quadrant; d1, d2 fixed random orthonormal directions over the 32 channels) at every position."""
    code = torch.as_tensor(np.stack([np.where(sample.quadrant < 2, 1.0, -1.0),
                                     np.where(sample.quadrant % 2 == 1, 1.0, -1.0)], 1), dtype=torch.float32)
    table = sample.features["conv3a"].clone()
    table[:, list(CODE_CHANNELS)] = code[:, :, None, None]
    model = random_model(sample, start="conv3a", seed=seed)
    model.table = table
    directions, _ = torch.linalg.qr(torch.randn(CHANNELS, 2, generator=torch.Generator().manual_seed(seed)))
    with torch.no_grad():
        model.conv3a.weight[:, list(CODE_CHANNELS)] = 0
        for k, channel in enumerate(CODE_CHANNELS):
            model.conv3a.weight[:, channel, 2, 2] = STRENGTH * directions[:, k]
    return model


def shuffled(model: TabledCNN, *, seed: int) -> TabledCNN:
    """Null: the same model with every parameter tensor's entries permuted (seeded); its input is unchanged."""
    copy = TabledCNN(start=model.start, table=model.table, sample=model.sample, seed=0)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for (_, source), (_, target) in zip(model.named_parameters(), copy.named_parameters(), strict=True):
            flat = source.detach().flatten()
            target.copy_(flat[torch.randperm(flat.numel(), generator=generator)].view(source.shape))
    return copy.eval()


# ------------------------------------------------------------------------------------------------ templates


def _declaration(statement: str, sites: str, metric: str, **bound: float) -> dict:
    return dict(statement=statement, sites=[sites], metric=metric, **bound)


_CH1 = ("Zeroing the selected conv4a channel lowers P(UP) on target-up levels by more than the bound beyond what "
        "zeroing another conv4a channel does.", "conv4a:selected", "drop in P(UP) minus the mean drop of the other channels")
_CH3 = ("Zeroing the top 3 conv4a UP channels lowers P(UP) on target-up levels by more than the bound and by more "
        "than random sets of 3 conv4a channels do.", "conv4a:selected-group", "mean drop in P(UP)")
_MCNEMAR = ("Zeroing the selected conv4a channel lowers the rate of choosing UP on target-up levels.",
            "conv4a:selected", "change in the rate of argmax UP (ablated - clean)")
_P1 = ("A linear probe on conv3a tells the target's quadrant on held-out levels above the bound and above "
       "shuffled-label probes.", "conv3a", "held-out probe accuracy")
TEMPLATES: Mapping[str, dict] = {
    "CH1": _declaration(*_CH1, lower_bound_above=0.01),
    "CH1 bound 0": _declaration(*_CH1, lower_bound_above=0.0),
    "CH3": _declaration(*_CH3, lower_bound_above=0.02),
    "CH3 bound 0": _declaration(*_CH3, lower_bound_above=0.0),
    "McNemar": _declaration(*_MCNEMAR, upper_bound_below=0.0),
    "P1": _declaration(*_P1, lower_bound_above=0.40),
    "P1 bound 0.25": _declaration(*_P1, lower_bound_above=0.25),
}
"""Each template's declaration: the claim's own bound, and also the loosest sensible one (0, and chance for four
classes), where only the estimate's interval or the permutation p-value stands between a null model and
"supported"."""
RANDOM_GROUP = "CH3 bound 0, random group"
"""CH3 at bound 0 for a random group of channels instead of the selected one (null sets drawn from all channels,
as CH3 draws them): a null model of its permutation test."""


def _decide(template: str, n: int, statistic: Callable[[float], Estimate]) -> str:
    """The verdict of ``Claim.check`` on ``statistic(claim.confidence)``, "refuted" included."""
    spec = ClaimSpec.declare(id=template.replace(" ", "-"), seeds="calibration", n=n, **TEMPLATES[template])
    claim = Claim(spec=spec, family_alpha=ALPHA, family_size=1)
    try:
        return claim.check(statistic(claim.confidence))
    except ClaimRefuted:
        return "refuted"


def channel_verdicts(model: nn.Module, sample: Sample, *, selection: int, n: int, null_sets: int, seed: int,
                     random_group: bool = False) -> tuple[dict[str, str], np.ndarray]:
    """CH1, CH3 and McNemar on the sample's target-up levels: channels ranked on the first ``selection`` of them
    (by mean drop in P(UP)), the claims tested on the next ``n``.  ``random_group`` adds ``RANDOM_GROUP``: CH3 at
    bound 0 for a random set of channels instead of the top three.  Returns the verdicts and the ranking."""
    frames = sample.frames[sample.up]
    if len(frames) < selection + n:
        raise SamplingError(f"the sample has {len(frames)} target-up levels; {selection + n} are needed")
    chosen_on, confirm = frames[:selection], frames[selection:selection + n]

    def drops(on: np.ndarray, channels) -> np.ndarray:
        return channel_ablation_drop(model, on, site="conv4a", channels=channels, action=UP)

    ranked = np.argsort([drops(chosen_on, [c]).mean() for c in range(CHANNELS)], kind="stable")[::-1]
    every = np.stack([drops(confirm, [c]) for c in range(CHANNELS)])
    chosen = int(ranked[0])
    excess = every[chosen] - np.delete(every, chosen, axis=0).mean(0)
    clean = run(model, confirm).actions_argmax == UP
    ablated = run(model, confirm, interventions=[Zero(site=Site("conv4a", channels=(chosen,)))]).actions_argmax == UP

    null = random_channel_null(model, confirm, site="conv4a", n_channels=CHANNELS, size=GROUP_SIZE, action=UP,
                               m=null_sets, seed=seed)  # from all channels, as CH3 draws it

    def against_random_sets(group) -> Callable[[float], Estimate]:
        group_drops = drops(confirm, group)
        return lambda confidence: permutation_test_against_null(
            paired_bootstrap(group_drops, confidence=confidence), null)

    top = against_random_sets(ranked[:GROUP_SIZE])
    verdicts = {
        "CH1": _decide("CH1", n, lambda confidence: paired_bootstrap(excess, confidence=confidence)),
        "CH1 bound 0": _decide("CH1 bound 0", n, lambda confidence: paired_bootstrap(excess, confidence=confidence)),
        "CH3": _decide("CH3", n, top),
        "CH3 bound 0": _decide("CH3 bound 0", n, top),
        "McNemar": _decide("McNemar", n, lambda confidence: mcnemar_exact(clean.numpy(), ablated.numpy(),
                                                                          confidence=confidence)),
    }
    if random_group:
        group = random_channel_sets(CHANNELS, GROUP_SIZE, 1, seed=seed)[0]
        verdicts[RANDOM_GROUP] = _decide("CH3 bound 0", n, against_random_sets(group))
    return verdicts, ranked


def channel_truths(model: nn.Module, frames: np.ndarray, ranked: np.ndarray, *, null_sets: int,
                   seed: int) -> dict[str, bool]:
    """Whether each channel template's claim is true of ``model`` for the channels ranked on the selection levels,
    measured on many fresh target-up ``frames`` (a large sample standing in for the population): CH1 its
    excess drop above the bound; CH3 its group's mean drop above the bound and above the mean of random sets;
    McNemar the argmax-UP rate lower with the channel zeroed.  Selection makes these claims true of some null
    networks (a permuted network can have a channel that truly lowers P(UP) by 0.02 more than the others), and
    "supported" is a false positive only where the claim is false."""
    def drops(channels) -> np.ndarray:
        return channel_ablation_drop(model, frames, site="conv4a", channels=channels, action=UP)

    every = np.stack([drops([c]) for c in range(CHANNELS)])
    chosen, group = int(ranked[0]), ranked[:GROUP_SIZE]
    excess = float((every[chosen] - np.delete(every, chosen, axis=0).mean(0)).mean())
    group_drop = float(drops(group).mean())
    random_sets = float(random_channel_null(model, frames, site="conv4a", n_channels=CHANNELS, size=GROUP_SIZE,
                                            action=UP, m=null_sets, seed=seed).mean())
    zeroed = [Zero(site=Site("conv4a", channels=(chosen,)))]
    rate_change = float((run(model, frames, interventions=zeroed).actions_argmax == UP).float().mean()
                        - (run(model, frames).actions_argmax == UP).float().mean())
    truths = {"McNemar": rate_change < 0}
    for template in ("CH1", "CH1 bound 0"):
        truths[template] = excess > TEMPLATES[template]["lower_bound_above"]
    for template in ("CH3", "CH3 bound 0"):
        truths[template] = group_drop > max(TEMPLATES[template]["lower_bound_above"], random_sets)
    return truths


def probe_verdicts(model: nn.Module, sample: Sample, *, train: int, n: int, shuffles: int, seed: int,
                   permute_labels: bool = False) -> dict[str, str]:
    """P1 (and P1 at chance): fit on the sample's first ``train`` levels, tested on the next ``n``.
    ``permute_labels``: quadrants permuted across levels, unrelated to the frames (the true accuracy is chance)."""
    if len(sample.frames) < train + n:
        raise SamplingError(f"the sample has {len(sample.frames)} levels; {train + n} are needed")
    labels = sample.quadrant[:train + n]
    if permute_labels:
        labels = np.random.default_rng(seed).permutation(labels)
    x = run(model, sample.frames[:train + n], cache=["conv3a"]).activations["conv3a"].numpy()
    x_train, y_train, x_test, y_test = x[:train], labels[:train], x[train:], labels[train:]
    correct = int(fit_probe(x_train, y_train, l2=L2).correct(x_test, y_test).sum())
    null = shuffled_label_scores(x_train, y_train, x_test, y_test, m=shuffles, seed=seed, l2=L2)

    def against_shuffled_labels(confidence: float) -> Estimate:
        return permutation_test_against_null(wilson_interval(correct, n, confidence=confidence), null)

    return {template: _decide(template, n, against_shuffled_labels) for template in ("P1", "P1 bound 0.25")}


def rate(verdicts: list[str], *, confidence: float = 0.95) -> Estimate:
    """The rate of "supported" among ``verdicts`` with its Clopper-Pearson interval."""
    return clopper_pearson_interval(sum(v == "supported" for v in verdicts), len(verdicts), confidence=confidence)


@dataclass(frozen=True)
class Outcome:
    """One repetition of one (template, model) cell: the verdict, and whether the claim is true there."""

    verdict: str
    true: bool


def false_positive_rate(outcomes: list[Outcome]) -> Estimate | None:
    """The rate of "supported" where the claim is false (None if it was true in every repetition)."""
    verdicts = [o.verdict for o in outcomes if not o.true]
    return rate(verdicts) if verdicts else None


def power(outcomes: list[Outcome]) -> Estimate | None:
    """The rate of "supported" where the claim is true (None if it was false in every repetition)."""
    verdicts = [o.verdict for o in outcomes if o.true]
    return rate(verdicts) if verdicts else None


# ------------------------------------------------------------------------------------------------ calibration


@dataclass(frozen=True, kw_only=True)
class Design:
    """Sizes of one repetition: levels to select channels on, the claims' n, null draws, probe training levels."""

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


def repetition(rep: int, design: Design) -> dict[tuple[str, str], Outcome]:
    """Every template on every model, on fresh levels (seeded by ``rep``): (template, model) -> outcome.

    A model shares its seed with its sample's trunk, so "re-initialised" is exactly a fresh orthogonal-init
    CustomCNN and "planted" that network with the mechanism wired in."""
    outcomes: dict[tuple[str, str], Outcome] = {}
    seed = 2 * rep
    up = lambda level: target_direction(level) == "up"  # noqa: E731
    sample = draw_sample(design.selection + design.n, seed=seed, where=up)
    truth_sample = draw_sample(design.truth, seed=_TRUTH_SEEDS + seed, where=up, trunk_seed=seed)
    builders = {PLANTED: lambda s: up_channel_model(s, seed=seed),
                "re-initialised": lambda s: random_model(s, start="conv4a", seed=seed),
                "shuffled": lambda s: shuffled(up_channel_model(s, seed=seed), seed=seed)}
    for name in CHANNEL_MODELS:
        found, ranked = channel_verdicts(builders[name](sample), sample, selection=design.selection, n=design.n,
                                         null_sets=design.null_sets, seed=seed, random_group=design.random_group)
        truths = {} if name == PLANTED else channel_truths(builders[name](truth_sample), truth_sample.frames, ranked,
                                                           null_sets=design.null_sets, seed=seed)
        outcomes |= {(template, name): Outcome(verdict, truths.get(template, true_by_construction(template, name)))
                     for template, verdict in found.items()}
    seed = 2 * rep + 1
    sample = draw_sample(design.train + design.n, seed=seed)
    planted, random = quadrant_code_model(sample, seed=seed), random_model(sample, start="conv3a", seed=seed)
    models = (planted, random, shuffled(random, seed=seed), planted)
    for name, model in zip(PROBE_MODELS, models, strict=True):
        permute = name == "labels permuted"
        found = probe_verdicts(model, sample, train=design.train, n=design.n, shuffles=design.shuffles, seed=seed,
                               permute_labels=permute)
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
