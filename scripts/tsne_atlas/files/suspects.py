"""The three "which images look wrong" tables of one feature set: CSV, UTF-8, written with the csv
module (so commas, quotes and newlines in paths and labels round-trip), one header row.

``suspects.csv``: images whose label disagrees with some of their k nearest neighbours (in the
prepared input X), most suspect first; images whose k neighbours all share their label are not
listed. Columns:

- ``rank``: 1, 2, ...
- ``path``, ``label``: the image (path relative to dataset.root) and its label;
- ``disagreement``: share of its k neighbours with another label (4 decimals);
- ``majority_label``: the most common label among them (ties: the nearer one);
- ``agreement_weighted``: share of inverse-distance weight on neighbours with its own label
  (4 decimals); ~0 when an exact duplicate carries another label;
- ``neighbours``: the k nearest neighbours' paths, nearest first, joined by " | ";
- ``neighbour_labels``, ``neighbour_distances``: their labels, and their distances in X (4 decimals),
  in the same order, joined by " | ".

``duplicates.csv``: pairs of images that are the same picture. Columns ``kind`` (``exact``: same
file content, by hash; ``near``: cosine of their rows of X at or above the threshold), ``path_a``,
``path_b``, ``label_a``, ``label_b``, ``cosine`` (4 decimals; 1.0000 for exact pairs). Exact pairs
come first, then near pairs by cosine descending; an exact pair is not listed again as near.

``outliers.csv``: every image (up to the row cap), by ``outlier_score`` descending, ties by sample
order. Columns ``rank``, ``path``, ``label``, ``outlier_score`` (the larger of the next two: about 1
for a typical image), ``relative_distance`` (the image's mean distance in X to its k nearest
neighbours over the mean of theirs: about 1 inside a cluster, dense or spread; high for an isolated
odd image), ``wide_relative_distance`` (the same ratio over all K neighbours the k-NN graph holds, K
= its width: high for a small group of similar images far from the rest, which the k-ratio misses),
``mean_neighbour_distance`` (the image's mean distance to its k nearest neighbours itself), each with
4 decimals, then ``neighbours``, ``neighbour_labels``, ``neighbour_distances`` (as in suspects.csv).

The " | " joins are for people reading the table in a spreadsheet; a path or label that itself
contains " | " (rare) is split wrongly when read back.
"""

import os

from .csv_table import read_csv_table, write_csv_table

# Why suspects.csv is empty when the sample has no labels (every image carries the placeholder): said
# by find_suspects' log and by the suspects figure, which reads the table.
NO_LABELS_REASON = "no labels: label disagreement needs labelled images"

SUSPECT_FIELDS = (
    "rank",
    "path",
    "label",
    "disagreement",
    "majority_label",
    "agreement_weighted",
    "neighbours",
    "neighbour_labels",
    "neighbour_distances",
)
DUPLICATE_FIELDS = ("kind", "path_a", "path_b", "label_a", "label_b", "cosine")
OUTLIER_FIELDS = (
    "rank",
    "path",
    "label",
    "outlier_score",
    "relative_distance",
    "wide_relative_distance",
    "mean_neighbour_distance",
    "neighbours",
    "neighbour_labels",
    "neighbour_distances",
)
LIST_SEPARATOR = " | "
FLOAT_FIELDS = {
    "disagreement",
    "agreement_weighted",
    "cosine",
    "outlier_score",
    "relative_distance",
    "wide_relative_distance",
    "mean_neighbour_distance",
}
LIST_FIELDS = {"neighbours", "neighbour_labels", "neighbour_distances"}


def cell(name: str, value) -> str:
    """One value as its CSV text: floats with 4 decimals, lists joined by " | "."""
    if name == "neighbour_distances":
        return LIST_SEPARATOR.join(f"{float(v):.4f}" for v in value)
    if name in LIST_FIELDS:
        return LIST_SEPARATOR.join(str(v) for v in value)
    if name in FLOAT_FIELDS:
        return f"{float(value):.4f}"
    return str(value)


def parse_cell(name: str, text: str):
    """The value of one CSV cell (the inverse of ``cell``, floats rounded to 4 decimals)."""
    if name in LIST_FIELDS:
        items = text.split(LIST_SEPARATOR) if text else []
        return [float(v) for v in items] if name == "neighbour_distances" else items
    if name in FLOAT_FIELDS:
        return float(text)
    if name == "rank":
        return int(text)
    return text


def write_table(path: str | os.PathLike, fields: tuple[str, ...], rows: list[dict]) -> None:
    write_csv_table(path, fields, rows, cell)


def read_table(path: str | os.PathLike, fields: tuple[str, ...]) -> list[dict]:
    return read_csv_table(path, fields, parse_cell)


def write_suspects(path: str | os.PathLike, rows: list[dict]) -> None:
    """suspects.csv from rows as ``suspects.suspect_tables`` makes them (in rank order)."""
    write_table(path, SUSPECT_FIELDS, rows)


def read_suspects(path: str | os.PathLike) -> list[dict]:
    """Rows of suspects.csv: dicts of its columns; numbers as int/float, the " | " columns as lists."""
    return read_table(path, SUSPECT_FIELDS)


def write_duplicates(path: str | os.PathLike, rows: list[dict]) -> None:
    """duplicates.csv from rows as ``suspects.suspect_tables`` makes them (exact pairs first)."""
    write_table(path, DUPLICATE_FIELDS, rows)


def read_duplicates(path: str | os.PathLike) -> list[dict]:
    """Rows of duplicates.csv: dicts of its columns, ``cosine`` as a float."""
    return read_table(path, DUPLICATE_FIELDS)


def write_outliers(path: str | os.PathLike, rows: list[dict]) -> None:
    """outliers.csv from rows as ``suspects.suspect_tables`` makes them (in rank order)."""
    write_table(path, OUTLIER_FIELDS, rows)


def read_outliers(path: str | os.PathLike) -> list[dict]:
    """Rows of outliers.csv: dicts of its columns; numbers as int/float, the " | " columns as lists."""
    return read_table(path, OUTLIER_FIELDS)
