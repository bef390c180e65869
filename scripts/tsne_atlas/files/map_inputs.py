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


def read_neighbours(path: str | os.PathLike, columns: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances) of a k-NN graph file; with ``columns``, only each row's first ``columns``
    neighbours, read a few MB at a time, so memory holds N x columns, not the whole graph."""
    try:
        if columns is None:
            with np.load(path) as npz:
                return npz["indices"], npz["distances"]
        with zipfile.ZipFile(path) as archive:
            return tuple(first_columns(archive, f"{name}.npy", columns) for name in ("indices", "distances"))
    except NPZ_ERRORS as err:
        raise AtlasError(f"{path}: not a complete neighbour graph ({err}); delete it and rerun") from None


# Bytes of a graph file read at a time by ``first_columns``.
READ_BYTES = 16 * 2**20


def first_columns(archive: zipfile.ZipFile, member: str, columns: int, read_bytes: int = READ_BYTES) -> np.ndarray:
    """The first ``columns`` columns of the 2-D array ``member`` of an .npz, read ``read_bytes`` at a time."""
    with archive.open(member) as stream:
        shape, fortran, dtype = npy_header(stream)
        if len(shape) != 2 or fortran:
            raise ValueError(f"{member} is not a C-ordered 2-D array")
        n_rows, width = shape
        if not 0 <= columns <= width:
            raise ValueError(f"{member} holds {width} columns, not {columns}")
        out = np.empty((n_rows, columns), dtype=dtype)
        rows_per_read = max(1, read_bytes // max(1, width * dtype.itemsize))
        for start in range(0, n_rows, rows_per_read):
            stop = min(start + rows_per_read, n_rows)
            size = (stop - start) * width * dtype.itemsize
            data = stream.read(size)
            if len(data) != size:
                raise EOFError(f"{member} ends after row {start}")
            out[start:stop] = np.frombuffer(data, dtype=dtype).reshape(stop - start, width)[:, :columns]
        return out


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
    prepared: str,
    graph: str,
    images: str,
    manifest: str,
    neighbours: int,
    setting: str,
    logger: logging.Logger,
    nearest_only: bool = False,
) -> GraphStageInputs:
    """The prepared input X, the sweep's k-NN graph, the sample's paths, hashes and labels, and
    ``neighbours`` (the setting named ``setting``) capped at what the graph holds (at most N - 1,
    graph.neighbours), said by ``logger``; a prepared input of another sample is refused in one line.
    With ``nearest_only`` only each image's first ``neighbours`` columns of the graph are read."""
    from .manifest import read_images, sample_labels

    X, _ = read_input(prepared)
    width = graph_shape(graph)[1]
    if neighbours > width:
        logger.warning(
            "%s is %d but %s holds %d neighbours per image; using %d", setting, neighbours, graph, width, width
        )
        neighbours = width
    indices, distances = read_neighbours(graph, columns=neighbours if nearest_only else None)
    paths, hashes = read_images(images)
    if len(X) != len(paths):
        raise AtlasError(f"{prepared} has {len(X)} rows but {images} {len(paths)}; delete {prepared} and rerun")
    return GraphStageInputs(X, indices, distances, paths, hashes, sample_labels(manifest, paths, images), neighbours)
