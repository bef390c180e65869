"""Quality metrics of one embedding, and the table and plot that gather them over a sweep.

All metrics compare the 2-D embedding with the features t-SNE was given (the sweep's
z-scored, PCA-reduced input, tsne/input.h5). Above ``max_images`` images they are computed on
a fixed random subsample (trustworthiness needs N x N matrices):
- trustworthiness (scikit-learn, k neighbours): are 2-D neighbours also neighbours in the features?
- k-NN accuracy of the class labels, leave-one-out, in 2-D and in the feature space;
- the KL divergence t-SNE reached (from the run's JSON).
"""

import csv
import json
import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import trustworthiness  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402

from figure_style import fixed_subsample, note_legend, weights_note  # noqa: E402
from plot_scatter import save_figure  # noqa: E402
from run_tsne import read_embedding  # noqa: E402
from tsne_inputs import load_features, load_input  # noqa: E402
from workflow_utils import atomic_path, job_log  # noqa: E402

LOGGER = logging.getLogger("tsne_atlas.embedding_metrics")
SWEEP_FIELDS = (
    "perplexity", "seed", "trustworthiness", "knn_accuracy_2d", "knn_accuracy_features", "kl_divergence",
    "n_images", "n_metric_images", "runtime_s",
)


def knn_accuracy(X: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-NN accuracy: each point gets the majority label of its k nearest others.

    Ties go to the smallest label index, so the result is deterministic.
    """
    labels = np.asarray(labels)
    k = min(k, len(X) - 1)
    # kneighbors() without X leaves each point out of its own neighbour list.
    neighbours = NearestNeighbors(n_neighbors=k).fit(X).kneighbors(return_distance=False)
    n_classes = int(labels.max()) + 1
    votes = np.zeros((len(X), n_classes), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(X)), k), labels[neighbours].ravel()), 1)
    return float(np.mean(votes.argmax(axis=1) == labels))


def embedding_metrics(X: np.ndarray, coords: np.ndarray, labels: np.ndarray, trust_k: int = 10, knn_k: int = 5) -> dict:
    """Trustworthiness and k-NN accuracies of ``coords`` (N x 2) against features ``X``."""
    trust_k = min(trust_k, (len(X) - 1) // 2)  # scikit-learn needs k < N / 2
    return {
        "trustworthiness": float(trustworthiness(X, coords, n_neighbors=trust_k)),
        "knn_accuracy_2d": knn_accuracy(coords, labels, knn_k),
        "knn_accuracy_features": knn_accuracy(X, labels, knn_k),
        "trustworthiness_k": int(trust_k),
        "knn_k": int(knn_k),
    }


def metrics_for_run(features_file: str, input_file: str, embedding: str, meta_json: str, output: str, trust_k=10,
                    knn_k=5, max_images=5000) -> dict:
    meta = json.loads(Path(meta_json).read_text(encoding="utf-8"))
    labels = load_features(features_file, with_features=False)["labels"]
    X, _ = load_input(input_file)  # the exact input t-SNE saw
    _, _, coords = read_embedding(embedding)
    keep = fixed_subsample(len(X), max_images)  # the same points for every run
    result = {
        "perplexity": meta["perplexity"],
        "seed": meta["seed"],
        **embedding_metrics(X[keep], coords[keep], labels[keep], trust_k, knn_k),
        "kl_divergence": meta["kl_divergence"],
        "n_images": meta["n_images"],
        "n_metric_images": int(len(keep)),
        "runtime_s": meta["runtime_s"],
        "weights_random": meta.get("weights_random"),
    }
    with atomic_path(output) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    LOGGER.info("perplexity %g seed %d: %s", meta["perplexity"], meta["seed"], result)
    return result


def write_sweep_table(rows: list[dict], path: str | os.PathLike) -> None:
    rows = sorted(rows, key=lambda r: (r["perplexity"], r["seed"]))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SWEEP_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def plot_sweep_metrics(rows: list[dict], note: str | None = None) -> plt.Figure:
    """Each metric against perplexity: seeds as dots, their mean as a line, min-max as a band."""
    panels = [
        ("trustworthiness", "trustworthiness"),
        ("knn_accuracy_2d", "k-NN label accuracy"),
        ("kl_divergence", "KL divergence"),
    ]
    perplexities = sorted({r["perplexity"] for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8), layout="constrained")
    for ax, (key, title) in zip(axes, panels):
        values = [[r[key] for r in rows if r["perplexity"] == p] for p in perplexities]
        for p, vals in zip(perplexities, values):
            ax.scatter([p] * len(vals), vals, s=14, color="#3f90da", alpha=0.7, zorder=3)
        ax.plot(perplexities, [np.mean(v) for v in values], color="#3f90da", label="mean over seeds")
        ax.fill_between(perplexities, [min(v) for v in values], [max(v) for v in values], color="#3f90da",
                        alpha=0.15, label="min-max over seeds")
        if key == "knn_accuracy_2d":
            feature_acc = [np.mean([r["knn_accuracy_features"] for r in rows if r["perplexity"] == p])
                           for p in perplexities]
            ax.plot(perplexities, feature_acc, color="#e76300", linestyle="--", label="k-NN accuracy in features")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("perplexity")
        ax.set_xticks(perplexities)
        ax.grid(alpha=0.3)
    handles, names = axes[1].get_legend_handles_labels()
    note_legend(fig, handles, names, note, ncols=len(names), fontsize=8)
    n_seeds = len({r["seed"] for r in rows})
    fig.suptitle(f"Embedding quality over the sweep ({n_seeds} seeds per perplexity)", fontsize=11)
    return fig


def gather_sweep(metric_files: list[str], table: str, png: str, svg: str) -> list[dict]:
    rows = [json.loads(Path(f).read_text(encoding="utf-8")) for f in metric_files]
    write_sweep_table(rows, table)
    note = weights_note({"weights_random": any(r.get("weights_random") for r in rows)})
    save_figure(plot_sweep_metrics(rows, note), png, svg)
    LOGGER.info("gathered %d runs into %s", len(rows), table)
    return rows


def main(snakemake) -> None:
    with job_log(snakemake.log[0]):
        if snakemake.rule == "sweep_metrics":
            gather_sweep(list(snakemake.input.metrics), snakemake.output.table, snakemake.output.png,
                         snakemake.output.svg)
        else:
            metrics_for_run(snakemake.input.features, snakemake.input.input, snakemake.input.embedding,
                            snakemake.input.meta, snakemake.output.metrics, int(snakemake.params.trust_k),
                            int(snakemake.params.knn_k), int(snakemake.params.max_images))


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
