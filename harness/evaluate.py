"""How well an agent plays: success rates on held-out levels with Wilson intervals, beside baselines.

    python -m harness.evaluate --policy fixtures/agents/customcnn_bc.pt --n 500

plays ``n`` levels of the confirmation seed range four ways (the policy with sampled actions, with argmax
actions, uniformly random actions, the shortest-path oracle), prints a table and, with ``--json``, writes the
figures a training card quotes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


from harness.models import checkpoint_sha256, load_policy
from harness.rollouts import oracle_chooser, play, random_chooser, rollout
from harness.sampling import sample_levels, seed_range
from harness.stats import wilson_interval


def evaluate(policy_path: Path, *, n: int, seed: int, mode: str = "easy", range_name: str = "confirmation") -> dict:
    """Success rates (with 95% Wilson intervals) and mean steps of the four players on the same levels."""
    policy = load_policy(policy_path)
    levels = sample_levels(range_name, n, seed=seed, mode=mode)
    players = {
        "policy (sampled actions)": lambda: rollout(policy, levels, sample=True, seed=seed),
        "policy (argmax actions)": lambda: rollout(policy, levels, sample=False),
        "random actions": lambda: play(levels, random_chooser(seed)),
        "shortest-path oracle": lambda: play(levels, oracle_chooser),
    }
    rows = {}
    for name, go in players.items():
        t0 = time.time()
        result = go()
        rate = wilson_interval(int(result.success.sum()), n)
        rows[name] = {"success": rate.estimate, "ci_low": rate.ci_low, "ci_high": rate.ci_high, "n": n,
                      "mean_steps_when_successful": float(result.steps[result.success].mean())
                      if result.success.any() else None, "seconds": round(time.time() - t0, 1)}
        print(f"{name:28s} {rate.describe()}  ({rows[name]['seconds']} s)", flush=True)
    return {"policy": str(policy_path), "sha256": checkpoint_sha256(policy_path), "mode": mode,
            "levels": f"{n} levels of {seed_range(range_name)}, drawn with seed {seed}", "results": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Success rates of an agent beside random and oracle baselines.")
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", default="easy", choices=("easy", "hard"))
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    figures = evaluate(args.policy, n=args.n, seed=args.seed, mode=args.mode)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
