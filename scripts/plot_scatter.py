"""Stage 4, scatter: class-coloured scatter plot of one embedding, PNG and SVG."""

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from figure_style import add_note, class_colours, class_markers, figure_title, weights_note  # noqa: E402
from run_tsne import read_embedding  # noqa: E402
from workflow_utils import atomic_path, job_log  # noqa: E402

LOGGER = logging.getLogger("tsne_atlas.plot_scatter")
# Fixed metadata keeps SVG/PNG output byte-identical across runs.
SVG_METADATA = {"Date": None, "Creator": "tsne-atlas"}
PNG_METADATA = {"Software": "tsne-atlas"}
# Above this many points the markers shrink in proportion (area x FULL_SIZE_POINTS / N, down to
# MIN_MARKER_AREA points^2), so 100,000 points cover the plot no more than 10,000 do and dense
# clusters keep their inner structure instead of becoming solid blobs of the last class drawn.
FULL_SIZE_POINTS = 10_000
MIN_MARKER_AREA = 0.25
# Legend markers keep one size (about 11.5 pt across) whatever the size of the data markers.
LEGEND_MARKER_AREA = 1600 / 12


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
        loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9,
        markerscale=max(1.0, (LEGEND_MARKER_AREA / marker_area(point_size, len(coords))) ** 0.5), title="class",
        ncols=1 + (len(classes) - 1) // 25,  # long class lists wrap into columns
    )
    add_note(fig, note)
    return fig


def marker_area(point_size: float, n_points: int) -> float:
    """Marker area in points^2 for ``n_points``: ``point_size`` up to FULL_SIZE_POINTS, then shrinking."""
    scaled = point_size * min(1.0, FULL_SIZE_POINTS / max(n_points, 1))
    return max(scaled, min(point_size, MIN_MARKER_AREA))


def draw_classes(ax, coords: np.ndarray, labels: list[str], classes: list[str], point_size: float) -> None:
    """One scatter per class (its colour and marker), equal aspect, no ticks: t-SNE axes have no units.

    ``point_size`` is the marker area for up to FULL_SIZE_POINTS points; more points get smaller markers.
    """
    colours, markers = class_colours(len(classes)), class_markers(len(classes))
    labels_arr = np.asarray(labels)
    size = marker_area(point_size, len(coords))
    for index, name in enumerate(classes):
        mask = labels_arr == name
        ax.scatter(
            coords[mask, 0], coords[mask, 1], s=size, color=colours[index], marker=markers[index],
            label=f"{name} ({int(mask.sum())})", linewidths=0, alpha=0.85,
        )
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])


def save_figure(fig: plt.Figure, png: str, svg: str, dpi: int = 150) -> None:
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
    with atomic_path(svg) as tmp:
        # A fixed hash salt makes SVG element ids reproducible.
        with plt.rc_context({"svg.hashsalt": "tsne-atlas"}):
            fig.savefig(tmp, format="svg", metadata=SVG_METADATA)
    plt.close(fig)


def render_scatter(embedding: str, meta_json: str, png: str, svg: str, point_size=12.0, width_in=8.0, dpi=150):
    meta = json.loads(Path(meta_json).read_text(encoding="utf-8"))
    _, labels, coords = read_embedding(embedding)
    fig = plot_scatter(coords, labels, meta["classes"], figure_title(meta), weights_note(meta), point_size, width_in)
    save_figure(fig, png, svg, dpi)
    LOGGER.info("wrote %s and %s", png, svg)


def main(snakemake) -> None:
    params = snakemake.params
    with job_log(snakemake.log[0]):
        render_scatter(
            snakemake.input.embedding, snakemake.input.meta, snakemake.output.png, snakemake.output.svg,
            point_size=float(params.point_size), width_in=float(params.width_in), dpi=int(params.dpi),
        )


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
