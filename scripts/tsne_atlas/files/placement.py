"""The three tables of a query set placed beside the reference sample, per feature set (written by the
placement tables stage, ``placement.placement_tables``): CSV, UTF-8, written with the csv module (so
commas, quotes and newlines in paths and labels round-trip), one header row. Query paths are relative
to the query's root, reference paths to ``dataset.root``. Numbers have 4 decimals; ``n/a`` marks a
value that means nothing for the row.

``placement.csv``: one row per query image, by path (the order of the query's ``images.csv``). Columns:

- ``path``, ``label``: the query image and its label (``unlabelled`` when the query set has none);
- ``majority_label``: the most common label among its ``neighbours`` (k) nearest reference images in
  the prepared input (ties: the label of the nearer one); empty when the reference has no labels;
- ``majority_share``: that label's share of the k (``n/a`` when the reference has no labels);
- ``agrees``: ``yes`` when the majority label is the image's own, ``no`` when not, ``n/a`` when it
  cannot be judged, and then ``note`` says why: ``reference unlabelled``, ``query image unlabelled``
  or ``class not in the reference`` (its label is no reference image's: allowed, never "wrong");
- ``note``: empty, or why ``agrees`` is ``n/a``;
- ``ood_score``: the image's mean distance to its k nearest reference images over the median, over
  the reference images, of their own mean distance to their k nearest (other) reference images: about
  1 for an image like the reference's, above 2 for one far from all of it (k capped at the reference
  graph's width, ``graph.neighbours``);
- ``leak``: ``exact`` (a reference image has the same SHA-256), ``near`` (a reference image among its
  nearest has a cosine at or above the threshold, none the same bytes) or empty; both listed in
  ``leaks.csv``;
- ``nearest``, ``nearest_distance``: the nearest reference image and its distance in the prepared input;
- ``neighbours``, ``neighbour_labels``: the k nearest reference images' paths and their labels,
  nearest first, joined by " | ".

``leaks.csv``: the pairs of a query image and a reference image that are the same picture. Columns
``kind`` (``exact``: same file bytes, found among all reference images by hash; ``near``: cosine of
their rows of the prepared input at or above the threshold, looked for among the query image's nearest
reference images that the neighbours file holds), ``query_path``, ``reference_path``, ``cosine`` (also
for exact pairs: about 1), ``query_label``, ``reference_label``. Exact pairs first (by query path, then
reference path), then near pairs by cosine descending (ties by the paths); an exact pair is not listed
again as near.

``classes.csv``: one row per query label, sorted, then a last row ``all`` for the whole query set;
a query set without labels has one row, ``unlabelled``. Columns ``label``, ``known`` (``yes`` when a
reference image has that label, ``no`` when none has; ``n/a`` for ``unlabelled`` and ``all``), ``n``
(query images), ``n_agree`` (of them, those whose majority label is their own; ``n/a`` where
agreement cannot be judged), ``share`` (``n_agree`` over the images whose agreement could be judged:
labelled, of a class the reference knows, the reference labelled), ``mean_ood_score``, ``n_leaks``
(images with an exact or near copy in the reference).

The " | " joins are for people reading the table in a spreadsheet; a path or label that itself
contains " | " (rare) is split wrongly when read back.
"""

import os

from .csv_table import read_csv_table, write_csv_table
from .metrics import NOT_APPLICABLE

PLACEMENT_FIELDS = (
    "path",
    "label",
    "majority_label",
    "majority_share",
    "agrees",
    "note",
    "ood_score",
    "leak",
    "nearest",
    "nearest_distance",
    "neighbours",
    "neighbour_labels",
)
LEAK_FIELDS = ("kind", "query_path", "reference_path", "cosine", "query_label", "reference_label")
CLASS_FIELDS = ("label", "known", "n", "n_agree", "share", "mean_ood_score", "n_leaks")
# The last row of classes.csv: the whole query set.
ALL_ROW = "all"
LIST_SEPARATOR = " | "
FLOAT_FIELDS = {"majority_share", "ood_score", "nearest_distance", "cosine", "share", "mean_ood_score"}
INT_FIELDS = {"n", "n_agree", "n_leaks"}
YES_NO_FIELDS = {"agrees", "known"}
LIST_FIELDS = {"neighbours", "neighbour_labels"}


def _cell(name: str, value) -> str:
    if name in LIST_FIELDS:
        return LIST_SEPARATOR.join(value)
    if name in FLOAT_FIELDS | INT_FIELDS | YES_NO_FIELDS and value is None:
        return NOT_APPLICABLE
    if name in YES_NO_FIELDS:
        return "yes" if value else "no"
    if name in FLOAT_FIELDS:
        return f"{float(value):.4f}"
    return "" if value is None else str(value)


def _parse(name: str, text: str):
    if name in LIST_FIELDS:
        return text.split(LIST_SEPARATOR) if text else []
    if name in FLOAT_FIELDS | INT_FIELDS | YES_NO_FIELDS and text == NOT_APPLICABLE:
        return None
    if name in YES_NO_FIELDS:
        return text == "yes"
    if name in FLOAT_FIELDS:
        return float(text)
    if name in INT_FIELDS:
        return int(text)
    return text


def write_placement(path: str | os.PathLike, rows: list[dict]) -> None:
    """placement.csv from one row per query image (keys PLACEMENT_FIELDS; ``agrees`` True, False or
    None, None numbers for n/a), in path order."""
    write_csv_table(path, PLACEMENT_FIELDS, rows, _cell)


def read_placement(path: str | os.PathLike) -> list[dict]:
    """Rows of placement.csv: numbers as floats, ``agrees`` as True/False (None for n/a), the " | "
    columns as lists."""
    return read_csv_table(path, PLACEMENT_FIELDS, _parse)


def write_leaks(path: str | os.PathLike, rows: list[dict]) -> None:
    """leaks.csv from one row per pair (keys LEAK_FIELDS), exact pairs first."""
    write_csv_table(path, LEAK_FIELDS, rows, _cell)


def read_leaks(path: str | os.PathLike) -> list[dict]:
    """Rows of leaks.csv, ``cosine`` as a float."""
    return read_csv_table(path, LEAK_FIELDS, _parse)


def write_classes(path: str | os.PathLike, rows: list[dict]) -> None:
    """classes.csv from one row per query label and the ``all`` row last (keys CLASS_FIELDS)."""
    write_csv_table(path, CLASS_FIELDS, rows, _cell)


def read_classes(path: str | os.PathLike) -> list[dict]:
    """Rows of classes.csv: counts as ints, shares and scores as floats, ``known`` as True/False, None for n/a."""
    return read_csv_table(path, CLASS_FIELDS, _parse)
