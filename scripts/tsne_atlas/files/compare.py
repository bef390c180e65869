"""compare/metrics.csv (every run of every feature set, one row each) and compare/cka.csv (the linear
CKA matrix between feature sets)."""

import csv
import os

import numpy as np

from ..jobs import atomic_path
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


def write_cka_table(ids: list[str], matrix: np.ndarray, path: str | os.PathLike) -> None:
    """The CKA matrix as CSV: a ``features`` column of ids, then one column per id; values as exact reprs."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["features", *ids])
        for set_id, values in zip(ids, matrix):
            writer.writerow([set_id, *(repr(float(v)) for v in values)])
