"""Stage 3, tsne: embed the features in 2-D for one (perplexity, seed).

The input (z-scored, PCA-reduced features) and, for openTSNE, the affinity matrix of the
perplexity are computed once per sweep by tsne_inputs.py; a run only optimises.
Deliberately free of torch imports: t-SNE jobs start fast and run anywhere.
Outputs a TSV (path, label, x, y in manifest order) and a JSON sidecar with the
KL divergence, parameters, runtime and the provenance copied from the features file.
"""

import csv
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from atlas_config import check_perplexity
from tsne_inputs import load_affinities, load_features, load_input, preprocess  # noqa: F401 (re-exported)
from workflow_utils import AtlasError, atomic_path, job_log

LOGGER = logging.getLogger("tsne_atlas.run_tsne")
IMPLEMENTATIONS = ("opentsne", "sklearn")
EMBEDDING_FIELDS = ("path", "label", "x", "y")
# Barnes-Hut vs openTSNE's FFT gradient (the PyPI wheel's FFT is numpy's, not FFTW), one core:
# 10,000 Animal-MNIST ResNet-101 features: bh (theta 0.8) 21 s, fft 54 s per run; 30,000 points
# in 20 Gaussian blobs: bh 91 s, fft 30 s (BENCHMARKS.md). openTSNE's own switch is at 10,000.
BH_MAX_POINTS = 20_000


def gradient_method(negative_gradient: str, n_points: int) -> str:
    """openTSNE's ``negative_gradient_method``: ``auto`` is bh below BH_MAX_POINTS, else fft."""
    if negative_gradient == "auto":
        return "bh" if n_points < BH_MAX_POINTS else "fft"
    if negative_gradient not in ("bh", "fft"):
        raise AtlasError(f"tsne.negative_gradient '{negative_gradient}' is unknown; choose auto, bh or fft")
    return negative_gradient
# Attributes of the features file that travel on to every embedding and figure.
PROVENANCE_ATTRS = ("model", "node", "weights", "weights_source", "weights_random", "precision", "config_hash")


def embed(
    X: np.ndarray,
    perplexity: float,
    random_state: int,
    implementation: str = "opentsne",
    init: str = "pca",
    n_jobs: int = 1,
    affinities=None,
    negative_gradient: str = "auto",
    bh_theta: float = 0.5,
) -> tuple[np.ndarray, float]:
    """2-D t-SNE embedding of ``X``; returns (N x 2 float64, KL divergence).

    ``affinities`` (openTSNE only): a precomputed P for this perplexity (tsne_inputs). openTSNE
    scales P in place for early exaggeration and back, which leaves rounding changes; a run
    works on a copy, so the caller's P stays exact for the next run. Without it openTSNE
    computes P itself. ``bh_theta``: the Barnes-Hut approximation's accuracy (openTSNE's
    ``theta``; 0.5 is its default and scikit-learn's).
    """
    check_perplexity(perplexity, len(X))
    if implementation == "opentsne":
        from openTSNE import TSNE
        from openTSNE.affinity import PrecomputedAffinities

        tsne = TSNE(perplexity=perplexity, initialization=init, random_state=random_state, n_jobs=n_jobs,
                    negative_gradient_method=gradient_method(negative_gradient, len(X)), theta=bh_theta,
                    verbose=False)
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
    raise AtlasError(f"tsne.implementation '{implementation}' is unknown; choose one of {list(IMPLEMENTATIONS)}")


def write_embedding(tsv: str, meta_json: str, paths, labels, coords: np.ndarray, meta: dict) -> None:
    with atomic_path(tsv) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(EMBEDDING_FIELDS)
        for path, label, (x, y) in zip(paths, labels, coords):
            writer.writerow((path, label, repr(float(x)), repr(float(y))))
    with atomic_path(meta_json) as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_embedding(tsv: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray]:
    """Read an embedding TSV back: (paths, labels, N x 2 coordinates)."""
    with open(tsv, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if tuple(header or ()) != EMBEDDING_FIELDS:
            raise AtlasError(f"{tsv}: not an embedding table (header {header}); delete it and rerun")
        rows = list(reader)
    coords = np.array([[float(r[2]), float(r[3])] for r in rows], dtype=np.float64).reshape(-1, 2)
    return [r[0] for r in rows], [r[1] for r in rows], coords


def run_tsne(
    features_file: str,
    input_file: str,
    tsv: str,
    meta_json: str,
    perplexity: float,
    seed: int,
    implementation: str = "opentsne",
    init: str = "pca",
    n_jobs: int = 1,
    affinities_file: str | None = None,
    negative_gradient: str = "auto",
    bh_theta: float = 0.5,
) -> dict:
    """One run of the sweep: t-SNE of the prepared input, written as TSV + JSON sidecar."""
    data = load_features(features_file, with_features=False)
    X, input_attrs = load_input(input_file)
    if len(X) != len(data["paths"]):
        raise AtlasError(f"{input_file} has {len(X)} rows but {features_file} {len(data['paths'])}; delete "
                         f"{input_file} and rerun")
    check_perplexity(perplexity, len(X))
    start = time.perf_counter()
    P = load_affinities(affinities_file) if affinities_file else None
    coords, kl = embed(X, perplexity, seed, implementation, init, n_jobs, affinities=P,
                       negative_gradient=negative_gradient, bh_theta=bh_theta)
    runtime = time.perf_counter() - start
    labels = [data["classes"][i] for i in data["labels"]]
    meta = {
        "perplexity": perplexity,
        "seed": seed,
        "implementation": implementation,
        "init": init,
        "standardize": bool(input_attrs["standardize"]),
        "pca_components": int(input_attrs["pca_components"]),
        "precomputed_affinities": affinities_file is not None,
        "negative_gradient": gradient_method(negative_gradient, len(X)) if implementation == "opentsne" else "bh",
        "bh_theta": bh_theta if implementation == "opentsne" else 0.5,
        "kl_divergence": kl,
        "runtime_s": round(runtime, 3),
        "n_images": int(len(coords)),
        "feature_dim": int(data["shape"][1]),
        "classes": data["classes"],
        "features_file": str(features_file),
        **{key: data["attrs"].get(key) for key in PROVENANCE_ATTRS},
    }
    write_embedding(tsv, meta_json, data["paths"], labels, coords, meta)
    LOGGER.info("t-SNE perplexity %g seed %d (%s): KL %.4f in %.1f s", perplexity, seed, implementation, kl, runtime)
    return meta


def main(snakemake) -> None:
    params = snakemake.params
    with job_log(snakemake.log[0]):
        run_tsne(
            features_file=snakemake.input.features,
            input_file=snakemake.input.input,
            tsv=snakemake.output.embedding,
            meta_json=snakemake.output.meta,
            perplexity=float(params.perplexity),
            seed=int(params.seed),
            implementation=params.implementation,
            init=params.init,
            n_jobs=snakemake.threads,
            affinities_file=snakemake.input.get("affinities"),
            negative_gradient=params.negative_gradient,
            bh_theta=float(params.bh_theta),
        )


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
