"""Stage mosaic: thumbnails drawn at their t-SNE coordinates on an OpenCV canvas.

Each thumbnail keeps its aspect ratio, gets a border in its class colour and is
drawn in manifest order, so the same embedding always gives the same PNG. The canvas
has the embedding's aspect (its long side is ``canvas_size``), so the thumbnails fill it
whatever the shape of the map. A legend strip (and the random-weights note, when it
applies) is added below the canvas.
Above ``max_images`` images a fixed random subsample is drawn (the same for every run
of the sweep) and the note says so; thumbnails are decoded one at a time, so memory
stays that of the canvas whatever the number of images.
"""

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from .canvas import BACKGROUNDS, legend_strip, legend_width, load_thumbnail, write_png
from .figure_style import class_colours, colour_bgr255, weights_note
from .files.runs import read_run
from .jobs import AtlasError
from .subsample import fixed_subsample, subsample_note

LOGGER = logging.getLogger("tsne_atlas.mosaic")


def canvas_shape(coords: np.ndarray, canvas_size: int, tile_size: int) -> tuple[int, int]:
    """(width, height) of the canvas: the long side ``canvas_size``, the other following the embedding.

    With one scale for both axes the tiles' corners span ``canvas_size - tile_size`` along the
    embedding's longer axis, so the short side is one tile plus the shorter extent at that
    scale: the tiles reach all four edges and no band of the canvas is left blank. An axis
    with no extent (points on a line, or a single point) gets one tile.
    """
    extent = np.ptp(np.asarray(coords, dtype=np.float64), axis=0)
    longest = float(extent.max())
    ratio = float(extent.min()) / longest if longest > 0 else 0.0
    short = tile_size + round((canvas_size - tile_size) * ratio)
    return (canvas_size, short) if extent[0] >= extent[1] else (short, canvas_size)


def layout_positions(coords: np.ndarray, canvas_size: int, tile_size: int) -> np.ndarray:
    """Top-left pixel (x, y) of each tile on the canvas of ``canvas_shape``.

    y is flipped so the mosaic has the scatter plot's orientation. One scale for both axes,
    set by the longer axis spanning the long side, keeps the embedding's aspect ratio; the
    shorter axis is centred in the fraction of a pixel canvas_shape's rounding leaves.
    """
    coords = np.asarray(coords, dtype=np.float64) * np.array([1.0, -1.0])  # image rows grow downwards
    room = np.array(canvas_shape(coords, canvas_size, tile_size), dtype=np.float64) - tile_size
    lo = coords.min(axis=0)
    extent = coords.max(axis=0) - lo
    longest = float(extent.max())
    scale = (canvas_size - tile_size) / longest if longest > 0 else 0.0  # a single point: centred
    offset = (room - extent * scale) / 2.0
    # Clip: rounding (of the short side, or floating point) can land a hair outside the room.
    return np.clip(np.floor((coords - lo) * scale + offset), 0, room).astype(np.int64)


def with_legend(
    canvas: np.ndarray, classes: list[str], colours: list[tuple], bg: tuple, note: str | None
) -> np.ndarray:
    """``canvas`` above its legend strip, centred when the strip is the wider (a tall, thin canvas)."""
    long_side = max(canvas.shape[:2])
    width = legend_width(canvas.shape[1], long_side)
    left = (width - canvas.shape[1]) // 2
    canvas = cv2.copyMakeBorder(canvas, 0, 0, left, width - canvas.shape[1] - left, cv2.BORDER_CONSTANT, value=bg)
    return np.vstack([canvas, legend_strip(classes, colours, width, bg, note, text_size=long_side)])


def render_mosaic(
    coords: np.ndarray,
    image_paths: list[str | os.PathLike],
    label_indices: np.ndarray,
    classes: list[str],
    canvas_size: int,
    thumb_size: int,
    border: int,
    background: str,
    note: str | None = None,
) -> np.ndarray:
    """Draw every image at its coordinate; returns the BGR canvas (with legend strip below).

    The canvas's long side is ``canvas_size``, the other follows the embedding's aspect
    (canvas_shape). ``image_paths`` may be any iterable: each thumbnail is loaded, drawn and
    dropped in turn.
    """
    bg = BACKGROUNDS[background]
    colours = [colour_bgr255(c) for c in class_colours(len(classes))]
    tile = thumb_size + 2 * border
    if tile > canvas_size:
        raise AtlasError(
            f"mosaic.thumb_size {thumb_size} plus borders does not fit mosaic.canvas_size {canvas_size}; "
            f"lower the thumbnail size or enlarge the canvas"
        )
    width, height = canvas_shape(coords, canvas_size, tile)
    canvas = np.full((height, width, 3), bg, dtype=np.uint8)
    for (x, y), path, label in zip(layout_positions(coords, canvas_size, tile), image_paths, label_indices):
        thumb = load_thumbnail(path, thumb_size)
        framed = cv2.copyMakeBorder(thumb, border, border, border, border, cv2.BORDER_CONSTANT, value=colours[label])
        h, w = framed.shape[:2]
        # Centre the framed thumbnail in its tile (non-square images are narrower).
        top, left = y + (tile - h) // 2, x + (tile - w) // 2
        canvas[top : top + h, left : left + w] = framed
    return with_legend(canvas, classes, colours, bg, note)


def mosaic(
    embedding: str,
    meta: str,
    manifest: str,
    root: str,
    canvas_size: int,
    thumb_size: int,
    border: int,
    background: str,
    max_images: int,
    png: str,
) -> None:
    """The mosaic of one run (rule mosaic)."""
    run = read_run(embedding, meta, manifest)
    # Above max_images: the same fixed random subsample for every run of the sweep.
    keep = fixed_subsample(len(run.paths), max_images)
    label_indices = run.label_indices()
    notes = [n for n in (weights_note(run.meta), subsample_note(len(keep), len(run.paths), "mosaic.max_images")) if n]
    image = render_mosaic(
        run.coords[keep],
        (Path(root) / run.paths[i] for i in keep),
        label_indices[keep],
        run.classes,
        canvas_size,
        thumb_size,
        border,
        background,
        "\n".join(notes) or None,
    )
    write_png(png, image)
    LOGGER.info(
        "wrote %s (%d of %d thumbnails, %dx%d px)", png, len(keep), len(run.paths), image.shape[1], image.shape[0]
    )
