"""Looking at units: their top-activating level patches, how strongly they fire on each kind of entity, and
their reading at one entity's cells (also on a counterfactual twin that lacks the entity).

A unit is one channel of any site: a model channel (``site="conv3a", channel=5``) or an SAE latent
(``site="conv3a.sae.latents", channel=17`` inside ``with spliced(policy, sae):``).  The tools render the
levels through the engine and read every unit they are asked for (``channels=None``: all of the site's) in one
:func:`harness.policy.runner.run`.

Pixels and the activation map: a frame is 64x64; a site's map ``(H, W)`` tiles it evenly, map cell ``(r, c)``
covering pixel rows ``[r * 64/H, (r + 1) * 64/H)`` and the same for columns.  Entities and maze cells are mapped
to pixels as ``docs/heist-state.md`` section 4 says (y up, ``64 / world_dim`` pixels per cell).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from torch import nn

from harness.errors import InterventionError
from harness.heist.levels import HeistLevel
from harness.policy.models import FRAME_SHAPE
from harness.heist.engine import render
from harness.policy.runner import run
from harness.policy.sites import Site

__all__ = [
    "EntityProfile",
    "EntityProfiles",
    "TopActivations",
    "diverse_top",
    "entity_activation",
    "entity_masks",
    "entity_profile",
    "entity_profiles",
    "entity_readings",
    "pair_readings",
    "patch_grid",
    "top_activations",
]

_SIZE = FRAME_SHAPE[0]
_OUTLINE = np.array([255, 0, 255], dtype=np.uint8)


def _unit_maps(policy: nn.Module, levels: Sequence[HeistLevel], site: str, channels: Sequence[int] | None,
               batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames of ``levels`` and the units' activations per frame: maps ``(N, U, H, W)`` or values ``(N, U)``
    (``channels=None``: every channel of the site)."""
    if not levels:
        raise InterventionError("levels is empty; pass at least one level")
    frames = render(levels)
    cached = Site(site) if channels is None else Site(site, channels=tuple(int(c) for c in channels))
    result = run(policy, frames, cache=[cached], batch_size=batch_size)
    return frames, result.activations[site].numpy()


# ------------------------------------------------------------------------------------------------ top examples
@dataclass(frozen=True, kw_only=True, eq=False)
class TopActivations:
    """The levels on which a unit fires most, one example per level, strongest first."""

    site: str
    channel: int
    levels: tuple[HeistLevel, ...]
    values: np.ndarray
    """The unit's largest activation on each level ``(n,)``, decreasing."""
    positions: tuple[tuple[int, int], ...] | None
    """Where in the activation map ``(row, col)`` it was reached; None for flat sites."""
    grid: np.ndarray
    """uint8 image of the patches (see :func:`patch_grid`), in the same order."""


def diverse_top(scores: np.ndarray, levels: Sequence[HeistLevel], n: int, *, frames: np.ndarray | None = None,
                min_difference: float = 0.02) -> list[int]:
    """Indices of the ``n`` highest ``scores`` (strongest first, the first on ties) such that no two levels share
    a seed and, with ``frames``, no two frames differ in fewer than ``min_difference`` of their pixels
    (near-duplicates); fewer when the levels run out.  Example: rank levels by an SAE latent's summed activation,
    ``diverse_top(sae_latents(policy, sae, frames, reduce="sum")[:, 17].numpy(), levels, 8, frames=frames)``.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (len(levels),) or n < 1 or (frames is not None and len(frames) != len(levels)):
        raise InterventionError(f"need one score (and frame) per level and n >= 1; got scores {scores.shape}, "
                                f"{len(levels)} levels, n={n}")
    chosen: list[int] = []
    seeds: set[int] = set()
    for i in np.argsort(-scores, kind="stable"):
        if levels[i].current_level_seed in seeds or (frames is not None and any(
                (frames[i] != frames[j]).any(-1).mean() < min_difference for j in chosen)):
            continue
        seeds.add(levels[i].current_level_seed)
        chosen.append(int(i))
        if len(chosen) == n:
            break
    return chosen


def top_activations(policy: nn.Module, levels: Sequence[HeistLevel], *, site: str, channel: int, n: int = 16,
                    crop: int = 32, upscale: int = 4, columns: int = 4, min_difference: float = 0.02,
                    batch_size: int = 256) -> TopActivations:
    """The ``n`` levels of ``levels`` (first frames) where the unit's largest activation is highest.

    Diversity (:func:`diverse_top`): each level contributes one example, at the position of its maximum, levels
    with the same seed count once and near-duplicate frames (fewer than ``min_difference`` of the pixels differ)
    too.  Pass a representative sample, e.g. ``sample_levels("selection", 500, seed=0)``.
    """
    frames, maps = _unit_maps(policy, levels, site, (channel,), batch_size)
    acts = maps[:, 0]
    spatial = acts.ndim == 3
    flat = acts.reshape(len(acts), -1)
    best = flat.argmax(1)
    values = flat[np.arange(len(acts)), best]
    chosen = diverse_top(values, levels, n, frames=frames, min_difference=min_difference)
    positions = tuple(divmod(int(best[i]), acts.shape[2]) for i in chosen) if spatial else None
    grid = patch_grid(frames[chosen], positions, acts.shape[1:] if spatial else None, crop=crop, upscale=upscale,
                      columns=columns)
    return TopActivations(site=site, channel=channel, levels=tuple(levels[i] for i in chosen),
                          values=values[chosen], positions=positions, grid=grid)


def patch_grid(frames: np.ndarray, positions: Sequence[tuple[int, int]] | None, map_shape: tuple[int, int] | None,
               *, crop: int = 32, upscale: int = 4, columns: int = 4, gap: int = 2) -> np.ndarray:
    """A uint8 grid of ``crop x crop`` patches of ``frames`` centred on activation-map ``positions``, each upscaled
    by ``upscale`` (``np.repeat``) with the map cell outlined in magenta; ``positions=None``: whole frames.

    Patches fill rows of ``columns`` separated by ``gap`` white pixels; shape
    ``(rows * tile + (rows - 1) * gap, columns * tile + (columns - 1) * gap, 3)`` with ``tile = crop * upscale``
    (``64 * upscale`` for whole frames).
    """
    size = _SIZE if positions is None else crop
    if not 1 <= size <= _SIZE or upscale < 1 or columns < 1 or len(frames) == 0:
        raise InterventionError(f"need 1 <= crop <= 64, upscale >= 1, columns >= 1 and frames; got crop={crop}, "
                                f"upscale={upscale}, columns={columns}, {len(frames)} frames")
    tile = size * upscale
    rows = -(-len(frames) // columns)
    grid = np.full((rows * tile + (rows - 1) * gap, columns * tile + (columns - 1) * gap, 3), 255, dtype=np.uint8)
    for i, frame in enumerate(frames):
        patch = frame
        if positions is not None:
            (row, col), (h, w) = positions[i], map_shape
            top = _crop_start((row + 0.5) * _SIZE / h, crop)
            left = _crop_start((col + 0.5) * _SIZE / w, crop)
            patch = frame[top:top + crop, left:left + crop]
        patch = np.repeat(np.repeat(patch, upscale, axis=0), upscale, axis=1)
        if positions is not None:  # np.repeat made a copy: outline the cell on it
            r0, r1 = _edges(row * _SIZE / h - top, _SIZE / h, upscale, tile)
            c0, c1 = _edges(col * _SIZE / w - left, _SIZE / w, upscale, tile)
            patch[r0, c0:c1] = patch[r1 - 1, c0:c1] = patch[r0:r1, c0] = patch[r0:r1, c1 - 1] = _OUTLINE
        y, x = divmod(i, columns)
        grid[y * (tile + gap):y * (tile + gap) + tile, x * (tile + gap):x * (tile + gap) + tile] = patch
    return grid


def _edges(start: float, size: float, upscale: int, tile: int) -> tuple[int, int]:
    """First and past-the-end tile pixel of a map cell starting at ``start`` (crop pixels), kept in the tile."""
    first, end = round(start * upscale), round((start + size) * upscale)
    return min(max(first, 0), tile - 1), min(max(end, 1), tile)


def _crop_start(centre: float, crop: int) -> int:
    """First pixel of a ``crop``-wide window centred at ``centre``, shifted to stay inside the frame."""
    return int(np.clip(round(centre - crop / 2), 0, _SIZE - crop))


# ------------------------------------------------------------------------------------------------ entities
def entity_masks(level: HeistLevel, *, kinds: bool = False) -> dict[str, np.ndarray]:
    """Boolean 64x64 pixel masks (a pixel belongs when its centre does): ``agent``, ``gem``, ``{colour} key``,
    ``{colour} lock`` for those present, ``wall`` and ``floor`` (their cells, minus every entity box).

    ``kinds=True`` merges the colours: one ``key`` and one ``lock`` mask (the union of the keys, of the locks).
    Masks of a counterfactual level come from the level itself; to read a removed entity's cells on it, take the
    base level's mask (:func:`pair_readings`).
    """
    world = level.world_dim
    unit = _SIZE / world
    centres = np.arange(_SIZE) + 0.5
    masks: dict[str, np.ndarray] = {}
    entities = [("agent", level.agent)] + ([("gem", level.gem)] if level.gem is not None else [])
    entities += [(f"{c} key", e) for c, e in level.keys.items()] + [(f"{c} lock", e) for c, e in level.locks.items()]
    for name, e in entities:
        rows = ((world - e.y - e.ry) * unit <= centres) & (centres < (world - e.y + e.ry) * unit)
        cols = ((e.x - e.rx) * unit <= centres) & (centres < (e.x + e.rx) * unit)
        name = name.split()[-1] if kinds else name
        masks[name] = masks.get(name, False) | (rows[:, None] & cols[None, :])
    occupied = np.logical_or.reduce(list(masks.values()))
    cell_y = world - 1 - np.floor(centres / unit).astype(int)
    cell_x = np.floor(centres / unit).astype(int)
    walls = level.walls[cell_y[:, None], cell_x[None, :]]
    masks["wall"] = walls & ~occupied
    masks["floor"] = ~walls & ~occupied
    return masks


def _map_weights(level: HeistLevel, shape: tuple[int, ...], kinds: bool) -> dict[str, np.ndarray]:
    """Per entity of :func:`entity_masks` that covers a pixel: each map cell's share of the entity's pixels,
    flattened ``(H * W,)`` and summing to 1, so ``maps @ weight`` is the unit's mean over the entity."""
    if len(shape) != 2 or _SIZE % shape[0] or _SIZE % shape[1]:
        raise InterventionError(f"activation maps must be (H, W) with H and W dividing 64, got {tuple(shape)}; "
                                "an entity reading needs a spatial site")
    h, w = shape
    weights = {}
    for name, mask in entity_masks(level, kinds=kinds).items():
        weight = mask.reshape(h, _SIZE // h, w, _SIZE // w).sum((1, 3)).ravel().astype(float)
        if weight.sum() > 0:
            weights[name] = weight / weight.sum()
    return weights


def entity_activation(activation_map: np.ndarray, level: HeistLevel, *, kinds: bool = False) -> dict[str, float]:
    """The mean of an activation map ``(H, W)`` over each entity of :func:`entity_masks`, every map cell weighted
    by the fraction of its pixels inside the entity's mask; masks that cover no pixel are left out."""
    act = np.asarray(activation_map, dtype=float)
    weights = _map_weights(level, act.shape, kinds)
    return {name: float(weight @ act.ravel()) for name, weight in weights.items()}


def entity_readings(maps: np.ndarray, levels: Sequence[HeistLevel], entity: str | Sequence[str], *,
                    kinds: bool = False) -> np.ndarray:
    """Every unit's mean over ``entity``'s cells of ``levels[i]``: maps ``(N, U, H, W)`` -> ``(N, U)``;
    ``entity`` is one name for every level or one per level (e.g. each level's first key).

    The masks come from ``levels``, whatever the maps were computed on, so a unit can be read where a removed key
    was.  Example: ``entity_readings(maps, levels, "blue key")[:, 17]``.
    """
    maps = np.asarray(maps, dtype=float)
    names = [entity] * len(levels) if isinstance(entity, str) else list(entity)
    if maps.ndim != 4 or not len(maps) == len(levels) == len(names):
        raise InterventionError(f"maps must be (N, U, H, W) with one map (and entity) per level; got {maps.shape} "
                                f"and {len(names)} entities for {len(levels)} levels")
    out = np.empty(maps.shape[:2])
    for i, (level, units, entity) in enumerate(zip(levels, maps, names)):
        weight = _map_weights(level, units.shape[1:], kinds).get(entity)
        if weight is None:
            raise InterventionError(f"level {level.current_level_seed} has no {entity!r} to read at; it has "
                                    f"{sorted(entity_masks(level, kinds=kinds))}")
        out[i] = units.reshape(len(units), -1) @ weight
    return out


def pair_readings(policy: nn.Module, base: Sequence[HeistLevel], edited: Sequence[HeistLevel], *, site: str,
                  entity: str | Sequence[str], channels: Sequence[int] | None = None, kinds: bool = False,
                  batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The units of ``site`` (``channels``, all when None) read at ``entity``'s cells of each base level (one
    name, or one per pair), on the base level and on its edited twin: two arrays ``(N, U)``.

    The edited level may lack the entity (a removed key): both readings use the base level's mask.  Example:
    ``clean, removed = pair_readings(policy, levels, [lv.remove_key("blue") for lv in levels], site="conv3a",
    entity="blue key")``; ``clean - removed`` is each unit's drop.
    """
    if len(base) != len(edited):
        raise InterventionError(f"pairs need as many edited levels as base levels, got {len(edited)} and {len(base)}")
    _, clean = _unit_maps(policy, base, site, channels, batch_size)
    _, other = _unit_maps(policy, edited, site, channels, batch_size)
    return entity_readings(clean, base, entity, kinds=kinds), entity_readings(other, base, entity, kinds=kinds)


@dataclass(frozen=True, kw_only=True)
class EntityProfile:
    """How strongly a unit fires on each kind of entity, averaged over the levels that have it."""

    site: str
    channel: int
    mean: Mapping[str, float]
    """Mean activation per entity (and ``wall``, ``floor``) over the levels where it is present."""
    levels: Mapping[str, int]
    """Number of levels each entry averages."""

    @property
    def above_floor(self) -> dict[str, float]:
        """Each entity's mean minus the floor's: the reference every other entry is read against."""
        return {name: value - self.mean["floor"] for name, value in self.mean.items() if name != "floor"}


@dataclass(frozen=True, kw_only=True, eq=False)
class EntityProfiles:
    """The entity profiles of many units of one site at once: ``mean[u, e]`` is unit ``channels[u]``'s mean
    activation on ``entities[e]`` over the levels that have it."""

    site: str
    channels: tuple[int, ...]
    entities: tuple[str, ...]
    mean: np.ndarray
    """``(units, entities)``."""
    levels: Mapping[str, int]
    """Number of levels each entity's column averages."""

    def of(self, channel: int) -> EntityProfile:
        """One unit's :class:`EntityProfile`."""
        if channel not in self.channels:
            raise InterventionError(f"channel {channel} was not profiled; profiled: {self.channels}")
        row = self.mean[self.channels.index(channel)]
        return EntityProfile(site=self.site, channel=channel, levels=self.levels,
                             mean=MappingProxyType({e: float(v) for e, v in zip(self.entities, row)}))

    def selectivity(self, entity: str) -> np.ndarray:
        """Per unit ``(U,)``: its mean on ``entity`` minus its largest mean on any other entry (``wall`` and
        ``floor`` included); positive for units that fire most on ``entity``."""
        if entity not in self.entities:
            raise InterventionError(f"no {entity!r} in the profiled levels; entities: {self.entities}")
        e = self.entities.index(entity)
        return self.mean[:, e] - np.delete(self.mean, e, axis=1).max(1)


def entity_profiles(policy: nn.Module, levels: Sequence[HeistLevel], *, site: str,
                    channels: Sequence[int] | None = None, kinds: bool = False,
                    batch_size: int = 256) -> EntityProfiles:
    """:func:`entity_activation` of every unit of ``site`` (or of ``channels``) on the first frame of each level,
    averaged per entity, in one pass.  SAE latents: ``with spliced(policy, sae): entity_profiles(policy, levels,
    site=sae.latent_site, kinds=True).selectivity("key")``."""
    _, maps = _unit_maps(policy, levels, site, channels, batch_size)
    if maps.ndim != 4:
        raise InterventionError(f"site {site!r} is flat; an entity profile needs a spatial map")
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for units, level in zip(maps.astype(float), levels):
        flat = units.reshape(len(units), -1)
        for name, weight in _map_weights(level, units.shape[1:], kinds).items():
            sums[name] = sums.get(name, 0.0) + flat @ weight
            counts[name] = counts.get(name, 0) + 1
    entities = tuple(sums)
    units = tuple(range(maps.shape[1])) if channels is None else tuple(int(c) for c in channels)
    return EntityProfiles(site=site, channels=units, entities=entities, levels=MappingProxyType(counts),
                          mean=np.stack([sums[e] / counts[e] for e in entities], axis=1))


def entity_profile(policy: nn.Module, levels: Sequence[HeistLevel], *, site: str, channel: int,
                   batch_size: int = 256) -> EntityProfile:
    """The unit's :func:`entity_activation` on the first frame of each level, averaged per entity."""
    return entity_profiles(policy, levels, site=site, channels=(channel,), batch_size=batch_size).of(channel)
