"""t-SNE (openTSNE, or scikit-learn's as in the article): one map per perplexity x seed.

openTSNE runs read the sweep's affinity matrix P of their perplexity (``preparation``: built once
from the first 3 x perplexity columns of the shared k-NN graph), so a run only optimises.

New points are placed with openTSNE's own ``TSNEEmbedding.transform`` on the run's map (either
implementation's: it reads the coordinates alone), from the query's neighbours the workflow found.
"""

import logging
import math

import numpy as np

from ..jobs import AtlasError
from .base import Axis, MapMethod, placement_neighbours

# Barnes-Hut vs openTSNE's FFT gradient (the PyPI wheel's FFT is numpy's, not FFTW), one core:
# 10,000 Animal-MNIST ResNet-101 features: bh (theta 0.8) 21 s, fft 54 s per run; 30,000 points
# in 20 Gaussian blobs: bh 91 s, fft 30 s (BENCHMARKS.md). openTSNE's own switch is at 10,000.
BH_MAX_POINTS = 20_000
# openTSNE's TSNEEmbedding.transform: each new point's affinities to the reference at perplexity 5, so
# from its 3 x 5 nearest reference points (PerplexityBasedNN.to_new), which also give its median start
# (transform's k=25 reads at most those 15). A test holds these to openTSNE's own defaults.
PLACE_PERPLEXITY = 5
PLACE_NEIGHBOURS = int(3 * PLACE_PERPLEXITY)


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


class _InitialisedFromMap(logging.Filter):
    """Drops openTSNE's warning that a precomputed initialisation has a high variance: placement hands it
    the finished map as the reference, never as a start to optimise."""

    def filter(self, record):
        return "Standard deviation of embedding" not in record.getMessage()


def place_points(
    coords: np.ndarray,
    indices: np.ndarray,
    distances: np.ndarray,
    random_state: int,
    n_jobs: int = 1,
    *,
    negative_gradient: str,
    bh_theta: float,
) -> tuple[np.ndarray, float | None]:
    """New points on a t-SNE map: openTSNE's ``TSNEEmbedding.transform`` (its defaults: perplexity-5
    affinities to the reference, normalised per point, median start, 250 iterations at learning rate 0.1,
    exaggeration 1.5, gradients clipped at 0.25) with the reference fixed at ``coords`` (N x 2, never
    modified), from each new point's nearest reference points (``indices``, ``distances``: N_q x k,
    ascending, k >= PLACE_NEIGHBOURS), and the run's gradient (``negative_gradient``: bh or fft;
    ``bh_theta``). Returns (N_q x 2 float64 in the map's frame, openTSNE's KL divergence of the new
    points or None).

    openTSNE searches the new points' neighbours with the reference's index: here they come given, so its
    affinities class is fed them (``PerplexityBasedNN.to_new`` runs unchanged). transform centres the
    reference, and the FFT gradient centres it again for its grid: the placed points are shifted back by
    what the reference moved, to the map's own frame.
    """
    import scipy.sparse
    from openTSNE import TSNE as OpenTSNE
    from openTSNE.affinity import PerplexityBasedNN

    n_reference = len(coords)

    class GivenNeighbours:
        """openTSNE's KNNIndex role for the new points: their neighbours, found by the workflow."""

        n_samples = n_reference

        def query(self, query, k):
            if len(query) != len(indices) or k > indices.shape[1]:
                raise ValueError(f"{len(query)} new points, {k} neighbours asked, {indices.shape} given")
            return indices[:, :k], distances[:, :k]

    class NewPointAffinities(PerplexityBasedNN):
        def __init__(self):
            # PerplexityBasedNN.__init__ would search the reference's neighbours and build its P; placing
            # reads neither (its P only sizes the reference embedding).
            self.knn_index, self.perplexity, self.n_jobs, self.verbose = GivenNeighbours(), None, n_jobs, False
            self.P = scipy.sparse.csr_matrix((n_reference, n_reference))

    tsne = OpenTSNE(
        random_state=random_state,
        n_jobs=n_jobs,
        negative_gradient_method=negative_gradient,
        theta=bh_theta,
        verbose=False,
    )
    quiet = _InitialisedFromMap()
    openTSNE_log = logging.getLogger("openTSNE.tsne")
    openTSNE_log.addFilter(quiet)
    try:
        reference = tsne.prepare_initial(None, affinities=NewPointAffinities(), initialization=np.array(coords))
    finally:
        openTSNE_log.removeFilter(quiet)
    placed = reference.transform(np.empty((len(indices), 0)))
    frame = np.asarray(coords, dtype=np.float64)
    centred = np.asarray(reference)
    shift = (frame.max(axis=0) + frame.min(axis=0)) / 2 - (centred.max(axis=0) + centred.min(axis=0)) / 2
    kl = placed.kl_divergence
    return np.asarray(placed, dtype=np.float64) + shift, None if kl is None else float(kl)


def neighbours_for(perplexity: float, n_images: int) -> int:
    """openTSNE's neighbour count for a perplexity: 3 x perplexity, at most N - 1 (here, not in preparation,
    so that the Snakefile sizes the affinities job from it without importing scikit-learn)."""
    return min(n_images - 1, int(3 * perplexity))


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

    def place_neighbours(self, settings):
        return PLACE_NEIGHBOURS

    def place(self, X, coords, Q, neighbours, settings, options, threads, shared):
        k = min(PLACE_NEIGHBOURS, len(X))
        indices, distances = placement_neighbours(self.name, X, coords, Q, neighbours, k)
        if options["implementation"] == "opentsne":
            negative_gradient = gradient_method(options["negative_gradient"], len(X))
            bh_theta = float(options["bh_theta"])
        else:
            from sklearn.manifold import TSNE as SklearnTSNE

            # A scikit-learn map is placed as its run was made: Barnes-Hut at scikit-learn's angle.
            negative_gradient, bh_theta = "bh", float(SklearnTSNE().angle)
        placed, kl = place_points(
            coords,
            indices,
            distances,
            settings["seed"],
            threads,
            negative_gradient=negative_gradient,
            bh_theta=bh_theta,
        )
        return placed, {
            "placement": "openTSNE transform",
            "place_perplexity": PLACE_PERPLEXITY,
            "place_neighbours": k,
            "negative_gradient": negative_gradient,
            "bh_theta": bh_theta,
            "kl_divergence": kl,
        }

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
    requires=("openTSNE", "scipy", "sklearn"),
    # Measured at 1,000,000 images (perplexity 30, FFT): 4,354 MiB, 1,150 s; at 250,000: 1,187 MiB, 202 s.
    # P at perplexity 50 holds 5/3 as many entries (+1.4 KB an image): counted in.
    run_bytes_per_image=5_800,
    run_seconds_per_image=0.0012,
)
