"""Stage 5, mosaic: thumbnails drawn at their t-SNE coordinates on an OpenCV canvas.

Each thumbnail keeps its aspect ratio, gets a border in its class colour and is
drawn in manifest order, so the same embedding always gives the same PNG. A legend
strip (and the random-weights note, when it applies) is added below the canvas.
Above ``max_images`` images a fixed random subsample is drawn (the same for every run
of the sweep) and the note says so; thumbnails are decoded one at a time, so memory
stays that of the canvas whatever the number of images.
"""

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from figure_style import class_colours, colour_bgr255, fixed_subsample, subsample_note, weights_note
from image_io import load_rgb
from run_tsne import read_embedding
from workflow_utils import AtlasError, atomic_path, job_log

LOGGER = logging.getLogger("tsne_atlas.render_mosaic")
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}
NOTE_BGR = (1, 31, 189)


def layout_positions(coords: np.ndarray, canvas_size: int, tile_size: int) -> np.ndarray:
    """Top-left pixel (x, y) of each tile: coordinates scaled into [0, canvas_size - tile_size].

    y is flipped so the mosaic has the scatter plot's orientation. One scale for both axes keeps the embedding's aspect ratio; the shorter axis is centred.
    """
    coords = np.asarray(coords, dtype=np.float64) * np.array([1.0, -1.0])  # image rows grow downwards
    span = canvas_size - tile_size
    lo = coords.min(axis=0)
    extent = coords.max(axis=0) - lo
    scale = span / max(float(extent.max()), 1e-12)
    offset = (span - extent * scale) / 2.0
    # Clip: floating-point rounding can land a hair outside [0, span].
    return np.clip(np.floor((coords - lo) * scale + offset), 0, span).astype(np.int64)


def load_thumbnail(path: str | os.PathLike, thumb_size: int) -> np.ndarray:
    """Image as a BGR uint8 array whose longer side is ``thumb_size`` (read by ``image_io.load_rgb``)."""
    rgb = np.asarray(load_rgb(path))
    h, w = rgb.shape[:2]
    scale = thumb_size / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.cvtColor(cv2.resize(rgb, size, interpolation=interpolation), cv2.COLOR_RGB2BGR)


def legend_strip(classes: list[str], colours_bgr: list[tuple], width: int, background, note: str | None) -> np.ndarray:
    """A strip of colour swatches and class names, wrapped to ``width``, plus the note.

    ``note`` may hold several lines (separated by newlines); each gets its own line, its
    text shrunk when it would not fit the strip's width.
    """
    # Text grows with the canvas so it stays readable when the PNG is scaled to fit a screen.
    unit = max(1.0, width / 1000)
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.6 * unit, max(1, round(unit))
    pad, box, line_h = round(12 * unit), round(18 * unit), round(28 * unit)
    text_colour = (0, 0, 0) if sum(background) > 382 else (255, 255, 255)
    items, x, y = [], pad, pad
    for name, colour in zip(classes, colours_bgr):
        (tw, _), _ = cv2.getTextSize(name, font, scale, thickness)
        item_w = box + 6 + tw + 2 * pad
        if x + item_w > width and x > pad:
            x, y = pad, y + line_h
        items.append((x, y, name, colour))
        x += item_w
    notes = note.splitlines() if note else []
    height = y + line_h + pad + line_h * len(notes)
    strip = np.full((height, width, 3), background, dtype=np.uint8)
    for x, y, name, colour in items:
        cv2.rectangle(strip, (x, y), (x + box, y + box), colour, thickness=-1)
        cv2.putText(strip, name, (x + box + 6, y + box - 3), font, scale, text_colour, thickness, cv2.LINE_AA)
    for k, line in enumerate(notes):
        (tw, _), _ = cv2.getTextSize(line, font, scale, thickness + 1)
        fit = min(1.0, (width - 2 * pad) / max(tw, 1))  # shrink a line too long for the strip
        baseline = height - pad - line_h * (len(notes) - 1 - k)
        cv2.putText(strip, line, (pad, baseline), font, scale * fit, NOTE_BGR, thickness + 1, cv2.LINE_AA)
    return strip


def render_mosaic(
    coords: np.ndarray,
    image_paths: list[str | os.PathLike],
    label_indices: np.ndarray,
    classes: list[str],
    canvas_size: int = 2000,
    thumb_size: int = 64,
    border: int = 3,
    background: str = "white",
    note: str | None = None,
) -> np.ndarray:
    """Draw every image at its coordinate; returns the BGR canvas (with legend strip below).

    ``image_paths`` may be any iterable: each thumbnail is loaded, drawn and dropped in turn.
    """
    if background not in BACKGROUNDS:
        raise AtlasError(f"mosaic.background '{background}' is unknown; choose one of {sorted(BACKGROUNDS)}")
    bg = BACKGROUNDS[background]
    colours = [colour_bgr255(c) for c in class_colours(len(classes))]
    tile = thumb_size + 2 * border
    if tile > canvas_size:
        raise AtlasError(
            f"mosaic.thumb_size {thumb_size} plus borders does not fit mosaic.canvas_size {canvas_size}; "
            f"lower the thumbnail size or enlarge the canvas"
        )
    canvas = np.full((canvas_size, canvas_size, 3), bg, dtype=np.uint8)
    for (x, y), path, label in zip(layout_positions(coords, canvas_size, tile), image_paths, label_indices):
        thumb = load_thumbnail(path, thumb_size)
        framed = cv2.copyMakeBorder(thumb, border, border, border, border, cv2.BORDER_CONSTANT, value=colours[label])
        h, w = framed.shape[:2]
        # Centre the framed thumbnail in its tile (non-square images are narrower).
        top, left = y + (tile - h) // 2, x + (tile - w) // 2
        canvas[top : top + h, left : left + w] = framed
    return np.vstack([canvas, legend_strip(classes, colours, canvas_size, bg, note)])


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(encoded.tobytes())


def mosaic_from_embedding(
    embedding: str, meta_json: str, root: str, png: str, canvas_size=2000, thumb_size=64, border=3, background="white",
    max_images=10000,
) -> None:
    meta = json.loads(Path(meta_json).read_text(encoding="utf-8"))
    paths, labels, coords = read_embedding(embedding)
    classes = meta["classes"]
    index = {name: i for i, name in enumerate(classes)}
    # Above max_images: the same fixed random subsample for every run of the sweep.
    keep = fixed_subsample(len(paths), max_images)
    notes = [n for n in (weights_note(meta), subsample_note(len(keep), len(paths), "mosaic.max_images")) if n]
    image = render_mosaic(
        coords[keep], (Path(root) / paths[i] for i in keep), np.array([index[labels[i]] for i in keep]), classes,
        canvas_size, thumb_size, border, background, "\n".join(notes) or None,
    )
    write_png(png, image)
    LOGGER.info("wrote %s (%d of %d thumbnails, %dx%d px)", png, len(keep), len(paths), image.shape[1], image.shape[0])


def main(snakemake) -> None:
    params = snakemake.params
    with job_log(snakemake.log[0]):
        mosaic_from_embedding(
            snakemake.input.embedding, snakemake.input.meta, params.root, snakemake.output.png,
            canvas_size=int(params.canvas_size), thumb_size=int(params.thumb_size),
            border=int(params.border), background=params.background, max_images=int(params.max_images),
        )


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
