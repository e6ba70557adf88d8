"""Looking at one unit: its top-activating level patches and how strongly it fires on each kind of entity.

A unit is one channel of any site: a model channel (``site="conv3a", channel=5``) or an SAE latent
(``site="conv3a.sae.latents", channel=17`` inside ``with spliced(policy, sae):``).  Both tools render the
levels through the engine and read the unit with :func:`harness.policy.runner.run`.

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
    "TopActivations",
    "entity_activation",
    "entity_masks",
    "entity_profile",
    "patch_grid",
    "top_activations",
]

_SIZE = FRAME_SHAPE[0]
_OUTLINE = np.array([255, 0, 255], dtype=np.uint8)


def _unit_maps(policy: nn.Module, levels: Sequence[HeistLevel], site: str, channel: int,
               batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames of ``levels`` and the unit's activation per frame: maps ``(N, H, W)`` or values ``(N,)``."""
    if not levels:
        raise InterventionError("levels is empty; pass at least one level")
    frames = render(levels)
    result = run(policy, frames, cache=[Site(site, channels=(channel,))], batch_size=batch_size)
    return frames, result.activations[site][:, 0].numpy()


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


def top_activations(policy: nn.Module, levels: Sequence[HeistLevel], *, site: str, channel: int, n: int = 16,
                    crop: int = 32, upscale: int = 4, columns: int = 4, batch_size: int = 256) -> TopActivations:
    """The ``n`` levels of ``levels`` (first frames) where the unit's largest activation is highest.

    Diversity: each level contributes one example, at the position of its maximum, and levels with the same seed
    count once.  Pass a representative sample, e.g. ``sample_levels("selection", 500, seed=0)``.
    """
    frames, acts = _unit_maps(policy, levels, site, channel, batch_size)
    spatial = acts.ndim == 3
    flat = acts.reshape(len(acts), -1)
    best = flat.argmax(1)
    values = flat[np.arange(len(acts)), best]
    chosen: list[int] = []
    seen: set[int] = set()
    for i in np.argsort(-values, kind="stable"):
        if levels[i].current_level_seed not in seen:
            seen.add(levels[i].current_level_seed)
            chosen.append(int(i))
            if len(chosen) == n:
                break
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
def entity_masks(level: HeistLevel) -> dict[str, np.ndarray]:
    """Boolean 64x64 pixel masks (a pixel belongs when its centre does): ``agent``, ``gem``, ``{colour} key``,
    ``{colour} lock`` for those present, ``wall`` and ``floor`` (their cells, minus every entity box)."""
    world = level.world_dim
    unit = _SIZE / world
    centres = np.arange(_SIZE) + 0.5
    masks: dict[str, np.ndarray] = {}
    entities = [("agent", level.agent)] + ([("gem", level.gem)] if level.gem is not None else [])
    entities += [(f"{c} key", e) for c, e in level.keys.items()] + [(f"{c} lock", e) for c, e in level.locks.items()]
    for name, e in entities:
        rows = ((world - e.y - e.ry) * unit <= centres) & (centres < (world - e.y + e.ry) * unit)
        cols = ((e.x - e.rx) * unit <= centres) & (centres < (e.x + e.rx) * unit)
        masks[name] = rows[:, None] & cols[None, :]
    occupied = np.logical_or.reduce(list(masks.values()))
    cell_y = world - 1 - np.floor(centres / unit).astype(int)
    cell_x = np.floor(centres / unit).astype(int)
    walls = level.walls[cell_y[:, None], cell_x[None, :]]
    masks["wall"] = walls & ~occupied
    masks["floor"] = ~walls & ~occupied
    return masks


def entity_activation(activation_map: np.ndarray, level: HeistLevel) -> dict[str, float]:
    """The mean of an activation map ``(H, W)`` over each entity of :func:`entity_masks`, every map cell weighted
    by the fraction of its pixels inside the entity's mask; masks that cover no pixel are left out."""
    act = np.asarray(activation_map, dtype=float)
    if act.ndim != 2 or _SIZE % act.shape[0] or _SIZE % act.shape[1]:
        raise InterventionError(f"activation_map must be (H, W) with H and W dividing 64, got {act.shape}")
    h, w = act.shape
    profile = {}
    for name, mask in entity_masks(level).items():
        weight = mask.reshape(h, _SIZE // h, w, _SIZE // w).mean((1, 3))
        if weight.sum() > 0:
            profile[name] = float((weight * act).sum() / weight.sum())
    return profile


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


def entity_profile(policy: nn.Module, levels: Sequence[HeistLevel], *, site: str, channel: int,
                   batch_size: int = 256) -> EntityProfile:
    """The unit's :func:`entity_activation` on the first frame of each level, averaged per entity."""
    _, acts = _unit_maps(policy, levels, site, channel, batch_size)
    if acts.ndim != 3:
        raise InterventionError(f"site {site!r} is flat; an entity profile needs a spatial map")
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for act, level in zip(acts, levels, strict=True):
        for name, value in entity_activation(act, level).items():
            sums[name] = sums.get(name, 0.0) + value
            counts[name] = counts.get(name, 0) + 1
    return EntityProfile(site=site, channel=channel, mean=MappingProxyType({k: sums[k] / counts[k] for k in sums}),
                         levels=MappingProxyType(counts))
