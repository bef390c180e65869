"""Stage explorer_thumbnails: every image the explorer shows, as cells of JPEG sprite atlases.

The explorer page (``explorer.py``) shows these cells on hover and in its neighbours panel; the
TensorBoard projector export (``projector.py``) builds its sprite from them. The atlases depend
only on the sample and the cell size, so a new run or a relabelling does not redo them.

Memory stays bounded at any sample size: one atlas (at most ``columns``² thumbnails) is held at a
time; images are decoded by a small thread pool (PIL releases the GIL while decoding) with JPEG
draft mode, which decodes at 1/2 to 1/8 scale when the thumbnail is that much smaller.
"""

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .files.manifest import read_images
from .files.thumbnails import atlas_name, write_index
from .images import load_rgb
from .jobs import AtlasError, atomic_path
from .subsample import fixed_subsample

LOGGER = logging.getLogger("tsne_atlas.explorer_thumbnails")
# 16 x 16 cells: an atlas of 96-pixel thumbnails is 1536 pixels square, a few hundred KB that the
# page loads in one go the first time one of its images is shown.
ATLAS_COLUMNS = 16
JPEG_QUALITY = 85
BACKGROUND = (255, 255, 255)


def thumbnail(path: str | os.PathLike, cell: int) -> Image.Image:
    """The image scaled so its longer side is ``cell`` pixels, centred on a white ``cell`` x ``cell`` square."""
    try:
        rgb = load_rgb(path, at_least=cell)
    except FileNotFoundError:
        raise AtlasError(
            f"{path}: image listed in the sample is missing; restore it or rerun the workflow from sampling"
        ) from None
    except (UnidentifiedImageError, OSError) as err:
        raise AtlasError(f"{path}: not a readable image ({err}); replace or remove it and rerun") from None
    scale = cell / max(rgb.size)
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
    square = Image.new("RGB", (cell, cell), BACKGROUND)
    square.paste(rgb.resize(size, resample), ((cell - size[0]) // 2, (cell - size[1]) // 2))
    return square


def write_atlases(
    image_files: list[Path],
    folder: str | os.PathLike,
    cell: int,
    threads: int,
    columns: int = ATLAS_COLUMNS,
    quality: int = JPEG_QUALITY,
) -> list[str]:
    """Write the atlases of ``image_files`` (in cell order) into ``folder``; their file names."""
    per_atlas = columns * columns
    names = []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for start in range(0, len(image_files), per_atlas):
            chunk = image_files[start : start + per_atlas]
            rows = -(-len(chunk) // columns)
            atlas = Image.new("RGB", (columns * cell, rows * cell), BACKGROUND)
            for i, square in enumerate(pool.map(lambda path: thumbnail(path, cell), chunk)):
                row, column = divmod(i, columns)
                atlas.paste(square, (column * cell, row * cell))
            name = atlas_name(len(names))
            with atomic_path(Path(folder) / name) as tmp:
                atlas.save(tmp, format="JPEG", quality=quality)
            names.append(name)
            LOGGER.info("atlas %s: images %d-%d of %d", name, start + 1, start + len(chunk), len(image_files))
    return names


def explorer_thumbnails(
    images: str,
    root: str,
    thumbnails: str,
    thumb_size: int,
    max_images: int,
    threads: int,
    every_image: bool = False,
    columns: int = ATLAS_COLUMNS,
) -> None:
    """The thumbnails of the images the explorer shows (rule explorer_thumbnails): every sampled image,
    or the explorer's fixed subsample above ``max_images``, into the folder ``thumbnails``. A points page
    (``every_image``, config.explorer_thumbnail_params) shows every image: all of them, ``columns`` a
    row, the index keeping ``max_images`` for the projector export's subsample when there are more."""
    paths, _ = read_images(images)
    keep = np.arange(len(paths)) if every_image else fixed_subsample(len(paths), max_images)
    shown = [paths[i] for i in keep]
    Path(thumbnails).mkdir(parents=True, exist_ok=True)
    atlases = write_atlases([Path(root) / path for path in shown], thumbnails, thumb_size, threads, columns)
    index = {
        "cell": thumb_size,
        "columns": columns,
        "quality": JPEG_QUALITY,
        "atlases": atlases,
        "paths": shown,
        "n_total": len(paths),
    }
    if len(shown) > max_images:  # only then: an index of a canvas page is what it was before points pages
        index["max_images"] = max_images
    write_index(thumbnails, index)
    LOGGER.info("wrote %d thumbnails in %d atlases to %s", len(shown), len(atlases), thumbnails)
