"""Distil a CustomCNN agent into a :class:`~harness.policy.bilinear_model.BilinearCNN` on cached conv features.

The student copies the teacher's conv stack and keeps it frozen, so the two share every conv activation and only
the bilinear head is trained.  Iteration 0 lets the teacher play training-range levels (sampled actions) and
caches, for every frame it sees, the pool4 features (one teacher pass) with the teacher's logits and value.  Each
later iteration lets the student play (argmax on a share of the engines, sampled actions on the rest), labels
the frames it visits with the teacher (DAgger, so the student learns the states its own mistakes lead to) and
adds them to the cache.  After each collection the head takes Adam steps on the whole cache: KL(teacher ||
student) of the action distributions plus the squared value error.  Torch runs on ``--threads`` threads (1 by
default, the machine's other core being for other work).

    python -m harness.training.distill --out fixtures/agents/bilinear_bc/policy.pt \\
        --teacher fixtures/agents/customcnn_bc/policy.pt

prints progress lines with rates and ETA, and saves the student (a plain state_dict that ``load_policy`` reads
as ``bilinear_cnn``) and its log ``<out>.train.json`` after every iteration.  Every field of
:class:`DistillConfig` has its flag (``--help`` lists them with their defaults).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import CheckpointError, TrainingInputError
from harness.heist.engine import EnginePool
from harness.heist.levels import HeistLevel
from harness.heist.procgen_env import MODES
from harness.heist.sampling import SEED_RANGES, draw_seeds
from harness.policy.models import BilinearCNN, architecture_of, load_policy
from harness.policy.runner import run
from harness.training import progress
from harness.training.flags import add_config_flags, check_writable, config_from_args
from harness.training.imitation import part_played

LOG_EVERY = 20_000
"""Frames between progress lines while collecting."""

FEATURE_SITE = "pool4"
"""The teacher site whose output (flattened) is the student's bilinear input."""


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    teacher: str = "fixtures/agents/customcnn_bc/policy.pt"
    """The CustomCNN state_dict to distil; its conv stack is copied into the student and frozen."""
    widths: tuple[int, ...] = (512,)
    """Output widths of the student's bilinear layers fc1, fc2, ... (one layer: every logit is a quadratic form of
    the conv features)."""
    seed: int = 0
    """Seeds the level draw and torch (initial weights, sampled actions, minibatches)."""
    mode: str = "easy"
    """Distribution mode of the levels."""
    seed_range: str = "training"
    """Named seed range the levels come from."""
    teacher_frames: int = 150_000
    """Frames cached in iteration 0, with the teacher playing (sampled actions)."""
    iterations: int = 3
    """DAgger iterations after iteration 0, each with the student playing."""
    frames_per_iteration: int = 50_000
    """Frames cached per DAgger iteration."""
    steps_per_iteration: int = 2_000
    """Adam steps on the whole cache after each iteration's collection."""
    batch_size: int = 512
    lr: float = 1e-3
    """Adam learning rate, decayed linearly to lr/10 over all steps."""
    value_coef: float = 0.5
    """Weight of the squared value error (values scaled by 1/10) against the action KL."""
    part_played: float = 0.5
    """Share of episodes that start part-way through their level (``imitation.part_played``), as the teacher's
    last stages were trained."""
    argmax_share: float = 0.5
    """Share of the engines where the student plays its argmax action in DAgger iterations (sampled elsewhere)."""
    engines: int = 64
    """Parallel engine instances while collecting."""
    max_episode_steps: int = 400
    """Episodes longer than this are cut during collection."""
    threads: int = 1
    """Torch threads."""
    time_budget_minutes: float = 90.0
    """Stop after the iteration that crosses this wall-clock budget."""

    def __post_init__(self) -> None:
        for name in ("part_played", "argmax_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise TrainingInputError(f"{name} is a share and must lie in [0, 1], got {getattr(self, name)}")
        minimum = {"teacher_frames": 1, "iterations": 0, "frames_per_iteration": 1, "steps_per_iteration": 1,
                   "batch_size": 1, "engines": 1, "max_episode_steps": 1, "threads": 1}
        for name, least in minimum.items():
            if getattr(self, name) < least:
                raise TrainingInputError(f"{name} must be at least {least}, got {getattr(self, name)}")
        if not self.widths or min(self.widths) < 1:
            raise TrainingInputError(f"widths needs at least one layer width >= 1, got {self.widths}")
        if self.lr <= 0:
            raise TrainingInputError(f"lr must be positive, got {self.lr}")


class FeatureCache:
    """Preallocated pool4 features with the teacher's logits and value, grown by each collection."""

    def __init__(self, capacity: int):
        self.features = torch.empty((capacity, 32 * 4 * 4))
        self.logits = torch.empty((capacity, 15))
        self.value = torch.empty(capacity)
        self.size = 0

    def add(self, features: torch.Tensor, logits: torch.Tensor, value: torch.Tensor) -> None:
        end = self.size + len(features)
        self.features[self.size:end], self.logits[self.size:end], self.value[self.size:end] = (
            features.flatten(1), logits, value)
        self.size = end


class LevelStream:
    """Training levels generated 256 at a time from the seed range; a share ``part_played`` of them part-played."""

    def __init__(self, cfg: DistillConfig):
        self.cfg, self.queue, self.draws = cfg, [], 0
        self.pool = EnginePool(mode=cfg.mode, size=64)
        self.rng = np.random.default_rng([cfg.seed, 17])

    def next(self) -> HeistLevel:
        while not self.queue:
            self.queue.extend(self.pool.generate(draw_seeds(self.cfg.seed_range, 256,
                                                            seed=self.cfg.seed * 1_000_003 + self.draws)))
            self.draws += 1
        level = self.queue.pop()
        return part_played(level, self.rng) if self.rng.random() < self.cfg.part_played else level


def cache_capacity(cfg: DistillConfig) -> int:
    """Frames the whole schedule caches: each collection records whole steps of ``engines`` frames, so it rounds
    its frame count up to a multiple of ``engines``."""
    def rounded(frames: int) -> int:
        return -(-frames // cfg.engines) * cfg.engines

    return rounded(cfg.teacher_frames) + cfg.iterations * rounded(cfg.frames_per_iteration)


def student_from(teacher: torch.nn.Module, widths: tuple[int, ...]) -> BilinearCNN:
    """A fresh :class:`BilinearCNN` with the teacher's conv weights, frozen; only the bilinear head trains."""
    student = BilinearCNN(widths)
    conv = {k: v for k, v in teacher.state_dict().items() if k.startswith("conv")}
    missing, unexpected = student.load_state_dict(conv, strict=False)
    if unexpected or any(k.startswith("conv") for k in missing):
        raise CheckpointError(f"the teacher's conv stack does not fit BilinearCNN: missing {missing}, "
                              f"unexpected {unexpected}")
    for name, parameter in student.named_parameters():
        parameter.requires_grad_(not name.startswith("conv"))
    return student.eval()


def collect(teacher, student: BilinearCNN | None, cache: FeatureCache, levels: LevelStream, pool: EnginePool, *,
            frames: int, cfg: DistillConfig) -> dict:
    """Play until ``frames`` frames are cached (the teacher acting when ``student`` is None, else the student);
    every frame is labelled by the teacher.  Returns episode statistics."""
    episodes = pool.episodes([levels.next() for _ in range(pool.size)])
    greedy = torch.arange(pool.size) < round(cfg.argmax_share * pool.size)
    finished = succeeded = recorded = 0
    started, next_report = time.time(), LOG_EVERY
    while recorded < frames:
        if recorded >= next_report:
            progress.log(f"  collected {recorded}/{frames} frames, {finished} episodes | "
                         f"{progress.rate(recorded, frames, started, 'frames')}")
            next_report += LOG_EVERY
        taught = run(teacher, episodes.observe(), cache=[FEATURE_SITE])
        features = taught.activations[FEATURE_SITE]
        cache.add(features, taught.logits, taught.value)
        recorded += len(features)
        if student is None:
            act = torch.distributions.Categorical(logits=taught.logits).sample()
        else:
            with torch.no_grad():
                logits = student.head(features)[0]
            act = torch.where(greedy, logits.argmax(1), torch.distributions.Categorical(logits=logits).sample())
        ended = episodes.step(act.numpy().astype(np.int32))
        cut = episodes.active & (episodes.steps >= cfg.max_episode_steps)
        for slot in np.nonzero(ended | cut)[0]:
            finished += 1
            succeeded += int(ended[slot] and episodes.success[slot])
            episodes.restart(int(slot), levels.next())
    return {"episodes": finished, "success_rate": succeeded / max(finished, 1), "frames": recorded}


def distillation_loss(student: BilinearCNN, features: torch.Tensor, logits: torch.Tensor, value: torch.Tensor,
                      value_coef: float) -> tuple[torch.Tensor, dict]:
    """KL(teacher || student) of the action distributions plus ``value_coef`` times the squared value error (both
    values / 10), on cached ``features``; also the figures to log (KL, argmax agreement, value error)."""
    student_logits, student_value = student.head(features)
    kl = F.kl_div(student_logits.log_softmax(-1), logits.log_softmax(-1), log_target=True, reduction="batchmean")
    value_error = ((student_value - value) / 10).pow(2).mean()
    agree = (student_logits.argmax(1) == logits.argmax(1)).float().mean()
    return kl + value_coef * value_error, {"kl": kl.item(), "argmax_agreement": agree.item(),
                                           "value_mse": value_error.item()}


def train_steps(student: BilinearCNN, opt, sched, cache: FeatureCache, *, cfg: DistillConfig, label: str) -> dict:
    """``cfg.steps_per_iteration`` Adam steps on minibatches drawn uniformly from the cache."""
    student.train()
    t0, recent = time.time(), []
    for step in range(1, cfg.steps_per_iteration + 1):
        idx = torch.randint(cache.size, (cfg.batch_size,))
        loss, figures = distillation_loss(student, cache.features[idx], cache.logits[idx], cache.value[idx],
                                          cfg.value_coef)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        recent = [*recent[-199:], figures]
        if step % 200 == 0 or step == cfg.steps_per_iteration:
            mean = {k: float(np.mean([f[k] for f in recent])) for k in figures}
            progress.log(f"{label} step {step}/{cfg.steps_per_iteration} KL {mean['kl']:.4f} argmax agreement "
                         f"{mean['argmax_agreement']:.3f} value-MSE {mean['value_mse']:.4f} | "
                         f"{progress.rate(step * cfg.batch_size, cfg.steps_per_iteration * cfg.batch_size, t0, 'frames')}")
    student.eval()
    return mean


def log_path(out: Path) -> Path:
    """Where the training log of the weights at ``out`` is written (beside them)."""
    return out.with_suffix(".train.json")


def load_teacher(path: str) -> torch.nn.Module:
    """The teacher, which must be a CustomCNN (its conv stack is the student's)."""
    teacher = load_policy(path)
    if architecture_of(teacher) != "custom_cnn":
        raise TrainingInputError(f"--teacher {path} is a {architecture_of(teacher)} policy; distillation copies a "
                                 "CustomCNN's conv stack, so pass a custom_cnn checkpoint")
    return teacher


def train(cfg: DistillConfig, out: Path) -> dict:
    """Run the whole schedule, saving ``out`` (state_dict) after every iteration; returns the training log."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    teacher = load_teacher(cfg.teacher)
    student = student_from(teacher, cfg.widths)
    cache = FeatureCache(cache_capacity(cfg))
    opt = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=cfg.lr)
    total = (cfg.iterations + 1) * cfg.steps_per_iteration
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - 0.9 * min(s / total, 1.0))
    levels, pool = LevelStream(cfg), EnginePool(mode=cfg.mode, size=cfg.engines)
    log = {"config": asdict(cfg), "iterations": []}
    start = time.time()
    for it in range(cfg.iterations + 1):
        t0 = time.time()
        stats = collect(teacher, None if it == 0 else student, cache, levels, pool,
                        frames=cfg.teacher_frames if it == 0 else cfg.frames_per_iteration, cfg=cfg)
        player = "teacher" if it == 0 else "student"
        progress.log(f"iteration {it}: {player} played {stats['frames']} frames in {time.time() - t0:.0f} s; "
                     f"episodes {stats['episodes']}, success {stats['success_rate']:.3f} "
                     f"({cfg.max_episode_steps}-step cut); cache {cache.size} frames")
        fit = train_steps(student, opt, sched, cache, cfg=cfg, label=f"iteration {it}/{cfg.iterations}")
        torch.save({k: v.contiguous() for k, v in student.state_dict().items()}, out)
        elapsed = (time.time() - start) / 60
        log["iterations"].append({"iteration": it, "player": player, **{f"collect_{k}": v for k, v in stats.items()},
                                  **fit, "elapsed_minutes": round(elapsed, 2), "cache_frames": cache.size})
        log["wall_minutes"] = round(elapsed, 2)
        log_path(out).write_text(json.dumps(log, indent=2))
        progress.log(f"saved {out} and its log after iteration {it} ({elapsed:.1f} min elapsed)")
        if elapsed > cfg.time_budget_minutes and it < cfg.iterations:
            progress.log(f"time budget of {cfg.time_budget_minutes} min reached; stopping after iteration {it}")
            break
    return log


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where to save the student's state_dict")
    add_config_flags(parser, DistillConfig, choices={"mode": list(MODES), "seed_range": sorted(SEED_RANGES)})
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    try:
        check_writable(out, "--out")
        cfg = config_from_args(DistillConfig, args)
        load_teacher(cfg.teacher)  # a bad teacher is a usage error before any level is played
    except (CheckpointError, TrainingInputError) as exc:
        parser.error(str(exc))
    train(cfg, out)
    progress.log(f"done: {out}, log {log_path(out)}")


if __name__ == "__main__":
    main(sys.argv[1:])
