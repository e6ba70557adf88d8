"""Seeded representative samples of generated levels, from named, disjoint seed ranges.

A level is identified by its engine seed; the same seed gives the same level on any machine.  The ranges are
disjoint so that what is trained on one range, or selected on one, is confirmed on another:

- ``training``: levels the shipped agents and SAEs were trained on;
- ``selection``: where claims choose channels, features, directions (exploration);
- ``confirmation``: where confirmatory claims are tested, never looked at while choosing;
- ``calibration``: where the harness is tested on planted mechanisms.

:func:`sample_levels` draws seeds from a range with a seeded generator, keeps the levels that satisfy a
predicate (e.g. "the target is above the agent"), and returns exactly ``n`` of them, or fails clearly when the
predicate is too rare to fill the sample within the draw budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from harness.errors import SamplingError
from harness.heist.levels import HeistLevel


@dataclass(frozen=True, kw_only=True)
class SeedRange:
    """Engine seeds ``start <= seed < stop`` reserved for one purpose."""

    name: str
    start: int
    stop: int

    def __contains__(self, seed: int) -> bool:
        return self.start <= seed < self.stop

    def __str__(self) -> str:
        return f"{self.name} [{self.start}, {self.stop})"


SEED_RANGES: dict[str, SeedRange] = {
    r.name: r for r in (
        SeedRange(name="training", start=0, stop=1_000_000),
        SeedRange(name="selection", start=1_000_000, stop=1_100_000),
        SeedRange(name="confirmation", start=2_000_000, stop=2_100_000),
        SeedRange(name="calibration", start=3_000_000, stop=3_100_000),
    )
}


def seed_range(name: str) -> SeedRange:
    """The named range; raises SamplingError listing the valid names."""
    try:
        return SEED_RANGES[name]
    except KeyError:
        raise SamplingError(f"unknown seed range {name!r}; choose one of {sorted(SEED_RANGES)}") from None


def draw_seeds(seeds: str, n: int, *, seed: int) -> np.ndarray:
    """``n`` distinct engine seeds from the named range, in a reproducible order."""
    r = seed_range(seeds)
    _check_request(r, n, seed)
    rng = np.random.default_rng([seed, r.start])
    return r.start + rng.choice(r.stop - r.start, size=n, replace=False)


def _check_request(r: SeedRange, n: int, seed: int) -> None:
    """Refuse a sample the range cannot give, before any level is generated."""
    for name, value in (("n", n), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise SamplingError(f"{name} must be an integer, got {value!r}")
    if seed < 0:
        raise SamplingError(f"the sampling seed must be a non-negative integer, got {seed}")
    if not 0 < n <= r.stop - r.start:
        raise SamplingError(f"n must be in 1..{r.stop - r.start} for range {r} (it has {r.stop - r.start} seeds), "
                            f"got {n}")


Predicate = Callable[[HeistLevel], bool]


def sample_levels(seeds: str, n: int, *, seed: int, where: Predicate | None = None, mode: str = "easy",
                  max_draws: int | None = None) -> list[HeistLevel]:
    """``n`` generated levels of the seed range named ``seeds`` (as a claim declares it, ``seeds="confirmation"``)
    that satisfy ``where`` (all if None).

    Seeds are drawn in a fixed order from ``seed``, so the sample is the same on every run and machine.
    Raises SamplingError if ``max_draws`` seeds (default ``50 * n``) do not yield ``n`` matching levels.
    """
    from harness.heist.engine import generate  # the engine is imported only when levels are really needed

    span = seed_range(seeds)
    _check_request(span, n, seed)
    budget = max_draws if max_draws is not None else 50 * n
    drawn = draw_seeds(seeds, min(budget, span.stop - span.start), seed=seed)
    kept: list[HeistLevel] = []
    for start in range(0, len(drawn), 256):
        for level in generate(drawn[start:start + 256], mode=mode):
            if where is None or where(level):
                kept.append(level)
                if len(kept) == n:
                    return kept
    raise SamplingError(
        f"only {len(kept)} of {len(drawn)} levels drawn from {span} satisfy the predicate; "
        f"{n} were requested: loosen the predicate, lower n or raise max_draws")
