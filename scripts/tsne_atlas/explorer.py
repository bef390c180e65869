"""Stage explorer: one self-contained, offline HTML page for a whole t-SNE sweep.

A Bokeh scatter plot of every image, coloured by class, with a menu that switches
between the (feature set, perplexity, seed) runs, a legend whose entries hide and show a class,
and a hover tooltip with the image's thumbnail, path and class. BokehJS, the
coordinates of every run and the thumbnails are all inlined, so the file works
without a network and can be mailed on its own. Each thumbnail costs 5-20 KB of HTML, so
above ``max_images`` images the page shows a fixed random subsample (the same for every
run) and says so above the plot.

Paths and class names come from the user's file system: the tooltip only ever shows
them through Bokeh's escaped ``@field`` substitution, never ``{safe}``, so a file
named ``<img src=x onerror=alert(1)>.png`` shows as text and runs nothing.
"""

import base64
import contextlib
import io
import itertools
import logging
import os
import uuid
from collections.abc import Iterator
from html import escape as html_escape
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
from bokeh.embed import file_html
from bokeh.layouts import column
from bokeh.models import Column, ColumnDataSource, CustomJS, Div, HoverTool, Select
from bokeh.plotting import figure
from bokeh.resources import INLINE
from bokeh.util import serialization as bokeh_serialization
from matplotlib.colors import to_hex
from PIL import Image, UnidentifiedImageError

from .figure_style import NOTE_COLOUR, RANDOM_WEIGHTS_NOTE, class_colours, class_markers, figure_title
from .files.features import read_predictions
from .files.manifest import read_manifest
from .files.runs import read_run, run_sort_key
from .images import load_rgb
from .jobs import AtlasError, atomic_path
from .subsample import fixed_subsample, subsample_note

LOGGER = logging.getLogger("tsne_atlas.build_explorer")
# figure_style's matplotlib marker codes as Bokeh marker types, so a class has one shape everywhere.
BOKEH_MARKERS = {
    "o": "circle",
    "s": "square",
    "^": "triangle",
    "D": "diamond",
    "v": "inverted_triangle",
    "P": "plus",
    "X": "x",
    "*": "star",
}
TOOLS = "pan,wheel_zoom,box_zoom,reset"
# Bokeh escapes every @field it substitutes into this template (there is no {safe} here):
# paths, labels, predictions and metadata are user data and must never become markup. Metadata
# column names are escaped where the template names them (``tooltip``).
TOOLTIP_HEAD = """
<div style="max-width: 320px">
  <img src="@thumb" alt="thumbnail" style="display: block; margin-bottom: 4px">
  <div style="font-family: monospace; font-size: 11px; overflow-wrap: anywhere">@path</div>
  <div style="font-size: 12px"><b>class:</b> @label</div>
"""
TOOLTIP_ROW = """  <div style="font-size: 12px; overflow-wrap: anywhere"><b>{name}:</b> @{{{field}}}</div>
"""
PREDICTED = "predicted"


def tooltip(metadata_columns: list[str], predictions: bool) -> str:
    """The hover template: thumbnail, path, class, then the prediction (when any set stores them) and
    each metadata column (name escaped; values are Bokeh fields, which Bokeh escapes)."""
    rows = [TOOLTIP_ROW.format(name="predicted", field=PREDICTED)] if predictions else []
    rows += [
        TOOLTIP_ROW.format(name=html_escape(name), field=metadata_field(i)) for i, name in enumerate(metadata_columns)
    ]
    return TOOLTIP_HEAD + "".join(rows) + "</div>\n"


def metadata_field(column: int) -> str:
    """The data-source field of a metadata column (user column names are never field names)."""
    return f"meta{column}"


def predicted_field(features_index: int) -> str:
    return f"{PREDICTED}{features_index}"


def prediction_texts(features: str | os.PathLike) -> list[str] | None:
    """Each image's top-1 predicted class and probability as text, or None without predictions."""
    predictions, _ = read_predictions(features)
    if predictions is None:
        return None
    names, probabilities = predictions.top1()
    return [f"{name} ({p:.0%})" for name, p in zip(names, probabilities)]


# Stable model names: the browser tests (and anyone scripting the page) find models by them.
SELECT_NAME = "run-select"
PLOT_NAME = "tsne-plot"
NOTE_NAME = "random-weights-note"
SUBSAMPLE_NAME = "subsample-note"


def renderer_name(class_index: int) -> str:
    """Name of the glyph renderer (and its data source, with ``-source``) of one class."""
    return f"points-{class_index}"


def thumbnail_data_uri(path: str | os.PathLike, thumb_size: int) -> str:
    """The image as a PNG data URI whose longer side is ``thumb_size`` (EXIF rotation applied, RGB)."""
    try:
        rgb = load_rgb(path)
    except FileNotFoundError:
        raise AtlasError(
            f"{path}: image listed in the embedding is missing; restore it or rerun the workflow from sampling"
        ) from None
    except (UnidentifiedImageError, OSError) as err:
        raise AtlasError(f"{path}: not a readable image ({err}); replace or remove it and rerun") from None
    scale = thumb_size / max(rgb.size)
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
    buffer = io.BytesIO()
    rgb.resize(size, resample).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def run_label(meta: dict) -> str:
    """The menu entry of one run, e.g. ``resnet101 · perplexity 30, seed 0 (KL 0.69)``."""
    return (
        f"{meta['features']} · perplexity {meta['perplexity']:g}, seed {meta['seed']} (KL {meta['kl_divergence']:.2f})"
    )


def load_runs(
    runs: list[tuple[str, str]], manifest: str, order: list[str] | None = None
) -> tuple[list[str], list[str], list[np.ndarray], list[dict]]:
    """Read every (embedding TSV, meta JSON) pair, sorted by feature set (in ``order``, the config's,
    when given; else by name), perplexity and seed.

    Returns the shared paths and labels, one N x 2 coordinate array per run and the
    runs' metadata. Every run must list the same images in the same order.
    """
    if not runs:
        raise AtlasError("the explorer got no embeddings; set at least one tsne.perplexities and tsne.seeds value")
    loaded = []
    for tsv, meta_json in runs:
        run = read_run(tsv, meta_json, manifest)
        loaded.append((tsv, run.meta, run.paths, run.labels, run.coords))
    rank = {features_id: i for i, features_id in enumerate(order or [])}
    loaded.sort(key=lambda run: (rank.get(run[1]["features"], len(rank)), *run_sort_key(run[1])))
    first_tsv, _, paths, labels, _ = loaded[0]
    for tsv, _, other_paths, other_labels, _ in loaded[1:]:
        if other_paths != paths or other_labels != labels:
            raise AtlasError(f"{tsv}: lists other images than {first_tsv}; delete the results/tsne folder and rerun")
    return paths, labels, [run[4] for run in loaded], [run[1] for run in loaded]


def class_sources(
    paths: list[str],
    labels: list[str],
    classes: list[str],
    coords: list[np.ndarray],
    thumbs: list[str],
    metadata: dict[str, list[str]] | None = None,
    predicted: list[list[str] | None] | None = None,
) -> list[ColumnDataSource]:
    """One data source per class: current x/y (the first run), x<k>/y<k> for run k, path, label, thumb,
    meta<i> per metadata column, and with predictions ``predicted`` (the first run's set) and
    predicted<j> per feature set j (n/a for a set without predictions)."""
    metadata = metadata or {}
    predicted = list(predicted or [])
    has_predictions = any(p is not None for p in predicted)
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise AtlasError(
            f"labels {unknown} are not in the runs' 'classes' list; delete the results/tsne folder and rerun"
        )
    label_indices = np.array([index[label] for label in labels], dtype=np.int64)
    sources = []
    for class_index, name in enumerate(classes):
        rows = np.flatnonzero(label_indices == class_index)
        data = {
            "x": coords[0][rows, 0],
            "y": coords[0][rows, 1],
            "path": [paths[i] for i in rows],
            "label": [name] * len(rows),
            "thumb": [thumbs[i] for i in rows],
        }
        for k, run_coords in enumerate(coords):
            data[f"x{k}"] = run_coords[rows, 0]
            data[f"y{k}"] = run_coords[rows, 1]
        for column_index, values in enumerate(metadata.values()):
            data[metadata_field(column_index)] = [values[i] for i in rows]
        if has_predictions:
            for j, texts in enumerate(predicted):
                data[predicted_field(j)] = [texts[i] for i in rows] if texts is not None else ["n/a"] * len(rows)
            data[PREDICTED] = data[predicted_field(0)]
        sources.append(ColumnDataSource(data, name=f"{renderer_name(class_index)}-source"))
    return sources


def explorer_layout(
    sources: list[ColumnDataSource],
    classes: list[str],
    metas: list[dict],
    marker_size: float = 7.0,
    subsample: str | None = None,
    hover: str | None = None,
    run_sets: list[int] | None = None,
) -> Column:
    """The page's Bokeh layout: note (random weights only), subsample note (when given), run menu and the plot."""
    titles = [figure_title(meta) for meta in metas]
    plot = figure(
        title=titles[0],
        tools=TOOLS,
        active_scroll="wheel_zoom",
        match_aspect=True,
        sizing_mode="stretch_width",
        height=640,
        min_width=600,
        name=PLOT_NAME,
        output_backend="canvas",
    )
    plot.xaxis.visible = plot.yaxis.visible = False  # t-SNE axes have no meaning
    plot.grid.visible = False
    renderers = []
    styles = zip(class_colours(len(classes)), class_markers(len(classes)))
    for class_index, (name, (colour, marker), source) in enumerate(zip(classes, styles, sources)):
        renderers.append(
            plot.scatter(
                "x",
                "y",
                source=source,
                size=marker_size,
                color=to_hex(colour),
                alpha=0.85,
                marker=BOKEH_MARKERS.get(marker, "circle"),
                legend_label=f"{name} ({len(source.data['x'])})",
                name=renderer_name(class_index),
            )
        )
    legend = plot.legend[0]
    legend.click_policy = "hide"
    legend.title = "class (click to hide)"
    legend.ncols = 1 + (len(classes) - 1) // 25  # long class lists wrap into columns
    plot.add_layout(legend, "right")  # outside the data area, however many classes
    plot.add_tools(HoverTool(renderers=renderers, tooltips=hover or tooltip([], False)))

    options = [(str(k), run_label(meta)) for k, meta in enumerate(metas)]
    select = Select(title="t-SNE run", value="0", options=options, name=SELECT_NAME, width=420)
    select.js_on_change(
        "value",
        CustomJS(
            args=dict(sources=sources, plot=plot, titles=titles, run_sets=run_sets or [0] * len(metas)),
            code="""
        // Every run's coordinates are already in each source as x<k>, y<k>: point x/y at run k's,
        // and the hover's prediction at that of run k's feature set, when there are predictions.
        const k = Number(cb_obj.value);
        for (const source of sources) {
            const data = source.data;
            data.x = data["x" + k];
            data.y = data["y" + k];
            if ("predicted" in data) {
                data.predicted = data["predicted" + run_sets[k]];
            }
            source.change.emit();
        }
        plot.title.text = titles[k];
        plot.reset.emit();  // re-fit the ranges to the new layout
    """,
        ),
    )
    children = []
    if any(meta.get("weights_random") for meta in metas):
        children.append(
            Div(
                text=RANDOM_WEIGHTS_NOTE,
                render_as_text=True,
                name=NOTE_NAME,
                styles={"color": NOTE_COLOUR, "font-weight": "bold", "font-size": "16px"},
            )
        )
    if subsample:
        children.append(
            Div(
                text=subsample,
                render_as_text=True,
                name=SUBSAMPLE_NAME,
                styles={"font-weight": "bold", "font-size": "14px"},
            )
        )
    children.append(select)
    children.append(plot)
    return column(children, sizing_mode="stretch_width")


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


def build_explorer(
    runs: list[tuple[str, str]],
    manifest: str,
    root: str | os.PathLike,
    output: str | os.PathLike,
    thumb_size: int,
    max_images: int,
    order: list[str] | None = None,
    features_files: dict[str, str] | None = None,
) -> None:
    """Write the explorer page for ``runs`` (pairs of embedding TSV and meta JSON) to ``output``.

    ``root`` is the dataset root the TSVs' image paths are relative to. Above ``max_images``
    images the page holds a fixed random subsample of them (the same for every run) and says so.
    ``order``: the feature set ids in the order the menu lists them. ``features_files``: each feature
    set id's features file, whose predictions (when stored) the hover shows. The manifest's metadata
    columns are shown on hover too.
    """
    paths, labels, coords, metas = load_runs(runs, manifest, order)
    metadata = read_manifest(manifest).metadata
    set_ids = list(dict.fromkeys(str(meta["features"]) for meta in metas))
    predicted = [prediction_texts(features_files[set_id]) if features_files else None for set_id in set_ids]
    n_total = len(paths)
    keep = fixed_subsample(n_total, max_images)
    note = subsample_note(len(keep), n_total, "explorer.max_images")
    if note:
        paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
        coords = [run_coords[keep] for run_coords in coords]
        metadata = {name: [values[i] for i in keep] for name, values in metadata.items()}
        predicted = [None if texts is None else [texts[i] for i in keep] for texts in predicted]
    classes = sorted(set(labels))
    # One thumbnail per image, shared by all runs.
    thumbs = [thumbnail_data_uri(Path(root) / path, thumb_size) for path in paths]
    with deterministic_bokeh_ids():
        layout = explorer_layout(
            class_sources(paths, labels, classes, coords, thumbs, metadata, predicted),
            classes,
            metas,
            subsample=note and note[0].upper() + note[1:],
            hover=tooltip(list(metadata), any(texts is not None for texts in predicted)),
            run_sets=[set_ids.index(str(meta["features"])) for meta in metas],
        )
        shown = f"{len(paths):,} of {n_total:,} images (random subsample)" if note else f"{n_total:,} images"
        feature_sets = ", ".join(dict.fromkeys(str(meta["features"]) for meta in metas))
        title = f"tsne-atlas explorer: {feature_sets} features, {shown}, {len(metas)} runs"
        html = file_html(layout, INLINE, title=title)
    with atomic_path(output) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    LOGGER.info(
        "wrote %s (%d of %d images, %d runs, %.1f MB)", output, len(paths), n_total, len(metas), len(html) / 1e6
    )


def explorer(
    embeddings: list[str],
    metas: list[str],
    manifest: str,
    features: list[str],
    order: list[str],
    root: str,
    thumb_size: int,
    max_images: int,
    html: str,
) -> None:
    """The explorer page of the whole sweep, every feature set's runs in config ``order`` (rule explorer);
    ``features``: the features file of each feature set id in ``order``."""
    build_explorer(
        list(zip(embeddings, metas)), manifest, root, html, thumb_size, max_images, order, dict(zip(order, features))
    )
