"""features/{set}.h5: one feature set's vectors, one per sampled image and node, with where they came from.

Layout:
    /features/<node>  float32 (N, D_node)  one dataset per node of the set (as the config names it),
                                           one row per manifest row, in manifest order;
                                           attribute graph_node: the network node it resolved to
    /paths     str     (N,)     image paths relative to the dataset root (sample/images.csv's order)
    attributes: feature_set, source, model, nodes (JSON list, config order), weights, weights_source,
                weights_random, preprocessing, device, precision (as used), precision_setting,
                channels_last, batch_size, dataset_root, n_images, versions (JSON), config_hash,
                feature_dims (JSON node -> D, written last)
    A list- or dict-valued attribute is stored as JSON text with sorted keys.

All nodes of a set come from one forward pass, so they share one file (and one job). Labels are not
in it: they join afterwards from sample/manifest.csv, so relabelling reruns no extraction.

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

REQUIRED_DATASETS = ("features", "paths")
# Attributes of the features file (and of the node read) that travel on to every embedding and figure.
PROVENANCE_ATTRS = (
    "feature_set",
    "source",
    "model",
    "node",
    "graph_node",
    "weights",
    "weights_source",
    "weights_random",
    "precision",
    "config_hash",
)
JSON_ATTRS = ("nodes", "versions", "feature_dims")


def write_features(
    path: str | os.PathLike,
    batches: Iterable[dict[str, np.ndarray]],
    n_images: int,
    paths: Sequence[str],
    attrs: dict,
    graph_nodes: dict[str, str],
) -> dict[str, int]:
    """Stream batches (``{node: rows}``, every node of ``graph_nodes`` in each) into ``path``, renamed
    into place only when complete. ``graph_nodes``: config node -> network node. Returns node -> D."""
    text = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp:
        # track_times=False keeps the file byte-identical across identical runs.
        with h5py.File(tmp, "w", track_order=True) as h5:
            h5.create_dataset("paths", data=np.asarray(paths, dtype=object), dtype=text, track_times=False)
            group = h5.create_group("features", track_order=True)
            datasets: dict[str, h5py.Dataset] = {}
            row = 0
            for batch in batches:
                for node in graph_nodes:
                    rows = batch[node]
                    if node not in datasets:
                        datasets[node] = group.create_dataset(
                            node,
                            shape=(n_images, rows.shape[1]),
                            dtype="float32",
                            chunks=(min(n_images, 256), rows.shape[1]),
                            track_times=False,
                        )
                        datasets[node].attrs["graph_node"] = graph_nodes[node]
                    datasets[node][row : row + len(rows)] = rows
                row += len(next(iter(batch.values())))
            if not datasets or row != n_images:
                raise RuntimeError(f"extracted {row} feature rows for {n_images} images")
            feature_dims = {node: int(datasets[node].shape[1]) for node in graph_nodes}
            for key, value in {**attrs, "nodes": list(graph_nodes), "feature_dims": feature_dims}.items():
                h5.attrs[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
    return feature_dims


def read_features(path: str | os.PathLike, node: str | None = None, with_features: bool = True) -> dict:
    """One node of a features file as a dict: features (or None), shape, paths, attrs.

    ``node``: as the config names it; None for a file of one node. ``attrs`` holds the file's
    attributes plus ``node`` and ``graph_node``. ``with_features=False`` skips the N x D matrix
    (what a t-SNE run needs besides it is small).
    """
    try:
        with h5py.File(path, "r") as h5:
            nodes = list(h5["features"])
            if node is None and len(nodes) == 1:
                node = nodes[0]
            if node not in nodes:
                raise AtlasError(
                    f"{path} holds nodes {nodes}, not '{node}'; delete it and rerun to extract features again"
                )
            dataset = h5["features"][node]
            attrs = {key: plain_value(value) for key, value in h5.attrs.items()}
            for key in JSON_ATTRS:
                if isinstance(attrs.get(key), str):
                    attrs[key] = json.loads(attrs[key])
            return {
                "features": dataset[:] if with_features else None,
                "shape": tuple(int(n) for n in dataset.shape),
                "paths": [_text(p) for p in h5["paths"][:]],
                "attrs": {**attrs, "node": node, "graph_node": plain_value(dataset.attrs["graph_node"])},
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
            if not isinstance(h5["features"], h5py.Group) or not len(h5["features"]):
                return "no node's features (a file of an older version?)"
            n_rows = {"paths": h5["paths"].shape[0]}
            n_rows.update({f"features/{node}": h5["features"][node].shape[0] for node in h5["features"]})
            if len(set(n_rows.values())) != 1:
                return f"datasets disagree on the number of images ({n_rows})"
            if "feature_dims" not in h5.attrs:  # written last
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
