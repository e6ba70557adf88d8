"""Train a Heist agent (CustomCNN or IMPALA) on CPU by imitating the shortest-path oracle, with DAgger relabelling.

Iteration 0 records the oracle itself playing (with some random actions, so that the data also holds states
off the optimal path).  Each later iteration lets the current network play (mixed with the oracle at a
decaying rate), labels every state it visits with the oracle's action, adds them to the data set and trains on
the whole aggregate: the network learns to recover from its own mistakes.  The value head regresses the
discounted return of the recorded episodes; training-only heads on the last hidden layer (CustomCNN's fc2,
IMPALA's fc) predict the agent's and the target's cells and the first step toward the target from every cell
(:mod:`harness.training.imitation_heads`); with ``--teacher`` the network also learns a trained policy's action
distribution on every recorded frame.  Levels come from the ``training`` seed range only;
with ``--part-played`` a share of the episodes starts part-way through its level (:func:`part_played`).

    python -m harness.training.imitation --out fixtures/agents/customcnn_bc/policy.pt
    python -m harness.training.imitation --out continued.pt --init fixtures/agents/customcnn_bc/policy.pt  # continued
    python -m harness.training.imitation --out impala.pt --architecture impala \\
        --teacher fixtures/agents/customcnn_bc/policy.pt  # IMPALA, also distilling the CustomCNN agent

prints progress lines with rates and ETA, and saves the weights (a plain state_dict) after every iteration.  Every
field of :class:`ImitationConfig` has its flag (``--oracle-mix 0.25 0.1`` for a tuple; ``--help`` lists them with
their defaults).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import CheckpointError, ImitationConfigError, TrainingInputError
from harness.heist.engine import EnginePool
from harness.heist.levels import COLOURS, HeistLevel
from harness.heist.oracle import NO_STEP, ON_TARGET, first_steps, oracle_action
from harness.heist.procgen_env import MODES
from harness.heist.sampling import SEED_RANGES, draw_seeds
from harness.policy.models import ARCHITECTURES, N_ACTIONS, preprocess
from harness.training import progress
from harness.training.flags import add_config_flags, check_writable, config_from_args
from harness.training.imitation_heads import (AUX_GRID, AuxiliaryHeads, Teacher, aux_cells, distillation_loss,
                                              start_network)


@dataclass(frozen=True, kw_only=True)
class ImitationConfig:
    seed: int = 0
    """Seeds the level draw, the action noise and torch."""
    architecture: str = "custom_cnn"
    """The network trained (a name of :data:`harness.policy.models.ARCHITECTURES`); an ``init`` must hold it."""
    mode: str = "easy"
    """Distribution mode of the training levels."""
    iterations: int = 5
    """DAgger iterations after the oracle-only iteration 0."""
    expert_frames: int = 250_000
    """Frames recorded in iteration 0, with the oracle playing."""
    frames_per_iteration: int = 80_000
    """Frames recorded per DAgger iteration, with the network (mixed with the oracle) playing."""
    expert_noise: float = 0.25
    """Probability of a uniformly random move in iteration 0 (labels stay the oracle's)."""
    oracle_mix: tuple[float, ...] = (0.25, 0.1)
    """Probability that the oracle acts instead of the network in DAgger iterations 1, 2, ...; 0 afterwards."""
    steps_per_iteration: int = 1_500
    """Gradient steps after each iteration's collection."""
    batch_size: int = 256
    lr: float = 5e-4
    """Adam learning rate, decayed linearly to lr/10 over all gradient steps."""
    value_coef: float = 0.5
    """Weight of the value regression (on returns scaled by 1/10) against the action cross-entropy."""
    aux_coef: float = 1.0
    """Weight of two training-only heads on fc2 that predict the agent's cell and the current target's cell; they
    teach the trunk to localise (without them the action loss sat at the label entropy for 300k frames,
    measured) and are not part of the saved weights."""
    field_coef: float = 1.0
    """Weight of a third training-only head that predicts, for every cell of the frame, the first step toward the
    current target (:func:`harness.heist.oracle.first_steps`): a label for every free cell instead of the agent's alone,
    to teach the trunk to plan in the maze (the shipped agent's errors were wrong directions, not alignment:
    10.7% opposite and 8.4% perpendicular moves on the oracle's own states, measured)."""
    gamma: float = 0.999
    """Discount of the value targets (Procgen's PPO setting)."""
    max_episode_steps: int = 400
    """Episodes longer than this are cut during collection (their value targets are dropped)."""
    engines: int = 64
    """Parallel engine instances while collecting."""
    argmax_share: float = 0.5
    """Share of the engines where the network plays its argmax action instead of a sampled one while collecting,
    so that the states where the greedy policy gets stuck are labelled too."""
    bf16: bool = True
    """Train and collect under bfloat16 autocast with channels_last weights (2.5x faster on CPU, measured); the
    saved weights are fp32."""
    time_budget_minutes: float = 70.0
    """Stop after the iteration that crosses this wall-clock budget (the card records where it stopped)."""
    stop_after: int | None = None
    """Stop after this iteration whatever the time (the learning rate still decays over all ``iterations``): the
    rebuild of a stage that its time budget cut, on a machine of another speed."""
    seed_range: str = field(default="training")
    """Named seed range the levels come from."""
    init: str = ""
    """A state_dict of ``architecture`` to start from (continued training) instead of an orthogonal init."""
    teacher: str = ""
    """A trained policy state_dict (any architecture) whose action distribution the network also learns on every
    recorded frame, as KL(teacher || network) weighted by ``teacher_coef``; empty: the oracle's actions alone."""
    teacher_coef: float = 1.0
    """Weight of the distillation term against the action cross-entropy (used only with ``teacher``)."""
    part_played: float = 0.0
    """Share of the episodes that start part-way through their level (:func:`part_played`) instead of at its start:
    more distinct mazes and stages of play per recorded frame.  The shipped agent agreed with the oracle on 0.88
    of the states of levels it was trained on and 0.83 of new ones (measured), so it had partly learned levels."""
    multi_lock_share: float = 0.0
    """Share of the levels drawn among those with at least ``MULTI_LOCK`` locks instead of among all: the stage-5
    agent reached the gem on 0.91 of 69 selection levels with one lock, 0.69 of 54 with two and 0.50 of 34 with
    three (measured), and such levels are under half of those generated.  At 0 the draw is the plain one."""

    def __post_init__(self) -> None:
        for name in ("expert_noise", "argmax_share", "part_played", "multi_lock_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ImitationConfigError(f"{name} is a share and must lie in [0, 1], got {getattr(self, name)}")
        if not all(0 <= share <= 1 for share in self.oracle_mix):
            raise ImitationConfigError(f"oracle_mix holds shares, one per DAgger iteration, each in [0, 1]; got "
                                       f"{self.oracle_mix}")
        if self.architecture not in ARCHITECTURES:
            raise ImitationConfigError(f"architecture must be one of {sorted(ARCHITECTURES)}, got "
                                       f"{self.architecture!r}")
        if self.stop_after is not None and not 0 <= self.stop_after <= self.iterations:
            raise ImitationConfigError(f"stop_after names an iteration, 0 to iterations ({self.iterations}); got "
                                       f"{self.stop_after}")
        minimum = {"iterations": 0, "expert_frames": 1, "frames_per_iteration": 1, "steps_per_iteration": 1,
                   "batch_size": 1, "max_episode_steps": 1, "engines": 1, "teacher_coef": 0}
        for name, least in minimum.items():
            if getattr(self, name) < least:
                raise ImitationConfigError(f"{name} must be at least {least}, got {getattr(self, name)}")


MULTI_LOCK = 2


class _Dataset:
    """Preallocated frames, oracle labels and value targets, aggregated over iterations; with a ``teacher``, its
    action log-probabilities on every frame too."""

    def __init__(self, capacity: int, teacher: Teacher | None = None):
        self.obs = np.empty((capacity, 64, 64, 3), dtype=np.uint8)
        self.action = np.empty(capacity, dtype=np.int64)
        self.value = np.zeros(capacity, dtype=np.float32)
        self.has_value = np.zeros(capacity, dtype=bool)
        self.cells = np.zeros((capacity, 2), dtype=np.int64)  # agent cell, current target cell (y * 16 + x)
        self.steps = np.full((capacity, AUX_GRID, AUX_GRID), NO_STEP, dtype=np.int8)  # first steps, [y, x]
        self.teacher = teacher
        self.teacher_log_probs = np.zeros((capacity if teacher else 0, N_ACTIONS), dtype=np.float32)
        self.size = 0

    def add(self, obs: np.ndarray, actions: np.ndarray, states: list) -> np.ndarray:
        """Append frames with their oracle actions and the auxiliary targets read from their ``states``."""
        idx = np.arange(self.size, self.size + len(obs))
        self.obs[idx], self.action[idx] = obs, actions
        for row, level in zip(idx, states):
            self.cells[row] = aux_cells(level)
            steps = first_steps(level)
            self.steps[row, :steps.shape[0], :steps.shape[1]] = steps
        if self.teacher is not None:
            self.teacher_log_probs[idx] = self.teacher.log_probs(obs)
        self.size += len(obs)
        return idx


class _LevelStream:
    """Fresh training levels, generated 256 at a time from the seed range; a share ``multi_lock_share`` of them
    comes from a second queue that keeps only the generated levels with at least ``MULTI_LOCK`` locks."""

    def __init__(self, cfg: ImitationConfig, salt: int):
        self.cfg, self.salt, self.queue, self.multi_lock_queue, self.draws = cfg, salt, [], [], 0
        self.pool = EnginePool(mode=cfg.mode, size=64)
        self.rng = np.random.default_rng([cfg.seed, salt])

    def next(self) -> HeistLevel:
        multi_lock = self.cfg.multi_lock_share > 0 and self.rng.random() < self.cfg.multi_lock_share
        queue = self.multi_lock_queue if multi_lock else self.queue
        while not queue:
            seeds = draw_seeds(self.cfg.seed_range, 256, seed=self.cfg.seed * 1_000_003 + self.salt * 7919 + self.draws)
            self.draws += 1
            queue.extend(level for level in self.pool.generate(seeds)
                         if not multi_lock or len(level.locks) >= MULTI_LOCK)
        level = queue.pop()
        return part_played(level, self.rng) if self.rng.random() < self.cfg.part_played else level


def part_played(level: HeistLevel, rng: np.random.Generator) -> HeistLevel:
    """``level`` as it would stand part-way through play: a uniformly drawn stage (for each lock colour in order:
    key lying, key held, lock opened; the last stage has every lock open) with the agent at rest on a random empty
    cell of the part of the maze it could be in, i.e. any cell from which the current target can be reached."""
    colours = [c for c in COLOURS if c in level.locks]
    stage = int(rng.integers(0, 2 * len(colours) + 1))
    for i, colour in enumerate(colours[:(stage + 1) // 2]):
        if colour in level.keys:
            level = level.remove_key(colour)
        level = level.give_key(colour)
        if stage >= 2 * i + 2:
            level = level.remove_lock(colour)
    steps = first_steps(level)
    ys, xs = np.nonzero((steps != NO_STEP) & (steps != ON_TARGET))
    cells = [(int(x), int(y)) for x, y in zip(xs, ys) if level.occupant((int(x), int(y))) is None]
    return level.move_agent(cells[rng.integers(len(cells))]) if cells else level


def collect(model: torch.nn.Module | None, data: _Dataset, levels: _LevelStream, pool: EnginePool, *, frames: int,
            oracle_prob: float, noise: float, cfg: ImitationConfig, rng: np.random.Generator) -> dict:
    """Play until ``frames`` states are recorded; label each with the oracle; returns episode statistics."""
    episodes = pool.episodes([levels.next() for _ in range(pool.size)])
    slot_rows: list[list[int]] = [[] for _ in range(pool.size)]
    finished = succeeded = 0
    recorded = 0
    while recorded < frames:
        states = episodes.states()
        labels = np.array([oracle_action(s) for s in states], dtype=np.int64)
        obs = episodes.observe()
        rows = data.add(obs, labels, states)
        recorded += len(rows)
        for slot, row in enumerate(rows):
            slot_rows[slot].append(row)
        act = labels.copy()
        if model is not None and oracle_prob < 1:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                logits, _ = model(preprocess(obs))
            logits = logits.float()
            sampled = torch.distributions.Categorical(logits=logits).sample().numpy()
            greedy = np.arange(pool.size) < round(cfg.argmax_share * pool.size)
            learner = np.where(greedy, logits.argmax(1).numpy(), sampled)
            use_learner = rng.random(pool.size) >= oracle_prob
            act = np.where(use_learner, learner, labels)
        if noise > 0:
            random_moves = rng.integers(0, 9, size=pool.size)
            act = np.where(rng.random(pool.size) < noise, random_moves, act)
        ended = episodes.step(act.astype(np.int32))
        cut = episodes.active & (episodes.steps >= cfg.max_episode_steps)
        for slot in np.nonzero(ended | cut)[0]:
            if ended[slot] and episodes.success[slot]:
                steps_to_go = np.arange(len(slot_rows[slot]) - 1, -1, -1)
                data.value[slot_rows[slot]] = 10.0 * cfg.gamma ** steps_to_go
                data.has_value[slot_rows[slot]] = True
                succeeded += 1
            elif ended[slot]:  # timed out: the return is truly 0
                data.has_value[slot_rows[slot]] = True
            finished += 1
            slot_rows[slot] = []
            episodes.restart(int(slot), levels.next())
    return {"episodes": finished, "success_rate": succeeded / max(finished, 1), "frames": recorded}


def train_steps(model: torch.nn.Module, aux: AuxiliaryHeads, opt: torch.optim.Optimizer, sched, data: _Dataset, *,
                steps: int, cfg: ImitationConfig, rng: np.random.Generator, label: str) -> dict:
    """``steps`` Adam steps on minibatches drawn uniformly from the aggregate data set."""
    model.train()
    t0, seen, losses, accs, kls = time.time(), 0, [], [], []
    for step in range(1, steps + 1):
        idx = np.sort(rng.integers(0, data.size, size=cfg.batch_size))
        x = preprocess(data.obs[idx])
        y = torch.from_numpy(data.action[idx])
        v = torch.from_numpy(data.value[idx]) / 10.0
        m = torch.from_numpy(data.has_value[idx]).float()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            logits, value = model(x)
        logits, value = logits.float(), value.float()
        loss_pi = F.cross_entropy(logits, y)
        loss_v = ((value - v) ** 2 * m).sum() / m.sum().clamp(min=1)
        loss_cells, loss_steps = aux.losses(torch.from_numpy(data.cells[idx]), torch.from_numpy(data.steps[idx]))
        loss = loss_pi + cfg.value_coef * loss_v + cfg.aux_coef * loss_cells + cfg.field_coef * loss_steps
        if data.teacher is not None:
            loss_kl = distillation_loss(logits, torch.from_numpy(data.teacher_log_probs[idx]))
            loss = loss + cfg.teacher_coef * loss_kl
            kls.append(loss_kl.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        seen += len(idx)
        losses.append(loss_pi.item())
        accs.append((logits.argmax(1) == y).float().mean().item())
        if step % 200 == 0 or step == steps:
            rate = seen / (time.time() - t0)
            eta = (steps - step) * cfg.batch_size / rate
            progress.log(f"{label} step {step}/{steps} action-CE {np.mean(losses[-200:]):.3f} "
                         f"acc {np.mean(accs[-200:]):.3f} value-MSE {loss_v.item():.3f} "
                         f"cells-CE {loss_cells.item():.2f} steps-CE {loss_steps.item():.2f} "
                         + (f"teacher-KL {np.mean(kls[-200:]):.3f} " if kls else "") + "| "
                         f"{rate:.0f} frames/s | ETA {eta / 60:.1f} min")
    model.eval()
    fit = {"action_ce": float(np.mean(losses[-200:])), "accuracy": float(np.mean(accs[-200:]))}
    return fit | ({"teacher_kl": float(np.mean(kls[-200:]))} if kls else {})


def _recorded(frames: int, cfg: ImitationConfig) -> int:
    """Frames :func:`collect` records when asked for ``frames``: whole steps of every engine, so up to
    ``engines - 1`` more in each iteration (a fixed slack of two steps ran out in a stage of 8 iterations)."""
    return -(-frames // cfg.engines) * cfg.engines


def log_path(out: Path) -> Path:
    """Where the training log of the weights at ``out`` is written (beside them)."""
    return out.with_suffix(".train.json")


def train(cfg: ImitationConfig, out: Path) -> dict:
    """Run the whole schedule, saving ``out`` (state_dict) after every iteration; returns the training log."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    capacity = _recorded(cfg.expert_frames, cfg) + cfg.iterations * _recorded(cfg.frames_per_iteration, cfg)
    model = start_network(cfg.architecture, cfg.init)
    data = _Dataset(capacity, Teacher(cfg.teacher, bf16=cfg.bf16) if cfg.teacher else None)
    aux = AuxiliaryHeads(model)
    opt = torch.optim.Adam([*model.parameters(), *aux.parameters()], lr=cfg.lr)
    total_steps = (cfg.iterations + 1) * cfg.steps_per_iteration
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - 0.9 * min(s / total_steps, 1.0))
    levels, pool = _LevelStream(cfg, salt=1), EnginePool(mode=cfg.mode, size=cfg.engines)
    log = {"config": asdict(cfg), "iterations": []}
    start = time.time()
    for it in range(cfg.iterations + 1):
        t0 = time.time()
        if it == 0:
            stats = collect(None, data, levels, pool, frames=cfg.expert_frames, oracle_prob=1.0,
                            noise=cfg.expert_noise, cfg=cfg, rng=rng)
            mix = 1.0
        else:
            mix = cfg.oracle_mix[it - 1] if it - 1 < len(cfg.oracle_mix) else 0.0
            stats = collect(model, data, levels, pool, frames=cfg.frames_per_iteration, oracle_prob=mix, noise=0.0,
                            cfg=cfg, rng=rng)
        progress.log(f"iteration {it}: collected {stats['frames']} frames in {time.time() - t0:.0f}s "
                     f"(oracle share {mix:.2f}); episodes {stats['episodes']}, success {stats['success_rate']:.3f}; "
                     f"data set {data.size} frames")
        fit = train_steps(model, aux, opt, sched, data, steps=cfg.steps_per_iteration, cfg=cfg, rng=rng,
                          label=f"iteration {it}/{cfg.iterations}")
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, out)
        elapsed = (time.time() - start) / 60
        log["iterations"].append({"iteration": it, "oracle_share": mix, **{f"collect_{k}": v for k, v in stats.items()},
                                  **fit, "elapsed_minutes": round(elapsed, 2), "dataset_frames": data.size})
        log["wall_minutes"] = round(elapsed, 2)
        log["gradient_steps"] = len(log["iterations"]) * cfg.steps_per_iteration
        log_path(out).write_text(json.dumps(log, indent=2))  # after every iteration, so a cut run keeps its record
        progress.log(f"saved {out} and its log after iteration {it} ({elapsed:.1f} min elapsed)")
        if elapsed > cfg.time_budget_minutes and it < cfg.iterations:
            progress.log(f"time budget of {cfg.time_budget_minutes} min reached; stopping after iteration {it}")
            break
        if it == cfg.stop_after:
            progress.log(f"stopping after iteration {it}, as --stop-after says")
            break
    return log


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where to save the state_dict")
    add_config_flags(parser, ImitationConfig, choices={"mode": list(MODES), "seed_range": sorted(SEED_RANGES),
                                                       "architecture": sorted(ARCHITECTURES)})
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    try:
        check_writable(out, "--out")
        train(config_from_args(ImitationConfig, args), out)
    except (ImitationConfigError, CheckpointError, TrainingInputError) as exc:  # before any training: a usage error
        parser.error(str(exc))
    progress.log(f"done: {out}, log {log_path(out)}")


if __name__ == "__main__":
    main(sys.argv[1:])
