"""Stage explorer, the points page: every image of a sweep (a million and more) in a WebGL point renderer,
one folder opened from ``file://``, no subsample (``explorer.backend: points``; ``auto`` above 100,000).

The page (``explorer_page/points.js``, ``points.css``) draws the points with regl-scatterplot (vendored:
``explorer_page/vendor/``, inlined into the page), which keeps a k-d tree of them for the hover and the
lasso. What the page needs at once is small and inline (one JSON document, as the canvas page's):
titles, the runs, the feature sets, what it can colour by (names, categories, colours, ranges), the
thumbnails' atlases. The per-image arrays lie beside the page in ``explorer-data/`` as classic scripts
(``fetch`` and ES modules are refused on ``file://`` pages; a ``<script src>`` is not), each calling
``tsneAtlasData(key, value)``, loaded when first needed (``files/explorer_page.py`` lists the keys):
a run's coordinates when it is shown, a colouring's codes when chosen, the paths, metadata and
predictions in chunks of ROWS_PER_CHUNK images on a hover, a click or a search, the neighbour lists in
chunks on a click. ``index.js`` carries a digest of every file, which the page checks against its own
copy, so a data folder of another build is said in one line instead of shown.

Kept from the canvas page (explorer.py, which computes the colourings, neighbours and clusters for both):
hover card, the clicked image's neighbours in feature space and on the map, search (paths, labels,
metadata), colour by anything the canvas page colours by with its legend (an entry hides its points),
box and lasso selection with its CSV, the address keeping run, colouring, search and clicked image,
every user string set as text only. Zoomed in, the points become their thumbnails (drawn from the
atlases on a canvas over the points). On canvas pages only: two maps compared side by side, the
clusters' names on the map, density contours and the query layer; the page says so in one line when the
sweep has them.
"""

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
from jinja2 import Template

from .explorer import (
    MISSING_COLOUR,
    PAGE_FILES,
    QueryInputs,
    atlas_urls,
    colourings,
    feature_set_data,
    image_base_url,
    load_runs,
    marker_size,
    menu_label,
    outlier_colouring,
    problem_colouring,
    set_clusters,
)
from .figure_style import NOTE_COLOUR, figure_title, sets_weights_note
from .files.explorer_page import SCRIPT_ID, b64, from_b64, script_json
from .files.manifest import sample_labels
from .files.thumbnails import INDEX_NAME, read_index
from .jobs import AtlasError, atomic_path

LOGGER = logging.getLogger("tsne_atlas.build_explorer")
VENDOR_BUNDLE = PAGE_FILES / "vendor" / "regl-scatterplot.js"
# Images per chunk of paths, metadata and predictions (and of neighbour lists): at 1,000,000 images 100
# chunks of about 0.5 MB, one loaded for a hover.
ROWS_PER_CHUNK = 10_000
# The function every data script calls (points.js defines it).
DATA_FUNCTION = "tsneAtlasData"
# Data format of explorer-data/ (points.js refuses another).
DATA_FORMAT = 1
# Images drawn while the view moves (a wheel zoom, a pan): above it the page draws an even subsample of
# this many until the view rests, so that a frame of a moving view of 1,000,000 costs what one of 100,000
# does (drawn in software, as headless Chromium here does, every point costs; BENCHMARKS.md).
MOTION_POINTS = 100_000


def code_dtype(n_categories: int) -> str:
    """The smallest little-endian dtype holding codes 0 .. n_categories - 1."""
    return "<u1" if n_categories <= 1 << 8 else "<u2" if n_categories <= 1 << 16 else "<i4"


class DataWriter:
    """Writes ``explorer-data/<key>.js`` files, each ``tsneAtlasData("<key>", <JSON>);``, and keeps a digest
    of all of them (``token``)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.digest = hashlib.sha256()
        self.bytes = 0
        self.files = 0

    def write(self, key: str, value) -> None:
        text = f"{DATA_FUNCTION}({json.dumps(key)},{script_json(value)});\n"
        data = text.encode("utf-8")
        self.digest.update(key.encode("utf-8") + b"\0" + data)
        (self.folder / f"{key}.js").write_bytes(data)
        self.bytes += len(data)
        self.files += 1

    @property
    def token(self) -> str:
        return self.digest.hexdigest()[:32]


def array_value(array: np.ndarray, dtype: str) -> dict:
    return {"dtype": dtype, "data": b64(array, dtype)}


def colouring_file(colouring: dict, key: str, writer: DataWriter) -> dict:
    """One colouring (explorer.py's categorical or continuous dict) with its per-image array moved to a
    data file ``key``: ``file`` names it, the rest (categories, colours, range) stays in the page."""
    if colouring["kind"] == "categorical":
        codes = from_b64(colouring["codes"], "<i4")
        dtype = code_dtype(len(colouring["categories"]))
        writer.write(key, array_value(codes, dtype))
        rest = {k: v for k, v in colouring.items() if k != "codes"}
    else:
        writer.write(key, array_value(from_b64(colouring["values"], "<f4"), "<f4"))
        rest = {k: v for k, v in colouring.items() if k != "values"}
    return {**rest, "file": key}


def write_data(
    folder: Path,
    paths: list[str],
    metadata: dict[str, list[str]],
    coords: list[np.ndarray],
    sets: list[dict],
    predicted: list[list[str] | None],
    options: list[dict],
) -> tuple[str, DataWriter, list[dict], list[dict]]:
    """Write every data file of the page into ``folder`` (emptied first); returns the digest of the data
    (``index.js`` carries it, so does the page), the writer (its sizes), the colourings with their files
    named and the sets with their neighbour chunks named."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    writer = DataWriter(folder)
    for k, run_coords in enumerate(coords):
        writer.write(f"run-{k}", {"x": array_value(run_coords[:, 0], "<f4"), "y": array_value(run_coords[:, 1], "<f4")})
    page_options = []
    for c, option in enumerate(options):
        if option["per_set"]:
            entry = {k: v for k, v in option.items() if k != "sets"}
            entry["sets"] = [
                None if colouring is None else colouring_file(colouring, f"colour-{c}-{s}", writer)
                for s, colouring in enumerate(option["sets"])
            ]
        else:
            entry = colouring_file(option, f"colour-{c}", writer)
        page_options.append(entry)
    n = len(paths)
    columns = list(metadata.values())
    for chunk, start in enumerate(range(0, n, ROWS_PER_CHUNK)):
        stop = min(n, start + ROWS_PER_CHUNK)
        writer.write(
            f"rows-{chunk}",
            {
                "paths": paths[start:stop],
                "metadata": [values[start:stop] for values in columns],
                "predicted": [None if texts is None else texts[start:stop] for texts in predicted],
            },
        )
    page_sets = []
    for s, entry in enumerate(sets):
        k = entry["k"]
        neighbours = from_b64(entry["neighbours"], "<i4").reshape(n, k)
        distances = from_b64(entry["distances"], "<f4").reshape(n, k)
        for chunk, start in enumerate(range(0, n, ROWS_PER_CHUNK)):
            stop = min(n, start + ROWS_PER_CHUNK)
            writer.write(
                f"neighbours-{s}-{chunk}",
                {"neighbours": array_value(neighbours[start:stop], "<i4"), "distances": array_value(distances[start:stop], "<f4")},
            )  # fmt: skip
        page_sets.append({"id": entry["id"], "k": k})
    token = writer.token  # of every file but the index, which carries it
    writer.write("index", {"format": DATA_FORMAT, "token": token, "files": writer.files})
    return token, writer, page_options, page_sets


def canvas_only_note(metas: list[dict], clusters: list[dict | None], query: QueryInputs | None) -> str | None:
    """The one line saying which of the canvas page's views this sweep has that a points page leaves out."""
    missing = []
    if len(metas) > 1:
        missing.append("two runs compared side by side")
    if any(found is not None for found in clusters):
        missing.append("the clusters' names on the map")
    missing.append("density contours")
    if query is not None:
        missing.append("the query set's layer")
    return (
        f"This page draws every image with WebGL; {', '.join(missing)} are on the canvas page only "
        "(explorer.backend: canvas, which shows at most explorer.max_images images)."
    )


PAGE_TEMPLATE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title | e }}</title>
<style>{{ page_css }}</style>
</head>
<body>
<header>
  <h1>{{ title | e }}</h1>
  {% if random_note %}<p class="note" id="random-weights-note" style="color: {{ note_colour }}">{{ random_note | e }}</p>{% endif %}
  <p class="hint" id="canvas-only-note">{{ canvas_note | e }}</p>
</header>
<div class="controls">
  <label>run <select id="run-select"></select></label>
  <label>colour by <select id="colour-select"></select></label>
  <label>find <input id="search" type="search" placeholder="file name, label or metadata" autocomplete="off"></label>
  <span id="search-count" class="count"></span>
  <button id="select-matches" type="button" disabled>select matches</button>
  <span class="modes" role="group" aria-label="what a drag does">
    <button id="mode-pan" type="button" class="mode active" title="drag to move the map, wheel to zoom">pan</button>
    <button id="mode-box" type="button" class="mode" title="drag a box to select">box</button>
    <button id="mode-lasso" type="button" class="mode" title="draw around points to select (or shift-drag in pan mode)">lasso</button>
  </span>
  <button id="clear-selection" type="button" disabled>clear selection</button>
  <button id="export-selection" type="button" disabled>download selection (CSV)</button>
  <span id="selection-count" class="count"></span>
</div>
<div class="main">
  <div class="plot">
    <div class="plot-title" id="plot-title"></div>
    <div class="canvas-wrap" id="canvas-wrap"><canvas id="points-canvas"></canvas><canvas id="overlay" aria-hidden="true"></canvas></div>
    <p id="status" class="status"></p>
  </div>
  <aside>
    <section id="legend"></section>
    <section id="neighbours"><p class="hint">Click a point to see its nearest neighbours in feature space beside its nearest on the map (Esc clears it). Zoom in (wheel) until few images are in view to see them as thumbnails. Select with the box or lasso mode. The address of the page keeps the run, colouring, search and clicked image: copy it to share the view.</p></section>
  </aside>
</div>
<div id="hover-card" hidden></div>
<script type="application/json" id="{{ script_id }}">{{ data_json }}</script>
<script>{{ vendor_js }}</script>
<script>{{ page_js }}</script>
</body>
</html>
"""
)


def render_points_page(data: dict, random_note: str | None, canvas_note: str | None) -> str:
    vendor_js = VENDOR_BUNDLE.read_text(encoding="utf-8")
    page_js = (PAGE_FILES / "points.js").read_text(encoding="utf-8")
    for name, text in ((VENDOR_BUNDLE, vendor_js), (PAGE_FILES / "points.js", page_js)):
        if "</script" in text.lower():
            raise AtlasError(f"{name}: holds '</script', which would end the page's script element early")
    return PAGE_TEMPLATE.render(
        title=data["title"],
        random_note=random_note,
        note_colour=NOTE_COLOUR,
        canvas_note=canvas_note,
        page_css=(PAGE_FILES / "points.css").read_text(encoding="utf-8"),
        script_id=SCRIPT_ID,
        data_json=script_json(data),
        vendor_js=vendor_js,
        page_js=page_js,
    )


def build_points_page(
    runs: list[tuple[str, str]],
    manifest: str,
    root: str | os.PathLike,
    output: str | os.PathLike,
    data_folder: str | os.PathLike,
    thumbnails: str | os.PathLike,
    features_files: dict[str, str],
    graph_files: dict[str, str],
    neighbours: int,
    order: list[str] | None = None,
    cluster_files: dict[str, str] | None = None,
    outlier_files: dict[str, str] | None = None,
    quality_file: str | None = None,
    query: QueryInputs | None = None,
) -> None:
    """Write the points page of ``runs`` to ``output`` and its data to ``data_folder`` (the arguments are
    build_explorer's; the thumbnails index must list every image, as a points page's does)."""
    paths, coords, metas = load_runs(runs, manifest, order)
    sample = sample_labels(manifest, paths, runs[0][0])
    index = read_index(thumbnails)
    if index.paths != paths:
        raise AtlasError(
            f"{Path(thumbnails) / INDEX_NAME}: lists {len(index.paths)} images, not the runs' {len(paths)} "
            f"(a points page shows every image); delete {thumbnails} and rerun"
        )
    set_ids = list(dict.fromkeys(str(meta["features"]) for meta in metas))
    n = len(paths)
    everything = np.arange(n)
    labels = sample.labels
    sets, predicted, disagreement = feature_set_data(
        set_ids, features_files, graph_files, sample.indices() if sample.labelled else None, everything, n, neighbours
    )
    classes = sorted(set(labels))
    clusters = [None if cluster_files is None else set_clusters(cluster_files[set_id], paths) for set_id in set_ids]
    options = colourings(labels, classes, sample.metadata, predicted, disagreement, clusters)
    if outlier_files is not None:
        options.append(outlier_colouring([outlier_files[set_id] for set_id in set_ids], paths))
    if quality_file is not None:
        options.append(problem_colouring(quality_file, paths))
    token, writer, page_options, page_sets = write_data(
        Path(data_folder), paths, sample.metadata, coords, sets, predicted, options
    )
    title = f"tsne-atlas explorer: {', '.join(set_ids)} features, {n:,} images, {len(metas)} runs"
    if query is not None:
        title += " (the query set is on the canvas page only)"
    output = Path(output)
    data_url = Path(os.path.relpath(Path(data_folder).resolve(), output.resolve().parent)).as_posix()
    data = {
        "title": title,
        "n": n,
        "token": token,
        "data": data_url + "/",
        "chunk": ROWS_PER_CHUNK,
        "classes": classes,
        "labelled": sample.labelled,
        "metadata_columns": list(sample.metadata),
        "runs": [
            {"label": menu_label(meta), "title": figure_title(meta), "set": set_ids.index(str(meta["features"]))}
            for meta in metas
        ],
        "sets": [
            {**entry, "predicted": texts is not None, "clustered": found is not None}
            for entry, texts, found in zip(page_sets, predicted, clusters)
        ],
        "colourings": page_options,
        "missing": MISSING_COLOUR,
        "point_size": marker_size(n),
        "motion_points": MOTION_POINTS,
        "thumbs": {"atlases": atlas_urls(index, output, False), "cell": index.cell, "columns": index.columns},
        "image_base": image_base_url(root, output),
    }
    random_note = sets_weights_note([str(m["features"]) for m in metas if m.get("weights_random")], set_ids)
    html = render_points_page(data, random_note, canvas_only_note(metas, clusters, query))
    with atomic_path(output) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    LOGGER.info(
        "wrote %s (points page: %d images, %d runs, %.1f MB) and %s (%d files, %.1f MB)",
        output,
        n,
        len(metas),
        len(html) / 1e6,
        data_folder,
        writer.files,
        writer.bytes / 1e6,
    )
