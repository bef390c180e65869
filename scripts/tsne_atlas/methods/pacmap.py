"""PaCMAP (the official ``pacmap`` package; Wang, Huang, Rudin and Shaposhnik, JMLR 2021): one map per
n_neighbors x seed. It balances local and global structure with three kinds of pairs (near neighbours,
mid-near pairs, further points; ``mn_ratio`` and ``fp_ratio`` set how many of the latter two per
neighbour pair) and keeps global structure better than t-SNE or UMAP.

It maps the sweep's prepared input like every method, with its own neighbour search (faiss, on one
thread with a seed) and its own preprocessing (scaling, and a truncated SVD to 100 dimensions above
100): it chooses its neighbour pairs from a scaled distance over more neighbours than any sweep graph
holds, so the shared graph cannot stand in for them. With a seed every step samples from it, and the
map is bitwise repeatable (a test holds it to that).

New points are placed as pacmap's ``PaCMAP.transform`` places them, from the query's neighbours the
workflow found instead of a faiss index of the reference.
"""

import time

import numpy as np

from ..jobs import AtlasError
from .base import Axis, MapMethod, placement_neighbours

# The warm-up problem that compiles pacmap's numba code before a run's clock starts.
WARM_UP_POINTS = 60


def pacmap_embedding(
    X: np.ndarray, n_neighbors: int, random_state: int, init: str, mn_ratio: float = 0.5, fp_ratio: float = 2.0
) -> np.ndarray:
    """2-D PaCMAP embedding of ``X`` (N x 2 float64); ``init``: pca or random. Defaults are the schema's (a
    test holds them to it)."""
    import pacmap

    model = pacmap.PaCMAP(
        n_components=2, n_neighbors=int(n_neighbors), MN_ratio=mn_ratio, FP_ratio=fp_ratio, random_state=random_state
    )
    return np.asarray(model.fit_transform(np.asarray(X, dtype=np.float32), init=init), dtype=np.float64)


def pair_counts(n_images: int, n_neighbors: int, mn_ratio: float, fp_ratio: float) -> tuple[int, int, int]:
    """(neighbour, mid-near, further) pairs per point pacmap fits ``n_images`` with: pacmap 0.9.1's
    ``PaCMAP.decide_num_pairs``, restated here so a sample too small for it is refused before any job (a
    test holds it to the package's own on a grid)."""
    n_mn, n_fp = int(round(n_neighbors * mn_ratio)), int(round(n_neighbors * fp_ratio))
    n_neighbors = min(n_neighbors, n_images - 1)
    n_fp = min(n_fp, n_images - 1 - n_neighbors)
    n_mn = min(n_mn, n_images - 1)
    if n_neighbors + n_mn + n_fp >= n_images:
        share = n_images / (1 + mn_ratio + fp_ratio)
        n_neighbors, n_mn, n_fp = int(share), int(share * mn_ratio), int(share * fp_ratio)
    return n_neighbors, n_mn, n_fp


def place_points(
    X: np.ndarray,
    coords: np.ndarray,
    Q: np.ndarray,
    indices: np.ndarray,
    distances: np.ndarray,
    n_neighbors: int,
    random_state: int,
    init: str,
    mn_ratio: float = 0.5,
    fp_ratio: float = 2.0,
) -> tuple[np.ndarray, int]:
    """New points ``Q`` on a PaCMAP map of ``X`` (``coords``: N x 2, never modified): pacmap 0.9.1's
    ``PaCMAP.transform`` step by step from its module's functions. Returns (N_q x 2 float64, the
    neighbour pairs per new point).

    transform reads of the fitted model only what X and the settings fix (the scaling of X and the PCA
    that starts new points, made here by pacmap's own ``preprocess_X`` with the run's seed; the pair
    counts, ``decide_num_pairs``) and the map itself, so nothing is refitted. Each new point is paired
    with its n_neighbors nearest reference points (given here, ``indices``/``distances`` ascending, where
    transform searches a faiss index of the scaled reference: the same neighbours, as the scaling is one
    factor for every dimension, up to the index's approximation; above 100 dimensions pacmap searches its
    100-dimensional SVD instead), starts at its PCA position (``init`` pca) or at random, and moves
    alone for pacmap's 450 Adam iterations, pulled by its pairs alone (no mid-near or further pairs).
    """
    import pacmap
    from pacmap.pacmap import pacmap_fit, preprocess_X, preprocess_X_new, sample_neighbors_pair_basis

    # Setting random_state sets pacmap's module-wide seed, which a random start reads.
    model = pacmap.PaCMAP(
        n_components=2, n_neighbors=int(n_neighbors), MN_ratio=mn_ratio, FP_ratio=fp_ratio, random_state=random_state
    )
    basis = np.array(X, dtype=np.float32)
    n, dim = basis.shape
    _, pca_solution, tsvd, xmin, xmax, xmean = preprocess_X(
        basis, model.distance, model.apply_pca, False, model.random_state, dim, model.n_components
    )
    model.decide_num_pairs(n)
    new = preprocess_X_new(
        np.array(Q, dtype=np.float32), model.distance, xmin, xmax, xmean, tsvd, model.apply_pca, False
    )
    k = min(model.n_neighbors, n - 1)  # generate_extra_pair_basis's
    pairs = sample_neighbors_pair_basis(
        n,
        new,
        np.ascontiguousarray(distances[:, :k], dtype=np.float32),
        np.ascontiguousarray(indices[:, :k], dtype=np.int32),
        k,
    )
    Y, _ = pacmap_fit(
        new,
        np.array(coords, dtype=np.float32),
        model.n_components,
        pairs,
        model.lr,
        model.num_iters,
        init,
        False,
        False,
        model.intermediate_snapshots,
        pca_solution,
        tsvd,
    )
    return np.asarray(Y[n:], dtype=np.float64), int(k)


def compile_pacmap() -> float:
    """Fit PaCMAP once on a tiny fixed problem so numba compiles (or loads from NUMBA_CACHE_DIR) before a
    run's clock starts; returns the seconds it took."""
    start = time.perf_counter()
    pacmap_embedding(np.random.default_rng(0).normal(size=(WARM_UP_POINTS, 4)), 5, 0, "pca")
    return time.perf_counter() - start


class PaCMAP(MapMethod):
    def check(self, config, n_images):
        section = config["pacmap"]
        for k in section["n_neighbors"]:
            if k >= n_images:
                raise AtlasError(
                    f"pacmap.n_neighbors: {k} is not fewer than the sample's {n_images} images; "
                    f"use values below {n_images} or raise sample.n_images"
                )
            near, _, further = pair_counts(n_images, k, section["mn_ratio"], section["fp_ratio"])
            if near < 1 or further < 1:
                raise AtlasError(
                    f"pacmap: {n_images} images are too few for PaCMAP's pairs (n_neighbors {k}, mn_ratio "
                    f"{section['mn_ratio']:g}, fp_ratio {section['fp_ratio']:g}); raise sample.n_images or remove "
                    f"pacmap from methods"
                )

    def warm_up(self):
        import numba

        # One thread, as the job asks for: pacmap's parallel loops give the same pairs and map with any
        # count (each point's sampling is seeded by itself), so this only keeps the job in its share.
        numba.set_num_threads(1)
        return {"compile_s": round(compile_pacmap(), 3)}

    def compute(self, X, settings, options, threads, shared):
        coords = pacmap_embedding(
            X, settings["n_neighbors"], settings["seed"], options["init"], options["mn_ratio"], options["fp_ratio"]
        )
        return coords, {
            "mn_ratio": float(options["mn_ratio"]),
            "fp_ratio": float(options["fp_ratio"]),
            "init": options["init"],
        }

    def place_neighbours(self, settings):
        return int(settings["n_neighbors"])

    def place(self, X, coords, Q, neighbours, settings, options, threads, shared):
        n_neighbors = settings["n_neighbors"]
        k = min(pair_counts(len(X), n_neighbors, options["mn_ratio"], options["fp_ratio"])[0], len(X) - 1)
        indices, distances = placement_neighbours(self.name, X, coords, Q, neighbours, k)
        if not np.array_equal(np.asarray(coords, dtype=np.float32), coords):
            raise AtlasError(
                "pacmap: the run's map holds coordinates no float32 holds, which PaCMAP's maps always are: it is "
                "not this run's map; delete it and rerun"
            )
        placed, k = place_points(
            X,
            coords,
            Q,
            indices,
            distances,
            n_neighbors,
            settings["seed"],
            options["init"],
            options["mn_ratio"],
            options["fp_ratio"],
        )
        return placed, {"placement": "pacmap transform", "place_neighbours": k, "init": options["init"]}


METHOD = PaCMAP(
    name="pacmap",
    title="PaCMAP",
    colour="#bd1f01",
    axes=(
        Axis("n_neighbors", int, "k", config_key="n_neighbors"),
        Axis("seed", int, "s", config_key="seeds"),
    ),
    options=("mn_ratio", "fp_ratio", "init"),
    requires=("pacmap", "numba"),
)
