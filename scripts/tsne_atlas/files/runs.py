"""A run of the sweep: its identity, and its record on disk (``embeddings/{run}.tsv`` + ``.json``).

Identity: a run is one map of one feature set: a method (``methods``), that method's
settings and, for a stochastic method, a seed. ``METHOD_KEYS``, ``RUN_KEYS`` and ``RUN_PATTERN``
are the one definition of it: the rules name every per-run file with ``RUN_PATTERN`` (a folder per
feature set and method, a file stem of the settings, e.g. ``resnet101/tsne/perplexity-30_seed-0``),
``run_params`` and ``parse_params`` turn settings into that stem and back, and figures sort and
label runs with ``run_sort_key``, ``run_label`` and ``setting_label``.

Record: a TSV of ``path, x, y`` (sample order; coordinates as Python reprs, so they round-trip
exactly) and a JSON sidecar of the run's method, settings, runtime, the method's own figures (t-SNE's
KL divergence, PCA's explained variance) and the provenance copied from the features file. No labels:
a run is the same whatever the images are called, so relabelling reruns no map. Figure stages
receive a ``RunRecord``, the run joined with the sample's labels and metadata
(``sample/manifest.csv``, same rows in the same order).
"""

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..jobs import AtlasError, atomic_path
from ..methods import MAP_METHODS
from .features import PROVENANCE_ATTRS
from .manifest import SampleLabels, sample_labels

# Each method's settings in file-name order (a stochastic method's seed last), its display name, and
# how figures abbreviate a setting in small panel titles: all from the methods' declarations.
METHOD_KEYS = {name: method.keys for name, method in MAP_METHODS.items()}
METHODS = tuple(METHOD_KEYS)
METHOD_NAMES = {name: method.title for name, method in MAP_METHODS.items()}
SHORT_KEYS = {axis.key: axis.short for method in MAP_METHODS.values() for axis in method.axes}
# Settings with one value (PCA's components): in the run's name, never in a label.
FIXED_KEYS = {axis.key for method in MAP_METHODS.values() for axis in method.axes if axis.fixed}
RUN_KEYS = ("features", "method", "params")
# Path of a run's outputs below each output folder: Snakemake wildcards in the rules, formatted with
# run_name() here.
RUN_PATTERN = "{features}/{method}/{params}"
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
# The file stem of each method's runs, e.g. n_neighbors-15_min_dist-0.1_seed-0 (a regex per method).
PARAMS_PATTERNS = {method: "_".join(f"{key}-{_NUMBER}" for key in keys) for method, keys in METHOD_KEYS.items()}
# The workflow narrows ``features`` to the configured feature set ids and ``method`` to the configured
# methods; each method's rule narrows ``params`` to its own pattern.
WILDCARD_CONSTRAINTS = {
    "features": r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    "method": "|".join(METHODS),
    "params": "|".join(f"(?:{pattern})" for pattern in PARAMS_PATTERNS.values()),
}
EMBEDDING_FIELDS = ("path", "x", "y")


def wildcard_value(value: float | str) -> str:
    """How a run key appears in file names: 30 -> '30', 7.5 -> '7.5'; a feature set id as it is."""
    return value if isinstance(value, str) else f"{value:g}"


def run_params(method: str, settings: dict) -> str:
    """The file stem of a run, e.g. ``perplexity-30_seed-0``; ``settings`` holds the method's keys."""
    return "_".join(f"{key}-{wildcard_value(settings[key])}" for key in METHOD_KEYS[method])


def parse_params(method: str, params: str) -> dict:
    """A run's settings from its file stem (``run_params`` reversed), each of its axis' type."""
    keys = METHOD_KEYS[method]
    match = re.fullmatch("_".join(f"{key}-({_NUMBER})" for key in keys), params)
    if match is None:
        raise AtlasError(
            f"'{params}' is not a {METHOD_NAMES[method]} run's name (expected {run_params(method, dict.fromkeys(keys, 1))})"
        )
    return {axis.key: axis.type(float(value)) for axis, value in zip(MAP_METHODS[method].axes, match.groups())}


def run_name(meta: dict) -> str:
    """A run's path below an output folder, e.g. ``resnet101/tsne/perplexity-30_seed-0``."""
    return RUN_PATTERN.format(features=meta["features"], method=meta["method"], params=run_params(meta["method"], meta))


def run_settings(meta: dict) -> tuple[float, ...]:
    """A run's settings without its seed, e.g. (15, 0.1) for UMAP: the runs a seed sweep repeats."""
    return tuple(float(meta[key]) for key in METHOD_KEYS[meta["method"]] if key != "seed")


def run_seed(meta: dict) -> int | None:
    """A run's seed, None for a deterministic method."""
    return None if meta.get("seed") is None else int(meta["seed"])


def run_sort_key(meta: dict) -> tuple:
    """Order of runs in tables and figures: by feature set, method (METHODS order), settings, seed."""
    seed = run_seed(meta)
    return str(meta["features"]), METHODS.index(meta["method"]), run_settings(meta), -1 if seed is None else seed


def settings_text(meta: dict, short: bool = False) -> str:
    """A run's settings without its seed: ``perplexity 30``, ``n_neighbors 15, min_dist 0.1``, '' for
    PCA; ``short``: ``p=30``, ``k=15 d=0.1``."""
    keys = [key for key in METHOD_KEYS[meta["method"]] if key != "seed" and key not in FIXED_KEYS]
    if short:
        return " ".join(f"{SHORT_KEYS[key]}={wildcard_value(float(meta[key]))}" for key in keys)
    return ", ".join(f"{key} {wildcard_value(float(meta[key]))}" for key in keys)


def setting_label(meta: dict, short: bool = False) -> str:
    """A run's method and settings without its seed: ``t-SNE perplexity 30``, ``UMAP n_neighbors 15,
    min_dist 0.1``, ``PCA``; ``short``: ``t-SNE p=30``, ``UMAP k=15 d=0.1``."""
    return f"{METHOD_NAMES[meta['method']]} {settings_text(meta, short)}".strip()


def run_label(meta: dict, short: bool = False) -> str:
    """A run's method, settings and seed: ``t-SNE perplexity 30, seed 0``, ``PCA``; ``short``: ``t-SNE p=30 s=0``."""
    seed = run_seed(meta)
    if seed is None:
        return setting_label(meta, short)
    return f"{setting_label(meta, short)}{' s=' if short else ', seed '}{seed}"


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


def input_provenance(features_file, data: dict, input_attrs: dict, n_images: int) -> dict:
    """What every run record says of its input: how the prepared input was made (``input_attrs``), the
    features' shape and file, and the provenance the features file records (``data``: read_features)."""
    return {
        "standardize": bool(input_attrs["standardize"]),
        "pca_components": int(input_attrs["pca_components"]),
        "n_images": int(n_images),
        "feature_dim": int(data["shape"][1]),
        "features_file": str(features_file),
        **{key: data["attrs"].get(key) for key in PROVENANCE_ATTRS},
    }


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
