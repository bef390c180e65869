"""Figures of the "which images look wrong" tables: one row per listed image, the image itself
framed in red, then its nearest neighbours (or its duplicates), each with its label and a number.

Labels and paths are user text: every text call passes ``parse_math=False`` so "$x$" or "a_b" is
drawn as written, and long names are cut with an ellipsis so they never run into the next image.
"""

import os
import re
from pathlib import Path

import matplotlib.pyplot as plt

from .canvas import load_thumbnail
from .figure_style import NOTE_COLOUR, PNG_METADATA
from .jobs import atomic_path

MAX_ROWS = 12
MAX_NEIGHBOURS = 6
DPI = 100
# Layout in pixels (at DPI): gaps between cells, the caption column, the title and note bands.
GAP = 10
CAPTION_W = 210
TITLE_H = 44
NOTE_H = 30
TEXT_H = 30  # two lines of small text under each thumbnail
FONT_SIZE = 7.5
CAPTION_SIZE = 8
CAPTION_LINE_H = 15  # pixels between caption lines
TEXT_LINE_H = 12  # pixels between the two lines under a thumbnail
QUERY_RED = "#d62728"


def shorten(text: str, max_chars: int, keep_end: bool = False) -> str:
    """``text`` on one line, cut to ``max_chars`` with an ellipsis (at the start when ``keep_end``,
    which keeps a path's file name)."""
    text = re.sub(r"[\r\n\t\v\f]+", " ", str(text)).strip()  # one line; deliberate double spaces stay
    if len(text) <= max_chars:
        return text
    cut = max(1, max_chars - 1)
    return "…" + text[-cut:] if keep_end else text[:cut] + "…"


def thumbnail_rgb(root: str | os.PathLike, path: str, thumb_size: int):
    """The image at ``root/path`` as an RGB array whose longer side is ``thumb_size`` (aspect kept)."""
    return load_thumbnail(Path(root) / path, thumb_size)[:, :, ::-1]


def draw_thumbnail(fig, image, box: tuple[float, float, float, float], framed: bool) -> None:
    """One thumbnail in the figure-fraction ``box``; the image that a row is about gets a red frame."""
    ax = fig.add_axes(box)
    ax.imshow(image, interpolation="none")  # aspect "equal" shrinks the box to the image: the frame fits it
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(framed)
        spine.set_color(QUERY_RED)
        spine.set_linewidth(3)


def draw_empty(fig_title: str, message: str, note: str | None):
    """A small figure that says why there is nothing to show."""
    fig = plt.figure(figsize=(7, 1.8), dpi=DPI)
    fig.text(0.5, 0.82, shorten(fig_title, 110), ha="center", va="top", fontsize=11, parse_math=False)
    fig.text(0.5, 0.45, shorten(message, 110), ha="center", va="center", fontsize=10, parse_math=False)
    if note:
        fig.text(0.5, 0.08, note, ha="center", va="bottom", color=NOTE_COLOUR, fontsize=9, parse_math=False)
    return fig


def fit_text(fig, artist, text: str, max_px: float, keep_end: bool = False) -> None:
    """Set ``artist`` (a matplotlib Text) to ``text`` on one line, cut with an ellipsis to ``max_px`` pixels wide.

    Measured with the figure's renderer, not counted in characters: "WWWW" is three times as wide as "iiii".
    """
    renderer = fig.canvas.get_renderer()
    line = shorten(text, len(text) + 1)

    def fits(n_chars: int) -> bool:
        artist.set_text(shorten(line, n_chars, keep_end))
        return artist.get_window_extent(renderer).width <= max_px

    if fits(len(line)):
        return
    low, high = 1, len(line)  # fits(low) is assumed (one character and the ellipsis), fits(high) is false
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    fits(low)


def draw_rows(rows: list, root, title: str, thumb_size: int, note: str | None):
    """The figure of non-empty ``rows`` (see ``draw_neighbour_rows``)."""
    n_cols = 1 + max(len(neighbours) for *_, neighbours in rows)
    cell_w, cell_h = thumb_size + GAP, thumb_size + TEXT_H + GAP
    # An extra gap after the image itself sets it apart from its neighbours.
    width = CAPTION_W + n_cols * cell_w + GAP + GAP
    height = TITLE_H + len(rows) * cell_h + (NOTE_H if note else 0) + GAP
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    heading = fig.text(0.5, 1 - 12 / height, "", ha="center", va="top", fontsize=11, parse_math=False)
    fit_text(fig, heading, title, width - 2 * GAP)
    for r, (path, label, caption, neighbours) in enumerate(rows):
        top = TITLE_H + r * cell_h
        lines = [*str(caption).splitlines(), path]
        for n, line in enumerate(lines):
            # The caption's lines, centred on the thumbnail's height; the last one is the image's path.
            y = top + thumb_size / 2 + (n - (len(lines) - 1) / 2) * CAPTION_LINE_H
            artist = fig.text(GAP / width, 1 - y / height, "", va="center", fontsize=CAPTION_SIZE, parse_math=False)
            fit_text(fig, artist, line, CAPTION_W - 2 * GAP, keep_end=n == len(lines) - 1)
        cells = [(path, label, ""), *neighbours]
        for c, (cell_path, cell_label, number) in enumerate(cells):
            left = CAPTION_W + c * cell_w + (GAP if c else 0)
            box = (left / width, 1 - (top + thumb_size) / height, thumb_size / width, thumb_size / height)
            draw_thumbnail(fig, thumbnail_rgb(root, cell_path, thumb_size), box, framed=c == 0)
            for n, text in enumerate([cell_label, number] if number else [cell_label]):
                artist = fig.text(
                    (left + thumb_size / 2) / width,
                    1 - (top + thumb_size + 4 + n * TEXT_LINE_H) / height,
                    "",
                    ha="center",
                    va="top",
                    fontsize=FONT_SIZE,
                    color=QUERY_RED if c == 0 else "black",
                    parse_math=False,
                )
                fit_text(fig, artist, text, cell_w - 4)
    if note:
        fig.text(
            0.5, (NOTE_H / 2) / height, note, ha="center", va="center", color=NOTE_COLOUR, fontsize=9, parse_math=False
        )
    return fig


def draw_neighbour_rows(
    rows: list,
    root: str | os.PathLike,
    png: str | os.PathLike,
    title: str,
    thumb_size: int,
    note: str | None = None,
    empty: str = "nothing to show",
) -> None:
    """Write ``png``: one row per entry of ``rows``, at most MAX_ROWS rows and MAX_NEIGHBOURS neighbours each.

    Each row is (path, label, caption, [(neighbour_path, neighbour_label, number_text), ...]);
    paths are relative to ``root``. The caption (e.g. "#1  disagreement 1.00", newlines allowed)
    stands left of the row with the image's path under it; the image (framed in red) and each
    neighbour have their label, and the neighbour its number, underneath. ``note`` (the
    random-weights warning) goes at the bottom; with no rows the figure says ``empty``.
    The PNG is written atomically with fixed metadata, so the same rows give the same bytes.
    """
    rows = [(p, lab, cap, list(nbrs)[:MAX_NEIGHBOURS]) for p, lab, cap, nbrs in rows[:MAX_ROWS]]
    fig = draw_rows(rows, root, title, thumb_size, note) if rows else draw_empty(title, empty, note)
    try:
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, metadata=PNG_METADATA)
    finally:
        plt.close(fig)


def neighbour_cells(row: dict) -> list[tuple[str, str, str]]:
    """A suspects.csv or outliers.csv row's neighbours as figure cells: (path, label, distance text)."""
    return [
        (path, label, f"distance {distance:.2f}")
        for path, label, distance in zip(row["neighbours"], row["neighbour_labels"], row["neighbour_distances"])
    ]


def suspect_figure_rows(rows: list[dict]) -> list[tuple]:
    """Rows of ``draw_neighbour_rows`` from suspects.csv rows: each image with its k nearest neighbours."""
    return [
        (
            row["path"],
            row["label"],
            f"#{row['rank']}  disagreement {row['disagreement']:.2f}\n"
            f"majority: {shorten(row['majority_label'], 20)}\n"
            f"weighted agreement {row['agreement_weighted']:.2f}",
            neighbour_cells(row),
        )
        for row in rows[:MAX_ROWS]
    ]


def outlier_figure_rows(rows: list[dict]) -> list[tuple]:
    """Rows of ``draw_neighbour_rows`` from outliers.csv rows: each image with its k nearest neighbours."""
    return [
        (
            row["path"],
            row["label"],
            f"#{row['rank']}  outlier score {row['outlier_score']:.2f}\n"
            f"relative {row['relative_distance']:.2f}, wide {row['wide_relative_distance']:.2f}",
            neighbour_cells(row),
        )
        for row in rows[:MAX_ROWS]
    ]


def duplicate_figure_rows(rows: list[dict]) -> list[tuple]:
    """Rows of ``draw_neighbour_rows`` from duplicates.csv rows: each ``path_a`` with its duplicates, in table order."""
    grouped: dict[str, tuple] = {}
    for row in rows:
        if row["path_a"] not in grouped:
            if len(grouped) == MAX_ROWS:
                continue
            caption = "exact duplicate" if row["kind"] == "exact" else "near-duplicate"
            grouped[row["path_a"]] = (row["path_a"], row["label_a"], caption, [])
        number = "same file" if row["kind"] == "exact" else f"cosine {row['cosine']:.3f}"
        grouped[row["path_a"]][3].append((row["path_b"], row["label_b"], number))
    return list(grouped.values())


def suspects_figures(
    suspects: str,
    duplicates: str,
    outliers: str,
    manifest: str,
    features: str,
    features_id: str,
    node: str,
    root: str,
    thumb_size: int,
    near_duplicate_cosine: float,
    suspects_png: str,
    duplicates_png: str,
    outliers_png: str,
) -> None:
    """One figure per table of one feature set (rule suspects_figures): the top entries, each beside
    its nearest neighbours (or its duplicates) as thumbnails with labels."""
    from .figure_style import weights_note
    from .files.features import read_features
    from .files.manifest import read_manifest
    from .files.suspects import NO_LABELS_REASON, read_duplicates, read_outliers, read_suspects

    attrs = read_features(features, node, with_features=False)["attrs"]
    note, name = weights_note(attrs), features_id
    labelled = read_manifest(manifest).labelled
    draw_neighbour_rows(
        suspect_figure_rows(read_suspects(suspects)),
        root,
        suspects_png,
        f"Suspect labels in {name} features: images whose nearest neighbours carry other labels",
        thumb_size,
        note,
        empty=NO_LABELS_REASON if not labelled else "no image has a neighbour with another label",
    )
    draw_neighbour_rows(
        duplicate_figure_rows(read_duplicates(duplicates)),
        root,
        duplicates_png,
        f"Duplicates in {name} features: same file content, or cosine >= {near_duplicate_cosine:g}",
        thumb_size,
        note,
        empty=f"no duplicates: no two files are identical and no pair reaches cosine {near_duplicate_cosine:g}",
    )
    draw_neighbour_rows(
        outlier_figure_rows(read_outliers(outliers)),
        root,
        outliers_png,
        f"Outliers in {name} features: images, or small groups of them, far from neighbours close to each other",
        thumb_size,
        note,
        empty="no images",
    )
