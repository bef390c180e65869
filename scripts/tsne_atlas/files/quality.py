"""``quality/quality.csv``: the image problems of the sample (rule image_quality). CSV, UTF-8, written with
the csv module (commas, quotes and newlines in paths and labels round-trip), one header row, then one
row per sampled image in sample order (``sample/images.csv``'s, sorted by path). Columns:

- ``path``, ``label``: the image (relative to dataset.root) and its label (``unlabelled`` for a
  collection without labels);
- ``width``, ``height``: the file's size in pixels, upright (EXIF orientation applied);
- one score per check of ``tsne_atlas.quality.CHECKS``, in its order, 4 decimals: ``sharpness``,
  ``brightness_p99``, ``brightness_p5``, ``entropy``, ``aspect_ratio``, ``colourfulness``, ``size``
  (what each measures: that module, and docs/outputs.md#image-problems);
- ``problems``: the checks the image fails, by name (``blurry``, ``dark``, ``light``,
  ``low_information``, ``odd_aspect_ratio``, ``grayscale``, ``small``), in that order, joined by " | ";
  empty when none. A check failed by more than ``quality.max_share`` of the sample is listed for no
  image (it describes the collection); its scores stay.
"""

import csv
import os

from ..jobs import AtlasError, atomic_path
from ..quality import CHECKS

SCORE_FIELDS = tuple(check.column for check in CHECKS)
QUALITY_FIELDS = ("path", "label", "width", "height", *SCORE_FIELDS, "problems")
PROBLEM_SEPARATOR = " | "


def write_quality(path: str | os.PathLike, rows: list[dict]) -> None:
    """quality.csv from rows holding every column of QUALITY_FIELDS (``problems`` a list of names)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(QUALITY_FIELDS)
        for row in rows:
            writer.writerow(
                [
                    row["path"],
                    row["label"],
                    int(row["width"]),
                    int(row["height"]),
                    *(f"{float(row[name]):.4f}" for name in SCORE_FIELDS),
                    PROBLEM_SEPARATOR.join(row["problems"]),
                ]
            )


def read_quality(path: str | os.PathLike) -> list[dict]:
    """Rows of quality.csv: dicts of its columns; width and height as int, scores as float (4
    decimals), ``problems`` as a list of names (empty when none)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(header) != QUALITY_FIELDS:
            raise AtlasError(
                f"{path}: not a quality table with columns {', '.join(QUALITY_FIELDS)}; delete it and rerun"
            )
        rows = []
        for values in reader:
            row = dict(zip(QUALITY_FIELDS, values))
            rows.append(
                {
                    "path": row["path"],
                    "label": row["label"],
                    "width": int(row["width"]),
                    "height": int(row["height"]),
                    **{name: float(row[name]) for name in SCORE_FIELDS},
                    "problems": row["problems"].split(PROBLEM_SEPARATOR) if row["problems"] else [],
                }
            )
        return rows
