"""Stage image_quality: every sampled image scored by the checks of ``quality.CHECKS``, the table
``quality/quality.csv`` (``files.quality``) and one figure per problem, ``quality/<problem>.png``: the
worst flagged images as thumbnails, each with its path, label and score.

It reads the sample only (no features, no network): one job per sample, whatever the feature sets.
Labels and paths are user text: every text call passes ``parse_math=False``, and long ones are cut
with an ellipsis (a path keeps its end, the file name).
"""

import logging
import os
import re
import time
from pathlib import Path

import matplotlib.pyplot as plt

from .figure_style import NOTE_COLOUR, PNG_METADATA
from .jobs import AtlasError, atomic_path
from .quality import ANALYSIS_SIDE, CHECKS, Check, Flags, flag, image_scores, read_image

LOGGER = logging.getLogger("tsne_atlas.image_quality")
DPI = 100
COLUMNS = 6
# Layout in pixels (at DPI): gaps, the title band (two lines), the note band, the text under a thumbnail.
GAP = 12
MIN_CELL_W = 150
TITLE_H = 58
NOTE_H = 24
TEXT_LINE_H = 12
FONT_SIZE = 7.5
FRAME_COLOUR = "#999999"


def open_image(root: str | os.PathLike, path: str, longest: int):
    """``quality.read_image`` of ``root/path``; a file gone or broken since sampling is one line naming it."""
    full = Path(root) / path
    try:
        return read_image(full, longest)
    except FileNotFoundError:
        raise AtlasError(
            f"{full}: image listed in the sample is missing; restore it or rerun the workflow from sampling"
        ) from None
    except (OSError, SyntaxError, ValueError) as err:  # PIL's UnidentifiedImageError is an OSError
        raise AtlasError(f"{full}: not a readable image ({err}); replace or remove it and rerun") from None


def one_line(text: str) -> str:
    return re.sub(r"[\r\n\t\v\f]+", " ", str(text)).strip()


def fit_text(fig, artist, text: str, max_px: float, keep_end: bool = False) -> None:
    """Set ``artist`` to ``text`` on one line, cut with an ellipsis (at the start when ``keep_end``)
    to at most ``max_px`` pixels wide, measured with the figure's renderer."""
    line = one_line(text)
    renderer = fig.canvas.get_renderer()

    def fits(n_chars: int) -> bool:
        shown = line if n_chars >= len(line) else ("…" + line[-n_chars:] if keep_end else line[:n_chars] + "…")
        artist.set_text(shown)
        return artist.get_window_extent(renderer).width <= max_px

    if fits(len(line)):
        return
    low, high = 0, len(line)  # fits(high) is false; fits(0), the ellipsis alone, is assumed
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    fits(low)


def worst_first(check: Check, indices: list[int], scores: list[dict], paths: list[str]) -> list[int]:
    """``indices`` from the most extreme score (lowest for a below check, else highest), ties by path."""
    sign = 1.0 if check.below else -1.0
    return sorted(indices, key=lambda i: (sign * scores[i][check.column], paths[i]))


def figure_title(check: Check, count: int, n_images: int, threshold: float) -> tuple[str, str]:
    name = check.name.replace("_", " ").capitalize()
    return (
        f"{name}: {count} of {n_images} images ({check.rule_text(threshold)})",
        f"{check.description}; {check.column} = {check.measures}",
    )


def draw_problem(
    check: Check,
    shown: list[int],
    count: int,
    waived: bool,
    paths: list[str],
    labels: list[str] | None,
    scores: list[dict],
    root: str | os.PathLike,
    threshold: float,
    max_share: float,
    thumb_size: int,
):
    """The figure of one check: the ``shown`` images (worst first) as a grid of thumbnails, each with its
    path, label (``labels`` None: unlabelled) and score; or a panel saying that none is flagged."""
    n_images = len(paths)
    title, subtitle = figure_title(check, count, n_images, threshold)
    note = None
    if waived:
        note = (
            f"Listed for no image: {count} of {n_images} fail it, more than quality.max_share ({max_share:g}) "
            f"of the sample, so it describes the collection. The worst are shown."
        )
    cell_w = max(thumb_size, MIN_CELL_W) + GAP
    n_text = 3 if labels is not None else 2
    cell_h = thumb_size + n_text * TEXT_LINE_H + GAP
    n_rows = -(-len(shown) // COLUMNS)
    width = COLUMNS * cell_w + GAP
    body = n_rows * cell_h if shown else 70
    height = TITLE_H + (NOTE_H if note else 0) + body + GAP
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    heading = fig.text(0.5, 1 - 10 / height, "", ha="center", va="top", fontsize=11, parse_math=False)
    fit_text(fig, heading, title, width - 2 * GAP)
    sub = fig.text(0.5, 1 - 32 / height, "", ha="center", va="top", fontsize=8, parse_math=False)
    fit_text(fig, sub, subtitle, width - 2 * GAP)
    top = TITLE_H
    if note:
        artist = fig.text(0.5, 1 - (top + 4) / height, "", ha="center", va="top", fontsize=8.5, color=NOTE_COLOUR)
        fit_text(fig, artist, note, width - 2 * GAP)
        top += NOTE_H
    if not shown:
        lowest = worst_first(check, list(range(n_images)), scores, paths)[:1]
        closest = (
            f"; the closest: {paths[lowest[0]]}, {check.column} {scores[lowest[0]][check.column]:.3f}" if lowest else ""
        )
        artist = fig.text(0.5, 1 - (top + 35) / height, "", ha="center", va="center", fontsize=10, parse_math=False)
        fit_text(fig, artist, f"No images flagged: none has {check.rule_text(threshold)}{closest}", width - 2 * GAP)
    for k, i in enumerate(shown):
        row, col = divmod(k, COLUMNS)
        left = GAP + col * cell_w + (cell_w - GAP - thumb_size) / 2
        y = top + row * cell_h
        ax = fig.add_axes((left / width, 1 - (y + thumb_size) / height, thumb_size / width, thumb_size / height))
        ax.imshow(open_image(root, paths[i], thumb_size).rgb, interpolation="none")
        ax.set_anchor("S")  # a wide image sits on its text, not in the middle of the cell
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():  # a thin frame: a white image still shows its edges
            spine.set_color(FRAME_COLOUR)
            spine.set_linewidth(0.8)
        lines = [(paths[i], True)]
        if labels is not None:
            lines.append((labels[i], False))
        lines.append((f"{check.column} {scores[i][check.column]:.3f}", False))
        for n, (text, keep_end) in enumerate(lines):
            artist = fig.text(
                (GAP + col * cell_w + (cell_w - GAP) / 2) / width,
                1 - (y + thumb_size + 3 + n * TEXT_LINE_H) / height,
                "",
                ha="center",
                va="top",
                fontsize=FONT_SIZE,
                parse_math=False,
            )
            fit_text(fig, artist, text, cell_w - GAP, keep_end=keep_end)
    return fig


def write_figure(fig, png: str | os.PathLike, title: str) -> None:
    """Write ``fig`` atomically with fixed metadata and ``title`` as the PNG's Title (the same figure gives
    the same bytes), then close it."""
    try:
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, metadata={**PNG_METADATA, "Title": title})
    finally:
        plt.close(fig)


def log_flags(flags: Flags, thresholds: dict, n_images: int, max_share: float) -> None:
    for check in CHECKS:
        count = sum(flags.fails[check.name])
        rule = check.rule_text(thresholds[check.setting])
        if check.name in flags.waived:
            LOGGER.info(
                "%s: %d of %d images (%s), more than quality.max_share %g of the sample: listed for none",
                check.name,
                count,
                n_images,
                rule,
                max_share,
            )
        else:
            LOGGER.info("%s: %d of %d images (%s)", check.name, count, n_images, rule)


def image_quality(
    images: str,
    manifest: str,
    root: str,
    thresholds: dict,
    max_share: float,
    thumb_size: int,
    max_images: int,
    quality: str,
    figures: list[str],
) -> None:
    """Score every sampled image, write quality.csv (``quality``) and one figure per check (``figures``,
    in CHECKS order) of at most ``max_images`` flagged images (rule image_quality)."""
    from .files.manifest import read_images, sample_labels
    from .files.quality import write_quality

    if len(figures) != len(CHECKS):
        raise ValueError(f"image_quality: {len(figures)} figure paths for {len(CHECKS)} checks")
    paths, _ = read_images(images)
    labelling = sample_labels(manifest, paths, images)
    began = time.perf_counter()
    scored = []
    for path in paths:
        image = open_image(root, path, ANALYSIS_SIDE)
        scored.append({"width": image.width, "height": image.height, **image_scores(image)})
    flags = flag(scored, thresholds, max_share)
    LOGGER.info("scored %d images in %.1f s", len(paths), time.perf_counter() - began)
    log_flags(flags, thresholds, len(paths), max_share)
    write_quality(
        quality,
        [
            {"path": path, "label": label, **row, "problems": problems}
            for path, label, row, problems in zip(paths, labelling.labels, scored, flags.problems)
        ],
    )
    labels = labelling.labels if labelling.labelled else None
    for check, png in zip(CHECKS, figures):
        failing = [i for i, failed in enumerate(flags.fails[check.name]) if failed]
        shown = worst_first(check, failing, scored, paths)[:max_images]
        fig = draw_problem(
            check,
            shown,
            len(failing),
            check.name in flags.waived,
            paths,
            labels,
            scored,
            root,
            thresholds[check.setting],
            max_share,
            thumb_size,
        )
        write_figure(fig, png, figure_title(check, len(failing), len(paths), thresholds[check.setting])[0])
