"""Stage tsne: embed the features in 2-D for one (perplexity, seed).

The input (z-scored, PCA-reduced features) and, for openTSNE, the affinity matrix of the
perplexity are computed once per sweep (``preparation``); a run only optimises.
Deliberately free of torch imports: t-SNE jobs start fast and run anywhere.
Writes the run's record (``files.runs``): a TSV of coordinates and a JSON sidecar with the
KL divergence, parameters, runtime and the provenance copied from the features file.
"""

import logging
import time

import numpy as np

from .config import check_perplexity
from .files.runs import input_provenance, write_run
from .files.tsne_inputs import read_affinities, read_map_input

LOGGER = logging.getLogger("tsne_atlas.tsne")
# Barnes-Hut vs openTSNE's FFT gradient (the PyPI wheel's FFT is numpy's, not FFTW), one core:
# 10,000 Animal-MNIST ResNet-101 features: bh (theta 0.8) 21 s, fft 54 s per run; 30,000 points
# in 20 Gaussian blobs: bh 91 s, fft 30 s (BENCHMARKS.md). openTSNE's own switch is at 10,000.
BH_MAX_POINTS = 20_000


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
    init: str = "pca",
    n_jobs: int = 1,
    affinities=None,
    negative_gradient: str = "auto",
    bh_theta: float = 0.8,
) -> tuple[np.ndarray, float]:
    """2-D t-SNE embedding of ``X``; returns (N x 2 float64, KL divergence).

    Defaults are the schema's (a test holds them to it). ``affinities`` (openTSNE only): a
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


def run_tsne(
    features: str,
    features_id: str,
    node: str,
    prepared: str,
    perplexity: float,
    seed: int,
    implementation: str,
    init: str,
    negative_gradient: str,
    bh_theta: float,
    embedding: str,
    meta: str,
    threads: int,
    affinities: str | None = None,
) -> dict:
    """One run of the sweep: t-SNE of the prepared input, written as a run record (rule tsne).

    ``affinities``: the sweep's P for this perplexity (openTSNE); None lets the implementation
    compute its own. ``features_id``: the run's feature set id, ``node`` its node in ``features``.
    """
    features_file, affinities_file = features, affinities
    data, X, input_attrs = read_map_input(features, node, prepared)
    check_perplexity(perplexity, len(X))
    start = time.perf_counter()
    P = read_affinities(affinities_file) if affinities_file else None
    coords, kl = embed(
        X,
        perplexity,
        seed,
        implementation,
        init,
        threads,
        affinities=P,
        negative_gradient=negative_gradient,
        bh_theta=bh_theta,
    )
    runtime = time.perf_counter() - start
    record = {
        "features": features_id,
        "method": "tsne",
        "perplexity": float(perplexity),
        "seed": int(seed),
        "implementation": implementation,
        "init": init,
        "precomputed_affinities": affinities_file is not None,
        "negative_gradient": gradient_method(negative_gradient, len(X)) if implementation == "opentsne" else "bh",
        "bh_theta": float(bh_theta) if implementation == "opentsne" else 0.5,
        "kl_divergence": kl,
        "runtime_s": round(runtime, 3),
        **input_provenance(features_file, data, input_attrs, len(coords)),
    }
    write_run(embedding, meta, data["paths"], coords, record)
    LOGGER.info(
        "t-SNE of %s, perplexity %g seed %d (%s): KL %.4f in %.1f s",
        features_id,
        perplexity,
        seed,
        implementation,
        kl,
        runtime,
    )
    return record
