"""features/{set}.h5: one feature set's vectors, one per sampled image and node, with where they came from.

Layout:
    /features/<node>  float32 (N, D_node)  one dataset per node of the set (as the config names it),
                                           one row per manifest row, in manifest order;
                                           attribute graph_node: the network node it resolved to
    /paths     str     (N,)     image paths relative to the dataset root (sample/images.csv's order)
    /predictions/top_index        int32   (N, K)  the network's own view: each image's K = min(5, C)
                                                  most probable classes, most probable first, as
                                                  indices into /predictions/classes
    /predictions/top_probability  float32 (N, K)  their softmax probabilities (softmax in float32
                                                  over all C logits), descending
    /predictions/classes          str     (C,)    the name of each of the classifier's C outputs
        Only when the attribute ``predictions`` is ``stored``: the set's network is a classifier with
        trained weights and class names (its ImageNet weights' or the set's ``class_names`` file). The
        logits come from the same forward pass as the features, which they leave unchanged.
    attributes: feature_set, source, model, nodes (JSON list, config order), weights, weights_source,
                weights_random, preprocessing, device, precision (as used), precision_setting,
                channels_last, batch_size, dataset_root, n_images, versions (JSON), config_hash,
                predictions ("stored", or why not: "none: random weights", "none: no class names
                (give features.<set>.class_names)", "none: own network (...)", "none: precomputed
                features"), feature_dims (JSON node -> D, written last)
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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
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
# Keys of a batch (beside its nodes) holding its images' predictions: top class indices, probabilities.
TOP_INDEX = "@top_index"
TOP_PROBABILITY = "@top_probability"
PREDICTIONS_STORED = "stored"
# The predictions attribute of a file written before predictions were recorded.
NO_PREDICTIONS_OLD_FILE = "none: not recorded (a features file of an older version)"


def write_features(
    path: str | os.PathLike,
    batches: Iterable[dict[str, np.ndarray]],
    n_images: int,
    paths: Sequence[str],
    attrs: dict,
    graph_nodes: dict[str, str],
    classes: Sequence[str] | None = None,
    predictions: str = NO_PREDICTIONS_OLD_FILE,
) -> dict[str, int]:
    """Stream batches (``{node: rows}``, every node of ``graph_nodes`` in each) into ``path``, renamed
    into place only when complete. ``graph_nodes``: config node -> network node. Returns node -> D.

    ``classes``: the class names when predictions are stored; then every batch also holds
    ``TOP_INDEX`` and ``TOP_PROBABILITY`` rows, and the ``predictions`` attribute is ``stored``.
    Otherwise ``predictions`` says why there are none."""
    text = h5py.string_dtype("utf-8")
    if classes is not None:
        predictions = PREDICTIONS_STORED
    elif predictions == PREDICTIONS_STORED:
        raise ValueError("predictions 'stored' without classes")
    with atomic_path(path) as tmp:
        # track_times=False keeps the file byte-identical across identical runs.
        with h5py.File(tmp, "w", track_order=True) as h5:
            h5.create_dataset("paths", data=np.asarray(paths, dtype=object), dtype=text, track_times=False)
            group = h5.create_group("features", track_order=True)
            datasets: dict[str, h5py.Dataset] = {}
            top: dict[str, h5py.Dataset] = {}
            if classes is not None:
                stored = h5.create_group("predictions", track_order=True)
                stored.create_dataset(
                    "classes", data=np.asarray(list(classes), dtype=object), dtype=text, track_times=False
                )
            row = 0
            for batch in batches:
                if classes is not None:
                    for name, key, dtype in (
                        ("top_index", TOP_INDEX, "int32"),
                        ("top_probability", TOP_PROBABILITY, "float32"),
                    ):
                        rows = batch[key]
                        if name not in top:
                            top[name] = stored.create_dataset(
                                name,
                                shape=(n_images, rows.shape[1]),
                                dtype=dtype,
                                chunks=(min(n_images, 256), rows.shape[1]),
                                track_times=False,
                            )
                        top[name][row : row + len(rows)] = rows
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
                row += len(batch[next(iter(graph_nodes))])
            if not datasets or row != n_images:
                raise RuntimeError(f"extracted {row} feature rows for {n_images} images")
            feature_dims = {node: int(datasets[node].shape[1]) for node in graph_nodes}
            written = {**attrs, "nodes": list(graph_nodes), "predictions": predictions, "feature_dims": feature_dims}
            for key, value in written.items():
                h5.attrs[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
    return feature_dims


def _node_dataset(h5: h5py.File, path, node: str | None) -> tuple[str, h5py.Dataset]:
    """(node name, its dataset): ``node`` as the config names it, None for a file of one node."""
    nodes = list(h5["features"])
    if node is None and len(nodes) == 1:
        node = nodes[0]
    if node not in nodes:
        raise AtlasError(f"{path} holds nodes {nodes}, not '{node}'; delete it and rerun to extract features again")
    return node, h5["features"][node]


def _incomplete(path, err) -> AtlasError:
    return AtlasError(f"{path}: not a complete features file ({err}); delete it and rerun to extract features again")


def read_features(path: str | os.PathLike, node: str | None = None, with_features: bool = True) -> dict:
    """One node of a features file as a dict: features (or None), shape, paths, attrs.

    ``node``: as the config names it; None for a file of one node. ``attrs`` holds the file's
    attributes plus ``node`` and ``graph_node``. ``with_features=False`` skips the N x D matrix
    (what a t-SNE run needs besides it is small).
    """
    try:
        with h5py.File(path, "r") as h5:
            node, dataset = _node_dataset(h5, path, node)
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
        raise _incomplete(path, err) from None


def features_shape(path: str | os.PathLike, node: str | None = None) -> tuple[int, int]:
    """(N, D) of one node's features, read from the file's header alone."""
    try:
        with h5py.File(path, "r") as h5:
            return tuple(int(n) for n in _node_dataset(h5, path, node)[1].shape)
    except (OSError, KeyError) as err:
        raise _incomplete(path, err) from None


def feature_blocks(path: str | os.PathLike, node: str | None, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """One node's features ``block_rows`` rows at a time, in file order: (first row, float32 block), the
    last block shorter. Memory stays one block: every block is read into the same array, which the next
    one overwrites (copy what you keep)."""
    try:
        with h5py.File(path, "r") as h5:
            _, dataset = _node_dataset(h5, path, node)
            n_rows, width = dataset.shape
            buffer = np.empty((min(block_rows, n_rows), width), dtype=np.float32)
            for start in range(0, n_rows, block_rows):
                block = buffer[: min(block_rows, n_rows - start)]
                dataset.read_direct(block, np.s_[start : start + len(block)])
                yield start, block
    except (OSError, KeyError) as err:
        raise _incomplete(path, err) from None


@dataclass
class Predictions:
    """A features file's predictions: ``classes`` (C names), and per image (manifest order) the indices
    into them of its K most probable classes (``top_index``, N x K, most probable first) and their
    softmax probabilities (``top_probability``, N x K, descending)."""

    classes: list[str]
    top_index: np.ndarray
    top_probability: np.ndarray

    def top1(self) -> tuple[list[str], np.ndarray]:
        """Each image's most probable class name and its probability (float32, N)."""
        return [self.classes[int(i)] for i in self.top_index[:, 0]], self.top_probability[:, 0]


def read_predictions(path: str | os.PathLike) -> tuple[Predictions | None, str]:
    """(the file's predictions, or None, and its ``predictions`` attribute: ``stored`` or why there are none)."""
    try:
        with h5py.File(path, "r") as h5:
            reason = _text(plain_value(h5.attrs.get("predictions", NO_PREDICTIONS_OLD_FILE)))
            if reason != PREDICTIONS_STORED:
                return None, reason
            stored = h5["predictions"]
            return (
                Predictions(
                    classes=[_text(name) for name in stored["classes"][:]],
                    top_index=stored["top_index"][:],
                    top_probability=stored["top_probability"][:],
                ),
                reason,
            )
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
            if h5.attrs.get("predictions") == PREDICTIONS_STORED:
                missing = [
                    name
                    for name in ("classes", "top_index", "top_probability")
                    if name not in h5.get("predictions", {})
                ]
                if missing:
                    return f"predictions {missing} are missing"
                n_rows.update(
                    {
                        f"predictions/{name}": h5["predictions"][name].shape[0]
                        for name in ("top_index", "top_probability")
                    }
                )
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
