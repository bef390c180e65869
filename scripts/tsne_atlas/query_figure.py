"""Stage query figures: a query set placed on a reference run's map (issue 28), in two PNGs.

- the map: the run's own points, small and light in their class colours (the colours of the run's
  scatter plot, blended toward white), the query images on top, larger, with a dark edge and a marker
  shape per query class, coloured as the class is in the reference; a class the reference lacks is
  drawn in a neutral grey and listed as "(not in reference)", an unlabelled query set is one marker.
  The axes cover both sets (a query image far out of the reference stays in view).
- the mosaic: the reference as light dots, the query images' thumbnails framed in their class colour
  at their placed positions, on the canvas frame the run's mosaic uses (``canvas.map_frame`` of the
  same fixed subsample of the reference), so the two mosaics compare; a query image placed outside
  that frame is drawn at its edge and the note counts them. Above ``max_images`` query images a fixed
  subsample of them is drawn, as the run's mosaic does.

The placement must be of this very run: its record names the same feature set, method and settings.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from matplotlib.lines import Line2D
from PIL import UnidentifiedImageError

from .canvas import BACKGROUNDS, map_frame, paste_framed, tile_size, with_legend, write_png
from .figure_style import (
    LEGEND_MARKER_AREA,
    MARKERS,
    PNG_METADATA,
    add_note,
    class_colours,
    class_markers,
    colour_bgr255,
    figure_title,
    literal,
    marker_area,
    plt,
    weights_note,
)
from .files.manifest import UNLABELLED, read_manifest
from .files.placement import read_placement
from .files.runs import METHOD_KEYS, RunRecord, read_embedding, read_meta, read_run, run_label
from .jobs import AtlasError, atomic_path
from .subsample import fixed_subsample, subsample_note

LOGGER = logging.getLogger("tsne_atlas.query_figure")

# Query classes the reference lacks, and unlabelled query images: one neutral colour.
NEUTRAL = (0.33, 0.33, 0.33)
# The query markers' edge: dark, so a query point stands out on the light reference of its own colour.
EDGE = (0.1, 0.1, 0.1)
EDGE_WIDTH = 0.7
# How far the reference's class colours go toward the background (0 = the scatter plot's own colours).
FADE = 0.6
# A query marker's area, in reference markers.
QUERY_AREA = 3.0
NOT_IN_REFERENCE = "not in reference"
# Above this many characters a line (about 12 a figure inch at 10 points) the title's query part gets its own line.
TITLE_CHARS_PER_INCH = 12
# The ring around a query image far from every reference image: its colour, area (x the query marker's), width.
FAR_COLOUR = (0.85, 0.1, 0.1)
FAR_RING_AREA = 3.0
FAR_RING_WIDTH = 1.5
# Legend rows per column, and the share of width_in each further column adds to the figure.
LEGEND_ROWS = 25
LEGEND_COLUMN_WIDTH = 0.8


def blend(rgb, towards, amount: float) -> tuple[float, float, float]:
    """``rgb`` moved ``amount`` of the way to ``towards`` (colours in [0, 1])."""
    return tuple(c + (t - c) * amount for c, t in zip(rgb, towards))


@dataclass(frozen=True)
class QueryClass:
    """A query class as both figures draw it."""

    name: str
    count: int
    colour: tuple[float, float, float]
    marker: str
    in_reference: bool

    @property
    def unknown(self) -> bool:
        """A class the reference lacks (an unlabelled query image is no class)."""
        return not self.in_reference and self.name != UNLABELLED

    def legend_name(self) -> str:
        return f"{self.name} ({NOT_IN_REFERENCE})" if self.unknown else self.name


def query_classes(query_labels: list[str], reference_classes: list[str]) -> list[QueryClass]:
    """The query's classes in legend order (the reference's classes in its order, then the classes it
    lacks by name, unlabelled last), each with its colour (the reference's, else NEUTRAL) and a marker
    shape of its own (MARKERS in turn)."""
    counts: dict[str, int] = {}
    for name in query_labels:
        counts[name] = counts.get(name, 0) + 1
    colours = class_colours(len(reference_classes))
    known = [name for name in reference_classes if name in counts]
    others = sorted(set(counts) - set(known), key=lambda name: (name == UNLABELLED, name))
    return [
        QueryClass(
            name,
            counts[name],
            colours[reference_classes.index(name)] if name in reference_classes else NEUTRAL,
            MARKERS[i % len(MARKERS)],
            name in reference_classes,
        )
        for i, name in enumerate(known + others)
    ]


def query_title(run_title: str, n_query: int, width_in: float) -> str:
    """``<run title> — N query images placed (map unchanged)``, on two lines when too long for the figure."""
    text = f"{run_title} — {n_query:,} query image{'s' if n_query != 1 else ''} placed (map unchanged)"
    return text if len(text) <= TITLE_CHARS_PER_INCH * width_in else text.replace(" — ", " —\n", 1)


def legend_entry(marker: str, colour, edge: bool) -> Line2D:
    """A legend marker of the scatter plot's legend size (``LEGEND_MARKER_AREA``), with or without the query edge."""
    return Line2D(
        [],
        [],
        linestyle="",
        marker=marker,
        markersize=LEGEND_MARKER_AREA**0.5,
        markerfacecolor=colour,
        markeredgecolor=EDGE if edge else colour,
        markeredgewidth=EDGE_WIDTH if edge else 0,
    )


def plot_query_map(
    reference: RunRecord,
    query: RunRecord,
    title: str,
    note: str | None,
    point_size: float,
    width_in: float,
    far: np.ndarray,
    ood_threshold: float,
) -> plt.Figure:
    """The run's map, light, with the query on top: a scatter (collection) per reference class (gid
    ``reference:<class>``) and per query class (gid ``query:<class>``); the legend lists both under
    bold headers. ``far``: the query images whose out-of-distribution score reached ``ood_threshold``,
    ringed in red (gid ``query:far``): the map has no place for them, wherever they are drawn."""
    far = np.asarray(far, dtype=bool)
    # Long class lists wrap into legend columns; each column widens the figure, so the map keeps its width.
    entries = 2 + len(reference.classes) + len(set(query.labels)) + int(far.any())
    ncols = 1 + (entries - 1) // LEGEND_ROWS
    fig, ax = plt.subplots(
        figsize=(width_in * (1 + LEGEND_COLUMN_WIDTH * (ncols - 1)), width_in * 0.8), layout="constrained"
    )
    colours, markers = class_colours(len(reference.classes)), class_markers(len(reference.classes))
    header = Line2D([], [], linestyle="", marker="")
    handles, names, headers = [header], [f"reference map ({len(reference.paths):,})"], [0]
    labels, size = np.asarray(reference.labels), marker_area(point_size, len(reference.paths))
    for index, name in enumerate(reference.classes):
        mask = labels == name
        light = blend(colours[index], (1.0, 1.0, 1.0), FADE)
        ax.scatter(
            reference.coords[mask, 0],
            reference.coords[mask, 1],
            s=size,
            color=light,
            marker=markers[index],
            linewidths=0,
            zorder=1,
            gid=f"reference:{name}",
        )
        handles.append(legend_entry(markers[index], light, edge=False))
        names.append(f"{literal(name)} ({int(mask.sum())})")
    headers.append(len(handles))
    handles.append(header)
    names.append(f"query, placed ({len(query.paths):,})")
    labels, size = np.asarray(query.labels), marker_area(point_size * QUERY_AREA, len(query.paths))
    for group in query_classes(query.labels, reference.classes):
        mask = labels == group.name
        ax.scatter(
            query.coords[mask, 0],
            query.coords[mask, 1],
            s=size,
            facecolors=[group.colour],
            edgecolors=[EDGE],
            linewidths=EDGE_WIDTH,
            marker=group.marker,
            zorder=3,
            gid=f"query:{group.name}",
        )
        handles.append(legend_entry(group.marker, group.colour, edge=True))
        names.append(
            f"{literal(group.name)} ({group.count}, {NOT_IN_REFERENCE})"
            if group.unknown
            else f"{literal(group.name)} ({group.count})"
        )
    if far.any():
        ax.scatter(
            query.coords[far, 0],
            query.coords[far, 1],
            s=size * FAR_RING_AREA,
            facecolors="none",
            edgecolors=[FAR_COLOUR],
            linewidths=FAR_RING_WIDTH,
            marker="o",
            zorder=4,
            gid="query:far",
        )
        handles.append(
            Line2D([], [], linestyle="", marker="o", markersize=9, markerfacecolor="none", markeredgecolor=FAR_COLOUR)
        )
        names.append(f"far from every reference image ({int(far.sum())}; OOD score ≥ {ood_threshold:g})")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    legend = ax.legend(
        handles,
        names,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=9,
        ncols=ncols,
    )
    for index in headers:
        legend.get_texts()[index].set_fontweight("bold")
    add_note(fig, note)
    return fig


def render_query_mosaic(
    reference: RunRecord,
    frame_rows: np.ndarray,
    query: RunRecord,
    query_rows: np.ndarray,
    query_root: str,
    canvas_size: int,
    thumb_size: int,
    border: int,
    background: str,
    notes: list[str],
) -> tuple[np.ndarray, int]:
    """The reference as light dots and the thumbnails of the query's ``query_rows`` at their placed positions,
    on the frame of the reference's ``frame_rows`` (those the run's mosaic draws), ``notes`` under the legend
    after the line saying what is drawn; returns the BGR image (with its legend strip) and how many query
    images fell outside the frame (drawn at its edge, and said)."""
    bg = BACKGROUNDS[background]
    tile = tile_size(canvas_size, thumb_size, border)
    frame = map_frame(reference.coords[frame_rows], canvas_size, tile)
    width, height = frame.shape
    canvas = np.full((height, width, 3), bg, dtype=np.uint8)
    colours = class_colours(len(reference.classes))
    background_rgb = tuple(c / 255 for c in bg)
    dots = [colour_bgr255(blend(c, background_rgb, FADE)) for c in colours]
    radius = max(2, round(thumb_size / 16))
    positions, outside = frame.positions(reference.coords)
    for (x, y), away, label in zip(positions, outside, reference.label_indices()):
        if not away:  # the reference points the run's mosaic leaves out of its frame (a subsample's) are left out
            cv2.circle(canvas, (int(x) + tile // 2, int(y) + tile // 2), radius, dots[label], -1, cv2.LINE_AA)
    n_dots, n_reference = int((~outside).sum()), len(reference.paths)
    notes = [
        f"dots: {'the' if n_dots == n_reference else f'{n_dots:,} of the'} {n_reference:,} reference images; "
        f"framed thumbnails: {len(query.paths):,} query images placed on the map (map unchanged)",
        *notes,
    ]
    groups = {group.name: group for group in query_classes(query.labels, reference.classes)}
    positions, outside = frame.positions(query.coords[query_rows])
    for (x, y), row in zip(positions, query_rows):
        path = Path(query_root) / query.paths[row]
        try:
            paste_framed(canvas, path, x, y, tile, thumb_size, border, colour_bgr255(groups[query.labels[row]].colour))
        except FileNotFoundError:
            raise AtlasError(f"{path}: query image missing; restore it or rerun the query set's sampling") from None
        except (UnidentifiedImageError, OSError) as err:
            raise AtlasError(f"{path}: not a readable query image ({err}); replace or remove it and rerun") from None
    n_outside = int(outside.sum())
    if n_outside:
        notes = [
            *notes,
            f"{n_outside:,} query image{'s' if n_outside != 1 else ''} placed outside the reference's frame "
            f"{'are' if n_outside != 1 else 'is'} drawn at its edge",
        ]
    unknown = [group for group in groups.values() if not group.in_reference]
    image = with_legend(
        canvas,
        [*reference.classes, *(group.legend_name() for group in unknown)],
        [colour_bgr255(c) for c in [*colours, *(group.colour for group in unknown)]],
        bg,
        "\n".join(notes),
    )
    return image, n_outside


def run_identity(meta: dict) -> dict:
    """What makes a run this run: its feature set, method and the method's settings (seed included)."""
    method = meta.get("method")
    return {"features": meta.get("features"), "method": method} | {
        key: meta.get(key) for key in METHOD_KEYS.get(method, ())
    }


def describe(meta: dict) -> str:
    method = meta.get("method")
    if method not in METHOD_KEYS:
        return f"feature set {meta.get('features')}, method {method}"
    return f"{meta.get('features')}, {run_label(meta)}"


def read_query(placed: str, placed_meta: str, query_manifest: str, meta_json: str, meta: dict) -> RunRecord:
    """The placed query set joined with its labels; one line when it is the placement on another run or its
    manifest lists other images."""
    placement = read_meta(placed_meta)
    if run_identity(placement) != run_identity(meta):
        raise AtlasError(
            f"{placed_meta} places the query set on another run ({describe(placement)}) than {meta_json} "
            f"({describe(meta)}); rerun the query's placement"
        )
    paths, coords = read_embedding(placed)
    labels = read_manifest(query_manifest)
    if labels.paths != paths:
        raise AtlasError(
            f"{query_manifest} lists other images than {placed} ({len(labels.paths)} vs {len(paths)} rows); "
            f"rerun the query set's sampling and placement"
        )
    return RunRecord(paths, labels.labels, coords, placement, labels.metadata)


def far_images(placement: str, paths: list[str], ood_threshold: float) -> np.ndarray:
    """Which of ``paths`` placement.csv scores at or above ``ood_threshold``; a table of other images is
    refused in one line."""
    scores = {row["path"]: row["ood_score"] for row in read_placement(placement)}
    if sorted(scores) != sorted(paths):
        raise AtlasError(f"{placement} lists other images than the query's placement; delete it and rerun")
    return np.array([scores[path] is not None and scores[path] >= ood_threshold for path in paths], dtype=bool)


def query_figures(
    embedding: str,
    meta: str,
    manifest: str,
    placed: str,
    placed_meta: str,
    query_manifest: str,
    query_root: str,
    point_size: float,
    width_in: float,
    dpi: int,
    canvas_size: int,
    thumb_size: int,
    border: int,
    background: str,
    max_images: int,
    placement: str,
    ood_threshold: float,
    png: str,
    mosaic_png: str,
) -> None:
    """The query set placed on one run (rule query_figures): the map with the query on top (``png``), the
    images whose out-of-distribution score in ``placement`` (placement.csv) reaches ``ood_threshold``
    ringed, and the mosaic of the query's thumbnails on the run mosaic's frame (``mosaic_png``)."""
    reference = read_run(embedding, meta, manifest)
    query = read_query(placed, placed_meta, query_manifest, meta, reference.meta)
    far = far_images(placement, query.paths, ood_threshold)
    note = weights_note(reference.meta)
    unknown = [group.name for group in query_classes(query.labels, reference.classes) if group.unknown]
    if unknown:
        LOGGER.info("query classes the reference lacks (drawn in grey): %s", ", ".join(unknown))
    fig = plot_query_map(
        reference,
        query,
        query_title(figure_title(reference.meta), len(query.paths), width_in),
        note,
        point_size,
        width_in,
        far,
        ood_threshold,
    )
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
    plt.close(fig)
    # The frame of the run's mosaic: the same fixed subsample of the reference.
    frame_rows = fixed_subsample(len(reference.paths), max_images)
    query_rows = fixed_subsample(len(query.paths), max_images)
    notes = [
        n for n in (note, subsample_note(len(query_rows), len(query.paths), "mosaic.max_images", "query images")) if n
    ]
    image, n_outside = render_query_mosaic(
        reference, frame_rows, query, query_rows, query_root, canvas_size, thumb_size, border, background, notes
    )
    write_png(mosaic_png, image)
    LOGGER.info(
        "wrote %s and %s (%d of %d query images, %d outside the reference's frame)",
        png,
        mosaic_png,
        len(query_rows),
        len(query.paths),
        n_outside,
    )
