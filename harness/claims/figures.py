"""Pictures for claims' reports, composed as ``(H, W, 3)`` uint8 RGB arrays for :meth:`Claim.attach`.

The report shows each attached picture with its caption, scaled up without smoothing; these helpers build the
pictures a reviewer wants beside a claim's numbers:

* :func:`pair_picture`: a counterfactual pair side by side at 512x512, the edited cells outlined in magenta on
  both, each level's shortest path to its current target drawn (so a changed first step shows);
* :func:`edit_path_picture`: a level and the levels an edit path leads to, each panel outlining what the last
  edit changed (a counterexample and how it was reached);
* :func:`feature_picture`: a unit's feature visualisations beside its top dataset examples, scaled up alike;
* :func:`grid` and :func:`side_by_side`: any set of pictures;
* :func:`mark_cells`, :func:`draw_path` and :func:`upscale`: the pieces.

::

    claim.attach(pair_picture(base, edited), "left: clean; right: wall added at (3, 4) (magenta)")
    claim.attach(feature_picture(vis.images, frames[top]), "left: visualisations of channel 6; right: its top 8 frames")

Cells are ``(x, y)`` with y up (:mod:`harness.heist.levels`); cell ``(cx, cy)`` covers columns
``[cx u, (cx+1) u)`` and rows ``[(W-1-cy) u, (W-cy) u)`` of a picture, ``u = size / world_dim``
(docs/heist-state.md, section 4).
"""

from collections.abc import Iterable, Sequence

import numpy as np

from harness.errors import ClaimError
from harness.heist.engine import render_hires
from harness.heist.entities import LEVEL_TYPES
from harness.heist.levels import HeistLevel
from harness.heist.oracle import guide

__all__ = [
    "EDIT_COLOUR", "PATH_COLOUR", "changed_cells", "draw_path", "edit_path_picture", "feature_picture", "grid",
    "mark_cells", "pair_picture", "side_by_side", "upscale",
]  # fmt: skip

Cell = tuple[int, int]
EDIT_COLOUR = (255, 0, 255)
"""Outline of edited cells (magenta: no Heist sprite uses it)."""
PATH_COLOUR = (255, 215, 0)
"""The shortest path to the current target (gold)."""
GAP = 12
WHITE = 255


def _rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ClaimError(f"{what} must be a non-empty (H, W, 3) uint8 RGB array, got {image.dtype} {image.shape}")
    return image


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Each pixel as a ``factor`` x ``factor`` block (a 64x64 frame at 4 is 256x256): ``upscale(frame, 4)``."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ClaimError(f"upscale factor must be a positive int, got {factor!r}")
    return np.repeat(np.repeat(_rgb(image), factor, axis=0), factor, axis=1)


def _cell_box(level: HeistLevel, image: np.ndarray, cell: Cell) -> tuple[int, int, int, int]:
    """Pixel rows ``[top, bottom)`` and columns ``[left, right)`` of ``cell`` in a square picture of ``level``."""
    height, width, _ = image.shape
    if height != width:
        raise ClaimError(f"cells are marked on a square picture of one level, got {height}x{width}")
    unit, (x, y) = height / level.world_dim, cell
    if not (0 <= x < level.world_dim and 0 <= y < level.world_dim):
        raise ClaimError(f"cell {cell} lies outside the {level.world_dim}x{level.world_dim} world")
    top = round((level.world_dim - 1 - y) * unit)
    return top, round(top + unit), round(x * unit), round((x + 1) * unit)


def mark_cells(image: np.ndarray, level: HeistLevel, cells: Iterable[Cell], *, colour=EDIT_COLOUR) -> np.ndarray:
    """A copy of a picture of ``level`` with ``cells`` outlined: ``mark_cells(render_hires([lv])[0], lv, [(3, 4)])``."""
    out = _rgb(image).copy()
    for cell in cells:
        top, bottom, left, right = _cell_box(level, out, cell)
        width = max(1, (bottom - top) // 10)
        out[top:top + width, left:right] = colour
        out[bottom - width:bottom, left:right] = colour
        out[top:bottom, left:left + width] = colour
        out[top:bottom, right - width:right] = colour
    return out


def draw_path(image: np.ndarray, level: HeistLevel, path: Sequence[Cell], *, colour=PATH_COLOUR) -> np.ndarray:
    """A copy of a picture of ``level`` with a line through the centres of ``path``'s cells (4-neighbours)."""
    out = _rgb(image).copy()
    boxes = [_cell_box(level, out, cell) for cell in path]
    centres = [((t + b) // 2, (l + r) // 2) for t, b, l, r in boxes]
    half = max(1, (boxes[0][1] - boxes[0][0]) // 16) if boxes else 1
    for (r0, c0), (r1, c1) in zip(centres, centres[1:] or centres):
        out[min(r0, r1) - half:max(r0, r1) + half + 1, min(c0, c1) - half:max(c0, c1) + half + 1] = colour
    return out


def changed_cells(before: HeistLevel, after: HeistLevel) -> list[Cell]:
    """Cells whose wall changed or where a level entity (agent, key, lock, gem) appeared, left or moved."""
    if before.world_dim != after.world_dim:
        raise ClaimError(f"levels of different worlds ({before.world_dim} and {after.world_dim}) have no common cells")
    walls = {(int(x), int(y)) for y, x in np.argwhere(before.walls != after.walls)}

    def placed(level: HeistLevel) -> set[tuple[int, str, Cell]]:
        return {(e.type, e.colour, e.cell) for e in level.entities if e.type in LEVEL_TYPES}

    entities = {cell for _, _, cell in placed(before) ^ placed(after)}
    return sorted(walls | entities, key=lambda c: (c[1], c[0]))


def _with_path(image: np.ndarray, level: HeistLevel) -> np.ndarray:
    guidance = guide(level)
    return image if guidance is None else draw_path(image, level, guidance.path)


def side_by_side(images: Sequence[np.ndarray], *, gap: int = GAP) -> np.ndarray:
    """Pictures in one row on white, top-aligned: ``side_by_side([clean, edited])``."""
    return grid(images, columns=len(images), gap=gap)


def grid(images: Sequence[np.ndarray], *, columns: int, gap: int = GAP) -> np.ndarray:
    """Pictures in rows of ``columns`` on white, each in a cell as large as the largest picture."""
    images = [_rgb(image, f"picture {i}") for i, image in enumerate(images)]
    if not images:
        raise ClaimError("grid needs at least one picture")
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ClaimError(f"columns must be a positive int, got {columns!r}")
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    cell_h = max(image.shape[0] for image in images)
    cell_w = max(image.shape[1] for image in images)
    out = np.full((rows * cell_h + (rows - 1) * gap, columns * cell_w + (columns - 1) * gap, 3), WHITE, np.uint8)
    for i, image in enumerate(images):
        top, left = (i // columns) * (cell_h + gap), (i % columns) * (cell_w + gap)
        out[top:top + image.shape[0], left:left + image.shape[1]] = image
    return out


def pair_picture(base: HeistLevel, edited: HeistLevel, *, paths: bool = True) -> np.ndarray:
    """``base`` and ``edited`` side by side at 512x512, edited cells outlined on both and (``paths``) each
    level's shortest path to its current target drawn: ``claim.attach(pair_picture(a, b), "left clean, ...")``."""
    cells = changed_cells(base, edited)
    panels = []
    for level, image in zip((base, edited), render_hires([base, edited])):
        panels.append(mark_cells(_with_path(image, level) if paths else image, level, cells))
    return side_by_side(panels)


def edit_path_picture(levels: Sequence[HeistLevel], *, paths: bool = True) -> np.ndarray:
    """A level and the levels its edits lead to, left to right at 512x512, each outlining the cells its last edit
    changed: ``edit_path_picture([original, after_edit_1, after_edit_2])``."""
    if not levels:
        raise ClaimError("edit_path_picture needs at least one level")
    panels = []
    for i, (level, image) in enumerate(zip(levels, render_hires(list(levels)))):
        image = _with_path(image, level) if paths else image
        panels.append(image if i == 0 else mark_cells(image, level, changed_cells(levels[i - 1], level)))
    return side_by_side(panels)


def feature_picture(visualisations: Sequence[np.ndarray], examples: Sequence[np.ndarray], *, scale: int = 4,
                    columns: int = 4) -> np.ndarray:
    """Feature visualisations (left) beside dataset examples (right), each group a grid of ``columns``, every
    picture scaled up by ``scale``: ``feature_picture(vis.images, frames[top_indices])``."""
    if len(visualisations) == 0 or len(examples) == 0:
        raise ClaimError("feature_picture needs at least one visualisation and one dataset example")
    groups = [grid([upscale(image, scale) for image in group], columns=columns) for group in (visualisations, examples)]
    return side_by_side(groups, gap=4 * GAP)
