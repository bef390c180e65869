"""A run of the sweep: its identity, and its record on disk (``tsne/{run}.tsv`` + ``.json``).

Identity: a run is one (feature set, perplexity, seed) of the t-SNE sweep. ``RUN_KEYS`` and
``RUN_PATTERN`` are the one definition of it: the rules name every per-run file with
``RUN_PATTERN`` (a folder per feature set, a file stem per perplexity and seed), and figures sort
and label runs with ``run_sort_key`` and ``run_name``.

Record: a TSV of ``path, label, x, y`` (manifest order; coordinates as Python reprs, so they
round-trip exactly) and a JSON sidecar of the run's parameters, KL divergence, runtime and the
provenance copied from the features file. Figure stages receive a ``RunRecord``.
"""

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..jobs import AtlasError, atomic_path

RUN_KEYS = ("features", "perplexity", "seed")
# Path of a run's outputs below each output folder: Snakemake wildcards in the rules, formatted with
# run_name() here.
RUN_PATTERN = "{features}/perplexity-{perplexity}_seed-{seed}"
# The workflow narrows ``features`` to the configured feature set ids.
WILDCARD_CONSTRAINTS = {
    "features": r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    "perplexity": r"[0-9]+(\.[0-9]+)?",
    "seed": r"[0-9]+",
}
EMBEDDING_FIELDS = ("path", "label", "x", "y")


def wildcard_value(value: float | str) -> str:
    """How a run key appears in file names: 30 -> '30', 7.5 -> '7.5'; a feature set id as it is."""
    return value if isinstance(value, str) else f"{value:g}"


def run_name(meta: dict) -> str:
    """A run's path below an output folder, e.g. ``resnet101/perplexity-30_seed-0``."""
    return RUN_PATTERN.format(**{key: wildcard_value(meta[key]) for key in RUN_KEYS})


def run_sort_key(meta: dict) -> tuple[str, float, int]:
    """Order of runs in tables and figures: by feature set, perplexity, then seed."""
    return str(meta["features"]), float(meta["perplexity"]), int(meta["seed"])


@dataclass
class RunRecord:
    """One run as the figures see it: image paths, labels, N x 2 coordinates and the run's JSON."""

    paths: list[str]
    labels: list[str]
    coords: np.ndarray
    meta: dict

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    def label_indices(self) -> np.ndarray:
        index = {name: i for i, name in enumerate(self.classes)}
        unknown = sorted(set(self.labels) - set(index))
        if unknown:
            raise AtlasError(
                f"labels {unknown} are not in the run's 'classes' list; delete the results/tsne folder and rerun"
            )
        return np.array([index[label] for label in self.labels], dtype=np.int64)


def write_run(
    tsv: str | os.PathLike, meta_json: str | os.PathLike, paths, labels, coords: np.ndarray, meta: dict
) -> None:
    with atomic_path(tsv) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(EMBEDDING_FIELDS)
        for path, label, (x, y) in zip(paths, labels, coords):
            writer.writerow((path, label, repr(float(x)), repr(float(y))))
    with atomic_path(meta_json) as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_embedding(tsv: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray]:
    """An embedding TSV: (paths, labels, N x 2 coordinates)."""
    with open(tsv, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if tuple(header or ()) != EMBEDDING_FIELDS:
            raise AtlasError(f"{tsv}: not an embedding table (header {header}); delete it and rerun")
        rows = list(reader)
    coords = np.array([[float(r[2]), float(r[3])] for r in rows], dtype=np.float64).reshape(-1, 2)
    return [r[0] for r in rows], [r[1] for r in rows], coords


def read_meta(meta_json: str | os.PathLike) -> dict:
    return json.loads(Path(meta_json).read_text(encoding="utf-8"))


def read_run(tsv: str | os.PathLike, meta_json: str | os.PathLike) -> RunRecord:
    paths, labels, coords = read_embedding(tsv)
    return RunRecord(paths, labels, coords, read_meta(meta_json))
