"""The clusters of one feature set (written by the clusters stage, read by the figures, the comparison
and the explorer), in ``clusters/{features}/``. CSV files are UTF-8, written with the csv module (so
commas, quotes and newlines in paths and labels round-trip), one header row.

``clusters.csv``: one row per sampled image, in the sample's order. Columns ``path`` (relative to
dataset.root), ``label``, ``cluster`` (0, 1, ...: 0 is the largest cluster; ties by the first
image), ``cluster_name`` (the cluster's name, as in table.csv).

``table.csv``: one row per cluster, largest first. Columns:

- ``cluster``, ``name``, ``size``;
- ``majority_label`` and ``purity`` (its share of the cluster, 4 decimals): empty and ``n/a`` when the
  images have no labels;
- ``predicted_class`` and ``predicted_share``: the network's most common top-1 prediction in the
  cluster and its share (4 decimals); empty and ``n/a`` when the features file stores no predictions;
- ``representative``: the path of the image nearest the cluster's mean in the prepared input (its
  most central member);
- ``examples``: the next most central members' paths, joined by " | ".

``summary.json``: the feature set (``features``), how the clusters were found (``method``,
``neighbours``, ``resolution``, ``seed``),
``n_images``, ``n_clusters``, ``predictions`` (the features file's: ``stored`` or why not),
``weights_random`` (the network's weights were random), and the clusters'
 agreement with the labels: ``adjusted_rand_index`` and
``normalized_mutual_info`` (null when the images have no labels, with ``agreement`` saying why).
"""

import json
import os
from pathlib import Path

from ..jobs import AtlasError, atomic_path
from .csv_table import read_csv_table, write_csv_table
from .metrics import NOT_APPLICABLE

ASSIGNMENT_FIELDS = ("path", "label", "cluster", "cluster_name")
TABLE_FIELDS = (
    "cluster",
    "name",
    "size",
    "majority_label",
    "purity",
    "predicted_class",
    "predicted_share",
    "representative",
    "examples",
)
LIST_SEPARATOR = " | "
FLOAT_FIELDS = {"purity", "predicted_share"}
INT_FIELDS = {"cluster", "size"}


def _cell(name: str, value) -> str:
    if name == "examples":
        return LIST_SEPARATOR.join(value)
    if name in FLOAT_FIELDS:
        return NOT_APPLICABLE if value is None else f"{float(value):.4f}"
    return "" if value is None else str(value)


def _parse(name: str, text: str):
    if name == "examples":
        return text.split(LIST_SEPARATOR) if text else []
    if name in FLOAT_FIELDS:
        return None if text == NOT_APPLICABLE else float(text)
    if name in INT_FIELDS:
        return int(text)
    return text


def _write(path: str | os.PathLike, fields: tuple[str, ...], rows: list[dict]) -> None:
    write_csv_table(path, fields, rows, _cell)


def _read(path: str | os.PathLike, fields: tuple[str, ...]) -> list[dict]:
    return read_csv_table(path, fields, _parse)


def write_assignments(path: str | os.PathLike, rows: list[dict]) -> None:
    """clusters.csv from one row per image (keys ASSIGNMENT_FIELDS), in the sample's order."""
    _write(path, ASSIGNMENT_FIELDS, rows)


def read_assignments(path: str | os.PathLike) -> list[dict]:
    """Rows of clusters.csv, ``cluster`` as an int."""
    return _read(path, ASSIGNMENT_FIELDS)


def write_cluster_table(path: str | os.PathLike, rows: list[dict]) -> None:
    """table.csv from one row per cluster (keys TABLE_FIELDS), largest first."""
    _write(path, TABLE_FIELDS, rows)


def read_cluster_table(path: str | os.PathLike) -> list[dict]:
    """Rows of table.csv: numbers as int/float (None for n/a), ``examples`` as a list."""
    return _read(path, TABLE_FIELDS)


def write_summary(path: str | os.PathLike, summary: dict) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_summary(path: str | os.PathLike) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise AtlasError(f"{path}: not a clusters summary ({err}); delete it and rerun") from None


def cluster_of_paths(path: str | os.PathLike, paths: list[str]) -> tuple[list[int], dict[int, str]]:
    """Each of ``paths``' cluster (from clusters.csv) and every cluster's name; a path the file lacks
    (clusters of another sample) is refused in one line."""
    rows = read_assignments(path)
    by_path = {row["path"]: row["cluster"] for row in rows}
    missing = [p for p in paths if p not in by_path]
    if missing:
        raise AtlasError(f"{path} has no cluster for {len(missing)} image(s), e.g. {missing[0]}; delete it and rerun")
    names = {row["cluster"]: row["cluster_name"] for row in rows}
    return [by_path[p] for p in paths], names


def summary_columns(summary: dict) -> dict:
    """The columns the sweep and comparison tables take from a clusters summary (files/metrics.py):
    ``n_clusters``, ``cluster_ari``, ``cluster_nmi`` (None without labels)."""
    return {
        "n_clusters": summary["n_clusters"],
        "cluster_ari": summary["adjusted_rand_index"],
        "cluster_nmi": summary["normalized_mutual_info"],
    }
