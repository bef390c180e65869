"""Stage sweep_metrics: every run of a feature set, its quality metrics gathered into one table and one plot."""

import logging

import numpy as np

from .figure_style import note_legend, plt, save_figure, weights_note
from .files.metrics import read_run_metrics, write_sweep_table

LOGGER = logging.getLogger("tsne_atlas.metrics_plot")
DPI = 150


def not_applicable(ax, title: str) -> None:
    """A label metric's panel when the images have no labels: says so instead of plotting."""
    ax.text(0.5, 0.5, "n/a: the images have no labels", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


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
        if any(r[key] is None for r in rows):
            not_applicable(ax, title)
            continue
        values = [[r[key] for r in rows if r["perplexity"] == p] for p in perplexities]
        for p, vals in zip(perplexities, values):
            ax.scatter([p] * len(vals), vals, s=14, color="#3f90da", alpha=0.7, zorder=3)
        ax.plot(perplexities, [np.mean(v) for v in values], color="#3f90da", label="mean over seeds")
        ax.fill_between(
            perplexities,
            [min(v) for v in values],
            [max(v) for v in values],
            color="#3f90da",
            alpha=0.15,
            label="min-max over seeds",
        )
        if key == "knn_accuracy_2d":
            feature_acc = [
                np.mean([r["knn_accuracy_features"] for r in rows if r["perplexity"] == p]) for p in perplexities
            ]
            ax.plot(perplexities, feature_acc, color="#e76300", linestyle="--", label="k-NN accuracy in features")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("perplexity")
        ax.set_xticks(perplexities)
        ax.grid(alpha=0.3)
    # Every panel's entries once (the k-NN panel adds its feature-space line unless it says n/a).
    entries = {name: handle for ax in axes for handle, name in zip(*ax.get_legend_handles_labels())}
    handles, names = list(entries.values()), list(entries)
    note_legend(fig, handles, names, note, ncols=len(names), fontsize=8)
    n_seeds = len({r["seed"] for r in rows})
    features = ", ".join(sorted({str(r.get("features")) for r in rows}))
    fig.suptitle(f"Embedding quality over the sweep of {features} ({n_seeds} seeds per perplexity)", fontsize=11)
    return fig


def sweep_metrics(metrics: list[str], table: str, png: str, svg: str) -> list[dict]:
    """Every run's metrics as one table and one plot (rule sweep_metrics)."""
    rows = [read_run_metrics(path) for path in metrics]
    write_sweep_table(rows, table)
    note = weights_note({"weights_random": any(r.get("weights_random") for r in rows)})
    save_figure(plot_sweep_metrics(rows, note), png, svg, DPI)
    LOGGER.info("gathered %d runs into %s", len(rows), table)
    return rows
