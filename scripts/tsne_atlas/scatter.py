"""Stage scatter: class-coloured scatter plot of one run, PNG and SVG."""

import logging

import numpy as np

from .figure_style import (
    LEGEND_MARKER_AREA,
    add_note,
    draw_classes,
    figure_title,
    marker_area,
    plt,
    save_figure,
    weights_note,
)
from .files.runs import read_run

LOGGER = logging.getLogger("tsne_atlas.scatter")


def plot_scatter(
    coords: np.ndarray,
    labels: list[str],
    classes: list[str],
    title: str = "",
    note: str | None = None,
    point_size: float = 12.0,
    width_in: float = 8.0,
) -> plt.Figure:
    """Scatter ``coords`` coloured by class, equal aspect, legend outside the axes."""
    fig, ax = plt.subplots(figsize=(width_in, width_in * 0.8), layout="constrained")
    draw_classes(ax, coords, labels, classes, point_size)
    ax.set_title(title, fontsize=10)
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=9,
        markerscale=max(1.0, (LEGEND_MARKER_AREA / marker_area(point_size, len(coords))) ** 0.5),
        title="class",
        ncols=1 + (len(classes) - 1) // 25,  # long class lists wrap into columns
    )
    add_note(fig, note)
    return fig


def scatter(
    embedding: str, meta: str, manifest: str, point_size: float, width_in: float, dpi: int, png: str, svg: str
) -> None:
    """The scatter plot of one run (rule scatter)."""
    run = read_run(embedding, meta, manifest)
    fig = plot_scatter(
        run.coords, run.labels, run.classes, figure_title(run.meta), weights_note(run.meta), point_size, width_in
    )
    save_figure(fig, png, svg, dpi)
    LOGGER.info("wrote %s and %s", png, svg)
