"""metrics/{run}.json (one run's quality metrics) and metrics/{features}/sweep.csv (every run of a feature
set, one row each; a setting another method has, or t-SNE's KL divergence of a UMAP or PCA map, is n/a)."""

import csv
import json
import os
from pathlib import Path

from ..jobs import atomic_path
from .runs import FIXED_KEYS, METHOD_KEYS, run_sort_key

# Every method's settings are columns (a method's declared axes, in METHODS order, the seed once):
# a setting another method has is n/a in a run's row.
SETTING_FIELDS = tuple(dict.fromkeys(key for keys in METHOD_KEYS.values() for key in keys if key not in FIXED_KEYS))
SWEEP_FIELDS = (
    "features",
    "method",
    *(key for key in SETTING_FIELDS if key != "seed"),
    "seed",
    "trustworthiness",
    "knn_accuracy_2d",
    "knn_accuracy_features",
    "n_clusters",
    "cluster_ari",
    "cluster_nmi",
    "kl_divergence",
    "n_images",
    "n_metric_images",
    "runtime_s",
)


# A label metric of unlabelled images (tables, figure titles).
NOT_APPLICABLE = "n/a"


def format_metric(value, digits: int = 2) -> str:
    """A metric as text; None (a label metric of unlabelled images) is ``n/a``."""
    return NOT_APPLICABLE if value is None else f"{value:.{digits}f}"


def write_run_metrics(path: str | os.PathLike, metrics: dict) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_run_metrics(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_sweep_table(rows: list[dict], path: str | os.PathLike) -> None:
    rows = sorted(rows, key=run_sort_key)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SWEEP_FIELDS, restval=NOT_APPLICABLE, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(
            {key: NOT_APPLICABLE if value is None else value for key, value in row.items()} for row in rows
        )
