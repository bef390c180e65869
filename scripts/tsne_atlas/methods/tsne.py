"""t-SNE (openTSNE, or scikit-learn's as in the article): one map per perplexity x seed.

openTSNE runs read the sweep's affinity matrix P of their perplexity (``preparation``: built once
from the first 3 x perplexity columns of the shared k-NN graph), so a run only optimises.
"""

import math

import numpy as np

from ..jobs import AtlasError
from .base import Axis, MapMethod

# Barnes-Hut vs openTSNE's FFT gradient (the PyPI wheel's FFT is numpy's, not FFTW), one core:
# 10,000 Animal-MNIST ResNet-101 features: bh (theta 0.8) 21 s, fft 54 s per run; 30,000 points
# in 20 Gaussian blobs: bh 91 s, fft 30 s (BENCHMARKS.md). openTSNE's own switch is at 10,000.
BH_MAX_POINTS = 20_000


def min_images_for_perplexity(perplexity: float) -> int:
    """openTSNE builds a 3*perplexity nearest-neighbour graph, so it needs N > 3*perplexity + 1."""
    return math.floor(3 * perplexity) + 2


def check_perplexity(perplexity: float, n_images: int) -> None:
    if perplexity <= 0:
        raise AtlasError(f"tsne.perplexities: {perplexity} is not positive; use values such as 5, 30, 50")
    if n_images < min_images_for_perplexity(perplexity):
        # A perplexity p fits N images when floor(3p) + 2 <= N: none does below 3 images.
        fix = (
            f"use perplexities below {(n_images - 2) / 3:.4g} or raise sample.n_images"
            if n_images >= 3
            else "raise sample.n_images or remove tsne from methods"
        )
        raise AtlasError(
            f"tsne.perplexities: perplexity {perplexity:g} needs at least {min_images_for_perplexity(perplexity)} "
            f"images (3 x perplexity neighbours per point) but the sample has {n_images}; {fix}"
        )


def gradient_method(negative_gradient: str, n_points: int) -> str:
    """openTSNE's ``negative_gradient_method``: ``auto`` is bh below BH_MAX_POINTS, else fft."""
    if negative_gradient == "auto":
        return "bh" if n_points < BH_MAX_POINTS else "fft"
    return negative_gradient


def embed(
    X: np.ndarray,
    perplexity: float,
    random_state: int,
    implementation: str = "opentsne",
    n_jobs: int = 1,
    *,
    init: str,
    affinities=None,
    negative_gradient: str = "auto",
    bh_theta: float = 0.8,
) -> tuple[np.ndarray, float]:
    """2-D t-SNE embedding of ``X``; returns (N x 2 float64, KL divergence).

    ``init``: pca or random. Defaults are the schema's (a test holds them to it). ``affinities`` (openTSNE only): a
    precomputed P for this perplexity (``preparation``). openTSNE
    scales P in place for early exaggeration and back, which leaves rounding changes; a run
    works on a copy, so the caller's P stays exact for the next run. Without it openTSNE
    computes P itself. ``bh_theta``: the Barnes-Hut approximation's accuracy (openTSNE's
    ``theta``; 0.5 is its default and scikit-learn's).
    """
    check_perplexity(perplexity, len(X))
    if implementation == "opentsne":
        from openTSNE import TSNE
        from openTSNE.affinity import PrecomputedAffinities

        tsne = TSNE(
            perplexity=perplexity,
            initialization=init,
            random_state=random_state,
            n_jobs=n_jobs,
            negative_gradient_method=gradient_method(negative_gradient, len(X)),
            theta=bh_theta,
            verbose=False,
        )
        if affinities is None:
            result = tsne.fit(X)
        else:
            result = tsne.fit(X, affinities=PrecomputedAffinities(affinities.copy(), normalize=False))
        return np.asarray(result, dtype=np.float64), float(result.kl_divergence)
    if implementation == "sklearn":
        from sklearn.manifold import TSNE

        model = TSNE(perplexity=perplexity, init=init, random_state=random_state, n_jobs=n_jobs)
        coords = model.fit_transform(X)
        return np.asarray(coords, dtype=np.float64), float(model.kl_divergence_)
    raise ValueError(f"unknown t-SNE implementation {implementation!r}")


def graph_neighbours_for(perplexities) -> int:
    """Neighbours t-SNE needs in the sweep's graph: 3 x the largest perplexity, so every perplexity's
    3 x perplexity nearest neighbours are its first columns (openTSNE's set_perplexity rule)."""
    return int(3 * max(float(p) for p in perplexities))


class TSNE(MapMethod):
    def shared_inputs(self, config, settings, sweep_k):
        # scikit-learn's TSNE computes its own P; openTSNE runs share the sweep's.
        if config["tsne"]["implementation"] == "opentsne":
            return {"affinities": ("affinities", settings["perplexity"])}
        return {}

    def shared_graph_neighbours(self, config):
        return graph_neighbours_for(config["tsne"]["perplexities"])

    def check(self, config, n_images):
        for perplexity in config["tsne"]["perplexities"]:
            check_perplexity(float(perplexity), int(n_images))

    def compute(self, X, settings, options, threads, shared):
        from ..files.map_inputs import read_affinities

        perplexity, seed = settings["perplexity"], settings["seed"]
        check_perplexity(perplexity, len(X))
        affinities = shared.get("affinities")
        implementation = options["implementation"]
        coords, kl = embed(
            X,
            perplexity,
            seed,
            implementation,
            threads,
            init=options["init"],
            affinities=read_affinities(affinities) if affinities else None,
            negative_gradient=options["negative_gradient"],
            bh_theta=options["bh_theta"],
        )
        opentsne = implementation == "opentsne"
        if not opentsne:
            from sklearn.manifold import TSNE as SklearnTSNE

            # scikit-learn's Barnes-Hut runs at its own default angle (tsne.bh_theta is openTSNE's).
            sklearn_angle = SklearnTSNE().angle
        return coords, {
            "implementation": implementation,
            "init": options["init"],
            "precomputed_affinities": affinities is not None,
            "negative_gradient": gradient_method(options["negative_gradient"], len(X)) if opentsne else "bh",
            "bh_theta": float(options["bh_theta"]) if opentsne else float(sklearn_angle),
            "kl_divergence": kl,
        }


METHOD = TSNE(
    name="tsne",
    title="t-SNE",
    colour="#3f90da",
    axes=(
        Axis("perplexity", float, "p", config_key="perplexities"),
        Axis("seed", int, "s", config_key="seeds"),
    ),
    options=("implementation", "init", "negative_gradient", "bh_theta"),
    threads_key="threads",
    requires=("openTSNE", "sklearn"),
)
