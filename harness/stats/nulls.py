"""Samplers of null baselines: random channel sets, random SAE latents of matched firing rate and random
directions of matched norm, to compare a claimed unit with (see :func:`permutation_test_against_null`)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import numpy as np

from harness.errors import StatisticsError
from harness.stats.checks import as_indices, as_vector, check_int, check_real, rng_from

_ENUMERATED = 10_000  # at most this many candidate sets are listed rather than drawn by rejection


def random_channel_sets(
    n_channels: int, size: int, m: int, *, seed: int | np.random.Generator, exclude: Iterable[int] = ()
) -> np.ndarray:
    """``m`` distinct random sets of ``size`` channels, shape (m, size), each row sorted.

    Channels in ``exclude`` are never drawn (pass the claimed channels to draw only other ones).
    """
    n_channels = check_int(n_channels, "n_channels", minimum=1)
    size = check_int(size, "size", minimum=1)
    m = check_int(m, "m", minimum=1)
    pool = np.setdiff1d(np.arange(n_channels), as_indices(exclude, "exclude", size=n_channels, min_size=0))
    if size > pool.size:
        raise StatisticsError(f"size={size} exceeds the {pool.size} channels left after exclude; lower size")
    total = math.comb(pool.size, size)
    if m > total:
        raise StatisticsError(f"m={m} exceeds the {total} distinct sets of {size} among {pool.size} channels; lower m")
    rng = rng_from(seed)
    if total <= 2 * m:  # most sets are needed: choose among all of them
        every = np.array(list(itertools.combinations(pool, size)), dtype=np.intp)
        return every[rng.choice(total, m, replace=False)]
    drawn: dict[tuple[int, ...], None] = {}  # ordered set; rejection keeps at least half of the draws
    while len(drawn) < m:
        drawn[tuple(np.sort(rng.choice(pool, size, replace=False)))] = None
    return np.array(list(drawn), dtype=np.intp)


def matched_firing_rate_latents(
    firing_rates: object,
    target_latents: object,
    m: int,
    *,
    seed: int | np.random.Generator,
    tolerance: float = 0.1,
    exclude: Iterable[int] = (),
) -> np.ndarray:
    """``m`` distinct random latent sets matched to ``target_latents`` by firing rate, shape
    (m, len(target_latents)), drawn without replacement: no set repeats, so m null draws are m distinct units.

    Column j holds latents whose rate is within ``tolerance`` (relative: |r - r_j| <= tolerance * r_j) of
    target j's rate (a target that never fires matches only latents that never fire); latents within a row
    are distinct.  Latents in ``exclude`` are never drawn (pass the targets to draw only other latents).  When
    fewer than ``m`` distinct sets exist, the error says how many do (a permutation p against k distinct null
    units can never go below 1/(k+1))::

        matched_firing_rate_latents(rates, [chosen], 100, seed=0, tolerance=0.5, exclude=[chosen])
    """
    rates = as_vector(firing_rates, "firing_rates")
    if np.any(rates < 0):
        raise StatisticsError("firing_rates must be non-negative (fraction of inputs on which each latent fires)")
    targets = as_indices(target_latents, "target_latents", size=rates.size, min_size=1)
    m = check_int(m, "m", minimum=1)
    tolerance = check_real(tolerance, "tolerance", positive=True)
    allowed = np.ones(rates.size, dtype=bool)
    allowed[as_indices(exclude, "exclude", size=rates.size, min_size=0)] = False
    pools = []
    for target in targets:
        pool = np.flatnonzero(allowed & (np.abs(rates - rates[target]) <= tolerance * rates[target]))
        if pool.size < targets.size:
            raise StatisticsError(
                f"target latent {target} (firing rate {rates[target]:.3g}) has {pool.size} candidates within "
                f"tolerance={tolerance:g}, fewer than the {targets.size} a set of distinct latents needs; "
                "raise tolerance, exclude fewer latents or pass fewer target_latents"
            )
        pools.append(pool)
    rng = rng_from(seed)
    # at least prod(k_j - j) distinct sets exist (column j avoids the j latents before it); when that is not
    # comfortably above m, or there are few sets at all, list them and choose among them
    at_least = math.prod(max(0, pool.size - j) for j, pool in enumerate(sorted(pools, key=len)))
    if at_least < 2 * m or math.prod(pool.size for pool in pools) <= _ENUMERATED:
        every = np.array([row for row in itertools.product(*pools) if len(set(row)) == len(row)], dtype=np.intp)
        every = every.reshape(-1, targets.size)
        if m > len(every):
            raise StatisticsError(
                f"m={m} exceeds the {len(every)} distinct sets of latents matched to {targets.tolist()} within "
                f"tolerance={tolerance:g}; a null of {len(every)} distinct units gives p >= 1/{len(every) + 1}: "
                f"lower m to at most {len(every)}, raise tolerance or exclude fewer latents"
            )
        return every[rng.choice(len(every), m, replace=False)]
    drawn: dict[tuple[int, ...], None] = {}  # ordered set; rejection keeps at least half of the draws
    while len(drawn) < m:
        row = tuple(int(pool[rng.integers(pool.size)]) for pool in pools)
        if len(set(row)) == len(row):
            drawn[row] = None
    return np.array(list(drawn), dtype=np.intp)


def random_directions_like(vector: object, m: int, *, seed: int | np.random.Generator) -> np.ndarray:
    """``m`` uniformly random directions with the L2 norm of ``vector``, shape (m, *vector.shape)."""
    v = np.asarray(vector, dtype=float)
    if v.size == 0 or not np.all(np.isfinite(v)) or not np.any(v):
        raise StatisticsError("vector must be a non-empty finite array with non-zero norm (e.g. the steering vector)")
    m = check_int(m, "m", minimum=1)
    draws = rng_from(seed).standard_normal((m, v.size))
    draws *= np.linalg.norm(v) / np.linalg.norm(draws, axis=1, keepdims=True)
    return draws.reshape((m, *v.shape))
