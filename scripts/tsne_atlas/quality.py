"""Image problems, one declaration per check (``CHECKS``): blurry, dark, light, low information, odd
aspect ratio, grayscale in a colour set, small. Each check scores one image (a number, written to
quality.csv) and flags it against one threshold of the config's ``quality`` section.

A check is a ``Check``: its problem ``name`` (quality.csv's ``problems`` column, the figure
``results/quality/<name>.png``), the ``column`` its score goes to, what the score ``measures``, the
``score`` function, the threshold's direction (``below``: flagged when the score is below the
threshold, else above; the setting is ``quality.<name>_below`` or ``quality.<name>_above``) and a
one-line ``description``. Adding a check is one entry of ``CHECKS`` and its key in the schema's
``quality`` section (tests/test_quality.py holds the two together and names what is missing).

Scores are computed on a copy of the image whose longer side is at most ``ANALYSIS_SIDE`` pixels
(``read_image``; size and aspect ratio from the file's own size), so a 24-megapixel photo costs about
what a thumbnail does; they are deterministic functions of the pixels (numpy only, no randomness).

The checks follow Cleanlab's cleanvision 0.3.7 (``issue_managers/image_property.py``) where it is
sensible, with its default thresholds; docs/outputs.md#image-problems says where and why they differ.

Two rules act on the whole sample (``flag``): a check failed by more than ``quality.max_share``
of the sample describes the collection (a set of grayscale digits, of 28-pixel silhouettes), not some
of its images, so no image is listed with it; and blurry is not listed for an image that is low
information (a blank image has no detail to be sharp or blurred; cleanvision's histogram term does the
same).

Kept free of heavy imports (Snakemake imports ``CHECKS`` on every invocation): numpy at module level,
Pillow inside ``read_image``.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

# Longer side of the copy every pixel score is computed on.
ANALYSIS_SIDE = 256
# EXIF orientations that turn the image by 90 degrees (width and height swap when upright).
TURNED = (5, 6, 7, 8)
EXIF_ORIENTATION = 0x0112


@dataclass
class QualityImage:
    """One image as the checks see it: ``rgb``, upright 8-bit RGB (H x W x 3) whose longer side is at
    most ANALYSIS_SIDE; ``width`` and ``height``, the file's own size (upright)."""

    rgb: np.ndarray
    width: int
    height: int

    @cached_property
    def luminance(self) -> np.ndarray:
        """Grey levels 0-255 (float64), ITU-R 601 weights as Pillow's ``convert("L")``."""
        r, g, b = (self.rgb[..., i].astype(np.float64) for i in range(3))
        return 0.299 * r + 0.587 * g + 0.114 * b

    @cached_property
    def brightness(self) -> np.ndarray:
        """Perceived brightness 0-1 of each pixel, cleanvision's ``calculate_brightness``:
        sqrt(0.241 R² + 0.691 G² + 0.068 B²) / 255."""
        r, g, b = (self.rgb[..., i].astype(np.float64) for i in range(3))
        return np.sqrt(0.241 * r * r + 0.691 * g * g + 0.068 * b * b) / 255.0


def sharpness(image: QualityImage) -> float:
    """How much fine detail there is for the contrast: the standard deviation of the luminance's
    4-neighbour Laplacian over the luminance's own standard deviation (at least 1 grey level). Blur
    removes the fine detail and keeps the contrast; darkening or fading scales both, so a dark image
    is not called blurry. 0 for an image under 3 pixels a side."""
    grey = image.luminance
    if min(grey.shape) < 3:
        return 0.0
    laplacian = 4.0 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(laplacian.std() / max(grey.std(), 1.0))


def brightness_p99(image: QualityImage) -> float:
    return float(np.percentile(image.brightness, 99))


def brightness_p5(image: QualityImage) -> float:
    return float(np.percentile(image.brightness, 5))


def entropy(image: QualityImage) -> float:
    """Shannon entropy in bits of the RGB histogram (the three channels' 256 bins each, counted
    together), as Pillow's ``Image.entropy()`` of an RGB image, which cleanvision scores."""
    counts = np.concatenate([np.bincount(image.rgb[..., i].ravel(), minlength=256) for i in range(3)])
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def aspect_ratio(image: QualityImage) -> float:
    """The shorter side over the longer (1 for a square), of the file's own size."""
    return min(image.width, image.height) / max(image.width, image.height)


def colourfulness(image: QualityImage) -> float:
    """Mean over the pixels of the spread of their channels, (max - min of R, G, B) / 255: 0 for an
    image whose every pixel is grey, whatever its file stores (RGB or L)."""
    rgb = image.rgb.astype(np.int16)
    return float((rgb.max(axis=2) - rgb.min(axis=2)).mean() / 255.0)


def size(image: QualityImage) -> float:
    """sqrt(width x height) of the file's own size in pixels (cleanvision's size score)."""
    return float(np.sqrt(image.width * image.height))


@dataclass(frozen=True)
class Check:
    """One image problem (see the module's docstring)."""

    name: str
    column: str
    measures: str
    score: Callable[[QualityImage], float]
    below: bool
    description: str
    # Not listed for an image that these checks flag (before the share rule).
    unless: tuple[str, ...] = ()

    @property
    def setting(self) -> str:
        """The threshold's key in the config's ``quality`` section."""
        return f"{self.name}_{'below' if self.below else 'above'}"

    def fails(self, score: float, threshold: float) -> bool:
        return score < threshold if self.below else score > threshold

    def rule_text(self, threshold: float) -> str:
        """``sharpness < 0.25``: the flagging rule, for figures and logs."""
        return f"{self.column} {'<' if self.below else '>'} {threshold:g}"


CHECKS: tuple[Check, ...] = (
    Check(
        "blurry",
        "sharpness",
        "std of the luminance's Laplacian / std of the luminance",
        sharpness,
        below=True,
        description="little fine detail for its contrast: out of focus, moved, or upscaled from a small image",
        unless=("low_information",),
    ),
    Check(
        "dark",
        "brightness_p99",
        "the 99th percentile of perceived brightness, 0-1",
        brightness_p99,
        below=True,
        description="even its brightest pixels are dark: underexposed or nearly black",
    ),
    Check(
        "light",
        "brightness_p5",
        "the 5th percentile of perceived brightness, 0-1",
        brightness_p5,
        below=False,
        description="even its darkest pixels are bright: overexposed, washed out or nearly white",
    ),
    Check(
        "low_information",
        "entropy",
        "entropy of the RGB histogram, in bits",
        entropy,
        below=True,
        description="a few colours make up nearly all of it: blank, flat or a solid fill",
    ),
    Check(
        "odd_aspect_ratio",
        "aspect_ratio",
        "shorter side / longer side of the file",
        aspect_ratio,
        below=True,
        description="far from square: a strip, a banner or a panorama, squeezed by a square network input",
    ),
    Check(
        "grayscale",
        "colourfulness",
        "mean spread of R, G and B per pixel, 0-1",
        colourfulness,
        below=True,
        description="no colour (grey pixels, whether stored as RGB or grayscale) where most images have some",
    ),
    Check(
        "small",
        "size",
        "sqrt(width x height) of the file, in pixels",
        size,
        below=True,
        description="few pixels: a thumbnail or an icon, upscaled to the network's input size",
    ),
)
CHECKS_BY_NAME = {check.name: check for check in CHECKS}


def read_image(path: str | os.PathLike, longest: int) -> QualityImage:
    """The image at ``path`` as the checks see it: upright 8-bit RGB (``images.to_rgb``), scaled down
    (box filter, aspect kept) so its longer side is at most ``longest`` (ANALYSIS_SIDE for the
    scores); width and height are the file's own, upright. A JPEG is decoded at 1/2 to 1/8 scale when
    that still leaves ``longest``.
    Raises Pillow's and the OS's errors for a file that cannot be read."""
    from PIL import Image

    from .images import to_rgb

    with Image.open(path) as image:
        width, height = image.size
        if image.getexif().get(EXIF_ORIENTATION) in TURNED:
            width, height = height, width
        image.draft("RGB", (longest, longest))
        rgb = to_rgb(image)
    scale = longest / max(rgb.size)
    if scale < 1:
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.Resampling.BOX)
    return QualityImage(np.asarray(rgb), width, height)


def image_scores(image: QualityImage) -> dict[str, float]:
    """Every check's score of one image, by column."""
    return {check.column: check.score(image) for check in CHECKS}


def thresholds_of(section: dict) -> dict[str, float]:
    """Each check's threshold by setting name, from the config's ``quality`` section (the rule's param)."""
    return {check.setting: section[check.setting] for check in CHECKS}


@dataclass
class Flags:
    """What the checks found in a sample. ``fails[name][i]``: image i fails the check (its threshold,
    then ``unless``); ``waived``: the checks failed by more than ``max_share`` of the sample, which are
    listed for no image."""

    fails: dict[str, list[bool]]
    waived: list[str]

    def listed(self, name: str) -> list[bool]:
        """Which images are listed with problem ``name``: none where the check is waived."""
        return [False] * len(self.fails[name]) if name in self.waived else self.fails[name]

    @property
    def problems(self) -> list[list[str]]:
        """Each image's listed problems, in CHECKS order."""
        listed = {check.name: self.listed(check.name) for check in CHECKS}
        n_images = len(next(iter(listed.values()), []))
        return [[check.name for check in CHECKS if listed[check.name][i]] for i in range(n_images)]


def flag(scores: list[dict[str, float]], thresholds: dict[str, float], max_share: float) -> Flags:
    """The problems of a sample from its scores (``image_scores`` of each image, in sample order):
    each check's threshold (``thresholds[check.setting]``), then ``unless`` (not for an image another
    named check flags), then the share rule (a check failed by more than ``max_share`` of the images
    is listed for none)."""
    raw = {
        check.name: [check.fails(row[check.column], thresholds[check.setting]) for row in scores] for check in CHECKS
    }
    fails = {
        check.name: [
            failed and not any(raw[other][i] for other in check.unless) for i, failed in enumerate(raw[check.name])
        ]
        for check in CHECKS
    }
    waived = [name for name, flags in fails.items() if sum(flags) > max_share * len(scores)]
    return Flags(fails, waived)
