"""What every t-SNE run of a sweep shares, computed once instead of once per run.

Three rules call this module (``main`` dispatches on the rule name):

- ``tsne_input``: z-scoring and PCA of the features, once for the whole sweep
  -> ``tsne/input.h5`` (``/X``, float64 N x d, and how it was made as attributes).
- ``tsne_neighbors``: the k-nearest-neighbour graph of that input, once, with k = 3 x the
  largest perplexity (openTSNE's rule) -> ``tsne/neighbors/k-{k}.npz``.
- ``tsne_affinities``: the perplexity-calibrated affinity matrix P for one perplexity, from the
  first 3 x perplexity neighbours of that graph -> ``tsne/affinities/perplexity-{p}.npz``.
  This is what openTSNE's ``PerplexityBasedNN.set_perplexity`` does: the neighbour search,
  which dominates affinity cost, is not repeated per perplexity.

Each t-SNE run then loads X and P and only optimises (run_tsne.py). Adding seeds, or
perplexities up to the largest, adds runs without touching the shared files; raising the
largest perplexity rebuilds the neighbour graph (its file name carries k).

Free of torch imports, like every t-SNE job.
"""

import logging
import os
import zipfile

import h5py
import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from atlas_config import check_perplexity
from workflow_utils import AtlasError, atomic_path, job_log

LOGGER = logging.getLogger("tsne_atlas.tsne_inputs")
# What a truncated or foreign .npz raises when read.
NPZ_ERRORS = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile)
# The neighbour search is approximate (Annoy) from 1,000 points on; its seed is fixed so the
# graph, and so every run's affinities, depend on the data alone.
NEIGHBORS_RANDOM_STATE = 0


def load_features(path: str | os.PathLike, with_features: bool = True) -> dict:
    """Read an HDF5 features file written by extract_features.

    ``with_features=False`` skips the N x D matrix (what a t-SNE run needs besides it is small).
    """
    try:
        with h5py.File(path, "r") as h5:
            return {
                "features": h5["features"][:] if with_features else None,
                "shape": tuple(int(n) for n in h5["features"].shape),
                "labels": h5["labels"][:],
                "classes": [c.decode() if isinstance(c, bytes) else str(c) for c in h5["classes"][:]],
                "paths": [p.decode() if isinstance(p, bytes) else str(p) for p in h5["paths"][:]],
                "attrs": {key: _plain(value) for key, value in h5.attrs.items()},
            }
    except (OSError, KeyError) as err:
        raise AtlasError(
            f"{path}: not a complete features file ({err}); delete it and rerun to extract features again"
        ) from None


def _plain(value):
    """HDF5 attribute values as plain JSON-friendly Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


def pca_dimensions(features_shape: tuple[int, int], pca_components: int) -> int:
    """Dimensions PCA keeps for this input (0 when it is off or would keep everything)."""
    n_components = min(pca_components, *features_shape) if pca_components else 0
    return n_components if n_components < features_shape[1] else 0


def preprocess(features: np.ndarray, standardize: bool, pca_components: int, random_state: int = 0) -> np.ndarray:
    """Optional z-scoring per dimension, then optional PCA to ``pca_components``.

    Constant dimensions (random-init ResNets have dozens of all-zero ones) keep
    scale 1 in the scaler, so they stay zero instead of turning into NaN.
    PCA is exact: with more images than dimensions it eigendecomposes the D x D covariance
    (memory D^2, fast at 100,000 images), else a full SVD.
    """
    X = np.asarray(features, dtype=np.float64)
    if standardize:
        X = StandardScaler(copy=X is features).fit_transform(X)
    n_components = pca_dimensions(X.shape, pca_components)
    if n_components:
        solver = "covariance_eigh" if X.shape[0] >= X.shape[1] else "full"
        X = PCA(n_components=n_components, svd_solver=solver, random_state=random_state).fit_transform(X)
    return np.ascontiguousarray(X)


def prepare_input(features_file: str, output: str, standardize: bool = True, pca_components: int = 50) -> dict:
    """z-score and PCA the features once for the sweep; write ``/X`` to ``output`` (HDF5)."""
    data = load_features(features_file)
    X = preprocess(data["features"], standardize, pca_components)
    attrs = {
        "standardize": bool(standardize),
        "pca_components": pca_dimensions(data["features"].shape, pca_components),
        "feature_dim": int(data["features"].shape[1]),
        "n_images": int(len(X)),
        "features_file": str(features_file),
    }
    with atomic_path(output) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("X", data=X, track_times=False)
            h5.attrs.update(attrs)
    LOGGER.info("t-SNE input: %d x %d -> %d x %d", *data["features"].shape, *X.shape)
    return attrs


def load_input(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """(X, attributes) of a ``tsne_input`` file."""
    try:
        with h5py.File(path, "r") as h5:
            return h5["X"][:], {key: _plain(value) for key, value in h5.attrs.items()}
    except (OSError, KeyError) as err:
        raise AtlasError(f"{path}: not a complete t-SNE input file ({err}); delete it and rerun") from None


def neighbors_for(perplexity: float, n_images: int) -> int:
    """openTSNE's neighbour count for a perplexity: 3 x perplexity, at most N - 1."""
    return min(n_images - 1, int(3 * perplexity))


def nearest_neighbors(X: np.ndarray, k: int, n_jobs: int = 1, random_state: int = NEIGHBORS_RANDOM_STATE):
    """(indices, distances), each N x k, by openTSNE's own choice of method (exact below 1,000 points)."""
    from openTSNE.affinity import get_knn_index

    index = get_knn_index(X, "auto", min(k, len(X) - 1), "euclidean", n_jobs=n_jobs, random_state=random_state)
    indices, distances = index.build()
    return np.ascontiguousarray(indices, dtype=np.int64), np.ascontiguousarray(distances, dtype=np.float64)


def affinities_from_neighbors(indices: np.ndarray, distances: np.ndarray, perplexity: float, n_jobs: int = 1):
    """Symmetric perplexity-based P (CSR, sums to 1) from the first 3 x perplexity neighbours."""
    from openTSNE.affinity import joint_probabilities_nn

    check_perplexity(perplexity, len(indices))
    k = neighbors_for(perplexity, len(indices))
    if k > indices.shape[1]:
        raise AtlasError(f"perplexity {perplexity:g} needs {k} neighbours but the graph has {indices.shape[1]}")
    return joint_probabilities_nn(
        np.ascontiguousarray(indices[:, :k]), np.ascontiguousarray(distances[:, :k]), [perplexity],
        symmetrize=True, n_jobs=n_jobs,
    ).tocsr()


def build_neighbors(input_file: str, output: str, k: int, n_jobs: int = 1) -> None:
    X, _ = load_input(input_file)
    indices, distances = nearest_neighbors(X, k, n_jobs)
    with atomic_path(output) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, indices=indices, distances=distances)
    LOGGER.info("k-NN graph: %d points x %d neighbours", *indices.shape)


def load_neighbors(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as npz:
            return npz["indices"], npz["distances"]
    except NPZ_ERRORS as err:
        raise AtlasError(f"{path}: not a complete neighbour graph ({err}); delete it and rerun") from None


def write_affinities(neighbors_file: str, output: str, perplexity: float, n_jobs: int = 1) -> None:
    indices, distances = load_neighbors(neighbors_file)
    try:
        P = affinities_from_neighbors(indices, distances, perplexity, n_jobs)
    except AtlasError as err:
        raise AtlasError(f"{neighbors_file}: {err}; delete it and rerun") from None
    with atomic_path(output) as tmp, open(tmp, "wb") as handle:
        sp.save_npz(handle, P, compressed=False)
    LOGGER.info("affinities for perplexity %g: %d non-zeros", perplexity, P.nnz)


def load_affinities(path: str | os.PathLike) -> sp.csr_matrix:
    """A fresh P from disk: each run gets its own copy (openTSNE's optimiser may change the one it is given)."""
    try:
        return sp.load_npz(path).tocsr()
    except NPZ_ERRORS as err:
        raise AtlasError(f"{path}: not a complete affinity matrix ({err}); delete it and rerun") from None


def main(snakemake) -> None:
    with job_log(snakemake.log[0]):
        if snakemake.rule == "tsne_input":
            prepare_input(snakemake.input.features, snakemake.output.input, bool(snakemake.params.standardize),
                          int(snakemake.params.pca_components))
        elif snakemake.rule == "tsne_neighbors":
            build_neighbors(snakemake.input.input, snakemake.output.neighbors, int(snakemake.params.k),
                            snakemake.threads)
        else:
            write_affinities(snakemake.input.neighbors, snakemake.output.affinities,
                             float(snakemake.params.perplexity), snakemake.threads)


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
