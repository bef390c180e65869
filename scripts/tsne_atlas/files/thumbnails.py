"""The explorer's thumbnails: JPEG sprite atlases and their index, in ``results/explorer/``.

- ``atlas-0000.jpg``, ``atlas-0001.jpg``, ...: square cells of ``cell`` x ``cell`` pixels,
  ``columns`` per row and at most ``columns`` rows per atlas, filled row by row. Image ``i`` of the
  index is in atlas ``i // (columns * columns)``, at cell ``i % (columns * columns)``; each image is
  scaled to fit its cell (longer side = ``cell``) and centred on white.
- ``thumbnails.json``, written last: ``cell``, ``columns``, ``quality`` (JPEG), ``atlases`` (file
  names, in order), ``paths`` (the images, relative to dataset.root, in cell order) and ``n_total``
  (the sample's size: more than ``len(paths)`` when the explorer shows a fixed subsample);
  ``max_images`` only when ``paths`` holds more images than explorer.max_images (a points page shows
  every image): the projector export takes its fixed subsample of that many (``projector_rows``).

The page loads an atlas only when a thumbnail in it is first shown, as an ``<img>``/CSS image, which
browsers allow for ``file://`` pages (unlike ``fetch``).
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..jobs import AtlasError, atomic_path

INDEX_NAME = "thumbnails.json"
FORMAT = 1


def atlas_name(atlas: int) -> str:
    return f"atlas-{atlas:04d}.jpg"


@dataclass(frozen=True)
class ThumbnailIndex:
    folder: Path
    cell: int
    columns: int
    quality: int
    atlases: list[str]
    paths: list[str]
    n_total: int
    # The cap of the projector export's subsample of ``paths`` (none: every image of the index).
    max_images: int | None = None

    @property
    def per_atlas(self) -> int:
        return self.columns * self.columns

    def position(self, index: int) -> tuple[str, int, int]:
        """(atlas file name, left, top) in pixels of image ``index``'s cell."""
        atlas, cell = divmod(index, self.per_atlas)
        row, column = divmod(cell, self.columns)
        return self.atlases[atlas], column * self.cell, row * self.cell


def write_index(folder: str | os.PathLike, index: dict) -> None:
    with atomic_path(Path(folder) / INDEX_NAME) as tmp:
        tmp.write_text(json.dumps({"format": FORMAT, **index}, ensure_ascii=False), encoding="utf-8")


def read_index(folder: str | os.PathLike) -> ThumbnailIndex:
    """The index of a thumbnails folder; AtlasError when it is missing, foreign or lists a missing atlas."""
    path = Path(folder) / INDEX_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        index = ThumbnailIndex(
            Path(folder),
            int(data["cell"]),
            int(data["columns"]),
            int(data["quality"]),
            list(data["atlases"]),
            list(data["paths"]),
            int(data["n_total"]),
            None if data.get("max_images") is None else int(data["max_images"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise AtlasError(f"{path}: not a complete thumbnails index ({err}); delete {folder} and rerun") from None
    missing = [name for name in index.atlases if not (index.folder / name).is_file()]
    if missing or len(index.atlases) != -(-len(index.paths) // index.per_atlas):
        raise AtlasError(f"{path}: atlas files missing or miscounted ({missing[:3]}); delete {folder} and rerun")
    return index
