"""compare/metrics.csv (every run of every feature set, one row each), compare/cka.csv (the linear
CKA matrix between feature sets) and compare/clusters.csv (how the reference set's clusters fall in
each other set's: one row per pair of clusters sharing images, columns CONTINGENCY_FIELDS:
``features`` (the other set), its ``cluster`` and ``name``, the ``reference_cluster`` and
``reference_name``, ``images`` they share and ``share_of_reference``, the share of the reference
cluster's images, 4 decimals)."""

import csv
import os

import numpy as np

from ..jobs import AtlasError, atomic_path
from .csv_table import write_csv_table
from .metrics import NOT_APPLICABLE, SWEEP_FIELDS
from .runs import run_sort_key


def compare_columns() -> tuple[str, ...]:
    """Columns of the comparison table: the feature set first, then the sweep table's columns."""
    return ("features", *(f for f in SWEEP_FIELDS if f != "features"))


def write_compare_table(rows: list[dict], order: list[str], path: str | os.PathLike) -> None:
    """One row per run, by feature set (in ``order``), then method, settings and seed (``run_sort_key``)."""
    rank = {set_id: i for i, set_id in enumerate(order)}
    rows = sorted(rows, key=lambda r: (rank[r["features"]], *run_sort_key(r)[1:]))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=compare_columns(), restval=NOT_APPLICABLE, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(
            {key: NOT_APPLICABLE if value is None else value for key, value in row.items()} for row in rows
        )


CONTINGENCY_FIELDS = (
    "features",
    "cluster",
    "name",
    "reference_cluster",
    "reference_name",
    "images",
    "share_of_reference",
)


def write_cluster_contingency(path: str | os.PathLike, cells: list[dict]) -> None:
    """compare/clusters.csv from one dict per pair of clusters (keys CONTINGENCY_FIELDS)."""
    write_csv_table(
        path,
        CONTINGENCY_FIELDS,
        cells,
        lambda name, value: f"{value:.4f}" if name == "share_of_reference" else str(value),
    )


def read_cluster_contingency(path: str | os.PathLike) -> list[dict]:
    """compare/clusters.csv as one dict per row, numbers as int/float."""
    header, *rows = _csv_rows(path, "the clusters' contingency table")
    if tuple(header) != CONTINGENCY_FIELDS:
        raise AtlasError(f"{path}: not a table with columns {', '.join(CONTINGENCY_FIELDS)}; delete it and rerun")
    numbers = {"cluster": int, "reference_cluster": int, "images": int, "share_of_reference": float}
    return [{key: numbers.get(key, str)(value) for key, value in zip(header, row)} for row in rows]


def write_cka_table(ids: list[str], matrix: np.ndarray, path: str | os.PathLike) -> None:
    """The CKA matrix as CSV: a ``features`` column of ids, then one column per id; values as exact reprs."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["features", *ids])
        for set_id, values in zip(ids, matrix):
            writer.writerow([set_id, *(repr(float(v)) for v in values)])


def _csv_rows(path: str | os.PathLike, what: str) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise AtlasError(
            f"{path}: no such file; is this a finished run with two or more feature sets ({what})?"
        ) from None
    if not rows:
        raise AtlasError(f"{path}: empty, expected {what}; delete it and rerun the workflow")
    return rows


def read_compare_table(path: str | os.PathLike) -> list[dict]:
    """compare/metrics.csv as one dict per run, in file order: the columns of ``compare_columns`` as
    written (text); a ``n/a`` cell reads as None. A file without those columns is one line."""
    header, *rows = _csv_rows(path, "the comparison's metrics table")
    if tuple(header) != compare_columns():
        raise AtlasError(
            f"{path}: columns {header} are not those of a comparison table {list(compare_columns())}; "
            "delete it and rerun the workflow"
        )
    bad = next((i for i, row in enumerate(rows, start=2) if len(row) != len(header)), None)
    if bad is not None:
        raise AtlasError(f"{path}: line {bad} has {len(rows[bad - 2])} cells, the header {len(header)}")
    return [{key: None if value == NOT_APPLICABLE else value for key, value in zip(header, row)} for row in rows]


def read_cka_table(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """compare/cka.csv as (ids, K x K matrix), as ``write_cka_table`` wrote them."""
    header, *rows = _csv_rows(path, "the linear CKA matrix")
    ids = header[1:]
    if header[:1] != ["features"] or [row[:1] for row in rows] != [[i] for i in ids]:
        raise AtlasError(
            f"{path}: not a CKA matrix (a 'features' column, then one row and one column per feature set, "
            "in the same order); delete it and rerun the workflow"
        )
    try:
        matrix = np.array([[float(v) for v in row[1:]] for row in rows], dtype=np.float64).reshape(len(ids), len(ids))
    except ValueError as err:
        raise AtlasError(
            f"{path}: a CKA value is not a number or a row is short ({err}); delete it and rerun"
        ) from None
    return ids, matrix
