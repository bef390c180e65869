"""Colours and notes shared by every figure, so a class has one colour everywhere."""

import colorsys

import matplotlib
import matplotlib.style
import numpy as np

RANDOM_WEIGHTS_NOTE = "RANDOM WEIGHTS: features come from an untrained network"
NOTE_COLOUR = "#bd1f01"


def _petroff10() -> list[str]:
    # Petroff's 10-colour cycle: chosen for colour-vision-deficiency accessibility.
    style = matplotlib.style.library["petroff10"]
    return list(style["axes.prop_cycle"].by_key()["color"])


MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
# Figures that cap how many images they show draw the same subsample for every run of a
# sweep (and the same as the metrics' at equal caps), so runs compare like with like.
SUBSAMPLE_RANDOM_STATE = 0


def fixed_subsample(n_points: int, max_images: int, random_state: int = SUBSAMPLE_RANDOM_STATE) -> np.ndarray:
    """Sorted indices of at most ``max_images`` points: all of them, or a fixed random subsample."""
    if n_points <= max_images:
        return np.arange(n_points)
    return np.sort(np.random.default_rng(random_state).choice(n_points, size=max_images, replace=False))


def subsample_note(shown: int, total: int, key: str) -> str | None:
    """Says that a figure shows a random subsample (None when it shows every image)."""
    if shown >= total:
        return None
    return f"showing a random {shown:,} of {total:,} images (fixed subsample; {key})"


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


def figure_title(meta: dict) -> str:
    return (
        f"t-SNE of {meta.get('model')} features, perplexity {meta['perplexity']:g}, seed {meta['seed']} "
        f"(N={meta['n_images']}, KL {meta['kl_divergence']:.3f})"
    )


def weights_note(meta: dict) -> str | None:
    """The note every figure carries when the network's weights were random."""
    return RANDOM_WEIGHTS_NOTE if meta.get("weights_random") else None


def add_note(fig, note: str | None) -> None:
    """Put ``note`` (the random-weights warning) under the figure, where layout keeps it clear of data."""
    if note:
        fig.supxlabel(note, color=NOTE_COLOUR, fontsize=10, fontweight="bold")


def note_legend(fig, handles, labels, note: str | None, ncols: int, fontsize: float = 9):
    """A legend under the figure; the random-weights note, when given, is its (red) title.

    Keeping the note inside the legend lets constrained layout reserve room for both.
    """
    legend = fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=fontsize,
                        frameon=False, title=note, title_fontsize=10)
    if note:
        legend.get_title().set_color(NOTE_COLOUR)
        legend.get_title().set_fontweight("bold")
    return legend
