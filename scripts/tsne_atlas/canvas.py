"""OpenCV drawing shared by the mosaics: thumbnails, where a map lands on a canvas (``map_frame``), the
legend strip under a canvas, PNG files."""

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .images import load_rgb
from .jobs import AtlasError, atomic_path

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


def tile_size(canvas_size: int, thumb_size: int, border: int) -> int:
    """A mosaic tile: the thumbnail and its border on both sides; an error when it does not fit the canvas."""
    tile = thumb_size + 2 * border
    if tile > canvas_size:
        raise AtlasError(
            f"mosaic.thumb_size {thumb_size} plus borders does not fit mosaic.canvas_size {canvas_size}; "
            f"lower the thumbnail size or enlarge the canvas"
        )
    return tile


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


def flipped(coords: np.ndarray) -> np.ndarray:
    """Map coordinates with y flipped: image rows grow downwards, so the mosaic has the scatter plot's orientation."""
    return np.asarray(coords, dtype=np.float64) * np.array([1.0, -1.0])


@dataclass(frozen=True)
class MapFrame:
    """Where a map lands on a mosaic canvas of ``shape`` (width, height): a tile's top-left corner is
    ``floor(((x, -y) - lo) * scale + offset)``, within ``room`` (the canvas less one tile); ``lo`` and ``hi``
    bound the map's (x, -y). Other points (a query set placed on the map) land in the same frame, so their
    mosaic compares with the map's."""

    shape: tuple[int, int]
    tile: int
    lo: np.ndarray
    hi: np.ndarray
    scale: float
    offset: np.ndarray

    @property
    def room(self) -> np.ndarray:
        return np.array(self.shape, dtype=np.float64) - self.tile

    def positions(self, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each point's tile corner (x, y) in pixels, clipped to the canvas, and whether it lies outside the map's
        bounds (drawn at the edge)."""
        coords = flipped(coords)
        corners = np.floor((coords - self.lo) * self.scale + self.offset)
        outside = ((coords < self.lo) | (coords > self.hi)).any(axis=1)
        # Clip: rounding (of the short side, or floating point) can land a map's own point a hair outside.
        return np.clip(corners, 0, self.room).astype(np.int64), outside


def map_frame(coords: np.ndarray, canvas_size: int, tile_size: int) -> MapFrame:
    """The frame of ``coords`` on a canvas of ``canvas_shape``, tiles ``tile_size`` pixels square.

    One scale for both axes, set by the longer axis spanning the long side, keeps the embedding's
    aspect ratio; the shorter axis is centred in the fraction of a pixel canvas_shape's rounding leaves.
    """
    coords = flipped(coords)
    shape = canvas_shape(coords, canvas_size, tile_size)
    room = np.array(shape, dtype=np.float64) - tile_size  # as MapFrame.room
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    extent = hi - lo
    longest = float(extent.max())
    scale = (canvas_size - tile_size) / longest if longest > 0 else 0.0  # a single point: centred
    return MapFrame(shape, tile_size, lo, hi, scale, (room - extent * scale) / 2.0)


def layout_positions(coords: np.ndarray, canvas_size: int, tile_size: int) -> np.ndarray:
    """Top-left pixel (x, y) of each tile on the canvas of ``canvas_shape`` (``map_frame``), y flipped so
    the mosaic has the scatter plot's orientation."""
    return map_frame(coords, canvas_size, tile_size).positions(coords)[0]


def paste_framed(canvas: np.ndarray, path, x: int, y: int, tile: int, thumb_size: int, border: int, colour) -> None:
    """The image at ``path`` as a thumbnail framed in ``colour`` (BGR), centred in the tile whose top-left
    corner is (x, y) on ``canvas`` (non-square images are narrower)."""
    thumb = load_thumbnail(path, thumb_size)
    framed = cv2.copyMakeBorder(thumb, border, border, border, border, cv2.BORDER_CONSTANT, value=colour)
    h, w = framed.shape[:2]
    top, left = y + (tile - h) // 2, x + (tile - w) // 2
    canvas[top : top + h, left : left + w] = framed


def with_legend(
    canvas: np.ndarray, classes: list[str], colours: list[tuple], bg: tuple, note: str | None
) -> np.ndarray:
    """``canvas`` above its legend strip, centred when the strip is the wider (a tall, thin canvas)."""
    long_side = max(canvas.shape[:2])
    width = legend_width(canvas.shape[1], long_side)
    left = (width - canvas.shape[1]) // 2
    canvas = cv2.copyMakeBorder(canvas, 0, 0, left, width - canvas.shape[1] - left, cv2.BORDER_CONSTANT, value=bg)
    return np.vstack([canvas, legend_strip(classes, colours, width, bg, note, text_size=long_side)])
