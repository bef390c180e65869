"""Stage sweep_metrics: every run of a feature set, its quality metrics gathered into one table and one plot."""

import logging

import numpy as np

from .figure_style import METHOD_COLOURS, note_legend, plt, save_figure, weights_note
from .files.clusters import read_summary, summary_columns
from .files.metrics import read_run_metrics, write_sweep_table
from .files.runs import METHOD_NAMES, METHODS, run_settings, run_sort_key, settings_text
from .methods import MAP_METHODS

LOGGER = logging.getLogger("tsne_atlas.metrics_plot")
DPI = 150


def settings_key_label(methods: list[str]) -> str:
    """What the short setting names under the axis mean, for the methods shown, from their declarations:
    ``p = perplexity (t-SNE); k = n_neighbors, d = min_dist (UMAP)``."""
    parts = []
    for method in methods:
        axes = [axis for axis in MAP_METHODS[method].axes if not axis.fixed and axis.key != "seed"]
        if axes:
            parts.append(f"{', '.join(f'{axis.short} = {axis.key}' for axis in axes)} ({METHOD_NAMES[method]})")
    return "; ".join(parts)


def not_applicable(ax, title: str) -> None:
    """A label metric's panel when the images have no labels: says so instead of plotting."""
    ax.text(0.5, 0.5, "n/a: the images have no labels", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_sweep_metrics(rows: list[dict], note: str | None = None) -> plt.Figure:
    """Each metric for every setting of the sweep (t-SNE's perplexities, UMAP's settings, PCA), a
    colour per method: seeds as dots, their mean as a line within a method, min-max as a band. KL
    divergence only when t-SNE is in the sweep. No run times: the figure is the same file on every run of
    a config (they are in the table)."""
    rows = sorted(rows, key=run_sort_key)
    settings = list(dict.fromkeys((r["method"], run_settings(r)) for r in rows))
    representative = {key: next(r for r in rows if (r["method"], run_settings(r)) == key) for key in settings}
    x_of = {key: i for i, key in enumerate(settings)}
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    panels = [("trustworthiness", "trustworthiness"), ("knn_accuracy_2d", "k-NN label accuracy")]
    if "tsne" in methods:
        panels.append(("kl_divergence", "KL divergence (t-SNE)"))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(max(4.0, 0.45 * len(settings) + 2.2) * len(panels), 3.8), layout="constrained"
    )
    for ax, (key, title) in zip(axes, panels):
        if any(r[key] is None for r in rows if key != "kl_divergence" or r["method"] == "tsne"):
            not_applicable(ax, title)
            continue
        for method in methods:
            of_method = [k for k in settings if k[0] == method]
            values = [[r[key] for r in rows if (r["method"], run_settings(r)) == k] for k in of_method]
            if key == "kl_divergence" and method != "tsne":
                continue
            xs = [x_of[k] for k in of_method]
            colour, name = METHOD_COLOURS[method], METHOD_NAMES[method]
            for x, vals in zip(xs, values):
                ax.scatter([x] * len(vals), vals, s=14, color=colour, alpha=0.7, zorder=3)
            ax.plot(xs, [np.mean(v) for v in values], color=colour, marker="_", label=name)
            ax.fill_between(xs, [min(v) for v in values], [max(v) for v in values], color=colour, alpha=0.15)
        if key == "knn_accuracy_2d":
            # The same for every run: the features do not depend on the map.
            feature_acc = np.mean([r["knn_accuracy_features"] for r in rows])
            ax.axhline(feature_acc, color="0.35", linestyle="--", label="k-NN accuracy in features")
        ax.set_title(title, fontsize=10)
        only_tsne = methods == ["tsne"]
        ax.set_xticks(
            range(len(settings)),
            # t-SNE alone: the perplexities, under an axis named so; else each setting short, PCA by name.
            [
                f"{k[1][0]:g}" if only_tsne else settings_text(representative[k], short=True) or METHOD_NAMES[k[0]]
                for k in settings
            ],
            rotation=0 if only_tsne or len(settings) < 5 else 40,
            ha="center" if only_tsne or len(settings) < 5 else "right",
            rotation_mode="anchor",
            fontsize=8,
        )
        ax.set_xlim(-0.5, len(settings) - 0.5)
        ax.set_xlabel("perplexity" if only_tsne else settings_key_label(methods), fontsize=8)
        ax.grid(alpha=0.3)
    # Every panel's entries once (the k-NN panel adds its feature-space line unless it says n/a).
    entries = {name: handle for ax in axes for handle, name in zip(*ax.get_legend_handles_labels())}
    handles, names = list(entries.values()), list(entries)
    note_legend(fig, handles, names, note, ncols=min(len(names), 4), fontsize=8)
    n_seeds = len({r["seed"] for r in rows} - {None})
    features = ", ".join(sorted({str(r.get("features")) for r in rows}))
    fig.suptitle(
        f"Map quality over the sweep of {features} ({n_seeds} seed{'s' if n_seeds != 1 else ''} per setting: "
        "dots = seeds, line = their mean, band = min-max)",
        fontsize=11,
    )
    return fig


def sweep_metrics(metrics: list[str], clusters_summary: str, table: str, png: str, svg: str) -> list[dict]:
    """Every run's metrics as one table and one plot (rule sweep_metrics); the table's cluster columns
    are the feature set's (the same in every row: the clusters are found in feature space)."""
    clusters = summary_columns(read_summary(clusters_summary))
    rows = [{**read_run_metrics(path), **clusters} for path in metrics]
    write_sweep_table(rows, table)
    note = weights_note({"weights_random": any(r.get("weights_random") for r in rows)})
    save_figure(plot_sweep_metrics(rows, note), png, svg, DPI)
    LOGGER.info("gathered %d runs into %s", len(rows), table)
    return rows
