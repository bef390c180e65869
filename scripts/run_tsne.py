"""Stage 3, tsne: embed the features in 2-D for one (perplexity, seed).

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

import h5py
import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from atlas_config import check_perplexity
from workflow_utils import AtlasError, atomic_path, job_log

LOGGER = logging.getLogger("tsne_atlas.run_tsne")
IMPLEMENTATIONS = ("opentsne", "sklearn")
EMBEDDING_FIELDS = ("path", "label", "x", "y")
# Attributes of the features file that travel on to every embedding and figure.
PROVENANCE_ATTRS = ("model", "node", "weights", "weights_source", "weights_random", "precision", "config_hash")


def load_features(path: str | os.PathLike) -> dict:
    """Read an HDF5 features file written by extract_features."""
    try:
        with h5py.File(path, "r") as h5:
            return {
                "features": h5["features"][:],
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


def preprocess(
    features: np.ndarray, standardize: bool, pca_components: int, random_state: int = 0
) -> np.ndarray:
    """Optional z-scoring per dimension, then optional PCA to ``pca_components``.

    Constant dimensions (random-init ResNets have dozens of all-zero ones) keep
    scale 1 in the scaler, so they stay zero instead of turning into NaN.
    """
    X = np.asarray(features, dtype=np.float64)
    if standardize:
        X = StandardScaler().fit_transform(X)
    n_components = min(pca_components, *X.shape) if pca_components else 0
    if n_components and n_components < X.shape[1]:
        X = PCA(n_components=n_components, svd_solver="full", random_state=random_state).fit_transform(X)
    return np.ascontiguousarray(X)


def pca_dimensions(features_shape: tuple[int, int], pca_components: int) -> int:
    """Dimensions PCA keeps for this input (0 when it is off or would keep everything)."""
    n_components = min(pca_components, *features_shape) if pca_components else 0
    return n_components if n_components < features_shape[1] else 0


def embed(
    X: np.ndarray,
    perplexity: float,
    random_state: int,
    implementation: str = "opentsne",
    init: str = "pca",
    n_jobs: int = 1,
) -> tuple[np.ndarray, float]:
    """2-D t-SNE embedding of ``X``; returns (N x 2 float64, KL divergence)."""
    check_perplexity(perplexity, len(X))
    if implementation == "opentsne":
        from openTSNE import TSNE

        result = TSNE(
            perplexity=perplexity, initialization=init, random_state=random_state, n_jobs=n_jobs, verbose=False
        ).fit(X)
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
    tsv: str,
    meta_json: str,
    perplexity: float,
    seed: int,
    implementation: str = "opentsne",
    init: str = "pca",
    standardize: bool = True,
    pca_components: int = 50,
    n_jobs: int = 1,
) -> dict:
    data = load_features(features_file)
    check_perplexity(perplexity, len(data["features"]))
    start = time.perf_counter()
    X = preprocess(data["features"], standardize, pca_components, random_state=seed)
    coords, kl = embed(X, perplexity, seed, implementation, init, n_jobs)
    runtime = time.perf_counter() - start
    labels = [data["classes"][i] for i in data["labels"]]
    meta = {
        "perplexity": perplexity,
        "seed": seed,
        "implementation": implementation,
        "init": init,
        "standardize": standardize,
        "pca_components": pca_dimensions(data["features"].shape, pca_components),
        "kl_divergence": kl,
        "runtime_s": round(runtime, 3),
        "n_images": int(len(coords)),
        "feature_dim": int(data["features"].shape[1]),
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
            tsv=snakemake.output.embedding,
            meta_json=snakemake.output.meta,
            perplexity=float(params.perplexity),
            seed=int(params.seed),
            implementation=params.implementation,
            init=params.init,
            standardize=bool(params.standardize),
            pca_components=int(params.pca_components),
            n_jobs=snakemake.threads,
        )


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
