"""Grid mosaic: the embedding snapped to a square grid, one thumbnail per cell, no overlaps.

Points are matched to grid cells by a linear assignment (scipy's linear_sum_assignment)
minimising the total squared distance between each point and its cell, so neighbours
in the t-SNE stay neighbours on the grid. The assignment costs O(N^3) time and N^2
memory, so above ``max_images`` a fixed random subsample is drawn and the figure says so.
"""

import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from figure_style import (
    SUBSAMPLE_RANDOM_STATE, class_colours, colour_bgr255, fixed_subsample, subsample_note, weights_note,
)
from render_mosaic import BACKGROUNDS, legend_strip, load_thumbnail, write_png
from run_tsne import read_embedding
from workflow_utils import AtlasError, job_log

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


def subsample(n_points: int, max_images: int, random_state: int = SUBSAMPLE_RANDOM_STATE) -> np.ndarray:
    """Indices of at most ``max_images`` points: all of them, or a fixed random subsample (sorted)."""
    return fixed_subsample(n_points, max_images, random_state)


def render_grid_mosaic(coords, image_paths, label_indices, classes, thumb_size=48, border=2, background="white",
                       note=None) -> np.ndarray:
    """The grid mosaic as a BGR array, with the legend strip (and note) below."""
    if background not in BACKGROUNDS:
        raise AtlasError(f"grid_mosaic.background '{background}' is unknown; choose one of {sorted(BACKGROUNDS)}")
    bg = BACKGROUNDS[background]
    colours = [colour_bgr255(c) for c in class_colours(len(classes))]
    rows, cols = grid_shape(len(coords))
    tile = thumb_size + 2 * border
    canvas = np.full((rows * tile, cols * tile, 3), bg, dtype=np.uint8)
    for cell, path, label in zip(grid_assignment(coords, rows, cols), image_paths, label_indices):
        r, c = divmod(int(cell), cols)
        framed = cv2.copyMakeBorder(square_thumbnail(path, thumb_size), border, border, border, border,
                                    cv2.BORDER_CONSTANT, value=colours[label])
        canvas[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = framed
    return np.vstack([canvas, legend_strip(classes, colours, canvas.shape[1], bg, note)])


def grid_mosaic_from_embedding(embedding: str, meta_json: str, root: str, png: str, thumb_size=48, border=2,
                               background="white", max_images=2500) -> None:
    meta = json.loads(Path(meta_json).read_text(encoding="utf-8"))
    paths, labels, coords = read_embedding(embedding)
    # The same subsample for every run of the sweep (not the run's seed), so runs compare like with like.
    keep = subsample(len(paths), max_images)
    notes = [n for n in (weights_note(meta), subsample_note(len(keep), len(paths), "grid_mosaic.max_images")) if n]
    index = {name: i for i, name in enumerate(meta["classes"])}
    image = render_grid_mosaic(
        coords[keep], [Path(root) / paths[i] for i in keep], [index[labels[i]] for i in keep], meta["classes"],
        thumb_size, border, background, "\n".join(notes) or None,
    )
    write_png(png, image)
    LOGGER.info("wrote %s (%d thumbnails, %dx%d px)", png, len(keep), image.shape[1], image.shape[0])


def main(snakemake) -> None:
    params = snakemake.params
    with job_log(snakemake.log[0]):
        grid_mosaic_from_embedding(
            snakemake.input.embedding, snakemake.input.meta, params.root, snakemake.output.png,
            thumb_size=int(params.thumb_size), border=int(params.border), background=params.background,
            max_images=int(params.max_images),
        )


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
