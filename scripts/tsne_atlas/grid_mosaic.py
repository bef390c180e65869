"""Stage grid_mosaic: the embedding snapped to a square grid, one thumbnail per cell, no overlaps.

Points are matched to grid cells by a linear assignment (scipy's linear_sum_assignment)
minimising the total squared distance between each point and its cell, so neighbours
in the t-SNE stay neighbours on the grid. The assignment costs O(N^3) time and N^2
memory, so above ``max_images`` a fixed random subsample is drawn and the figure says so.
"""

import logging
import math
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from .canvas import BACKGROUNDS, legend_strip, load_thumbnail, write_png
from .figure_style import class_colours, colour_bgr255, weights_note
from .files.runs import read_run
from .subsample import fixed_subsample, subsample_note

LOGGER = logging.getLogger("tsne_atlas.grid_mosaic")


def grid_shape(n_points: int) -> tuple[int, int]:
    """(rows, columns) of the smallest near-square grid holding ``n_points``."""
    cols = max(1, math.ceil(math.sqrt(n_points)))
    return max(1, math.ceil(n_points / cols)), cols


def grid_assignment(coords: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Grid cell (row-major index) of each point, by minimum-cost linear assignment.

    Each axis is scaled to [0, 1] to fill the grid; y is flipped so up stays up.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if len(coords) > rows * cols:
        raise ValueError(f"{len(coords)} points do not fit a {rows}x{cols} grid")
    span = np.ptp(coords, axis=0)
    unit = (coords - coords.min(axis=0)) / np.where(span > 0, span, 1.0)
    unit[:, 1] = 1.0 - unit[:, 1]
    r, c = np.divmod(np.arange(rows * cols), cols)
    centres = np.column_stack([(c + 0.5) / cols, (r + 0.5) / rows])
    point_index, cell_index = linear_sum_assignment(cdist(unit, centres, "sqeuclidean"))
    cells = np.empty(len(coords), dtype=np.int64)
    cells[point_index] = cell_index
    return cells


def square_thumbnail(path, size: int) -> np.ndarray:
    """Centre crop to a square, resized to ``size`` pixels (BGR)."""
    image = load_thumbnail(path, 4 * size)
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def render_grid_mosaic(
    coords, image_paths, label_indices, classes, thumb_size, border, background, note=None
) -> np.ndarray:
    """The grid mosaic as a BGR array, with the legend strip (and note) below."""
    bg = BACKGROUNDS[background]
    colours = [colour_bgr255(c) for c in class_colours(len(classes))]
    rows, cols = grid_shape(len(coords))
    tile = thumb_size + 2 * border
    canvas = np.full((rows * tile, cols * tile, 3), bg, dtype=np.uint8)
    for cell, path, label in zip(grid_assignment(coords, rows, cols), image_paths, label_indices):
        r, c = divmod(int(cell), cols)
        framed = cv2.copyMakeBorder(
            square_thumbnail(path, thumb_size),
            border,
            border,
            border,
            border,
            cv2.BORDER_CONSTANT,
            value=colours[label],
        )
        canvas[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = framed
    return np.vstack([canvas, legend_strip(classes, colours, canvas.shape[1], bg, note)])


def grid_mosaic(
    embedding: str,
    meta: str,
    manifest: str,
    root: str,
    thumb_size: int,
    border: int,
    background: str,
    max_images: int,
    png: str,
) -> None:
    """The grid mosaic of one run (rule grid_mosaic)."""
    run = read_run(embedding, meta, manifest)
    # The same subsample for every run of the sweep (not the run's seed), so runs compare like with like.
    keep = fixed_subsample(len(run.paths), max_images)
    notes = [
        n for n in (weights_note(run.meta), subsample_note(len(keep), len(run.paths), "grid_mosaic.max_images")) if n
    ]
    image = render_grid_mosaic(
        run.coords[keep],
        [Path(root) / run.paths[i] for i in keep],
        list(run.label_indices()[keep]),
        run.classes,
        thumb_size,
        border,
        background,
        "\n".join(notes) or None,
    )
    write_png(png, image)
    LOGGER.info("wrote %s (%d thumbnails, %dx%d px)", png, len(keep), image.shape[1], image.shape[0])
