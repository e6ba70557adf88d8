"""Train SAEs on a policy's site and write their cards, from the command line:

    python -m harness.training.sae train --policy fixtures/agents/customcnn_bc/policy.pt --site conv3a \\
        --out fixtures/saes/customcnn_bc_conv3a/sae.pt [--expansion 4 --l1 0.3 | --topk 8] \\
        [--frames 20000 --steps 10000 --seed 0]
    python -m harness.training.sae card --policy fixtures/agents/customcnn_bc/policy.pt \\
        --sae fixtures/saes/customcnn_bc_conv3a/sae.pt [--frames 1024 --levels 100]

``train`` records frames on ``training``-range levels (first frames and the agent's own episodes,
:mod:`harness.training.sae_data`), caches the site at random positions, trains with progress lines
(:func:`train_sae`) and saves the checkpoint; ``card`` evaluates it on the ``selection`` range (metrics beside
zero- and mean-ablation of the site, :mod:`harness.training.sae_card`) and writes ``card.md`` in the SAE's folder.
Run ``python -m harness.training.sae train --help`` for every option.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from harness.errors import HarnessError, SAEError
from harness.heist.sampling import sample_levels
from harness.lenses.sae import (SAE, ConvSAEConfig, TopKSAEConfig, build_sae, l0, load_sae, save_sae,
                                training_record)
from harness.policy.models import FRAME_SHAPE, checkpoint_sha256, load_policy
from harness.policy.runner import run
from harness.training import progress
from harness.training.flags import at_least, check_writable
from harness.training.sae_card import evaluate_sae
from harness.training.sae_data import collect_frames, normalising_scale, site_positions

__all__ = ["SAETrainingConfig", "SAETrainingRun", "main", "train_sae"]

@dataclass(frozen=True, kw_only=True)
class SAETrainingConfig:
    """Optimisation of an SAE on cached positions (Adam, decoder columns kept at unit norm)."""

    steps: int = 10_000
    """Gradient steps; the learning rate decays linearly to 0 over the last 20%."""
    batch_size: int = 4096
    """Positions per step, drawn uniformly with replacement."""
    lr: float = 1e-3
    seed: int = 0
    """Seeds the batches and the resampling draws."""
    resample_every: int | None = 1000
    """Every this many steps of the first half of training, latents that did not fire during the last
    ``resample_every`` steps are resampled toward inputs of high loss (see :func:`train_sae`); None: never."""
    log_every: int = 500
    """Steps between progress lines."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "resample_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SAEError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise SAEError(f"lr must be > 0, got {self.lr}")


@dataclass(frozen=True, kw_only=True, eq=False)
class SAETrainingRun:
    """What :func:`train_sae` did."""

    sae: SAE
    history: tuple[Mapping[str, float], ...]
    """One row per progress line: step, loss, mse (normalised units, per position), l0, quiet (latents that
    did not fire since the previous line), resampled (so far)."""
    resampled: int
    """Latents resampled in all."""
    seconds: float


def train_sae(sae: SAE, activations: Tensor, *, training: SAETrainingConfig,
              log: Callable[[str], None] = progress.log) -> SAETrainingRun:
    """Train ``sae`` in place on site activations at positions, rows ``(P, C)`` in raw units.

    The loss per position is the squared error in normalised units plus the architecture's sparsity penalty;
    decoder columns are renormalised to unit length after every step.  Dead latents are resampled (no auxiliary
    loss): every ``resample_every`` steps of the first half of training, each latent that fired on no position
    of the last ``resample_every`` batches is pointed at an input drawn from ``8 * batch_size`` random rows with
    probability proportional to its squared loss (see ``_resample``), and counts as fresh again.
    """
    if activations.ndim != 2 or activations.shape[1] != sae.config.channels or not len(activations):
        raise SAEError(f"activations must be rows (P >= 1, {sae.config.channels}), got {tuple(activations.shape)}")
    generator = torch.Generator().manual_seed(training.seed)
    data = activations.float()
    optimizer = torch.optim.Adam(sae.parameters(), lr=training.lr)
    decay_from = 0.8 * training.steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (training.steps - s) / max(training.steps - decay_from, 1)))
    last_fired = torch.zeros(sae.config.latents, dtype=torch.long)
    fired_since_log = torch.zeros(sae.config.latents, dtype=torch.bool)
    history: list[dict[str, float]] = []
    resampled, started = 0, time.time()
    sae.train()
    for step in range(1, training.steps + 1):
        x = data[torch.randint(len(data), (training.batch_size,), generator=generator)]
        z = sae.encode(x)
        mse = ((sae.decode(z) - x) * sae.config.scale).square().sum(1).mean()
        loss = mse + sae.sparsity_loss(z)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            sae.normalise_decoder()
        fired = (z > 0).any(0)
        last_fired[fired] = step
        fired_since_log |= fired
        every = training.resample_every
        if every and step % every == 0 and 2 * step <= training.steps:
            dead = torch.nonzero(step - last_fired >= every).flatten()
            if len(dead):
                sample = data[torch.randint(len(data), (8 * training.batch_size,), generator=generator)]
                _resample(sae, optimizer, dead, sample, generator)
                last_fired[dead] = step
                resampled += len(dead)
        if step % training.log_every == 0 or step == training.steps:
            row = {"step": step, "loss": loss.item(), "mse": mse.item(), "l0": l0(z.detach()),
                   "quiet": int((~fired_since_log).sum()), "resampled": resampled}
            history.append(row)
            fired_since_log[:] = False
            log(f"step {step:,}/{training.steps:,} loss {row['loss']:.4f} mse {row['mse']:.4f} L0 {row['l0']:.2f} "
                f"quiet {row['quiet']}/{sae.config.latents} resampled {resampled} | "
                f"{progress.rate(step * training.batch_size, training.steps * training.batch_size, started, 'positions')}")
    sae.eval()
    return SAETrainingRun(sae=sae, history=tuple(history), resampled=resampled, seconds=time.time() - started)


def _resample(sae: SAE, optimizer: torch.optim.Optimizer, dead: Tensor, sample: Tensor,
              generator: torch.Generator) -> None:
    """Point each dead latent at an input drawn with probability proportional to its squared loss (after
    Anthropic's "Towards Monosemanticity"), measured from the decoder bias b (the reconstruction with no latent
    active): decoder column = the unit direction d of c = input - b; the latent reads ``g * (d . (x - b) - |c|/2)``,
    so it fires only on inputs near its own, with the gain g of :meth:`SAE.revival_gain`; Adam moments reset."""
    with torch.no_grad():
        loss = ((sae(sample) - sample) * sae.config.scale).square().sum(1)
        weights = loss.square() if loss.square().sum() > 0 else torch.ones_like(loss)
        chosen = sample[torch.multinomial(weights, len(dead), replacement=True, generator=generator)] * sae.config.scale
        centred = chosen - sae.conv_dec.bias
        reach = 0.5 * centred.norm(dim=1).clamp_min(1e-8)
        directions = centred / (2 * reach[:, None])
        live = torch.ones(sae.config.latents, dtype=torch.bool)
        live[dead] = False
        if not live.any():
            live[:] = True
        pre = F.linear(chosen, sae.conv_enc.weight.flatten(1), sae.conv_enc.bias)[:, live]
        gain = sae.revival_gain(live_norm=sae.conv_enc.weight[live].flatten(1).norm(dim=1).mean(),
                                live_max=pre.amax(1), reach=reach)
        sae.conv_dec.weight[:, dead, 0, 0] = directions.T
        sae.conv_enc.weight[dead, :, 0, 0] = gain[:, None] * directions
        sae.conv_enc.bias[dead] = -gain * (directions @ sae.conv_dec.bias + reach)
    for param, index in ((sae.conv_enc.weight, (dead,)), (sae.conv_enc.bias, (dead,)),
                         (sae.conv_dec.weight, (slice(None), dead))):
        for moment in ("exp_avg", "exp_avg_sq"):
            if moment in optimizer.state.get(param, {}):
                optimizer.state[param][moment][index] = 0.0


_PROG = "python -m harness.training.sae"


def _train(args: argparse.Namespace, command: str) -> None:
    torch.manual_seed(args.seed)
    check_writable(args.out, "--out")
    policy = load_policy(args.policy)
    # every setting is checked before frames are collected: the site on one blank frame, the configs with scale 1
    channels = run(policy, np.zeros((1, *FRAME_SHAPE), np.uint8), cache=[args.site]).activations[args.site].shape[1]
    common = {"site": args.site, "channels": channels, "expansion": args.expansion, "scale": 1.0}
    config = TopKSAEConfig(k=args.topk, **common) if args.topk is not None else ConvSAEConfig(l1=args.l1, **common)
    training = SAETrainingConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                 resample_every=args.resample_every or None)
    frames = collect_frames(policy, "training", args.frames, seed=args.seed, mode=args.mode, played=args.played,
                            max_steps=args.max_episode_steps)
    acts = site_positions(policy, frames, site=args.site, per_frame=args.positions_per_frame, seed=args.seed)
    config = dataclasses.replace(config, scale=normalising_scale(acts))
    progress.log(f"training a {config.architecture} SAE on {len(acts):,} positions of {args.site} "
                 f"({config.sparsity()}, {config.latents} latents, input scale {config.scale:.4g})")
    result = train_sae(build_sae(config), acts, training=training)
    data = (f"{args.frames} frames of the training seed range (seed {args.seed}, {args.mode}): first frames of "
            f"distinct levels and, for a share of {args.played}, frames of the agent's own episodes (sampled actions, "
            f"cut at {args.max_episode_steps} steps); {len(acts) // len(frames)} random positions per frame, "
            f"{len(acts):,} in all")
    save_sae(result.sae, args.out, training={
        "command": command, "policy": str(args.policy), "policy_sha256": checkpoint_sha256(args.policy),
        "data": data, "config": dataclasses.asdict(training), "history": [dict(r) for r in result.history],
        "resampled": result.resampled, "minutes": round(result.seconds / 60, 2), "torch_threads": torch.get_num_threads()})
    progress.log(f"saved {args.out}; next: {_PROG} card --policy {args.policy} --sae {args.out}")


def _card(args: argparse.Namespace, command: str) -> None:
    torch.manual_seed(args.seed)
    check_writable(args.out or Path(args.sae).parent / "card.md", "--out")
    policy = load_policy(args.policy)
    sae = load_sae(args.sae, site=args.site)
    frames = collect_frames(policy, "selection", args.frames, seed=args.seed, mode=args.mode, played=0.5,
                            max_steps=args.max_steps)
    levels = sample_levels("selection", args.levels, seed=args.seed + 1, mode=args.mode)
    data = (f"{args.frames} frames of the selection seed range (seed {args.seed}, {args.mode}; half first frames "
            f"of levels, half from the agent's own episodes); rollouts on {args.levels} selection levels "
            f"(sampled actions, seed {args.seed}, cut at {args.max_steps} steps)")
    card = evaluate_sae(policy, sae, frames, levels, data=data, seed=args.seed, max_steps=args.max_steps)
    trained = training_record(args.sae)
    sha = checkpoint_sha256(args.policy)
    threads = trained.get("torch_threads")
    provenance = {"card command": f"`{command}`",
                  "training command": f"`{trained['command']}`" if "command" in trained else "not recorded",
                  **({"training threads": f"{threads} (the command gives this checkpoint again only with as many torch "
                                          "threads: with another count the weights differ, at a similar loss)"}
                     if threads else {}),
                  "training data": str(trained.get("data", "not recorded")),
                  "SAE checkpoint": f"{args.sae} (sha256 {checkpoint_sha256(args.sae)[:16]})",
                  "policy": f"{args.policy} (sha256 {sha[:16]})"}
    if trained.get("policy_sha256") not in (None, sha):
        provenance["warning"] = f"the SAE was trained on another policy checkpoint ({trained.get('policy')})"
    text = card.markdown(provenance=provenance)
    out = args.out or Path(args.sae).parent / "card.md"
    Path(out).write_text(text)
    print(text + f"\nwritten to {out}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=_PROG, description="Train SAEs and write their cards.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="record frames, cache a site, train an SAE and save it")
    train.add_argument("--policy", type=Path, required=True)
    train.add_argument("--site", required=True, help="a conv site of the policy, e.g. conv3a")
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--expansion", type=at_least(1), default=4, help="latents per channel")
    sparsity = train.add_mutually_exclusive_group()
    sparsity.add_argument("--l1", type=float, default=ConvSAEConfig.l1, help="L1 coefficient (ConvSAE)")
    sparsity.add_argument("--topk", type=at_least(1), help="train a TopK SAE passing this many latents per position")
    train.add_argument("--frames", type=at_least(1), default=20_000)
    train.add_argument("--played", type=float, default=0.5, help="share of frames from the agent's own episodes")
    train.add_argument("--max-episode-steps", type=at_least(1), default=250)
    train.add_argument("--positions-per-frame", type=at_least(1), default=64)
    train.add_argument("--steps", type=at_least(1), default=SAETrainingConfig.steps)
    train.add_argument("--batch-size", type=at_least(1), default=SAETrainingConfig.batch_size)
    train.add_argument("--lr", type=float, default=SAETrainingConfig.lr)
    train.add_argument("--resample-every", type=at_least(0), default=SAETrainingConfig.resample_every, help="0: never")
    train.add_argument("--seed", type=at_least(0), default=0)
    train.add_argument("--mode", default="easy", choices=("easy", "hard"))
    card = commands.add_parser("card", help="evaluate an SAE and write its Markdown card")
    card.add_argument("--policy", type=Path, required=True)
    card.add_argument("--sae", type=Path, required=True)
    card.add_argument("--site", help="needed only for checkpoints that do not record their site")
    card.add_argument("--frames", type=at_least(1), default=1024, help="evaluation frames")
    card.add_argument("--levels", type=at_least(1), default=100, help="levels played per replacement")
    card.add_argument("--max-steps", type=at_least(1), default=1000, help="episode cut (the engine's own is 1000)")
    card.add_argument("--seed", type=at_least(0), default=0)
    card.add_argument("--mode", default="easy", choices=("easy", "hard"))
    card.add_argument("--out", type=Path, help="Markdown path; default: card.md in the SAE's folder")
    args = parser.parse_args(argv)
    command = f"{_PROG} " + shlex.join(argv)
    try:
        (_train if args.command == "train" else _card)(args, command)
    except HarnessError as exc:  # a bad path, site or setting: say what is wrong, not a traceback
        parser.error(str(exc))


if __name__ == "__main__":
    main()
