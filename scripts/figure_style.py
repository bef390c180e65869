"""Colours and notes shared by every figure, so a class has one colour everywhere."""

import colorsys

import matplotlib
import matplotlib.style

RANDOM_WEIGHTS_NOTE = "RANDOM WEIGHTS: features come from an untrained network"


def _petroff10() -> list[str]:
    # Petroff's 10-colour cycle: chosen for colour-vision-deficiency accessibility.
    style = matplotlib.style.library["petroff10"]
    return list(style["axes.prop_cycle"].by_key()["color"])


def class_colours(n_classes: int) -> list[tuple[float, float, float]]:
    """``n_classes`` distinct RGB colours in [0, 1], stable for a given count.

    Petroff's accessible palette up to 10 classes, tab20 up to 20, then evenly
    spaced hues with alternating lightness.
    """
    if n_classes <= 10:
        hexes = _petroff10()[:n_classes]
        return [matplotlib.colors.to_rgb(h) for h in hexes]
    if n_classes <= 20:
        return [tuple(c[:3]) for c in matplotlib.colormaps["tab20"].colors[:n_classes]]
    golden = 0.618033988749895
    return [
        colorsys.hls_to_rgb((i * golden) % 1.0, 0.45 if i % 2 else 0.6, 0.75) for i in range(n_classes)
    ]


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
