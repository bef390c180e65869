"""PaCMAP (the official ``pacmap`` package; Wang, Huang, Rudin and Shaposhnik, JMLR 2021): one map per
n_neighbors x seed. It balances local and global structure with three kinds of pairs (near neighbours,
mid-near pairs, further points; ``mn_ratio`` and ``fp_ratio`` set how many of the latter two per
neighbour pair) and keeps global structure better than t-SNE or UMAP.

It maps the sweep's prepared input like every method, with its own neighbour search (faiss, on one
thread with a seed) and its own preprocessing (scaling, and a truncated SVD to 100 dimensions above
100): it chooses its neighbour pairs from a scaled distance over more neighbours than any sweep graph
holds, so the shared graph cannot stand in for them. With a seed every step samples from it, and the
map is bitwise repeatable (a test holds it to that).
"""

import time

import numpy as np

from ..jobs import AtlasError
from .base import Axis, MapMethod

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


def compile_pacmap() -> float:
    """Fit PaCMAP once on a tiny fixed problem so numba compiles (or loads from NUMBA_CACHE_DIR) before a
    run's clock starts; returns the seconds it took."""
    start = time.perf_counter()
    pacmap_embedding(np.random.default_rng(0).normal(size=(WARM_UP_POINTS, 4)), 5, 0, "pca")
    return time.perf_counter() - start


class PaCMAP(MapMethod):
    def check(self, config, n_images):
        for k in config["pacmap"]["n_neighbors"]:
            if k >= n_images:
                raise AtlasError(
                    f"pacmap.n_neighbors: {k} is not fewer than the sample's {n_images} images; "
                    f"use values below {n_images} or raise sample.n_images"
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
