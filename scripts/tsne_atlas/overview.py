"""Stage sweep_overview: a contact sheet of every map of a feature set, rows = method and settings
(t-SNE's perplexities, then UMAP's settings, then PCA), columns = seed, one shared legend, each panel
titled with its run and metrics. PNG and PDF (vector); and the same sheet coloured by the set's clusters,
their names placed on each panel where there is room (PNG)."""

import logging
import textwrap

from matplotlib.lines import Line2D

from .cluster_map import draw_cluster_points, name_clusters
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
    vector_dpi,
    weights_note,
)
from .files.clusters import cluster_of_paths
from .files.metrics import format_metric, read_run_metrics
from .files.runs import METHOD_NAMES, METHODS, read_run, run_label, run_seed, run_settings, run_sort_key
from .jobs import atomic_path

LOGGER = logging.getLogger("tsne_atlas.overview")


def panel_title(meta: dict, metrics: dict) -> str:
    """``t-SNE p=30 s=0`` over ``T=0.912  kNN=0.83  KL=1.21`` (KL for t-SNE only)."""
    kl = f"  KL={metrics['kl_divergence']:.2f}" if metrics.get("kl_divergence") is not None else ""
    return (
        f"{run_label(meta, short=True)}\n"
        f"T={metrics['trustworthiness']:.3f}  kNN={format_metric(metrics['knn_accuracy_2d'])}{kl}"
    )


def plot_overview(
    runs: list[dict],
    classes: list[str],
    panel_in: float,
    panel_point_size: float = 3.0,
    note: str | None = None,
    title: str = "",
    cluster_names: dict[int, str] | None = None,
) -> plt.Figure:
    """``runs``: dicts with meta (the run's JSON), coords, labels and metrics; one panel each. A row per
    method and settings in ``run_sort_key`` order, a column per seed (a deterministic run in the first).
    With ``cluster_names`` (cluster -> name) the points are coloured by each run's ``clusters`` instead
    of its labels, and the names are placed on the panels where they fit (the legend lists them all)."""
    runs = sorted(runs, key=lambda run: run_sort_key(run["meta"]))
    rows = list(dict.fromkeys((run["meta"]["method"], run_settings(run["meta"])) for run in runs))
    seeds = sorted({run_seed(run["meta"]) for run in runs} - {None}) or [None]
    fig, axes = plt.subplots(
        len(rows),
        len(seeds),
        figsize=(panel_in * len(seeds) + 2.2, panel_in * len(rows) + 0.9),
        squeeze=False,
        layout="constrained",
    )
    by_key, drawn = {}, []
    for run in runs:
        meta = run["meta"]
        seed = run_seed(meta)
        by_key[(meta["method"], run_settings(meta), seeds[0] if seed is None else seed)] = run
    for i, row in enumerate(rows):
        for j, s in enumerate(seeds):
            ax = axes[i][j]
            run = by_key.get((*row, s))
            if run is None:
                ax.set_axis_off()
                continue
            if cluster_names is None:
                draw_classes(ax, run["coords"], run["labels"], classes, panel_point_size)
            else:
                draw_cluster_points(ax, run["coords"], run["clusters"], panel_point_size)
                drawn.append((run, ax))
            ax.set_title(panel_title(run["meta"], run["metrics"]), fontsize=8)
    if cluster_names is not None:
        classes = [f"{number}: {cluster_names[number]}" for number in sorted(cluster_names)]
    colours, markers = class_colours(len(classes)), class_markers(len(classes))
    handles = [
        Line2D([], [], linestyle="", marker=m, color=c, markersize=7, label=literal(name))
        for name, c, m in zip(classes, colours, markers)
    ]
    note_legend(
        fig, handles, [literal(name) for name in classes], note, ncols=min(len(classes), max(3, 2 * len(seeds)))
    )
    title = title or "Maps of the sweep: rows = method and settings, columns = seed"
    # Wrapped to the figure's width (about 12 characters an inch at 11 pt): a sheet may be two columns wide.
    width_chars = max(30, int(12 * fig.get_figwidth()))
    fig.suptitle(
        "\n".join(textwrap.fill(line, width_chars, break_long_words=False) for line in title.split("\n")), fontsize=11
    )
    if cluster_names is not None:
        fig.draw_without_rendering()  # the layout the names are placed in, without drawing any pixels
        for run, ax in drawn:
            name_clusters(ax, run["coords"], run["clusters"], cluster_names, fontsize=6.5, drop_unplaced=True)
    return fig


def sweep_overview(
    embeddings: list[str],
    metas: list[str],
    metrics: list[str],
    manifest: str,
    clusters: str,
    panel_in: float,
    dpi: int,
    png: str,
    pdf: str,
    clusters_png: str,
) -> None:
    """The contact sheets of every run (rule sweep_overview): by class (``png``, ``pdf``) and by the
    feature set's clusters (``clusters_png``, from clusters.csv)."""
    runs, classes, model, random_weights = [], None, None, False
    for embedding, meta_json, metrics_json in zip(embeddings, metas, metrics):
        run = read_run(embedding, meta_json, manifest)
        classes, model = run.classes, features_label(run.meta)
        random_weights |= bool(run.meta.get("weights_random"))
        runs.append(
            {
                "meta": run.meta,
                "coords": run.coords,
                "labels": run.labels,
                "paths": run.paths,
                "metrics": read_run_metrics(metrics_json),
            }
        )
    n = runs[0]["metrics"]["n_images"]
    methods = [METHOD_NAMES[method] for method in METHODS if any(r["meta"]["method"] == method for r in runs)]
    rows = "perplexity" if methods == ["t-SNE"] else "method and settings"
    names = ", ".join(methods[:-1]) + " and " + methods[-1] if len(methods) > 1 else methods[0]
    title = (
        f"{names} of {model} features (N={n})\n"
        f"rows = {rows}, columns = seed\n"
        f"T = trustworthiness, kNN = {runs[0]['metrics']['knn_k']}-NN label accuracy in 2-D"
    )
    note = weights_note({"weights_random": random_weights})
    fig = plot_overview(runs, classes, panel_in, note=note, title=title)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
    with atomic_path(pdf) as tmp:
        fig.savefig(tmp, format="pdf", metadata=PDF_METADATA, **vector_dpi(fig, dpi))
    plt.close(fig)
    for run in runs:
        run["clusters"], names = cluster_of_paths(clusters, run["paths"])
    title = title.replace("\nrows", f"\ncoloured and named by its {len(names)} clusters in feature space\nrows", 1)
    fig = plot_overview(runs, classes, panel_in, note=note, title=title, cluster_names=names)
    with atomic_path(clusters_png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
    plt.close(fig)
    LOGGER.info("wrote %s, %s and %s (%d panels)", png, pdf, clusters_png, len(runs))
