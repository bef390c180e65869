"""Stage sweep_overview: a contact sheet of every embedding, rows = perplexity, columns = seed,
one shared legend, each panel titled with its metrics. PNG and PDF (vector)."""

import logging

from matplotlib.lines import Line2D

from .figure_style import (
    PDF_METADATA,
    PNG_METADATA,
    class_colours,
    class_markers,
    draw_classes,
    features_label,
    literal,
    note_legend,
    plt,
    weights_note,
)
from .files.metrics import format_metric, read_run_metrics
from .files.runs import read_run
from .jobs import atomic_path

LOGGER = logging.getLogger("tsne_atlas.overview")


def panel_title(metrics: dict) -> str:
    return (
        f"p={metrics['perplexity']:g}  s={metrics['seed']}\n"
        f"T={metrics['trustworthiness']:.3f}  kNN={format_metric(metrics['knn_accuracy_2d'])}  "
        f"KL={metrics['kl_divergence']:.2f}"
    )


def plot_overview(
    runs: list[dict],
    classes: list[str],
    panel_in: float,
    panel_point_size: float = 3.0,
    note: str | None = None,
    title: str = "",
) -> plt.Figure:
    """``runs``: dicts with perplexity, seed, coords, labels and metrics; one panel each."""
    perplexities = sorted({r["perplexity"] for r in runs})
    seeds = sorted({r["seed"] for r in runs})
    fig, axes = plt.subplots(
        len(perplexities),
        len(seeds),
        figsize=(panel_in * len(seeds) + 2.2, panel_in * len(perplexities) + 0.9),
        squeeze=False,
        layout="constrained",
    )
    by_key = {(r["perplexity"], r["seed"]): r for r in runs}
    for i, p in enumerate(perplexities):
        for j, s in enumerate(seeds):
            ax = axes[i][j]
            run = by_key.get((p, s))
            if run is None:
                ax.set_axis_off()
                continue
            draw_classes(ax, run["coords"], run["labels"], classes, panel_point_size)
            ax.set_title(panel_title(run["metrics"]), fontsize=8)
    colours, markers = class_colours(len(classes)), class_markers(len(classes))
    handles = [
        Line2D([], [], linestyle="", marker=m, color=c, markersize=7, label=literal(name))
        for name, c, m in zip(classes, colours, markers)
    ]
    note_legend(
        fig, handles, [literal(name) for name in classes], note, ncols=min(len(classes), max(3, 2 * len(seeds)))
    )
    fig.suptitle(title or "t-SNE sweep: rows = perplexity, columns = seed", fontsize=11)
    return fig


def sweep_overview(
    embeddings: list[str],
    metas: list[str],
    metrics: list[str],
    manifest: str,
    panel_in: float,
    dpi: int,
    png: str,
    pdf: str,
) -> None:
    """The contact sheet of every run (rule sweep_overview)."""
    runs, classes, model, random_weights = [], None, None, False
    for embedding, meta_json, metrics_json in zip(embeddings, metas, metrics):
        run = read_run(embedding, meta_json, manifest)
        classes, model = run.classes, features_label(run.meta)
        random_weights |= bool(run.meta.get("weights_random"))
        runs.append(
            {
                "perplexity": run.meta["perplexity"],
                "seed": run.meta["seed"],
                "coords": run.coords,
                "labels": run.labels,
                "metrics": read_run_metrics(metrics_json),
            }
        )
    n = runs[0]["metrics"]["n_images"]
    title = (
        f"t-SNE sweep of {model} features (N={n}): rows = perplexity, columns = seed\n"
        f"T = trustworthiness, kNN = {runs[0]['metrics']['knn_k']}-NN label accuracy in 2-D"
    )
    fig = plot_overview(runs, classes, panel_in, note=weights_note({"weights_random": random_weights}), title=title)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
    with atomic_path(pdf) as tmp:
        fig.savefig(tmp, format="pdf", metadata=PDF_METADATA)
    plt.close(fig)
    LOGGER.info("wrote %s and %s (%d panels)", png, pdf, len(runs))
