"""features/features.h5: one feature vector per sampled image, with where it came from.

Layout:
    /features  float32 (N, D)   one row per manifest row, in manifest order
    /labels    int64   (N,)     index into /classes
    /classes   str     (C,)     class labels, sorted
    /paths     str     (N,)     image paths relative to the dataset root
    attributes: model, node, weights, weights_source, weights_random, preprocessing,
                device, precision (as used), precision_setting, channels_last, batch_size,
                dataset_root, n_images, versions (JSON), config_hash, feature_dim (written last)
    A dict-valued attribute (versions) is stored as JSON text with sorted keys.

Written under a temporary name and renamed when complete, byte-reproducible (no HDF5 times).
A file copied in truncated, or left by a crash of an older version or a full disk, can still
carry the final name; Snakemake would take it for finished, so the workflow checks an existing
file when it starts (``features_file_problem``) and removes it if it is not complete.
"""

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np

from ..jobs import AtlasError, atomic_path

REQUIRED_DATASETS = ("features", "labels", "classes", "paths")
# Attributes of the features file that travel on to every embedding and figure.
PROVENANCE_ATTRS = ("model", "node", "weights", "weights_source", "weights_random", "precision", "config_hash")


def write_features(
    path: str | os.PathLike,
    batches: Iterable[np.ndarray],
    n_images: int,
    labels: np.ndarray,
    classes: Sequence[str],
    paths: Sequence[str],
    attrs: dict,
) -> int:
    """Stream feature batches into ``path`` (renamed into place only when complete). Returns D."""
    text = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp:
        # track_times=False keeps the file byte-identical across identical runs.
        with h5py.File(tmp, "w", track_order=True) as h5:
            h5.create_dataset("labels", data=np.asarray(labels, dtype=np.int64), track_times=False)
            h5.create_dataset("classes", data=np.asarray(classes, dtype=object), dtype=text, track_times=False)
            h5.create_dataset("paths", data=np.asarray(paths, dtype=object), dtype=text, track_times=False)
            features = None
            row = 0
            for batch in batches:
                if features is None:
                    features = h5.create_dataset(
                        "features",
                        shape=(n_images, batch.shape[1]),
                        dtype="float32",
                        chunks=(min(n_images, 256), batch.shape[1]),
                        track_times=False,
                    )
                features[row : row + len(batch)] = batch
                row += len(batch)
            if features is None or row != n_images:
                raise RuntimeError(f"extracted {row} feature rows for {n_images} images")
            feature_dim = int(features.shape[1])
            for key, value in {**attrs, "feature_dim": feature_dim}.items():
                h5.attrs[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
    return feature_dim


def read_features(path: str | os.PathLike, with_features: bool = True) -> dict:
    """The features file as a dict: features (or None), shape, labels, classes, paths, attrs.

    ``with_features=False`` skips the N x D matrix (what a t-SNE run needs besides it is small).
    """
    try:
        with h5py.File(path, "r") as h5:
            return {
                "features": h5["features"][:] if with_features else None,
                "shape": tuple(int(n) for n in h5["features"].shape),
                "labels": h5["labels"][:],
                "classes": [_text(c) for c in h5["classes"][:]],
                "paths": [_text(p) for p in h5["paths"][:]],
                "attrs": {key: plain_value(value) for key, value in h5.attrs.items()},
            }
    except (OSError, KeyError) as err:
        raise AtlasError(
            f"{path}: not a complete features file ({err}); delete it and rerun to extract features again"
        ) from None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def plain_value(value):
    """HDF5 attribute values as plain JSON-friendly Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


def features_file_problem(path: str | os.PathLike) -> str | None:
    """Why the features file at ``path`` is incomplete, or None when it is complete (or absent)."""
    if not Path(path).exists():
        return None
    try:
        with h5py.File(path, "r") as h5:
            missing = [name for name in REQUIRED_DATASETS if name not in h5]
            if missing:
                return f"datasets {missing} are missing"
            n_rows = {name: h5[name].shape[0] for name in REQUIRED_DATASETS if name != "classes"}
            if len(set(n_rows.values())) != 1:
                return f"datasets disagree on the number of images ({n_rows})"
            if "feature_dim" not in h5.attrs:  # written last
                return "attributes are missing"
    except OSError as err:
        return f"not readable as HDF5 ({' '.join(str(err).split())[:100]})"
    return None


def remove_if_incomplete(path: str | os.PathLike) -> str | None:
    """Remove an incomplete features file so it is rebuilt; return the reason, or None."""
    if not Path(path).exists():
        return None
    problem = features_file_problem(path)
    if problem:
        Path(path).unlink()
    return problem
