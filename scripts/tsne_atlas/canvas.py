"""OpenCV drawing shared by the mosaics: thumbnails, the legend strip under a canvas, PNG files."""

import os
from pathlib import Path

import cv2
import numpy as np

from .images import load_rgb
from .jobs import atomic_path

BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}
NOTE_BGR = (1, 31, 189)
# Narrowest legend strip at text unit 1: three or four class names a line, and a note that stays legible.
LEGEND_MIN_WIDTH = 600


def load_thumbnail(path: str | os.PathLike, thumb_size: int) -> np.ndarray:
    """Image as a BGR uint8 array whose longer side is ``thumb_size`` (read by ``image_io.load_rgb``)."""
    rgb = np.asarray(load_rgb(path))
    h, w = rgb.shape[:2]
    scale = thumb_size / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.cvtColor(cv2.resize(rgb, size, interpolation=interpolation), cv2.COLOR_RGB2BGR)


def text_unit(size: int) -> float:
    """Text scale for a figure ``size`` pixels across: 1 up to 1000 px, then in proportion.

    Text grows with the canvas so it stays readable when the PNG is scaled to fit a screen.
    """
    return max(1.0, size / 1000)


def legend_width(canvas_width: int, long_side: int) -> int:
    """Width of the legend strip under a canvas ``canvas_width`` wide whose longer side is ``long_side``.

    At least the canvas' width; a canvas narrower than LEGEND_MIN_WIDTH (at its text size)
    gets a wider strip, so a tall, thin mosaic keeps a legend of a few classes a line and a
    note that is not shrunk to nothing. Never wider than ``long_side``: a small canvas keeps
    the small legend it had.
    """
    return max(canvas_width, min(long_side, round(LEGEND_MIN_WIDTH * text_unit(long_side))))


def legend_strip(
    classes: list[str],
    colours_bgr: list[tuple],
    width: int,
    background,
    note: str | None,
    text_size: int | None = None,
) -> np.ndarray:
    """A strip of colour swatches and class names, wrapped to ``width``, plus the note.

    ``note`` may hold several lines (separated by newlines); each gets its own line, its
    text shrunk when it would not fit the strip's width. ``text_size`` (default ``width``)
    is the figure's longer side, which sets the size of the text: a tall figure is scaled
    to fit a screen by its height, so its legend must not be sized by its narrow width.
    """
    unit = text_unit(text_size or width)
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


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(encoded.tobytes())
