"""Stage scatter: scatter plots of one run: coloured by class (PNG and SVG), by the network's own
top-1 prediction (PNG) when the features file stores predictions, else a plot saying why not, and by
the feature set's clusters with their names placed on the map (PNG; cluster_map.py)."""

import logging

import numpy as np

from .cluster_map import draw_cluster_points, draw_density, name_clusters
from .figure_style import (
    LEGEND_MARKER_AREA,
    PNG_METADATA,
    add_note,
    draw_classes,
    figure_title,
    marker_area,
    most_frequent,
    plt,
    save_figure,
    weights_note,
)
from .files.clusters import cluster_of_paths, read_summary
from .files.features import read_predictions
from .files.metrics import format_metric
from .files.runs import read_run
from .jobs import AtlasError, atomic_path

LOGGER = logging.getLogger("tsne_atlas.scatter")


def plot_scatter(
    coords: np.ndarray,
    labels: list[str],
    classes: list[str],
    title: str = "",
    note: str | None = None,
    point_size: float = 12.0,
    width_in: float = 8.0,
    legend_title: str = "class",
    density_contours: bool = False,
) -> plt.Figure:
    """Scatter ``coords`` coloured by class, equal aspect, legend outside the axes; with
    ``density_contours`` the map's density drawn under the points."""
    fig, ax = plt.subplots(figsize=(width_in, width_in * 0.8), layout="constrained")
    if density_contours:
        draw_density(ax, coords)
    draw_classes(ax, coords, labels, classes, point_size)
    # Over the whole figure, not the axes: a long title centred on the axes ran off the left edge.
    fig.suptitle(title, fontsize=10)
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=9,
        markerscale=max(1.0, (LEGEND_MARKER_AREA / marker_area(point_size, len(coords))) ** 0.5),
        title=legend_title,
        ncols=1 + (len(classes) - 1) // 25,  # long class lists wrap into columns
    )
    add_note(fig, note)
    return fig


def plot_predicted(
    coords: np.ndarray,
    predicted: list[str] | None,
    reason: str,
    title: str,
    note: str | None,
    point_size: float,
    width_in: float,
) -> plt.Figure:
    """The map coloured by the network's top-1 prediction; without predictions, grey with ``reason``."""
    if predicted is not None:
        labels, classes = most_frequent(predicted)
        return plot_scatter(coords, labels, classes, title, note, point_size, width_in, "predicted class (top-1)")
    fig, ax = plt.subplots(figsize=(width_in, width_in * 0.8), layout="constrained")
    ax.scatter(coords[:, 0], coords[:, 1], s=marker_area(point_size, len(coords)), color="0.8", linewidths=0)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    why = reason.removeprefix("none: ")
    ax.text(
        0.5,
        0.5,
        f"No predictions to colour by: {why}",
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=11,
        wrap=True,
        parse_math=False,
        bbox={"facecolor": "white", "edgecolor": "0.6"},
    )
    add_note(fig, note)
    return fig


def clusters_title(summary: dict) -> str:
    """What the cluster map's title says of its clusters: how many, how found, agreement with the labels."""
    agreement = (
        f"agreement with labels: ARI {format_metric(summary['adjusted_rand_index'])}, "
        f"NMI {format_metric(summary['normalized_mutual_info'])}"
        if summary["adjusted_rand_index"] is not None
        else "no labels to compare with"
    )
    return (
        f"{summary['n_clusters']} clusters in feature space (Leiden, {summary['neighbours']} neighbours, "
        f"resolution {summary['resolution']:g}); {agreement}"
    )


def plot_cluster_map(
    coords: np.ndarray,
    clusters: list[int],
    names: dict[int, str],
    title: str,
    note: str | None,
    point_size: float,
    width_in: float,
    density_contours: bool = False,
) -> plt.Figure:
    """The map coloured by cluster, the largest clusters' names placed on it (no legend: the names are)."""
    fig, ax = plt.subplots(figsize=(width_in, width_in * 0.8), layout="constrained")
    ax.set_title(title, fontsize=10)
    add_note(fig, note)
    draw_cluster_points(ax, coords, np.asarray(clusters), point_size, density_contours)
    fig.draw_without_rendering()  # the layout the names are placed in, without drawing any pixels
    name_clusters(ax, coords, np.asarray(clusters), names)
    return fig


def scatter(
    embedding: str,
    meta: str,
    manifest: str,
    features: str,
    clusters: str,
    clusters_summary: str,
    point_size: float,
    width_in: float,
    dpi: int,
    density_contours: bool,
    png: str,
    svg: str,
    predicted: str,
    cluster_map: str,
) -> None:
    """The scatter plots of one run (rule scatter): by class (``png``, ``svg``), by predicted class
    (``predicted``, from the predictions in ``features``) and by cluster, named (``cluster_map``)."""
    run = read_run(embedding, meta, manifest)
    title, note = figure_title(run.meta), weights_note(run.meta)
    fig = plot_scatter(
        run.coords, run.labels, run.classes, title, note, point_size, width_in, "class", density_contours
    )
    save_figure(fig, png, svg, dpi)
    of_paths, names = cluster_of_paths(clusters, run.paths)
    fig = plot_cluster_map(
        run.coords,
        of_paths,
        names,
        f"{title}\n{clusters_title(read_summary(clusters_summary))}",
        note,
        point_size,
        width_in,
        density_contours,
    )
    with atomic_path(cluster_map) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
    plt.close(fig)
    predictions, reason = read_predictions(features)
    top1 = predictions.top1()[0] if predictions is not None else None
    if predictions is not None and len(top1) != len(run.paths):
        raise AtlasError(f"{features} holds predictions for {len(top1)} images, {embedding} {len(run.paths)}; rerun")
    fig = plot_predicted(
        run.coords, top1, reason, f"{title}\ncoloured by the network's top-1 prediction", note, point_size, width_in
    )
    with atomic_path(predicted) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
    plt.close(fig)
    LOGGER.info("wrote %s, %s, %s (%s) and %s", png, svg, predicted, reason, cluster_map)
