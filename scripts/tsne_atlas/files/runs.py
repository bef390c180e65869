"""A run of the sweep: its identity, and its record on disk (``tsne/{run}.tsv`` + ``.json``).

Identity: a run is one (feature set, perplexity, seed) of the t-SNE sweep. ``RUN_KEYS`` and
``RUN_PATTERN`` are the one definition of it: the rules name every per-run file with
``RUN_PATTERN`` (a folder per feature set, a file stem per perplexity and seed), and figures sort
and label runs with ``run_sort_key`` and ``run_name``.

Record: a TSV of ``path, x, y`` (sample order; coordinates as Python reprs, so they round-trip
exactly) and a JSON sidecar of the run's parameters, KL divergence, runtime and the provenance
copied from the features file. No labels: a run is the same whatever the images are called, so
relabelling reruns no t-SNE. Figure stages receive a ``RunRecord``, the run joined with the
sample's labels and metadata (``sample/manifest.csv``, same rows in the same order).
"""

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..jobs import AtlasError, atomic_path
from .manifest import SampleLabels, sample_labels

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
EMBEDDING_FIELDS = ("path", "x", "y")


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
    """One run as the figures see it: image paths, labels, N x 2 coordinates, the run's JSON and the
    sample's metadata columns."""

    paths: list[str]
    labels: list[str]
    coords: np.ndarray
    meta: dict
    metadata: dict[str, list[str]] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    @property
    def labelled(self) -> bool:
        return SampleLabels(self.paths, self.labels).labelled

    def label_indices(self) -> np.ndarray:
        """Each image's index into ``classes``."""
        return SampleLabels(self.paths, self.labels).indices()


def write_run(tsv: str | os.PathLike, meta_json: str | os.PathLike, paths, coords: np.ndarray, meta: dict) -> None:
    with atomic_path(tsv) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(EMBEDDING_FIELDS)
        for path, (x, y) in zip(paths, coords):
            writer.writerow((path, repr(float(x)), repr(float(y))))
    with atomic_path(meta_json) as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_embedding(tsv: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """An embedding TSV: (paths, N x 2 coordinates)."""
    with open(tsv, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if tuple(header or ()) != EMBEDDING_FIELDS:
            raise AtlasError(f"{tsv}: not an embedding table (header {header}); delete it and rerun")
        rows = list(reader)
    coords = np.array([[float(r[1]), float(r[2])] for r in rows], dtype=np.float64).reshape(-1, 2)
    return [r[0] for r in rows], coords


def read_meta(meta_json: str | os.PathLike) -> dict:
    return json.loads(Path(meta_json).read_text(encoding="utf-8"))


def read_run(tsv: str | os.PathLike, meta_json: str | os.PathLike, manifest: str | os.PathLike) -> RunRecord:
    """A run joined with the sample's labels and metadata (``manifest``: ``sample/manifest.csv``)."""
    paths, coords = read_embedding(tsv)
    labels = sample_labels(manifest, paths, str(tsv))
    return RunRecord(paths, labels.labels, coords, read_meta(meta_json), labels.metadata)
