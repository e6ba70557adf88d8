"""Edited levels rendered per second, against the engine's own bound on the same states.

Per mode, on fresh generated levels: "harness" counts the edit (move the gem, or the agent, to a precomputed free
cell), serialisation, ``set_state`` and ``observe``, through ``EnginePool.render``; "engine bound" sends the same
already-serialised states with the raw ``call_c_func("set_state", ...)`` and one ``observe`` per batch.  Variants
are interleaved round by round so that load from other processes hits them alike; figures are medians over
rounds.  Then the per-level cost of each harness step alone, to show where the time goes.
Run: ``python bench/bench_render.py [--rounds 7] [--levels 512]`` (about a minute on 2 cores).
"""

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable

from harness.levels import HeistLevel
from harness.render import EnginePool
from harness.sampling import draw_seeds

EDITS = ("gem", "agent")


def free_cell(level: HeistLevel, avoid: tuple[int, int]) -> tuple[int, int]:
    """The first free floor cell (scan order) other than ``avoid``."""
    x0, y0, x1, y1 = level.maze_bounds
    return next((x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)
                if (x, y) != avoid and not level.is_wall((x, y)) and level.occupant((x, y)) is None)


def edit(level: HeistLevel, what: str, cell: tuple[int, int]) -> HeistLevel:
    return level.move_gem(cell) if what == "gem" else level.move_agent(cell)


def per_second(run: Callable[[], object], n: int) -> tuple[float, float]:
    """``n`` / seconds taken by ``run``: wall clock, and this process's CPU time (steadier on a loaded machine;
    the engine renders on the calling thread, so CPU time covers it)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def bench_mode(mode: str, n: int, rounds: int) -> None:
    pool = EnginePool(mode=mode, size=64)
    levels = pool.generate(draw_seeds("selection", n, seed=0).tolist())
    targets = {what: [free_cell(lv, (lv.gem if what == "gem" else lv.agent).cell) for lv in levels] for what in EDITS}
    states = {what: [edit(lv, what, c).to_bytes() for lv, c in zip(levels, targets[what])] for what in EDITS}

    def harness(what: str) -> None:
        pool.render([edit(lv, what, c) for lv, c in zip(levels, targets[what])])

    def bound(what: str) -> None:
        for start in range(0, n, pool.size):
            for i, data in enumerate(states[what][start:start + pool.size]):
                pool.env.call_c_func("set_state", i, data, len(data))
            pool.env.observe()

    variants = {f"{kind} ({what})": (lambda f=f, w=what: f(w))
                for what in EDITS for kind, f in (("harness", harness), ("engine bound", bound))}
    for run in variants.values():  # warm-up
        run()
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            figures[name].append(per_second(run, n))

    print(f"\n{mode}: {n} fresh levels, pool of {pool.size}, {rounds} rounds; levels/s by wall clock [by CPU time]")
    for what in EDITS:
        (ours, ours_cpu), (engine, engine_cpu) = (
            tuple(statistics.median(f[i] for f in figures[f"{kind} ({what})"]) for i in (0, 1))
            for kind in ("harness", "engine bound"))
        print(f"  move {what:<5}  harness {ours:6.0f} [{ours_cpu:6.0f}]   engine bound {engine:6.0f} "
              f"[{engine_cpu:6.0f}]   ratio {ours / engine:.3f} [{ours_cpu / engine_cpu:.3f}]")

    def edits() -> list[HeistLevel]:
        return [edit(lv, "gem", c) for lv, c in zip(levels, targets["gem"])]

    steps = {  # name: (setup, timed run of what setup returns)
        "edit (move_gem)": (lambda: None, lambda _: edits()),
        "serialise the edit (changed sections)": (edits, lambda fresh: [lv.to_bytes() for lv in fresh]),
        "serialise every field (for comparison)": (lambda: [dataclasses.replace(lv) for lv in edits()],
                                                   lambda copies: [lv.to_bytes() for lv in copies]),
        "set_state + observe (engine)": (lambda: None, lambda _: bound("gem")),
    }
    print("  per level, CPU time:")
    for name, (setup, run) in steps.items():
        costs = []
        for _ in range(rounds):
            prepared = setup()
            costs.append(1e6 / per_second(lambda: run(prepared), n)[1])
        print(f"    {name:<38} {statistics.median(costs):6.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--levels", type=int, default=512)
    args = parser.parse_args()
    for mode in ("easy", "hard"):
        bench_mode(mode, args.levels, args.rounds)


if __name__ == "__main__":
    main()
