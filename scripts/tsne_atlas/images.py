"""Reading images the same way everywhere: checks at sampling time, RGB for models and figures.

Real image folders are messy. ``image_problem`` says, in a few words, why a file cannot
be used (empty, not an image, truncated, too large, a symlink leaving the dataset...),
or returns None; sampling skips or rejects such files so that later stages only ever
see images ``load_rgb`` can read.
"""

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# PIL's own decompression-bomb limit (about 89 megapixels) is kept: larger files are
# refused rather than decoded, so one hostile file cannot exhaust memory.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS


def path_problem(root: str | os.PathLike, relative: str) -> str | None:
    """Why ``relative`` (a path under ``root``) is not a safe file to read, or None.

    Rejects absolute paths and '..', broken or looping symlinks, and symlinks whose
    target lies outside the dataset root.
    """
    parts = Path(relative).parts
    if Path(relative).is_absolute() or ".." in parts:
        return "path leaves dataset.root"
    path = Path(root) / relative
    try:
        real = Path(os.path.realpath(path, strict=True))
    except OSError:  # broken link, or a loop (ELOOP)
        return "broken or looping symlink" if path.is_symlink() else "missing file"
    if not real.is_relative_to(Path(os.path.realpath(root))):
        return "symlink points outside dataset.root"
    if not real.is_file():
        return "not a regular file"
    return None


def image_problem(path: str | os.PathLike) -> str | None:
    """Why the file at ``path`` cannot be used as an image, or None when it decodes fully."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x its pixel limit; treat that as too large too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()  # full decode: catches truncated and corrupt data
                if image.width < 1 or image.height < 1:
                    return "image has no pixels"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return f"too large (over {MAX_IMAGE_PIXELS} pixels, PIL's decompression-bomb limit)"
    except UnidentifiedImageError:
        return "not an image (or a format Pillow cannot read)"
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        return f"truncated or corrupt ({' '.join(str(err).split())[:80]})"
    return None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB, upright.

    EXIF orientation is applied; 16-bit and 32-bit greyscale are scaled to 8 bits
    (a plain convert would clip them to white); transparency is composited on white.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str | os.PathLike, at_least: int | None = None) -> Image.Image:
    """Open ``path`` as an upright 8-bit RGB PIL image (see ``to_rgb``).

    ``at_least``: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale as long as both sides stay at
    least this many pixels (PIL's draft mode: several times faster for thumbnails).
    """
    with Image.open(path) as image:
        if at_least is not None:
            image.draft("RGB", (at_least, at_least))
        return to_rgb(image)
