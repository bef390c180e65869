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

import numpy as np

from .canvas import BACKGROUNDS, canvas_shape, layout_positions, paste_framed, tile_size, with_legend, write_png
from .figure_style import class_colours, colour_bgr255, weights_note
from .files.runs import read_run
from .subsample import fixed_subsample, subsample_note

LOGGER = logging.getLogger("tsne_atlas.mosaic")


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
    tile = tile_size(canvas_size, thumb_size, border)
    width, height = canvas_shape(coords, canvas_size, tile)
    canvas = np.full((height, width, 3), bg, dtype=np.uint8)
    for (x, y), path, label in zip(layout_positions(coords, canvas_size, tile), image_paths, label_indices):
        paste_framed(canvas, path, x, y, tile, thumb_size, border, colours[label])
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
