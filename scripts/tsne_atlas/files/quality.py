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

from ..jobs import AtlasError
from ..quality import CHECKS
from .csv_table import write_csv_table

SCORE_FIELDS = tuple(check.column for check in CHECKS)
QUALITY_FIELDS = ("path", "label", "width", "height", *SCORE_FIELDS, "problems")
PROBLEM_SEPARATOR = " | "


def _quality_cell(name: str, value) -> str:
    if name in ("width", "height"):
        return str(int(value))
    if name in SCORE_FIELDS:
        return f"{float(value):.4f}"
    if name == "problems":
        return PROBLEM_SEPARATOR.join(value)
    return str(value)


def write_quality(path: str | os.PathLike, rows: list[dict]) -> None:
    """quality.csv from rows holding every column of QUALITY_FIELDS (``problems`` a list of names)."""
    write_csv_table(path, QUALITY_FIELDS, rows, _quality_cell)


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
