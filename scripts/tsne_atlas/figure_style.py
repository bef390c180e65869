"""Colours, markers, notes and file settings shared by every figure, so a class has one colour
and a run one look everywhere."""

import colorsys

import matplotlib

matplotlib.use("Agg")  # figures are files: no display, same output everywhere
import matplotlib.pyplot as plt
import matplotlib.style
import numpy as np
from matplotlib.collections import PathCollection

from .files.runs import METHOD_NAMES, run_seed, settings_text
from .jobs import atomic_path
from .methods import MAP_METHODS

# Fixed metadata keeps SVG/PNG output byte-identical across runs.
SVG_METADATA = {"Date": None, "Creator": "tsne-atlas"}
PNG_METADATA = {"Software": "tsne-atlas"}
# Above this many points the markers shrink in proportion (area x FULL_SIZE_POINTS / N, down to
# MIN_MARKER_AREA points^2), so 100,000 points cover the plot no more than 10,000 do and dense
# clusters keep their inner structure instead of becoming solid blobs of the last class drawn.
FULL_SIZE_POINTS = 10_000
MIN_MARKER_AREA = 0.25
# Above this many points a map's points are drawn as one image inside its SVG or PDF (axes, legend and
# text stay vector; PNGs are drawn the same either way): an element per point made a 1,000,000-point
# scatter SVG ~100 MB. At or below it every vector file is as before, byte for byte.
RASTERIZE_ABOVE_POINTS = 100_000
# Legend markers keep one size (about 11.5 pt across) whatever the size of the data markers.
LEGEND_MARKER_AREA = 1600 / 12
PDF_METADATA = {"Creator": "tsne-atlas", "CreationDate": None, "Producer": None}
RANDOM_WEIGHTS_NOTE = "RANDOM WEIGHTS: features come from an untrained network"
NOTE_COLOUR = "#bd1f01"


def _petroff10() -> list[str]:
    # Petroff's 10-colour cycle: chosen for colour-vision-deficiency accessibility.
    style = matplotlib.style.library["petroff10"]
    return list(style["axes.prop_cycle"].by_key()["color"])


MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def class_colours(n_classes: int) -> list[tuple[float, float, float]]:
    """``n_classes`` distinct RGB colours in [0, 1], stable for a given count.

    Up to 10 classes: Petroff's palette, chosen for colour-vision-deficiency accessibility.
    Beyond 10 no palette stays safe by colour alone, so the same ten hues repeat at other
    lightness levels (dark, then light) and figures add marker shapes (``class_markers``)
    to tell repeated hues apart; past 30, hues are spread evenly.
    """
    base = [matplotlib.colors.to_rgb(h) for h in _petroff10()]
    if n_classes <= 10:
        return base[:n_classes]
    if n_classes <= 30:
        shades = [lambda c: c, lambda c: _shade(c, 0.55), lambda c: _tint(c, 0.5)]
        return [shades[i // 10](base[i % 10]) for i in range(n_classes)]
    golden = 0.618033988749895
    return [colorsys.hls_to_rgb((i * golden) % 1.0, 0.35 + 0.3 * (i % 3) / 2, 0.75) for i in range(n_classes)]


def class_markers(n_classes: int) -> list[str]:
    """A marker per class: circles up to 10 classes, then a new shape for each block of ten."""
    return [MARKERS[(i // 10) % len(MARKERS)] for i in range(n_classes)]


def _shade(rgb, factor):
    return tuple(c * factor for c in rgb)


def _tint(rgb, factor):
    return tuple(c + (1 - c) * factor for c in rgb)


def colour_bgr255(rgb: tuple[float, float, float]) -> tuple[int, int, int]:
    """An RGB colour in [0, 1] as OpenCV's BGR 0-255 tuple."""
    r, g, b = (int(round(255 * c)) for c in rgb)
    return (b, g, r)


def features_label(meta: dict) -> str:
    """A run's feature set as figures name it: its id, with the model and node when the id does not
    say them, e.g. ``resnet101``, ``pixels (precomputed (features.csv))``, ``deep (resnet18, node layer3)``."""
    features_id, model, node = meta.get("features"), meta.get("model"), meta.get("node")
    parts = [str(model)] if model and model != features_id else []
    if node and node not in ("penultimate", "precomputed") and not str(features_id).endswith(f".{node}"):
        parts.append(f"node {node}")
    return f"{features_id} ({', '.join(parts)})" if parts else str(features_id)


# A colour per method (plots that span methods), as each method declares it (Petroff's palette).
METHOD_COLOURS = {name: method.colour for name, method in MAP_METHODS.items()}


def figure_title(meta: dict) -> str:
    """``t-SNE of resnet101 features, perplexity 30, seed 0 (N=500, KL 0.693)``; UMAP's and PCA's alike,
    PCA with the share of the input's variance its two axes hold."""
    settings, seed = settings_text(meta), run_seed(meta)
    extras = [f"N={meta['n_images']}"]
    if meta.get("kl_divergence") is not None:
        extras.append(f"KL {meta['kl_divergence']:.3f}")
    if meta.get("explained_variance_ratio"):
        extras.append(" + ".join(f"{100 * r:.0f}%" for r in meta["explained_variance_ratio"]) + " of the variance")
    return (
        f"{METHOD_NAMES[meta['method']]} of {features_label(meta)} features"
        + (f", {settings}" if settings else "")
        + (f", seed {seed}" if seed is not None else "")
        + f" ({', '.join(extras)})"
    )


def weights_note(meta: dict) -> str | None:
    """The note every figure carries when the network's weights were random."""
    return RANDOM_WEIGHTS_NOTE if meta.get("weights_random") else None


def sets_weights_note(random_sets, sets) -> str | None:
    """The note of a figure that spans feature sets (``sets``): the plain note when all are random, the random
    ones named when some are (the demo's trained EfficientNet-Lite0 beside a random ResNet-101), else None."""
    random_sets = list(dict.fromkeys(random_sets))
    if not random_sets:
        return None
    if set(random_sets) >= set(sets):
        return RANDOM_WEIGHTS_NOTE
    return f"RANDOM WEIGHTS: the features of {', '.join(random_sets)} come from an untrained network"


def add_note(fig, note: str | None) -> None:
    """Put ``note`` (the random-weights warning) under the figure, where layout keeps it clear of data."""
    if note:
        fig.supxlabel(note, color=NOTE_COLOUR, fontsize=10, fontweight="bold")


def literal(text: str) -> str:
    """User text (a class or predicted class name) as matplotlib draws it literally: a pair of ``$``
    would otherwise start mathtext ("$x$" drawn as an italic x)."""
    return str(text).replace("$", r"\$")


def note_legend(fig, handles, labels, note: str | None, ncols: int, fontsize: float = 9):
    """A legend under the figure; the random-weights note, when given, is its (red) title.

    Keeping the note inside the legend lets constrained layout reserve room for both.
    """
    legend = fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=ncols,
        fontsize=fontsize,
        frameon=False,
        title=note,
        title_fontsize=10,
    )
    if note:
        legend.get_title().set_color(NOTE_COLOUR)
        legend.get_title().set_fontweight("bold")
    return legend


def marker_area(point_size: float, n_points: int) -> float:
    """Marker area in points^2 for ``n_points``: ``point_size`` up to FULL_SIZE_POINTS, then shrinking."""
    scaled = point_size * min(1.0, FULL_SIZE_POINTS / max(n_points, 1))
    return max(scaled, min(point_size, MIN_MARKER_AREA))


def draw_classes(ax, coords: np.ndarray, labels: list[str], classes: list[str], point_size: float) -> None:
    """One scatter per class (its colour and marker), equal aspect, no ticks: t-SNE axes have no units.

    ``point_size`` is the marker area for up to FULL_SIZE_POINTS points; more points get smaller markers.
    Above RASTERIZE_ABOVE_POINTS points the points are rasterized in vector files (``vector_dpi``).
    """
    colours, markers = class_colours(len(classes)), class_markers(len(classes))
    labels_arr = np.asarray(labels)
    size = marker_area(point_size, len(coords))
    rasterized = len(coords) > RASTERIZE_ABOVE_POINTS
    for index, name in enumerate(classes):
        mask = labels_arr == name
        ax.scatter(
            coords[mask, 0],
            coords[mask, 1],
            s=size,
            color=colours[index],
            marker=markers[index],
            label=f"{literal(name)} ({int(mask.sum())})",
            linewidths=0,
            alpha=0.85,
            rasterized=rasterized,
        )
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])


def vector_dpi(fig: plt.Figure, dpi: int) -> dict:
    """savefig's keywords for a vector file (SVG, PDF) of ``fig``: the PNG's ``dpi`` for the image of its
    rasterized points where it has some (``draw_classes``), else none, so that the file is as before.
    Only scatter points count: a colorbar's or heatmap's image is rasterized by matplotlib in any case."""
    rasterized = any(
        isinstance(artist, PathCollection) and artist.get_rasterized()
        for ax in fig.axes
        for artist in ax.get_children()
    )
    return {"dpi": dpi} if rasterized else {}


def save_figure(fig: plt.Figure, png: str, svg: str, dpi: int) -> None:
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
    with atomic_path(svg) as tmp:
        # A fixed hash salt makes SVG element ids reproducible.
        with plt.rc_context({"svg.hashsalt": "tsne-atlas"}):
            fig.savefig(tmp, format="svg", metadata=SVG_METADATA, **vector_dpi(fig, dpi))
    plt.close(fig)


# Figures coloured by something with many values (up to 1,000 predicted classes, a metadata column)
# colour the most frequent values and grey the rest.
MAX_COLOURED_CATEGORIES = 12
OTHER = "other"


def most_frequent(values: list[str], max_classes: int = MAX_COLOURED_CATEGORIES) -> tuple[list[str], list[str]]:
    """Each image's value (a predicted class, a metadata value), the ``max_classes`` most frequent kept
    (ties by name) and the rest ``other``; returns (labels, classes in legend order: most frequent first,
    ``other`` last)."""
    counts: dict[str, int] = {}
    for name in values:
        counts[name] = counts.get(name, 0) + 1
    kept = sorted(counts, key=lambda name: (-counts[name], name))[:max_classes]
    labels = [name if name in kept else OTHER for name in values]
    return labels, kept + ([OTHER] if len(counts) > len(kept) else [])
