"""Stages umap_embedding and pca_embedding: the maps beside t-SNE, of the same prepared input.

- UMAP (umap-learn): one (n_neighbors, min_dist, seed) run. Its neighbour search is not repeated:
  the first ``n_neighbors - 1`` columns of the sweep's k-NN graph (``preparation``) are handed to
  umap-learn as a precomputed k-NN, with each point itself prepended (UMAP counts it). With a seed
  umap-learn runs on one thread and the map is bitwise repeatable.
- PCA: the first two principal components of the prepared input (exact SVD, signs fixed by
  scikit-learn), one deterministic map.

Each writes a run record (``files.runs``) as t-SNE does. Free of torch imports, like every map job;
umap-learn's numba code is cached in ``NUMBA_CACHE_DIR`` (set by the workflow) between jobs.
"""

import logging
import os
import time
import warnings

import numpy as np

from .files.runs import PCA_COMPONENTS, input_provenance, write_run
from .files.tsne_inputs import read_map_input, read_neighbors
from .jobs import AtlasError

LOGGER = logging.getLogger("tsne_atlas.maps")
# The warm-up problem that compiles umap-learn's numba code before a run's clock starts.
WARM_UP_POINTS = 40


def umap_knn(indices: np.ndarray, distances: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """umap-learn's precomputed k-NN from a graph without the points themselves: each point first (at
    distance 0), then its ``n_neighbors - 1`` nearest others."""
    k = n_neighbors - 1
    if indices.shape[1] < k:
        raise AtlasError(
            f"UMAP with n_neighbors {n_neighbors} needs {k} neighbours but the graph has {indices.shape[1]}"
        )
    n = len(indices)
    knn_indices = np.hstack([np.arange(n, dtype=np.int64)[:, None], indices[:, :k]])
    knn_distances = np.hstack([np.zeros((n, 1)), distances[:, :k]])
    return np.ascontiguousarray(knn_indices), np.ascontiguousarray(knn_distances)


def umap_embedding(
    X: np.ndarray,
    n_neighbors: int,
    min_dist: float,
    random_state: int,
    knn: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """2-D UMAP embedding of ``X`` (N x 2 float64). ``knn``: (indices, distances) of a k-NN graph of
    ``X`` without the points themselves (``preparation.nearest_neighbors``); None lets umap-learn
    search its own."""
    import umap

    n_neighbors = min(int(n_neighbors), len(X))
    kwargs = {}
    if knn is not None:
        kwargs["precomputed_knn"] = (*umap_knn(*knn, n_neighbors), None)
    model = umap.UMAP(
        n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=random_state, n_jobs=1, **kwargs
    )
    with warnings.catch_warnings():
        # Without a search index umap-learn cannot transform new points: this workflow never does.
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        coords = model.fit_transform(X)
    return np.asarray(coords, dtype=np.float64)


def compile_umap() -> float:
    """Fit UMAP once on a tiny fixed problem, so numba compiles what umap-learn does not cache (its
    layout optimiser, ~5 s) before a run's clock starts; returns the seconds it took."""
    X = np.random.default_rng(0).normal(size=(WARM_UP_POINTS, 4))
    distances = np.linalg.norm(X[:, None] - X[None], axis=-1)
    indices = np.argsort(distances, axis=1, kind="stable")[:, 1:11]
    start = time.perf_counter()
    umap_embedding(X, 10, 0.1, 0, knn=(indices, np.take_along_axis(distances, indices, axis=1)))
    return time.perf_counter() - start


def pca_embedding(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal components of ``X`` (N x 2 float64) and the share of X's variance each
    explains. Exact (full SVD), so deterministic; a one-dimensional X gets a zero second axis."""
    from sklearn.decomposition import PCA

    n_components = min(PCA_COMPONENTS, *X.shape)
    pca = PCA(n_components=n_components, svd_solver="full")
    coords = np.zeros((len(X), PCA_COMPONENTS))
    coords[:, :n_components] = pca.fit_transform(X)
    ratio = np.zeros(PCA_COMPONENTS)
    ratio[:n_components] = pca.explained_variance_ratio_
    return coords, ratio


def run_umap(
    features: str,
    features_id: str,
    node: str,
    prepared: str,
    neighbors: str,
    n_neighbors: int,
    min_dist: float,
    seed: int,
    embedding: str,
    meta: str,
) -> dict:
    """One UMAP run of the sweep on the prepared input and the sweep's k-NN graph (rule umap_embedding)."""
    data, X, input_attrs = read_map_input(features, node, prepared)
    indices, distances = read_neighbors(neighbors)
    if len(indices) != len(X):
        raise AtlasError(f"{neighbors} has {len(indices)} rows but {prepared} {len(X)}; delete {neighbors} and rerun")
    if indices.shape[1] < n_neighbors - 1:
        raise AtlasError(
            f"{neighbors} holds {indices.shape[1]} neighbours per image, UMAP with n_neighbors {n_neighbors} "
            f"needs {n_neighbors - 1}; delete it and rerun"
        )
    # Before the clock starts, so a run's time is its fit, as for t-SNE: compiling is the job's, not the map's.
    compile_s = compile_umap()
    LOGGER.info("numba compiled for %.1f s (cache: %s)", compile_s, os.environ.get("NUMBA_CACHE_DIR", "none"))
    start = time.perf_counter()
    coords = umap_embedding(X, n_neighbors, min_dist, seed, knn=(indices, distances))
    runtime = time.perf_counter() - start
    record = {
        "features": features_id,
        "method": "umap",
        "n_neighbors": int(n_neighbors),
        "min_dist": float(min_dist),
        "seed": int(seed),
        "precomputed_knn": True,
        "kl_divergence": None,
        "runtime_s": round(runtime, 3),
        "compile_s": round(compile_s, 3),
        **input_provenance(features, data, input_attrs, len(coords)),
    }
    write_run(embedding, meta, data["paths"], coords, record)
    LOGGER.info(
        "UMAP of %s, n_neighbors %d min_dist %g seed %d in %.1f s (numba compiled for %.1f s before)",
        features_id,
        n_neighbors,
        min_dist,
        seed,
        runtime,
        compile_s,
    )
    return record


def run_pca(features: str, features_id: str, node: str, prepared: str, embedding: str, meta: str) -> dict:
    """The PCA map of the prepared input (rule pca_embedding)."""
    data, X, input_attrs = read_map_input(features, node, prepared)
    import sklearn.decomposition  # noqa: F401  (before the clock starts)

    start = time.perf_counter()
    coords, ratio = pca_embedding(X)
    runtime = time.perf_counter() - start
    record = {
        "features": features_id,
        "method": "pca",
        "components": PCA_COMPONENTS,
        "seed": None,
        "explained_variance_ratio": [float(r) for r in ratio],
        "kl_divergence": None,
        "runtime_s": round(runtime, 3),
        **input_provenance(features, data, input_attrs, len(coords)),
    }
    write_run(embedding, meta, data["paths"], coords, record)
    LOGGER.info("PCA of %s: %.1f%% + %.1f%% of the prepared input's variance", features_id, *(100 * ratio))
    return record
