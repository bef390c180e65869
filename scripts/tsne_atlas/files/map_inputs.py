"""The files the maps of one feature set share (written once by the preparation stage, read by every
run: every method the input, t-SNE its affinities, UMAP a graph; the suspects and the explorer the
sweep's graph too), in ``embeddings/{features}/``:

- ``input.h5``: ``/X`` (float64, N x d), the z-scored, PCA-reduced features, with
  attributes standardize, pca_components, feature_dim, n_images, features_file, node.
- ``graph/k-{k}.npz``: the k-NN graph of X, ``indices`` (int64) and ``distances``
  (float64), each N x k.
- ``affinities/perplexity-{p}.npz``: the affinity matrix P of one perplexity (scipy CSR).
"""

import logging
import os
import zipfile
from dataclasses import dataclass

import h5py
import numpy as np
import scipy.sparse as sp

from ..jobs import AtlasError, atomic_path
from .features import plain_value, read_features

# What a truncated or foreign .npz raises when read.
NPZ_ERRORS = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile)


def write_input(path: str | os.PathLike, X: np.ndarray, attrs: dict) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("X", data=X, track_times=False)
        h5.attrs.update(attrs)


def read_input(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """(X, attributes) of an ``embeddings/{features}/input.h5`` file."""
    try:
        with h5py.File(path, "r") as h5:
            return h5["X"][:], {key: plain_value(value) for key, value in h5.attrs.items()}
    except (OSError, KeyError) as err:
        raise AtlasError(f"{path}: not a complete prepared input file ({err}); delete it and rerun") from None


def read_map_input(features: str, node: str, prepared: str) -> tuple[dict, np.ndarray, dict]:
    """What every map job reads: the features file's paths and provenance (not its features), and the
    prepared input X with its attributes; a prepared input of another sample is refused in one line."""
    data = read_features(features, node, with_features=False)
    X, input_attrs = read_input(prepared)
    if len(X) != len(data["paths"]):
        raise AtlasError(
            f"{prepared} has {len(X)} rows but {features} {len(data['paths'])}; delete {prepared} and rerun"
        )
    return data, X, input_attrs


def write_neighbours(path: str | os.PathLike, indices: np.ndarray, distances: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, indices=indices, distances=distances)


def read_neighbours(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances) of a k-NN graph file."""
    try:
        with np.load(path) as npz:
            return npz["indices"], npz["distances"]
    except NPZ_ERRORS as err:
        raise AtlasError(f"{path}: not a complete neighbour graph ({err}); delete it and rerun") from None


def npy_header(stream) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, Fortran order, dtype) of the .npy array ``stream`` is at; leaves it at the array's data."""
    version = np.lib.format.read_magic(stream)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(stream)


def graph_shape(path: str | os.PathLike) -> tuple[int, int]:
    """(N, k) of a k-NN graph file, from its header alone (nothing of the graph is loaded)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("indices.npy") as member:
            shape = npy_header(member)[0]
    except NPZ_ERRORS as err:
        raise AtlasError(f"{path}: not a complete neighbour graph ({err}); delete it and rerun") from None
    if len(shape) != 2:
        raise AtlasError(f"{path}: not a neighbour graph (indices of shape {shape}); delete it and rerun")
    return int(shape[0]), int(shape[1])


def input_shape(path: str | os.PathLike) -> tuple[int, int]:
    """(N, d) of a prepared input file, from its header alone."""
    try:
        with h5py.File(path, "r") as h5:
            return tuple(int(n) for n in h5["X"].shape)
    except (OSError, KeyError) as err:
        raise AtlasError(f"{path}: not a complete prepared input file ({err}); delete it and rerun") from None


def write_affinities(path: str | os.PathLike, P: sp.csr_matrix) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        sp.save_npz(handle, P, compressed=False)


def read_affinities(path: str | os.PathLike) -> sp.csr_matrix:
    """A fresh P from disk: each run gets its own copy (openTSNE's optimiser may change the one it is given)."""
    try:
        return sp.load_npz(path).tocsr()
    except NPZ_ERRORS as err:
        raise AtlasError(f"{path}: not a complete affinity matrix ({err}); delete it and rerun") from None


@dataclass
class GraphStageInputs:
    """What a stage that reads a feature set's k-NN graph with the sample reads (suspects, clusters)."""

    X: np.ndarray
    indices: np.ndarray
    distances: np.ndarray
    paths: list[str]
    hashes: list[str]
    labels: object  # files.manifest.SampleLabels
    neighbours: int


def read_graph_stage_inputs(
    prepared: str, graph: str, images: str, manifest: str, neighbours: int, setting: str, logger: logging.Logger
) -> GraphStageInputs:
    """The prepared input X, the sweep's k-NN graph, the sample's paths, hashes and labels, and
    ``neighbours`` (the setting named ``setting``) capped at what the graph holds (at most N - 1,
    graph.neighbours), said by ``logger``; a prepared input of another sample is refused in one line."""
    from .manifest import read_images, sample_labels

    X, _ = read_input(prepared)
    indices, distances = read_neighbours(graph)
    if neighbours > indices.shape[1]:
        logger.warning(
            "%s is %d but %s holds %d neighbours per image; using %d",
            setting,
            neighbours,
            graph,
            *[indices.shape[1]] * 2,
        )
        neighbours = indices.shape[1]
    paths, hashes = read_images(images)
    if len(X) != len(paths):
        raise AtlasError(f"{prepared} has {len(X)} rows but {images} {len(paths)}; delete {prepared} and rerun")
    return GraphStageInputs(X, indices, distances, paths, hashes, sample_labels(manifest, paths, images), neighbours)
