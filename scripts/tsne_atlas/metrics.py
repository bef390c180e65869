"""Stage embedding_metrics: quality metrics of one embedding (the sweep table and plot: ``metrics_plot``).

All metrics compare the 2-D map with the features every method was given (the sweep's
z-scored, PCA-reduced input, embeddings/{features}/input.h5), so methods compare on the same input. Above ``max_images`` images they are computed on
a fixed random subsample (trustworthiness needs N x N matrices):
- trustworthiness (scikit-learn, k neighbours): are 2-D neighbours also neighbours in the features?
- k-NN accuracy of the class labels, leave-one-out, in 2-D and in the feature space;
- the KL divergence t-SNE reached (from the run's JSON; None for UMAP and PCA).
"""

import logging

import numpy as np

from .files.map_inputs import read_input
from .files.metrics import write_run_metrics
from .files.runs import METHOD_KEYS, read_run, run_label, run_seed
from .jobs import AtlasError
from .subsample import fixed_subsample

LOGGER = logging.getLogger("tsne_atlas.metrics")


def knn_accuracy(X: np.ndarray, labels: np.ndarray, knn_k: int = 5) -> float:
    """Leave-one-out k-NN accuracy: each point gets the majority label of its k = ``knn_k`` nearest
    others (by default metrics.knn_k's default, held to the schema by tests/test_structure.py).

    Ties go to the smallest label index, so the result is deterministic.
    """
    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels)
    k = min(knn_k, len(X) - 1)
    # kneighbors() without X leaves each point out of its own neighbour list.
    neighbours = NearestNeighbors(n_neighbors=k).fit(X).kneighbors(return_distance=False)
    n_classes = int(labels.max()) + 1
    votes = np.zeros((len(X), n_classes), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(X)), k), labels[neighbours].ravel()), 1)
    return float(np.mean(votes.argmax(axis=1) == labels))


def embedding_metrics(
    X: np.ndarray, coords: np.ndarray, labels: np.ndarray | None, trustworthiness_k: int, knn_k: int
) -> dict:
    """Trustworthiness and k-NN accuracies of ``coords`` (N x 2) against features ``X``; ``labels``
    None (unlabelled images): the accuracies are None (n/a), trustworthiness needs no labels."""
    from sklearn.manifold import trustworthiness

    trust_k = min(trustworthiness_k, (len(X) - 1) // 2)  # scikit-learn needs k < N / 2
    return {
        "trustworthiness": float(trustworthiness(X, coords, n_neighbors=trust_k)),
        "knn_accuracy_2d": None if labels is None else knn_accuracy(coords, labels, knn_k),
        "knn_accuracy_features": None if labels is None else knn_accuracy(X, labels, knn_k),
        "trustworthiness_k": int(trust_k),
        "knn_k": int(knn_k),
    }


def embedding_metrics_for_run(
    prepared: str,
    embedding: str,
    meta: str,
    manifest: str,
    trustworthiness_k: int,
    knn_k: int,
    max_images: int,
    metrics: str,
) -> dict:
    """One run's quality metrics against the exact input its method saw (rule embedding_metrics)."""
    run = read_run(embedding, meta, manifest)
    X, _ = read_input(prepared)
    if len(X) != len(run.coords):
        raise AtlasError(f"{prepared} has {len(X)} rows but {embedding} {len(run.coords)}; delete both and rerun")
    labels, coords = (run.label_indices() if run.labelled else None), run.coords
    keep = fixed_subsample(len(X), max_images)  # the same points for every run
    meta = run.meta
    result = {
        "features": meta["features"],
        "method": meta["method"],
        **{key: meta[key] for key in METHOD_KEYS[meta["method"]]},
        "seed": run_seed(meta),
        **embedding_metrics(X[keep], coords[keep], None if labels is None else labels[keep], trustworthiness_k, knn_k),
        "kl_divergence": meta.get("kl_divergence"),
        "n_images": meta["n_images"],
        "n_metric_images": len(keep),
        "runtime_s": meta["runtime_s"],
        "weights_random": meta.get("weights_random"),
    }
    write_run_metrics(metrics, result)
    LOGGER.info("%s %s: %s", meta["features"], run_label(meta), result)
    return result
