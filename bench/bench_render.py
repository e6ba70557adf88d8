"""Edited levels rendered per second, against the engine's own bound on the same states.

Per mode, on fresh generated levels: "harness" counts the edit (move the gem, or the agent, to a precomputed free
cell), serialisation, ``set_state`` and ``observe``, through ``EnginePool.render``, in one process and with the
render worker (a second process, as ``harness.heist.engine`` uses given two cores); "engine bound" sends the same
already-serialised states with the raw ``call_c_func("set_state", ...)`` and one ``observe`` per batch, in one
process, and in two (this process and the render worker sharing the pre-serialised states the same way).
Variants are interleaved round by round so that load from other processes hits them alike; figures are medians
over rounds, by wall clock (CPU time would miss the worker).  Then the per-level CPU cost of each harness step
alone, to show where the time goes.
Run: ``python bench/bench_render.py [--rounds 7] [--levels 2048]`` (about two minutes on 2 cores).
"""

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable

import numpy as np

from harness.heist.levels import HeistLevel
from harness.heist.engine import EnginePool
from harness.heist.engine_worker import CHUNK
from harness.heist.sampling import draw_seeds

EDITS = ("gem", "agent")


def free_cell(level: HeistLevel, avoid: tuple[int, int]) -> tuple[int, int]:
    """The first free floor cell (scan order) other than ``avoid``."""
    x0, y0, x1, y1 = level.maze_bounds
    return next((x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)
                if (x, y) != avoid and not level.is_wall((x, y)) and level.occupant((x, y)) is None)


def edit(level: HeistLevel, what: str, cell: tuple[int, int]) -> HeistLevel:
    return level.move_gem(cell) if what == "gem" else level.move_agent(cell)


def per_second(run: Callable[[], object], n: int) -> float:
    """``n`` / wall-clock seconds taken by ``run``."""
    wall = time.perf_counter()
    run()
    return n / (time.perf_counter() - wall)


def cpu_per_level(run: Callable[[], object], n: int) -> float:
    """Microseconds of this process's CPU time per level (steadier than wall clock on a loaded machine)."""
    cpu = time.process_time()
    run()
    return 1e6 * (time.process_time() - cpu) / n


def bench_mode(mode: str, n: int, rounds: int) -> None:
    local, shared = EnginePool(mode=mode, size=64), EnginePool(mode=mode, size=64, render_worker=True)
    levels = local.generate(draw_seeds("selection", n, seed=0).tolist())
    targets = {what: [free_cell(lv, (lv.gem if what == "gem" else lv.agent).cell) for lv in levels] for what in EDITS}
    states = {what: [edit(lv, what, c).to_bytes() for lv, c in zip(levels, targets[what])] for what in EDITS}

    def harness(pool: EnginePool, what: str) -> None:
        pool.render([edit(lv, what, c) for lv, c in zip(levels, targets[what])])

    def bound(what: str) -> None:
        for start in range(0, n, local.size):
            for i, data in enumerate(states[what][start:start + local.size]):
                local.env.call_c_func("set_state", i, data, len(data))
            local.env.observe()

    def bound_two_processes(what: str, out=np.empty((n, 64, 64, 3), np.uint8)) -> None:
        shared._render_shared(((s, states[what][s:s + CHUNK]) for s in range(0, n, CHUNK)), out)

    variants = {}
    for what in EDITS:
        variants[f"harness, one process ({what})"] = lambda w=what: harness(local, w)
        variants[f"harness, render worker ({what})"] = lambda w=what: harness(shared, w)
        variants[f"engine bound, one process ({what})"] = lambda w=what: bound(w)
        variants[f"engine bound, two processes ({what})"] = lambda w=what: bound_two_processes(w)
    for run in variants.values():  # warm-up (starts the worker)
        run()
    figures: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            figures[name].append(per_second(run, n))

    print(f"\n{mode}: {n} fresh levels, pool of {local.size}, {rounds} rounds; edited levels rendered per second "
          f"(wall clock, median)")
    for what in EDITS:
        ours1, ours2, bound1, bound2 = (statistics.median(figures[f"{kind} ({what})"]) for kind in (
            "harness, one process", "harness, render worker", "engine bound, one process",
            "engine bound, two processes"))
        print(f"  move {what}:")
        print(f"    one process   harness {ours1:6.0f}   engine bound {bound1:6.0f}   ratio {ours1 / bound1:.3f}")
        print(f"    render worker harness {ours2:6.0f}   against the one-process bound {ours2 / bound1:.3f}; "
              f"two-process bound {bound2:6.0f}, ratio {ours2 / bound2:.3f}")
    shared._worker.close()

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
            costs.append(cpu_per_level(lambda: run(prepared), n))
        print(f"    {name:<38} {statistics.median(costs):6.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--levels", type=int, default=2048)
    args = parser.parse_args()
    for mode in ("easy", "hard"):
        bench_mode(mode, args.levels, args.rounds)


if __name__ == "__main__":
    main()
