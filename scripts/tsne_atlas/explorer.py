"""Stage explorer: one offline HTML page for a whole sweep, up to 100,000 images and more.

A Bokeh plot (HTML canvas, or WebGL: ``explorer.backend``) of every image, and around it a small page of our own
(``explorer.js``, ``explorer.css``): a run menu, colour by label, metadata column, cluster (the feature
set's, from clusters.csv), predicted class or label disagreement, a legend whose entries hide and show
points, the clusters' names on the map and density contours on toggles, a search box, box and lasso
selection with a CSV download and the selection's cluster make-up, a hover card with the image's thumbnail
and fields, and, for a clicked image, its nearest neighbours in feature space beside its nearest on the map.

Two runs side by side, linked: a second Bokeh plot (models named with ``COMPARE_SUFFIX``) shipped empty and
filled from the page's data when "compare" is ticked. Every run lists the same images in the same order,
so an image is one row index in both maps: a hover rings it in the other map, a click marks it in both, a
box or lasso selection in either selects the same rows in both.

Names and contours are computed here, per run, as the named maps compute them (cluster_map): a name's
anchor is its cluster's member nearest the cluster's median on the map, the contours are
``density_grid`` at ``CONTOUR_LEVELS``, simplified and stored as 2-byte steps (about 3 KB a run).
The page draws the names at a fixed screen size wherever the anchors are after a zoom or pan.

With a query set (new images placed on every map without moving it, rules/query.smk): a layer of its own
on each map, diamonds apart from every colouring (``QUERY_NAME`` renderers), at each run's own placement
(place_query's TSV), hovered by the maps' hover tool, shown or hidden by a toggle; a clicked query image
lists its nearest reference images in feature space (prepare_query's neighbours.npz) beside those nearest
its placed point. Its code, ``query.js`` and ``query.css``, goes into the page only then (``page_code``):
a page without a query set is byte for byte what it was before query sets.

What the page needs is one JSON document inside it (``payload``): coordinates of every run and the
neighbour lists as base64 float32/int32 arrays, labels and text fields as category codes. Thumbnails
are cells of the JPEG atlases ``explorer_thumbnails`` wrote to ``explorer/`` beside the page: up to
``inline_max_images`` images they are inlined (one file to mail), above they load from that folder
when first shown (``<img>``/CSS images work from ``file://``; ``fetch`` would not).

Every user string (paths, labels, metadata, predictions, search input) reaches the page as JSON text
and is only ever set as ``textContent`` or an attribute by the page's code, never as markup.
"""

import base64
import contextlib
import itertools
import logging
import os
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import contourpy
import numpy as np
from bokeh.embed import file_html
from bokeh.models import (
    BooleanFilter,
    BoxSelectTool,
    CDSView,
    ColumnDataSource,
    CustomJS,
    HoverTool,
    LassoSelectTool,
    LinearColorMapper,
)
from bokeh.plotting import figure
from bokeh.resources import INLINE
from bokeh.util import serialization as bokeh_serialization
from jinja2 import Template
from matplotlib import colormaps
from matplotlib.colors import to_hex

from . import cluster_map
from .config import POINTS_BACKEND
from .figure_style import (
    NOTE_COLOUR,
    OTHER,
    class_colours,
    figure_title,
    most_frequent,
    sets_weights_note,
)
from .files.clusters import cluster_of_paths
from .files.explorer_page import SCRIPT_ID, b64, script_json
from .files.features import read_predictions
from .files.manifest import sample_labels
from .files.map_inputs import read_neighbours
from .files.quality import read_quality
from .files.runs import read_embedding, read_meta, read_run, run_label, run_name, run_sort_key
from .files.suspects import read_outliers
from .files.thumbnails import ThumbnailIndex, read_index
from .jobs import AtlasError, atomic_path
from .subsample import fixed_subsample, subsample_note
from .suspects import label_disagreement

LOGGER = logging.getLogger("tsne_atlas.build_explorer")
PAGE_FILES = Path(__file__).with_name("explorer_page")
# Stable model names: the page's code and the browser tests find models by them.
PLOT_NAME = "plot"  # the page template embeds the root of this name
POINTS_NAME = "points"
MATCHES_NAME = "matches"
FOCUS_NAME = "focus"
LINKS_NAME = "neighbour-links"
DENSITY_NAME = "density"
LINKED_NAME = "linked"  # the ring on the image hovered in the other map
QUERY_NAME = "query"  # the query set's points (with a query set only)
COMPARE_SUFFIX = "-2"  # the second (right) map's models: plot-2, points-2, ...
DENSITY_COLOUR = "#737373"  # the named maps' contour grey (cluster_map.draw_density: 0.45)
# A contour keeps only the vertices that move it by more than this share of a density grid cell (Ramer-
# Douglas-Peucker; a cell is about 3 pixels on a fitted map): the demo's 18 runs, 111,000 vertices ->
# 21,000. Vertices then lie on a lattice of DENSITY_STEPS steps a cell and are stored as int8 steps
# from the vertex before: 2 bytes each.
DENSITY_TOLERANCE = 0.5
DENSITY_STEPS = 16
MISSING_COLOUR = "#bbbbbb"  # n/a values and the "other" category
# The query set's points: near-black diamonds edged in white, apart from every colouring's circles (no
# palette has black; the edge keeps them apart from dark points too).
QUERY_COLOUR = "#111111"
QUERY_EDGE = "#ffffff"
CONTINUOUS_PALETTE = [to_hex(colour) for colour in colormaps["viridis"](np.linspace(0, 1, 256))]
TOOLS = "pan,wheel_zoom,box_zoom,reset"
# query.js goes into explorer.js's closure just before this line: after every function it extends.
QUERY_SPLICE = "  window.tsneAtlas = {\n"


def menu_label(meta: dict) -> str:
    """The menu entry of one run, e.g. ``resnet101 · t-SNE perplexity 30, seed 0 (KL 0.69)``, ``resnet101 · PCA``."""
    kl = f" (KL {meta['kl_divergence']:.2f})" if meta.get("kl_divergence") is not None else ""
    return f"{meta['features']} · {run_label(meta)}{kl}"


def partner_runs(metas: list[dict], set_ids: list[str]) -> list[int]:
    """For each run (menu order), the run the page puts beside it when "compare" is ticked: the run of the
    next feature set (``set_ids`` order, the last one's next is the first) with the same method, settings
    and seed, else that set's first run; with a single feature set, the next run in the menu (another seed
    or method; the first after the last), or the run itself when it is the only one."""
    sets = [set_ids.index(str(meta["features"])) for meta in metas]
    keys = [run_sort_key(meta)[1:] for meta in metas]
    partners = []
    for k, (own, key) in enumerate(zip(sets, keys)):
        if len(set_ids) == 1:
            partners.append((k + 1) % len(metas))
            continue
        other = [j for j, s in enumerate(sets) if s == (own + 1) % len(set_ids)]
        partners.append(next((j for j in other if keys[j] == key), other[0]))
    return partners


def load_runs(
    runs: list[tuple[str, str]], manifest: str, order: list[str] | None = None
) -> tuple[list[str], list[np.ndarray], list[dict]]:
    """Read every (embedding TSV, meta JSON) pair, sorted by feature set (in ``order``, the config's,
    when given; else by name), then method, settings and seed (``run_sort_key``).

    Returns the shared image paths, one N x 2 coordinate array per run and the runs' metadata. Every
    run must list the same images in the same order.
    """
    if not runs:
        raise AtlasError("the explorer got no embeddings; set at least one method (methods) with its settings")
    loaded = []
    for tsv, meta_json in runs:
        run = read_run(tsv, meta_json, manifest)
        loaded.append((tsv, run.meta, run.paths, run.coords))
    rank = {features_id: i for i, features_id in enumerate(order or [])}
    loaded.sort(key=lambda run: (rank.get(run[1]["features"], len(rank)), *run_sort_key(run[1])))
    first_tsv, _, paths, _ = loaded[0]
    for tsv, _, other_paths, _ in loaded[1:]:
        if other_paths != paths:
            raise AtlasError(
                f"{tsv}: lists other images than {first_tsv}; delete the results/embeddings folder and rerun"
            )
    return paths, [run[3] for run in loaded], [run[1] for run in loaded]


def categorical(values: list[str], categories: list[str], colours: list[str]) -> dict:
    """A colouring by category: each image's code into ``categories`` (with its colour)."""
    index = {name: i for i, name in enumerate(categories)}
    codes = np.array([index[value] for value in values], dtype=np.int32)
    return {"kind": "categorical", "categories": categories, "colours": colours, "codes": b64(codes, "<i4")}


def top_categories(values: list[str]) -> dict:
    """A colouring by the most frequent values, the rest grey as ``other`` (figure_style.most_frequent)."""
    kept_values, categories = most_frequent(values)
    colours = [to_hex(c) for c in class_colours(len(categories) - (OTHER in categories))]
    return categorical(kept_values, categories, colours + ([MISSING_COLOUR] if OTHER in categories else []))


def continuous(values: np.ndarray, low: float | None = None, high: float | None = None) -> dict:
    """A colouring by number (NaN for n/a), viridis from ``low`` to ``high`` (the data's range by default)."""
    finite = values[np.isfinite(values)]
    low = float(finite.min()) if low is None and finite.size else (low or 0.0)
    high = float(finite.max()) if high is None and finite.size else (high if high is not None else 1.0)
    return {
        "kind": "continuous",
        "low": low,
        "high": high if high > low else low + 1.0,
        "values": b64(values, "<f4"),
        "colours": CONTINUOUS_PALETTE,
    }


def metadata_colouring(values: list[str]) -> dict:
    """Numbers (every non-empty value parses, empty is n/a) colour continuously, other text by category."""
    try:
        numbers = np.array([float(value) if value.strip() else np.nan for value in values], dtype=np.float64)
    except ValueError:
        return top_categories(values)
    if not np.isfinite(numbers).any():
        return top_categories(values)
    return continuous(numbers)


def per_set_scores(
    name: str, hint: str, values: list[np.ndarray | None], low: float | None = None, high: float | None = None
) -> dict:
    """A colouring by a number per image that each feature set has its own of (None where a set has
    none): viridis from ``low`` to ``high`` (each set's range by default), NaN for n/a. The label
    disagreement is one; a score per image of another stage (outliers.csv) would be another."""
    return {
        "name": name,
        "hint": hint,
        "per_set": True,
        "sets": [None if v is None else continuous(np.asarray(v, dtype=np.float64), low, high) for v in values],
    }


def cluster_colouring(clusters: list[dict | None]) -> dict:
    """Colour by cluster, per feature set: categories ``<number>: <name>`` in cluster order (0 the
    largest) in the named maps' colours (figure_style.class_colours, as cluster_map draws them)."""
    sets = []
    for found in clusters:
        if found is None:
            sets.append(None)
            continue
        categories = [f"{number}: {name}" for number, name in enumerate(found["names"])]
        colours = [to_hex(c) for c in class_colours(len(categories))]
        sets.append(
            {"kind": "categorical", "categories": categories, "colours": colours, "codes": b64(found["codes"], "<i4")}
        )
    return {
        "name": "cluster",
        "key": "cluster",
        "hint": "found once in feature space: the same for every run of a feature set",
        "per_set": True,
        "sets": sets,
    }


def colourings(
    labels: list[str],
    classes: list[str],
    metadata: dict[str, list[str]],
    predicted: list[list[str] | None],
    disagreement: list[np.ndarray | None],
    clusters: list[dict | None] | None = None,
) -> list[dict]:
    """What the page can colour by: the label (the figures' class colours), each metadata column, and,
    per feature set (None where a set has none), its clusters (``set_clusters``), the predicted class
    and the label disagreement."""
    options = [
        {
            "name": "label",
            "per_set": False,
            **categorical(labels, classes, list(map(to_hex, class_colours(len(classes))))),
        }
    ]
    for column, values in metadata.items():
        options.append({"name": f"metadata: {column}", "per_set": False, **metadata_colouring(values)})
    if clusters is not None and any(found is not None for found in clusters):
        options.append(cluster_colouring(clusters))
    if any(texts is not None for texts in predicted):
        options.append(
            {
                "name": "predicted class",
                "per_set": True,
                "sets": [None if texts is None else top_categories(texts) for texts in predicted],
            }
        )
    if any(values is not None for values in disagreement):
        options.append(
            per_set_scores(
                "label disagreement",
                "share of its k nearest in feature space with another label",
                disagreement,
                0.0,
                1.0,
            )
        )
    return options


def shown_neighbours(
    indices: np.ndarray, distances: np.ndarray, keep: np.ndarray, k: int, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest neighbours of each shown image (rows ``keep`` of the k-NN graph, sample order)
    among the shown images, as indices into ``keep`` (int32) and distances (float32). In a subsample,
    rows whose graph lists fewer than ``k`` shown neighbours are padded with -1 and NaN. ``rows``: other
    rows of ``indices`` than ``keep`` (a query set's nearest reference images: its rows are query images,
    its indices the sample's)."""
    rows = keep if rows is None else rows
    # Large enough for every shown image and every listed neighbour (a query set's rows list reference
    # images only, maybe none of the last shown ones).
    size = max(len(indices), int(indices.max(initial=-1)) + 1, int(np.max(keep, initial=-1)) + 1)
    position = np.full(size, -1, dtype=np.int64)
    position[keep] = np.arange(len(keep))
    mapped = position[indices[rows]]
    if (mapped[:, :k] >= 0).all():  # every image shown: a plain slice
        return mapped[:, :k].astype(np.int32), distances[rows, :k].astype(np.float32)
    out = np.full((len(rows), k), -1, dtype=np.int32)
    out_distances = np.full((len(rows), k), np.nan, dtype=np.float32)
    for row, graph_row in enumerate(rows):
        shown = np.flatnonzero(mapped[row] >= 0)[:k]
        out[row, : len(shown)] = mapped[row, shown]
        out_distances[row, : len(shown)] = distances[graph_row, shown]
    return out, out_distances


def feature_set_data(
    set_ids: list[str],
    features_files: dict[str, str],
    graph_files: dict[str, str],
    label_indices: np.ndarray | None,
    keep: np.ndarray,
    n_total: int,
    k: int,
) -> tuple[list[dict], list[list[str] | None], list[np.ndarray | None]]:
    """Per feature set: the neighbour lists of the shown images (for the page), their top-1 prediction
    texts (None without predictions) and their label disagreement with their k nearest in the whole
    sample (None when unlabelled)."""
    sets, predicted, disagreement = [], [], []
    for set_id in set_ids:
        graph = graph_files[set_id]
        indices, distances = read_neighbours(graph)
        if len(indices) != n_total:
            raise AtlasError(
                f"{graph}: a k-NN graph of {len(indices)} images, but the runs list {n_total}; "
                "delete the results/embeddings folder and rerun"
            )
        if k > indices.shape[1]:
            LOGGER.warning(
                "explorer.neighbours %d is more than the k-NN graph's %d; listing %d",
                k,
                indices.shape[1],
                indices.shape[1],
            )
        set_k = min(k, indices.shape[1])
        shown, shown_distances = shown_neighbours(indices, distances, keep, set_k)
        sets.append(
            {"id": set_id, "k": set_k, "neighbours": b64(shown, "<i4"), "distances": b64(shown_distances, "<f4")}
        )
        predictions, _ = read_predictions(features_files[set_id])
        if predictions is None:
            predicted.append(None)
        else:
            names, probabilities = predictions.top1()
            predicted.append([f"{names[i]} ({probabilities[i]:.0%})" for i in keep])
        if label_indices is None:
            disagreement.append(None)
        else:
            values = label_disagreement(indices, distances, label_indices, set_k)["disagreement"]
            disagreement.append(np.asarray(values, dtype=np.float64)[keep])
    return sets, predicted, disagreement


def outlier_colouring(outlier_files: list[str], paths: list[str]) -> dict:
    """Colour by each feature set's outlier score (outliers.csv, suspects.py: about 1 for a typical
    image), on one scale for every set from 1 to the highest; an image past the list's end
    (suspects.max_rows) has no score and is drawn as n/a."""
    scores = []
    for path in outlier_files:
        by_path = {row["path"]: row["outlier_score"] for row in read_outliers(path)}
        scores.append(np.array([by_path.get(p, np.nan) for p in paths], dtype=np.float64))
    high = max([float(np.nanmax(v)) for v in scores if np.isfinite(v).any()] + [1.0])
    return per_set_scores(
        "outlier score",
        "how far an image is from its neighbours, alone or with a small group, over how far they are from theirs "
        "(outliers.csv; about 1 is typical; grey: past the list's end)",
        scores,
        1.0,
        high,
    )


# The category of an image quality.csv lists no problem for.
NO_PROBLEM = "no problem"


def problem_colouring(quality_file: str, paths: list[str]) -> dict:
    """Colour by image problem (quality.csv, the same for every run): each combination of problems an
    image has ("dark + small") a category, most frequent first, the images without one grey and last."""
    by_path = {row["path"]: row["problems"] for row in read_quality(quality_file)}
    missing = [p for p in paths if p not in by_path]
    if missing:
        raise AtlasError(f"{quality_file} has no row for {missing[0]}; delete it and rerun")
    values = [" + ".join(by_path[p]) or NO_PROBLEM for p in paths]
    counts = Counter(v for v in values if v != NO_PROBLEM)
    problems = sorted(counts, key=lambda v: (-counts[v], v))
    categories = [*problems, NO_PROBLEM]
    colours = [to_hex(c) for c in class_colours(len(problems))] + [MISSING_COLOUR]
    return {
        "name": "image problem",
        "hint": "what quality.csv finds wrong with the image itself (blur, darkness, size, ...), the same for every run",
        "per_set": False,
        **categorical(values, categories, colours),
    }


def set_clusters(cluster_file: str, paths: list[str]) -> dict:
    """One feature set's clusters for the page: each shown image's cluster (``codes``), every cluster's
    name (``names``, by number) and those named on the map, in the named maps' choice and order
    (cluster_map.named_clusters on the shown images: ``numbers``, largest first, and their ``texts``)."""
    codes, names = cluster_of_paths(cluster_file, paths)
    if sorted(names) != list(range(len(names))):
        raise AtlasError(f"{cluster_file}: clusters are not numbered 0 to {len(names) - 1}; delete it and rerun")
    codes = np.asarray(codes, dtype=np.int64)
    numbers = cluster_map.named_clusters(np.bincount(codes, minlength=len(names)))
    texts = cluster_map.name_texts(names, numbers)
    return {
        "codes": codes,
        "names": [names[number] for number in range(len(names))],
        "numbers": numbers,
        "texts": [texts[number] for number in numbers],
    }


def cluster_anchors(coords: np.ndarray, codes: np.ndarray, numbers: list[int]) -> np.ndarray:
    """Where the page names clusters ``numbers`` on one run's map (len(numbers), 2): as cluster_map.anchors,
    each one's member nearest the members' median (among the images shown)."""
    local = np.full(int(codes.max()) + 1, -1)
    local[numbers] = np.arange(len(numbers))
    position = local[codes]
    named = position >= 0
    return cluster_map.anchors(coords[named], position[named], len(numbers))


def simplify_line(points: np.ndarray, tolerance: float) -> np.ndarray:
    """``points`` (M, 2) without the vertices whose removal moves the line by ``tolerance`` or less
    (Ramer-Douglas-Peucker): the first and last always stay, and every kept vertex is an original one."""
    keep = np.zeros(len(points), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        if last <= first + 1:
            continue
        start, chord = points[first], points[last] - points[first]
        inner = points[first + 1 : last] - start
        length = np.hypot(*chord)
        if length > 0:
            distance = np.abs(chord[0] * inner[:, 1] - chord[1] * inner[:, 0]) / length
        else:  # a closed line: distance from its start
            distance = np.hypot(inner[:, 0], inner[:, 1])
        farthest = int(np.argmax(distance))
        if distance[farthest] > tolerance:
            middle = first + 1 + farthest
            keep[middle] = True
            stack += [(first, middle), (middle, last)]
    return points[keep]


def density_lines(coords: np.ndarray) -> dict:
    """One run's density contours, as the named maps draw them (cluster_map.density_grid at
    CONTOUR_LEVELS), compact for the page. Each line is simplified (DENSITY_TOLERANCE of a grid cell)
    and its vertices put on a lattice of DENSITY_STEPS steps a grid cell (``step``, from ``origin``):
    ``starts`` holds each line's first vertex (uint16 x, y steps), ``deltas`` every next one as the
    int8 x, y difference from the one before (a longer jump is cut into collinear pieces that fit) and
    ``lengths`` how many deltas each line has. Vertex ``v`` of a line is ``origin + step * (start +
    deltas[0] + ... + deltas[v - 1])``."""
    x, y, density = cluster_map.density_grid(coords)
    generator = contourpy.contour_generator(x, y, density, line_type=contourpy.LineType.Separate)
    cell = np.array([x[1] - x[0], y[1] - y[0]])
    cell[cell <= 0] = 1.0
    origin, step = np.array([x[0], y[0]]), cell / DENSITY_STEPS
    starts, deltas, lengths = [], [], []
    for level in cluster_map.CONTOUR_LEVELS:
        for line in generator.lines(level):
            lattice = np.rint((simplify_line(line, DENSITY_TOLERANCE * cell.min()) - origin) / step).astype(np.int64)
            jumps = np.diff(lattice, axis=0)
            pieces = np.maximum(1, -(-np.abs(jumps).max(axis=1, initial=0) // 127))
            # Piece k of a jump cut in p: the points start + jump * k // p, k = 1..p (each step at most 127).
            which = np.repeat(np.arange(len(jumps)), pieces)
            k = np.arange(len(which)) - np.repeat(np.cumsum(pieces) - pieces, pieces) + 1
            points = lattice[which] + jumps[which] * k[:, None] // pieces[which][:, None]
            starts.append(lattice[0])
            deltas.append(np.diff(np.vstack([lattice[:1], points]), axis=0))
            lengths.append(len(points))
    return {
        "origin": origin.tolist(),
        "step": step.tolist(),
        "starts": b64(np.array(starts).reshape(-1, 2), "<u2"),
        "lengths": b64(np.array(lengths), "<i4"),
        "deltas": b64(np.concatenate(deltas) if deltas else np.zeros((0, 2)), "<i1"),
    }


def atlas_urls(index: ThumbnailIndex, page: Path, inline: bool) -> list[str]:
    """Each atlas as the page loads it: a data URI (inlined), or its path relative to the page."""
    if inline:
        return [
            "data:image/jpeg;base64," + base64.b64encode((index.folder / name).read_bytes()).decode()
            for name in index.atlases
        ]
    folder = Path(os.path.relpath(index.folder.resolve(), page.resolve().parent)).as_posix()
    return [f"{urllib.parse.quote(folder)}/{name}" for name in index.atlases]


def image_base_url(root: str | os.PathLike, page: Path) -> str:
    """The dataset root relative to the page, as a URL prefix: the page joins each image's path
    (segments percent-encoded) to open the original."""
    relative = Path(os.path.relpath(Path(root).resolve(), page.resolve().parent)).as_posix()
    return urllib.parse.quote(relative) + "/"


@dataclass(frozen=True)
class QueryInputs:
    """A query set's files for the page (rule explorer, with a query set): ``placed``, its coordinates on
    each run (place_query's TSV and JSON pairs, any order), ``manifest`` (sample_query's), ``thumbnails``
    (the query_thumbnails folder), ``neighbours``: each feature set id's nearest reference images
    (prepare_query's neighbours.npz, indices into the reference sample) and ``root``, the query's folder."""

    placed: list[tuple[str, str]]
    manifest: str
    thumbnails: str
    neighbours: dict[str, str]
    root: str


def query_layer(
    query: QueryInputs,
    metas: list[dict],
    set_ids: list[str],
    keep: np.ndarray,
    n_total: int,
    index: ThumbnailIndex,
    k: int,
    inline_max_images: int,
    output: Path,
) -> tuple[dict, list[np.ndarray]]:
    """The query set's part of the page (``payload``'s ``query``) and its shown images' coordinates on each
    run (``metas``, menu order): its paths, labels (classes the reference lacks are fine) and metadata,
    its place on every run, each image's ``k`` nearest reference images per feature set among the shown
    reference images (``keep`` of ``n_total``, indices into the page's images), its thumbnails (the same
    cells as the reference's ``index``) and the URL prefix of its folder. Above explorer.max_images query
    images, a fixed subsample, as the reference's (its thumbnails folder lists it)."""
    if not query.placed:
        raise AtlasError(f"{query.manifest}: a query set without its placement on any run; rerun the workflow")
    placed = {}
    for tsv, meta_json in query.placed:
        paths, coords = read_embedding(tsv)
        placed[run_name(read_meta(meta_json))] = (tsv, paths, coords)
    first_tsv, paths, _ = next(iter(placed.values()))
    coords = []
    for meta in metas:
        name = run_name(meta)
        if name not in placed:
            raise AtlasError(f"{first_tsv}: the query set has no placement on run {name} beside it; rerun the workflow")
        tsv, run_paths, run_coords = placed[name]
        if run_paths != paths:
            raise AtlasError(
                f"{tsv}: lists other images than {first_tsv}; delete the results/query/maps folder and rerun"
            )
        coords.append(run_coords)
    labels = sample_labels(query.manifest, paths, first_tsv)
    query_index = read_index(query.thumbnails)
    shown = fixed_subsample(len(paths), len(query_index.paths))
    thumbnails_json = Path(query.thumbnails) / "thumbnails.json"
    if [paths[i] for i in shown] != query_index.paths:
        raise AtlasError(f"{thumbnails_json}: lists other images than {first_tsv}; delete {query.thumbnails} and rerun")
    if (query_index.cell, query_index.columns) != (index.cell, index.columns):
        raise AtlasError(
            f"{thumbnails_json}: {query_index.cell}-pixel cells, {query_index.columns} a row, but the reference's "
            f"are {index.cell} and {index.columns}; delete {query.thumbnails} and rerun"
        )
    sets = []
    for set_id in set_ids:
        npz = query.neighbours[set_id]
        indices, distances = read_neighbours(npz)
        if len(indices) != len(paths):
            raise AtlasError(
                f"{npz}: nearest reference images of {len(indices)} query images, but the query set has "
                f"{len(paths)}; delete it and rerun"
            )
        if indices.size and not 0 <= int(indices.min()) <= int(indices.max()) < n_total:
            raise AtlasError(f"{npz}: indices outside the reference sample's {n_total} images; delete it and rerun")
        set_k = min(k, indices.shape[1])
        neighbours, neighbour_distances = shown_neighbours(indices, distances, keep, set_k, rows=shown)
        sets.append({"k": set_k, "neighbours": b64(neighbours, "<i4"), "distances": b64(neighbour_distances, "<f4")})
    shown_labels = [labels.labels[i] for i in shown]
    classes = sorted(set(shown_labels))
    inline = len(keep) + len(shown) <= inline_max_images
    data = {
        "n": len(shown),
        "n_total": len(paths),
        "paths": query_index.paths,
        "classes": classes,
        "label_codes": b64(np.searchsorted(classes, shown_labels), "<i4"),
        "metadata": {
            "columns": list(labels.metadata),
            "values": [[values[i] for i in shown] for values in labels.metadata.values()],
        },
        "runs": [
            {"x": b64(run_coords[shown, 0], "<f4"), "y": b64(run_coords[shown, 1], "<f4")} for run_coords in coords
        ],
        "sets": sets,
        "thumbs": {"atlases": atlas_urls(query_index, output, inline), "inline": inline},
        "image_base": image_base_url(query.root, output),
    }
    return data, [run_coords[shown] for run_coords in coords]


def payload(
    title: str,
    paths: list[str],
    labels: list[str],
    classes: list[str],
    labelled: bool,
    metadata: dict[str, list[str]],
    coords: list[np.ndarray],
    metas: list[dict],
    set_ids: list[str],
    sets: list[dict],
    predicted: list[list[str] | None],
    options: list[dict],
    thumbs: dict,
    image_base: str,
    clusters: list[dict | None] | None = None,
    query: dict | None = None,
) -> dict:
    """Everything the page's code reads, as one JSON-ready dict (see explorer_page/explorer.js and
    files/explorer_page.py); ``clusters``: per feature set, set_clusters' or None; ``query``: the query
    set's layer (query_layer), none without a query set."""
    label_index = {name: i for i, name in enumerate(classes)}
    clusters = clusters or [None] * len(set_ids)

    def names_on_map(run_coords: np.ndarray, meta: dict) -> str | None:
        found = clusters[set_ids.index(str(meta["features"]))]
        if found is None:
            return None
        return b64(cluster_anchors(run_coords, found["codes"], found["numbers"]), "<f4")

    partners = partner_runs(metas, set_ids)
    return {
        "title": title,
        "n": len(paths),
        "paths": paths,
        "classes": classes,
        "labelled": labelled,
        "label_codes": b64(np.array([label_index[label] for label in labels]), "<i4"),
        "metadata": {"columns": list(metadata), "values": list(metadata.values())},
        "runs": [
            {
                "label": menu_label(meta),
                "title": figure_title(meta),
                "set": set_ids.index(str(meta["features"])),
                "x": b64(run_coords[:, 0], "<f4"),
                "y": b64(run_coords[:, 1], "<f4"),
                "anchors": names_on_map(run_coords, meta),
                "density": density_lines(run_coords),
                "partner": partner,
            }
            for run_coords, meta, partner in zip(coords, metas, partners)
        ],
        "sets": [
            {
                **entry,
                "clusters": None if found is None else {"numbers": found["numbers"], "texts": found["texts"]},
            }
            for entry, found in zip(sets, clusters)
        ],
        "predicted": predicted,
        "colourings": options,
        "thumbs": thumbs,
        "image_base": image_base,
        **({"query": query} if query is not None else {}),
    }


def marker_size(n_points: int) -> float:
    """Points shrink as they multiply: 7 px up to 1,000 images, about 3 px at 100,000."""
    return float(np.clip(7.0 * (1000 / max(n_points, 1)) ** 0.18, 2.5, 7.0))


def explorer_plot(
    coords: np.ndarray,
    label_codes: np.ndarray,
    colours: list[str],
    title: str,
    backend: str,
    side: int = 0,
    n_points: int | None = None,
    query: np.ndarray | None = None,
):
    """The Bokeh figure of one map: the points (coloured through a colour mapper the page re-points), the
    search matches, the clicked image and lines to its feature-space neighbours, and a ring for the image
    hovered in the other map; hover, tap and selection call the page's code with the map's ``side`` (0:
    left, the only map unless comparing; 1: right, its models' names end in COMPARE_SUFFIX, shipped with
    no points: the page fills it from its data). Matches, the clicked image, its lines and the ring are on
    Bokeh's overlay level: changing them repaints that layer only, not every point (measured: a click at
    100,000 points 627 -> 146 ms). ``query``: a query set's coordinates (M x 2) on this map, drawn over the
    points as diamonds apart from every colouring, hovered by the same tool (the page tells them apart by
    renderer) and within the fitted view; none without a query set (then the plot is what it was before
    query sets: the same models in the same order)."""
    suffix = COMPARE_SUFFIX if side else ""
    plot = figure(
        title=title,
        tools=TOOLS,
        active_scroll="wheel_zoom",
        match_aspect=True,
        sizing_mode="stretch_both",
        min_width=300 if side else 400,
        min_height=400,
        name=PLOT_NAME + suffix,
        output_backend=backend,
    )
    plot.xaxis.visible = plot.yaxis.visible = False  # embedding axes have no meaning
    plot.grid.visible = False
    size = marker_size(len(coords) if n_points is None else n_points)
    # Codes + 0.5 sit in the middle of their palette bin: no rounding puts one in its neighbour's.
    source = ColumnDataSource(
        {"x": coords[:, 0].astype(np.float32), "y": coords[:, 1].astype(np.float32), "c": label_codes + 0.5},
        name=f"{POINTS_NAME}-source{suffix}",
    )
    mapper = LinearColorMapper(
        palette=colours, low=0, high=len(colours), nan_color=MISSING_COLOUR, name=f"colour-mapper{suffix}"
    )
    view = CDSView(filter=BooleanFilter(name=f"visible-filter{suffix}"))
    # Density contours (the page fills them in for the run on show when asked): drawn before, so under,
    # the points.
    plot.multi_line(
        "xs", "ys", source=ColumnDataSource({"xs": [], "ys": []}, name=f"{DENSITY_NAME}-source{suffix}"),
        line_color=DENSITY_COLOUR, line_width=1.0, line_alpha=0.9, visible=False, name=DENSITY_NAME + suffix,
    )  # fmt: skip
    points = plot.scatter(
        "x",
        "y",
        source=source,
        view=view,
        size=size,
        fill_color={"field": "c", "transform": mapper},
        line_color=None,
        fill_alpha=0.8,
        nonselection_fill_alpha=0.08,
        name=POINTS_NAME + suffix,
    )
    empty = {"x": np.zeros(0, np.float32), "y": np.zeros(0, np.float32)}
    plot.scatter(
        "x", "y", source=ColumnDataSource(dict(empty), name=f"{MATCHES_NAME}-source{suffix}"), size=size + 6,
        fill_color=None, line_color="black", line_width=1.5, name=MATCHES_NAME + suffix, level="overlay",
    )  # fmt: skip
    plot.segment(
        "x0", "y0", "x1", "y1",
        source=ColumnDataSource({key: np.zeros(0, np.float32) for key in ("x0", "y0", "x1", "y1")}, name=f"{LINKS_NAME}-source{suffix}"),
        line_color="#222222", line_alpha=0.6, line_width=1.2, name=LINKS_NAME + suffix, level="overlay",
    )  # fmt: skip
    plot.scatter(
        "x", "y", source=ColumnDataSource(dict(empty), name=f"{FOCUS_NAME}-source{suffix}"), size=size + 10,
        fill_color=None, line_color=NOTE_COLOUR, line_width=3, name=FOCUS_NAME + suffix, level="overlay",
    )  # fmt: skip
    plot.scatter(
        "x", "y", source=ColumnDataSource(dict(empty), name=f"{LINKED_NAME}-source{suffix}"), size=size + 14,
        fill_color=None, line_color="#111111", line_width=2.5, name=LINKED_NAME + suffix, level="overlay",
    )  # fmt: skip
    plot.x_range.renderers = plot.y_range.renderers = [points]  # contours shown or not, the same view
    hovered, hover_code = [points], f"window.tsneAtlas?.hover(cb_data, {side});"
    if query is not None:
        shown = plot.scatter(
            "x", "y", source=ColumnDataSource({"x": query[:, 0].astype(np.float32), "y": query[:, 1].astype(np.float32)},
            name=f"{QUERY_NAME}-source{suffix}"), marker="diamond", size=size + 6, fill_color=QUERY_COLOUR,
            line_color=QUERY_EDGE, line_width=1.2, name=QUERY_NAME + suffix,
        )  # fmt: skip
        plot.x_range.renderers = plot.y_range.renderers = [points, shown]  # a query image far out stays in view
        hovered.append(shown)
        hover_code = (
            f"window.tsneAtlas?.hover(cb_data, {side}, cb_data.renderer.name.startsWith('{QUERY_NAME}') ? 1 : 0);"
        )
    plot.add_tools(
        HoverTool(renderers=hovered, tooltips=None, callback=CustomJS(code=hover_code)),
        BoxSelectTool(renderers=[points]),
        LassoSelectTool(renderers=[points]),
    )
    plot.js_on_event("tap", CustomJS(code=f"window.tsneAtlas?.tap(cb_obj, {side});"))
    plot.js_on_event("mouseleave", CustomJS(code=f"window.tsneAtlas?.hover(null, {side});"))
    source.selected.js_on_change("indices", CustomJS(code=f"window.tsneAtlas?.selectionChanged({side});"))
    return plot


PAGE_TEMPLATE = Template(
    """{% extends base %}
{% block postamble %}<style>{{ page_css }}</style>{% endblock %}
{% block contents %}
<header>
  <h1>{{ heading | e }}</h1>
  {% if random_note %}<p class="note" id="random-weights-note" style="color: {{ note_colour }}">{{ random_note | e }}</p>{% endif %}
  {% if subsample_note %}<p class="note" id="subsample-note">{{ subsample_note | e }}</p>{% endif %}
</header>
<div class="controls">
  <label>run <select id="run-select"></select></label>
  <label title="a second map beside the first, linked: hover, click and selection show the same images in both"><input id="compare-toggle" type="checkbox"> compare with</label>
  <select id="compare-select" aria-label="the run of the right map" disabled></select>
  <label>colour by <select id="colour-select"></select></label>
  <label>find <input id="search" type="search" placeholder="file name or label" autocomplete="off"></label>
  <span id="search-count" class="count"></span>
  <button id="select-matches" type="button" disabled>select matches</button>
  <button id="clear-selection" type="button" disabled>clear selection</button>
  <button id="export-selection" type="button" disabled>download selection (CSV)</button>
  <span id="selection-count" class="count"></span>
  <label><input id="names-toggle" type="checkbox" checked> cluster names</label>
  <label><input id="density-toggle" type="checkbox"> density</label>{% if query_label %}
  <label title="{{ query_title | e }}"><input id="query-toggle" type="checkbox" checked> <span class="query-swatch" style="background: {{ query_colour }}" aria-hidden="true"></span>{{ query_label | e }}</label>{% endif %}
</div>
<div class="main">
  <div class="plot">{{ embed(roots.plot) }}<div id="map-names" class="map-names" aria-hidden="true"></div></div>
  <div class="plot" id="compare-plot" hidden>{{ embed(roots[compare_plot]) }}<div id="map-names{{ compare_suffix }}" class="map-names" aria-hidden="true"></div></div>
  <aside>
    <section id="makeup" hidden></section>
    <section id="legend"></section>
    <section id="neighbours"><p class="hint">Click a point to see its nearest neighbours in feature space beside its nearest on the map (Esc clears it). Drag with the box or lasso tool to select. Tick compare to see a second run beside this one, linked. The address of the page keeps the run, colouring, search and clicked image: copy it to share the view.</p></section>
  </aside>
</div>
<div id="hover-card" hidden></div>
<script type="application/json" id="{{ script_id }}">{{ data_json }}</script>
<script>{{ page_js }}</script>
{% endblock %}
"""
)


@contextlib.contextmanager
def deterministic_bokeh_ids(namespace: str = "tsne-atlas") -> Iterator[None]:
    """Make the ids Bokeh writes into the page the same on every build.

    Bokeh numbers its models from a process-wide counter and gives documents and root
    elements random UUIDs; both are reset/replaced by a fixed sequence for the duration
    of the block (private Bokeh details, checked by a byte-identity test).
    """
    counter = itertools.count()

    def next_uuid() -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{next(counter)}")

    fake_uuid = SimpleNamespace(uuid4=next_uuid)
    with (
        mock.patch.object(bokeh_serialization, "_simple_id", 999),
        mock.patch.object(bokeh_serialization, "uuid", fake_uuid),
    ):
        yield


def page_code(query: bool) -> tuple[str, str]:
    """The page's JavaScript and CSS: explorer.js and explorer.css as they are; with a query set, query.js
    spliced into explorer.js's closure just before its exports (QUERY_SPLICE), where it extends the
    functions it names, and query.css after explorer.css. A page without a query set is byte for byte
    what it was before query sets."""
    page_js = (PAGE_FILES / "explorer.js").read_text(encoding="utf-8")
    page_css = (PAGE_FILES / "explorer.css").read_text(encoding="utf-8")
    if not query:
        return page_js, page_css
    if page_js.count(QUERY_SPLICE) != 1:
        raise AtlasError(
            f"{PAGE_FILES / 'explorer.js'}: no single line '{QUERY_SPLICE.strip()}' to add query.js before"
        )
    query_js = (PAGE_FILES / "query.js").read_text(encoding="utf-8")
    query_css = (PAGE_FILES / "query.css").read_text(encoding="utf-8")
    return page_js.replace(QUERY_SPLICE, query_js + QUERY_SPLICE), page_css + query_css


def render_page(
    data: dict, plots: list, random_note: str | None, subsample: str | None, query: dict | None = None
) -> str:
    """The page's HTML: Bokeh's standalone file (BokehJS inlined) around our controls, data and code;
    ``plots``: the left and right maps (explorer_plot's side 0 and 1); ``query``: the query set's layer
    (query_layer; its toggle and code). Call it, and make ``plots``, inside ``deterministic_bokeh_ids``
    for a byte-reproducible page."""
    page_js, page_css = page_code(query is not None)
    query_label = query_title = None
    if query is not None:
        query_label = f"query set ({query['n']:,})"
        query_title = "the query set placed on each map: show or hide it" + (
            f" (a random {query['n']:,} of its {query['n_total']:,} images, explorer.max_images)"
            if query["n"] < query["n_total"]
            else ""
        )
    return file_html(
        plots,
        INLINE,
        title=data["title"],
        template=PAGE_TEMPLATE,
        template_variables={
            "heading": data["title"],
            "compare_plot": PLOT_NAME + COMPARE_SUFFIX,
            "compare_suffix": COMPARE_SUFFIX,
            "random_note": random_note,
            "subsample_note": subsample,
            "note_colour": NOTE_COLOUR,
            "data_json": script_json(data),
            "script_id": SCRIPT_ID,
            "page_js": page_js,
            "page_css": page_css,
            "query_label": query_label,
            "query_title": query_title,
            "query_colour": QUERY_COLOUR,
        },
    )


def build_explorer(
    runs: list[tuple[str, str]],
    manifest: str,
    root: str | os.PathLike,
    output: str | os.PathLike,
    thumbnails: str | os.PathLike,
    features_files: dict[str, str],
    graph_files: dict[str, str],
    inline_max_images: int,
    neighbours: int,
    backend: str,
    order: list[str] | None = None,
    cluster_files: dict[str, str] | None = None,
    outlier_files: dict[str, str] | None = None,
    quality_file: str | None = None,
    query: QueryInputs | None = None,
    data_folder: str | os.PathLike | None = None,
) -> None:
    """Write the explorer page for ``runs`` (pairs of embedding TSV and meta JSON) to ``output``.

    ``thumbnails``: the explorer_thumbnails folder (its index names the images shown: all, or a fixed
    subsample); ``features_files``/``graph_files``/``cluster_files``: each feature set id's features
    file (for its predictions), k-NN graph and clusters.csv (none: no clusters on the page), and
    outliers.csv (none: no outlier colouring); ``quality_file``: the sample's quality.csv (none: no
    colouring by image problem); ``order``: the feature set ids in the order the menu lists them;
    ``query``: a query set's files (none: no query layer, the page as before query sets). ``backend``
    ``points``: the WebGL page of every image, its data in ``data_folder`` (explorer_points.py).
    """
    if backend == POINTS_BACKEND:
        from .explorer_points import build_points_page  # here: explorer_points imports this module

        if data_folder is None:
            raise AtlasError(
                "explorer.backend points: the page needs its data folder (output data); rerun the workflow"
            )
        build_points_page(
            runs, manifest, root, output, data_folder, thumbnails, features_files, graph_files, neighbours,
            order, cluster_files, outlier_files, quality_file, query,
        )  # fmt: skip
        return
    paths, coords, metas = load_runs(runs, manifest, order)
    sample = sample_labels(manifest, paths, runs[0][0])
    index = read_index(thumbnails)
    keep = fixed_subsample(len(paths), len(index.paths))
    if [paths[i] for i in keep] != index.paths:
        raise AtlasError(
            f"{Path(thumbnails) / 'thumbnails.json'}: lists other images than the runs; delete {thumbnails} and rerun"
        )
    set_ids = list(dict.fromkeys(str(meta["features"]) for meta in metas))
    labels = sample.labels
    sets, predicted, disagreement = feature_set_data(
        set_ids,
        features_files,
        graph_files,
        sample.indices() if sample.labelled else None,
        keep,
        len(paths),
        neighbours,
    )
    n_total = len(paths)
    note = subsample_note(len(keep), n_total, "explorer.max_images")
    paths, labels = index.paths, [labels[i] for i in keep]
    coords = [run_coords[keep] for run_coords in coords]
    metadata = {name: [values[i] for i in keep] for name, values in sample.metadata.items()}
    classes = sorted(set(labels))
    shown = f"{len(paths):,} of {n_total:,} images (random subsample)" if note else f"{n_total:,} images"
    feature_sets = ", ".join(set_ids)
    title = f"tsne-atlas explorer: {feature_sets} features, {shown}, {len(metas)} runs"
    inline = len(paths) <= inline_max_images
    query_data, query_coords = None, [None] * len(metas)
    if query is not None:
        query_data, query_coords = query_layer(
            query, metas, set_ids, keep, n_total, index, neighbours, inline_max_images, Path(output)
        )
        title += f", {query_data['n_total']:,} query images"
    thumbs = {
        "atlases": atlas_urls(index, Path(output), inline),
        "cell": index.cell,
        "columns": index.columns,
        "inline": inline,
    }
    clusters = [None if cluster_files is None else set_clusters(cluster_files[set_id], paths) for set_id in set_ids]
    options = colourings(labels, classes, metadata, predicted, disagreement, clusters)
    if outlier_files is not None:
        options.append(outlier_colouring([outlier_files[set_id] for set_id in set_ids], paths))
    if quality_file is not None:
        options.append(problem_colouring(quality_file, paths))
    data = payload(
        title,
        paths,
        labels,
        classes,
        sample.labelled,
        metadata,
        coords,
        metas,
        set_ids,
        sets,
        predicted,
        options,
        thumbs,
        image_base_url(root, Path(output)),
        clusters,
        query_data,
    )
    label_codes = np.searchsorted(classes, labels).astype(np.float64)  # classes are sorted
    random_note = sets_weights_note([str(m["features"]) for m in metas if m.get("weights_random")], set_ids)
    with deterministic_bokeh_ids():
        right_query = None if query is None else np.zeros((0, 2))
        plots = [
            explorer_plot(coords[0], label_codes, options[0]["colours"], figure_title(metas[0]), backend, query=query_coords[0]),
            explorer_plot(np.zeros((0, 2)), np.zeros(0), [MISSING_COLOUR], "", backend, 1, len(paths), right_query),
        ]  # fmt: skip
        html = render_page(data, plots, random_note, note and note[0].upper() + note[1:], query_data)
    with atomic_path(output) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    LOGGER.info(
        "wrote %s (%d of %d images, %d runs, thumbnails %s, %.1f MB)",
        output,
        len(paths),
        n_total,
        len(metas),
        "inlined" if inline else f"in {thumbnails}",
        len(html) / 1e6,
    )
    if query_data is not None:
        LOGGER.info("with the query set: %d of %d images on every run", query_data["n"], query_data["n_total"])


def explorer(
    embeddings: list[str],
    metas: list[str],
    manifest: str,
    features: list[str],
    graphs: list[str],
    clusters: list[str],
    outliers: list[str],
    quality: str,
    thumbnails: str,
    order: list[str],
    root: str,
    inline_max_images: int,
    neighbours: int,
    backend: str,
    html: str,
    data: str | None = None,
    query_placed: list[str] | None = None,
    query_placed_metas: list[str] | None = None,
    query_manifest: str | None = None,
    query_thumbnails: str | None = None,
    query_neighbours: list[str] | None = None,
    query_root: str | None = None,
) -> None:
    """The explorer page of the whole sweep, every feature set's runs in config ``order`` (rule explorer);
    ``features``, ``graphs``, ``clusters``, ``outliers``: the features file, k-NN graph, clusters.csv and
    outliers.csv of each feature set id in ``order``; ``quality``: the sample's quality.csv. With a query
    set (the rule gives these only then): ``query_placed`` and ``query_placed_metas``, its TSV and JSON on
    every run; ``query_manifest``, ``query_thumbnails``, ``query_root``; ``query_neighbours``, each feature
    set id's nearest reference images, in ``order``. ``data``: a points page's data folder (output data)."""
    query = None
    if query_placed is not None:
        query = QueryInputs(
            list(zip(query_placed, query_placed_metas)),
            query_manifest,
            query_thumbnails,
            dict(zip(order, query_neighbours)),
            query_root,
        )
    build_explorer(
        list(zip(embeddings, metas)),
        manifest,
        root,
        html,
        thumbnails,
        dict(zip(order, features)),
        dict(zip(order, graphs)),
        inline_max_images,
        neighbours,
        backend,
        order,
        dict(zip(order, clusters)),
        dict(zip(order, outliers)),
        quality,
        query,
        data,
    )
