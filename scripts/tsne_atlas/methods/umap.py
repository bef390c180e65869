"""UMAP (umap-learn): one map per n_neighbors x min_dist x seed.

Its neighbour search is not repeated: the first ``n_neighbors - 1`` columns of the sweep's k-NN graph
(``preparation``) are handed to umap-learn as a precomputed k-NN, with each point itself prepended
(UMAP counts it); when the sweep's graph holds fewer, UMAP's maps share a graph of their own. With a
seed umap-learn runs on one thread and the map is bitwise repeatable. umap-learn's numba code is
cached in ``NUMBA_CACHE_DIR`` (set by the workflow) between jobs.

New points are placed as umap-learn's ``UMAP.transform`` places them, from the query's neighbours the
workflow found (a run fitted on a precomputed k-NN has no search index, so transform itself refuses).
"""

import time
import warnings

import numpy as np

from ..jobs import AtlasError
from .base import Axis, MapMethod, placement_neighbours

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
    ``X`` without the points themselves (``preparation.nearest_neighbours``); None lets umap-learn
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


def place_points(
    coords: np.ndarray, indices: np.ndarray, distances: np.ndarray, n_neighbors: int, min_dist: float
) -> tuple[np.ndarray, dict]:
    """New points on a UMAP map (``coords``: N x 2, never modified) fitted with ``n_neighbors`` and
    ``min_dist``: umap-learn 0.5's ``UMAP.transform`` step by step from its module's functions, with each
    new point's nearest reference points given (``indices``, ``distances``: N_q x k, ascending, k at least
    the fitted model's neighbour count) instead of searched. Its other settings are a ``umap.UMAP``'s
    defaults, as the run's; the randomness is transform's own (``transform_seed``, 42 by default,
    whatever the run's seed) on one thread, so the result is bitwise repeatable. Returns (N_q x 2
    float64, the record's fields).

    What transform does: each new point's fuzzy membership to its k nearest reference points (bandwidths
    by ``smooth_knn_dist``, local connectivity one less than the fit's), a start at the membership-weighted
    mean of their map positions, edges weaker than 1/n_epochs of the strongest dropped, then n_epochs
    (100 up to 10,000 new points, else 30) of UMAP's SGD moving the new points alone (attraction along
    the edges, negative samples drawn from the reference) at a quarter of the fit's learning rate.
    """
    import scipy.sparse
    import umap
    from umap.layouts import optimize_layout_euclidean
    from umap.umap_ import (
        INT32_MAX,
        INT32_MIN,
        compute_membership_strengths,
        find_ab_params,
        init_graph_transform,
        make_epochs_per_sample,
        smooth_knn_dist,
    )

    model = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist)
    n_reference = len(coords)
    # fit's _n_neighbors: n_neighbors, or one fewer than the points when it is not below them.
    k = n_neighbors if n_reference > n_neighbors else n_reference - 1
    knn_indices = np.ascontiguousarray(indices[:, :k])
    knn_dists = np.ascontiguousarray(distances[:, :k], dtype=np.float32)
    # Euclidean distances have no disconnection distance (umap's is infinite for them): no neighbour is cut.
    sigmas, rhos = smooth_knn_dist(
        knn_dists, float(k), local_connectivity=float(max(0.0, model.local_connectivity - 1.0))
    )
    rows, cols, vals, _ = compute_membership_strengths(knn_indices, knn_dists, sigmas, rhos, bipartite=True)
    graph = scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(len(indices), n_reference))
    csr_graph = graph.tocsr()
    csr_graph.eliminate_zeros()
    reference = np.asarray(coords, dtype=np.float32)  # the fitted embedding_ (float32; the TSV holds it exactly)
    start = init_graph_transform(csr_graph, reference)
    # transform's epochs when n_epochs is unset (the run's, by default): 100 up to 10,000 new points, else 30.
    assert model.n_epochs is None
    n_epochs = 100 if graph.shape[0] <= 10000 else 30
    graph.data[graph.data < (graph.data.max() / float(n_epochs))] = 0.0
    graph.eliminate_zeros()
    epochs_per_sample = make_epochs_per_sample(graph.data, n_epochs)
    a, b = find_ab_params(model.spread, model.min_dist)
    rng_state = np.random.RandomState(model.transform_seed).randint(INT32_MIN, INT32_MAX, 3).astype(np.int64)
    placed = optimize_layout_euclidean(
        start,
        reference.copy(),
        graph.row,
        graph.col,
        n_epochs,
        graph.shape[1],
        epochs_per_sample,
        a,
        b,
        rng_state,
        model.repulsion_strength,
        model.learning_rate / 4.0,
        model.negative_sample_rate,
        False,  # transform's parallel = (random_state is None): the run had a seed
        verbose=False,
        tqdm_kwds={"disable": True},
    )
    return np.asarray(placed, dtype=np.float64), {
        "placement": "umap-learn transform",
        "place_neighbours": int(k),
        "n_epochs": int(n_epochs),
        "transform_seed": int(model.transform_seed),
    }


def compile_umap() -> float:
    """Fit UMAP once on a tiny fixed problem, so numba compiles what umap-learn does not cache (its
    layout optimiser, ~5 s) before a run's clock starts; returns the seconds it took."""
    X = np.random.default_rng(0).normal(size=(WARM_UP_POINTS, 4))
    distances = np.linalg.norm(X[:, None] - X[None], axis=-1)
    indices = np.argsort(distances, axis=1, kind="stable")[:, 1:11]
    start = time.perf_counter()
    umap_embedding(X, 10, 0.1, 0, knn=(indices, np.take_along_axis(distances, indices, axis=1)))
    return time.perf_counter() - start


def umap_graph_neighbours(n_neighbors, sweep_k: int) -> int:
    """k of the graph UMAP's maps read: the sweep's (``sweep_k``) when it holds the largest
    ``n_neighbors`` - 1 neighbours (UMAP counts the point itself), else a graph of their own."""
    needed = max(int(k) for k in n_neighbors) - 1
    return sweep_k if needed <= sweep_k else needed


class UMAP(MapMethod):
    def shared_inputs(self, config, settings, sweep_k):
        return {"graph": ("graph", umap_graph_neighbours(config["umap"]["n_neighbors"], sweep_k))}

    def check(self, config, n_images):
        for k in config["umap"]["n_neighbors"]:
            if k > n_images:
                raise AtlasError(
                    f"umap.n_neighbors: {k} is more than the sample's {n_images} images; "
                    f"use values up to {n_images} or raise sample.n_images"
                )

    def warm_up(self):
        import logging
        import os

        compile_s = compile_umap()
        logging.getLogger("tsne_atlas.methods.umap").info(
            "numba compiled for %.1f s (cache: %s)", compile_s, os.environ.get("NUMBA_CACHE_DIR", "none")
        )
        return {"compile_s": round(compile_s, 3)}

    def compute(self, X, settings, options, threads, shared):
        from ..files.map_inputs import read_neighbours

        graph, n_neighbors = shared["graph"], settings["n_neighbors"]
        indices, distances = read_neighbours(graph)
        if len(indices) != len(X):
            raise AtlasError(
                f"{graph} has {len(indices)} rows but the prepared input {len(X)}; delete {graph} and rerun"
            )
        if indices.shape[1] < n_neighbors - 1:
            raise AtlasError(
                f"{graph} holds {indices.shape[1]} neighbours per image, UMAP with n_neighbors {n_neighbors} "
                f"needs {n_neighbors - 1}; delete it and rerun"
            )
        coords = umap_embedding(X, n_neighbors, settings["min_dist"], settings["seed"], knn=(indices, distances))
        return coords, {"precomputed_knn": True}

    def place_neighbours(self, settings):
        return int(settings["n_neighbors"])

    def place(self, X, coords, Q, neighbours, settings, options, threads, shared):
        n_neighbors = min(int(settings["n_neighbors"]), len(X))
        k = n_neighbors if len(X) > n_neighbors else len(X) - 1
        indices, distances = placement_neighbours(self.name, X, coords, Q, neighbours, k)
        placed, record = place_points(coords, indices, distances, n_neighbors, settings["min_dist"])
        if not np.isfinite(placed).all():
            raise AtlasError(
                f"umap: {int((~np.isfinite(placed)).any(axis=1).sum())} query points have no neighbour with a "
                f"membership above zero and no place on the map; check the query's neighbours (delete them and rerun)"
            )
        return placed, record


METHOD = UMAP(
    name="umap",
    title="UMAP",
    colour="#e76300",
    axes=(
        Axis("n_neighbors", int, "k", config_key="n_neighbors"),
        Axis("min_dist", float, "d", config_key="min_dist"),
        Axis("seed", int, "s", config_key="seeds"),
    ),
    requires=("scipy", "umap"),
    # Measured at 1,000,000 images (n_neighbors 15, one thread, spectral initialisation included): 4,282 MiB,
    # 1,348 s; at 250,000: 1,448 MiB, 184 s.
    run_bytes_per_image=4_300,
    run_seconds_per_image=0.0014,
)
