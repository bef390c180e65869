"""Maps that name their clusters: points coloured by cluster (files/clusters.py) with each cluster's name
placed on the map, clear of the other names, and optional density contours.

Placement is a few lines of greedy search rather than DataMapPlot (which pulls dask and datashader):
clusters in size order, each name tried at its cluster's anchor (the member nearest the cluster's
median on the map, so a name sits on its points even for a crescent) and then at offsets on growing
rings around it, taking the first spot whose box overlaps no name already placed and stays inside the
axes; a name moved off its anchor gets a thin leader line. Deterministic: the same map gives the same
figure. The names, not the colours, say which cluster is which, so the figure reads in grey and for
every colour vision; the colours are Petroff's accessible palette (figure_style.class_colours).
"""

import numpy as np
from matplotlib import patheffects

from .figure_style import draw_classes, literal

# Names of the largest clusters only: at most this many, and none for a cluster under this share of
# the images (a thousand-image map of 300 clusters would be all text).
MAX_NAMES = 40
MIN_NAME_SHARE = 0.005
NAME_FONTSIZE = 9
# Candidate offsets: rings of RING_POINTS points around the anchor, RING_STEP points apart.
RINGS = 40
RING_STEP = 6.0
RING_POINTS = 16
# Density contours: a histogram of the map on a GRID x GRID lattice, smoothed by a Gaussian of
# SMOOTHING cells, drawn at these fractions of its peak.
GRID = 200
SMOOTHING = 4.0
CONTOUR_LEVELS = (0.05, 0.15, 0.35, 0.6)


def anchors(coords: np.ndarray, clusters: np.ndarray, count: int) -> np.ndarray:
    """Where each of clusters 0..count-1 is named (count, 2): its member nearest the members' median."""
    found = np.empty((count, 2))
    for number in range(count):
        members = coords[clusters == number]
        median = np.median(members, axis=0)
        found[number] = members[np.argmin(np.linalg.norm(members - median, axis=1))]
    return found


def named_clusters(sizes: np.ndarray) -> list[int]:
    """The clusters that get a name on the map: the MAX_NAMES largest holding MIN_NAME_SHARE of the images."""
    order = np.lexsort((np.arange(len(sizes)), -sizes))
    total = sizes.sum()
    return [int(c) for c in order[:MAX_NAMES] if sizes[c] >= MIN_NAME_SHARE * total]


def name_texts(names: dict[int, str], shown: list[int]) -> dict[int, str]:
    """The text of each shown cluster: its name, with its number where several share the name (a class
    split into two clusters)."""
    counts: dict[str, int] = {}
    for number in shown:
        counts[names[number]] = counts.get(names[number], 0) + 1
    return {n: names[n] if counts[names[n]] == 1 else f"{names[n]} (#{n})" for n in shown}


def ring_offsets() -> list[tuple[float, float]]:
    """Offsets in points from an anchor, nearest first: the anchor itself, then the rings."""
    offsets = [(0.0, 0.0)]
    for ring in range(1, RINGS + 1):
        angles = 2 * np.pi * (np.arange(RING_POINTS) + 0.5 * (ring % 2)) / RING_POINTS
        radius = ring * RING_STEP
        # Wider than tall: names are, so horizontal moves are cheaper.
        offsets += [(1.6 * radius * np.cos(a), radius * np.sin(a)) for a in angles]
    return offsets


def place_names(
    ax, points: np.ndarray, texts: list[str], fontsize: float = NAME_FONTSIZE, drop_unplaced: bool = False
) -> list:
    """Put ``texts`` at ``points`` (data coordinates), in the given order (most important first), each
    at the first candidate offset where its box overlaps no earlier one and lies inside the axes. A
    name with no free spot stays on its anchor, or with ``drop_unplaced`` is left out (a small panel
    whose legend lists every cluster). Call after the figure's layout is fixed (``fig.draw_without_rendering()``).
    Returns the annotations placed; their boxes do not overlap unless one had no free spot."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    placed, annotations = [], []
    pad = 2 * fig.dpi / 72.0  # 2 points
    for point, text in zip(points, texts):
        note = ax.annotate(
            literal(text),
            xy=point,
            xytext=(0, 0),
            textcoords="offset points",
            ha="center",
            va="center",
            fontsize=fontsize,
            fontweight="bold",
            color="0.1",
            zorder=5,
            annotation_clip=False,
        )
        note.set_in_layout(False)
        note.set_path_effects([patheffects.withStroke(linewidth=3, foreground="white")])
        best = None
        for dx, dy in ring_offsets():
            note.set_position((dx, dy))
            box = note.get_window_extent(renderer).padded(pad)
            if box.x0 < inside.x0 or box.x1 > inside.x1 or box.y0 < inside.y0 or box.y1 > inside.y1:
                continue
            if not any(box.overlaps(other) for other in placed):
                best = (dx, dy, box)
                break
        if best is None and drop_unplaced:
            note.remove()
            continue
        if best is None:  # no free spot within the rings: keep it on its anchor
            note.set_position((0, 0))
            best = (0.0, 0.0, note.get_window_extent(renderer).padded(pad))
        dx, dy, box = best
        if (dx, dy) != (0.0, 0.0):
            ax.annotate(
                "",
                xy=point,
                xytext=(dx, dy),
                textcoords="offset points",
                arrowprops={"arrowstyle": "-", "color": "0.3", "linewidth": 0.7, "shrinkA": 0, "shrinkB": 0},
                zorder=4,
                annotation_clip=False,
            ).set_in_layout(False)
        placed.append(box)
        annotations.append(note)
    return annotations


def density_grid(coords: np.ndarray, grid: int = GRID, smoothing: float = SMOOTHING):
    """(x centres, y centres, density) of the map: a 2-D histogram smoothed by a Gaussian, scaled to a
    peak of 1. A histogram, not a kernel density estimate, so a million points cost one pass."""
    from scipy.ndimage import gaussian_filter

    lo, hi = coords.min(axis=0), coords.max(axis=0)
    pad = 0.05 * np.maximum(hi - lo, 1e-12)
    edges = [np.linspace(lo[d] - pad[d], hi[d] + pad[d], grid + 1) for d in range(2)]
    counts, _, _ = np.histogram2d(coords[:, 0], coords[:, 1], bins=edges)
    density = gaussian_filter(counts, smoothing, mode="constant")
    density /= max(density.max(), 1e-12)
    centres = [(e[:-1] + e[1:]) / 2 for e in edges]
    return centres[0], centres[1], density.T


def draw_density(ax, coords: np.ndarray) -> None:
    """Density contours of the map under its points (grey lines at CONTOUR_LEVELS of the peak)."""
    x, y, density = density_grid(coords)
    ax.contour(x, y, density, levels=CONTOUR_LEVELS, colors="0.45", linewidths=0.7, zorder=0)


def draw_cluster_points(
    ax, coords: np.ndarray, clusters: np.ndarray, point_size: float, density_contours: bool = False
) -> None:
    """The map's points coloured by cluster (0 .. max), density contours under them if asked."""
    if density_contours:
        draw_density(ax, coords)
    count = int(np.max(clusters)) + 1
    draw_classes(ax, coords, [str(c) for c in clusters], [str(c) for c in range(count)], point_size)


def name_clusters(
    ax,
    coords: np.ndarray,
    clusters: np.ndarray,
    names: dict[int, str],
    fontsize: float = NAME_FONTSIZE,
    drop_unplaced: bool = False,
) -> list:
    """The largest clusters' names placed on the map (after the layout is fixed); returns the annotations."""
    clusters = np.asarray(clusters)
    count = int(clusters.max()) + 1
    shown = named_clusters(np.bincount(clusters, minlength=count))
    texts = name_texts(names, shown)
    where = anchors(coords, clusters, count)
    return place_names(ax, where[shown], [texts[n] for n in shown], fontsize, drop_unplaced)
