"""Stages of ``compare/``: how the feature sets differ, shown three ways.

- ``compare_sheet``: a contact sheet, rows = feature sets, columns = each map's method and settings
  (t-SNE's perplexities, UMAP's settings, PCA), one seed. Each map is aligned to the reference
  set's map of the same method and settings by orthogonal
  Procrustes (translation, rotation, reflection, one uniform scale; no shear), so a cluster sits in
  the same place down a column and differences between sets are not mere rotations or mirror images
  of t-SNE's arbitrary frame. PNG and PDF.
- ``compare_metrics``: per feature set (and method, side by side), trustworthiness and k-NN label
  accuracy (in 2-D and in the feature space) over its runs, as a CSV table (one row per run) and a
  plot (PNG, SVG).
- ``cka_table``: linear CKA (Kornblith et al. 2019) between every pair of feature sets, on the
  images they share: a CSV matrix and a heatmap (PNG). CKA compares the features themselves, not
  their embeddings, so it is free of t-SNE's randomness.

The numeric functions (``procrustes_align``, ``linear_cka``, ``cka_matrix``, ``matched_rows``) take
and return plain arrays.
"""

import logging
import textwrap

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from scipy.linalg import orthogonal_procrustes

from .figure_style import (
    METHOD_COLOURS,
    NOTE_COLOUR,
    PDF_METADATA,
    PNG_METADATA,
    class_colours,
    class_markers,
    draw_classes,
    literal,
    note_legend,
    plt,
    save_figure,
    sets_weights_note,
    vector_dpi,
)
from .files.clusters import read_summary, summary_columns
from .files.compare import write_cka_table, write_compare_table
from .files.features import read_features
from .files.metrics import read_run_metrics
from .files.runs import (
    METHOD_NAMES,
    METHODS,
    RunRecord,
    read_run,
    run_seed,
    run_settings,
    run_sort_key,
    setting_label,
    settings_text,
)
from .jobs import AtlasError, atomic_path
from .subsample import SUBSAMPLE_RANDOM_STATE, fixed_subsample

LOGGER = logging.getLogger("tsne_atlas.compare")

# Fewer shared images leave Procrustes and CKA nothing to fit (a 2-D frame needs 3 points).
MIN_SHARED_IMAGES = 3
# Marker area of a sheet panel (as the sweep overview's panels).
PANEL_POINT_SIZE = 3.0
CKA_TITLE = "Linear CKA between feature sets (Kornblith et al. 2019)"
COMPARE_COLOUR = "#3f90da"
# Horizontal offset of single runs' dots from their set's mean, in category widths.
RUN_OFFSET = 0.15


# --- numbers ---------------------------------------------------------------------------------


def procrustes_transform(reference: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The map ``coords @ linear + shift`` that best fits ``coords`` onto ``reference`` (same rows).

    ``linear`` is an orthogonal matrix (rotation and/or reflection) times one uniform scale, both
    least-squares optimal: the rotation from ``scipy.linalg.orthogonal_procrustes`` on centred data,
    then the scale that minimises the residual given it. Returns ``(linear, shift)``.
    """
    reference = np.asarray(reference, dtype=np.float64)
    coords = np.asarray(coords, dtype=np.float64)
    if reference.ndim != 2 or reference.shape != coords.shape:
        raise ValueError(f"Procrustes needs two N x D arrays of one shape, got {reference.shape} and {coords.shape}")
    reference_centre, coords_centre = reference.mean(axis=0), coords.mean(axis=0)
    centred = coords - coords_centre
    rotation, singular_sum = orthogonal_procrustes(centred, reference - reference_centre)
    spread = float(np.sum(centred**2))
    # For the optimal rotation, trace(R^T A^T B) is the sum of the singular values of A^T B, so the
    # least-squares scale is that sum over ||A||^2. Coincident points have no frame: scale 0 puts
    # them all on the reference's centroid.
    scale = singular_sum / spread if spread > 0 else 0.0
    linear = scale * rotation
    return linear, reference_centre - coords_centre @ linear


def procrustes_align(reference: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """``coords`` (N x 2) mapped into ``reference``'s frame (N x 2, row i = the same image in both).

    Translation, rotation, reflection and one uniform scale, least squares; no shear, no per-axis
    scale, so the shape of the embedding is kept and only t-SNE's arbitrary frame is removed.
    """
    linear, shift = procrustes_transform(reference, coords)
    return np.asarray(coords, dtype=np.float64) @ linear + shift


def _centred(features: np.ndarray, name: str) -> np.ndarray:
    """Columns centred, in float64. A representation the same for every image has no CKA (0 / 0)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"CKA needs N x D features, got shape {features.shape}")
    # Tested on the raw values: centring a constant column can leave rounding noise, not zeros.
    if np.all(features == features[:1]):
        raise AtlasError(f"{name} is the same for every compared image: its CKA with anything is undefined")
    return features - features.mean(axis=0)


def _cross_norm_sq(x: np.ndarray, y: np.ndarray) -> float:
    """||Y^T X||_F^2 = <X X^T, Y Y^T>_F of centred x, y, through whichever product is smaller.

    The feature-space form costs D1 x D2 memory, the Gram form N x N; features of wide layers or
    precomputed files can have D far above N, where the Gram form is the light one.
    """
    n, dx, dy = x.shape[0], x.shape[1], y.shape[1]
    if dx * dy <= n * n:
        return float(np.sum((y.T @ x) ** 2))
    return float(np.sum((x @ x.T) * (y @ y.T)))


def _cka_of_centred(x: np.ndarray, y: np.ndarray, x_norm: float, y_norm: float) -> float:
    # Rounding can put CKA of near-identical features a hair above 1.
    return float(np.clip(_cross_norm_sq(x, y) / (x_norm * y_norm), 0.0, 1.0))


def _self_norm(x: np.ndarray) -> float:
    """||X^T X||_F of centred x."""
    return _cross_norm_sq(x, x) ** 0.5


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) of two representations of the same N images, in [0, 1].

    ``x`` is N x D1, ``y`` N x D2 (row i = the same image). Columns are centred; then
    CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), in float64. 1 for representations equal up to
    an orthogonal map and isotropic scaling; it is not invariant to other invertible linear maps.
    """
    x, y = _centred(x, "the first representation"), _centred(y, "the second representation")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same images in both: {x.shape[0]} rows against {y.shape[0]}")
    return _cka_of_centred(x, y, _self_norm(x), _self_norm(y))


def cka_matrix(features: list[np.ndarray], ids: list[str] | None = None) -> np.ndarray:
    """K x K linear CKA between every pair of ``features`` (each N x D_k, same rows): symmetric, 1 on the diagonal.

    ``ids`` name the sets in errors.
    """
    names = ids or [f"feature set {k + 1} of {len(features)}" for k in range(len(features))]
    centred = [_centred(f, f"feature set {name!r}" if ids else name) for f, name in zip(features, names)]
    if len({c.shape[0] for c in centred}) > 1:
        raise ValueError(f"CKA needs the same images in every set, got row counts {[c.shape[0] for c in centred]}")
    norms = [_self_norm(c) for c in centred]
    matrix = np.eye(len(centred))
    for i in range(len(centred)):
        for j in range(i + 1, len(centred)):
            matrix[i, j] = matrix[j, i] = _cka_of_centred(centred[i], centred[j], norms[i], norms[j])
    return matrix


def matched_rows(paths_by_set: list[list[str]]) -> list[np.ndarray]:
    """Per set, the row indices of the images every set holds, in the first set's order.

    Sets may hold the same images in different orders, and some images only some sets have.
    """
    positions = []
    for k, paths in enumerate(paths_by_set):
        position = {path: i for i, path in enumerate(paths)}
        if len(position) != len(paths):
            twice = next(p for i, p in enumerate(paths) if position[p] != i)
            raise AtlasError(
                f"feature set {k + 1} of {len(paths_by_set)} lists image {twice!r} twice; delete its outputs and rerun"
            )
        positions.append(position)
    shared = [path for path in paths_by_set[0] if all(path in position for position in positions[1:])]
    if len(shared) < MIN_SHARED_IMAGES:
        raise AtlasError(
            f"the {len(paths_by_set)} feature sets share {len(shared)} image(s), at least {MIN_SHARED_IMAGES} are "
            "needed to compare them; do they come from the same sample of the same dataset?"
        )
    return [np.array([position[path] for path in shared], dtype=np.int64) for position in positions]


# --- the contact sheet -----------------------------------------------------------------------


def _column(run: RunRecord) -> tuple:
    """A run's column on the sheet: its method and settings (the sheet shows one seed)."""
    return METHODS.index(run.meta["method"]), run_settings(run.meta)


def aligned_runs(rows: list[tuple[str, list[RunRecord]]], reference: str) -> list[tuple[str, list[np.ndarray]]]:
    """Each run's coordinates in the frame of the reference set's run of the same method and settings.

    ``rows``: (feature set id, its runs). Returns (id, aligned N x 2 coordinates per run, in the
    row's order). The map is fitted on the images both runs hold (matched by path) and applied to
    every point of the run; the reference set's own runs stay as they are.
    """
    references = dict(rows).get(reference)
    if references is None:
        raise AtlasError(
            f"the reference feature set {reference!r} is not among the compared sets {[i for i, _ in rows]}"
        )
    reference_at = _by_column(reference, references)
    aligned = []
    for set_id, runs in rows:
        coords = []
        for run in runs:
            if set_id == reference:
                coords.append(np.asarray(run.coords, dtype=np.float64))
                continue
            target = reference_at.get(_column(run))
            if target is None:
                raise AtlasError(
                    f"feature set {set_id!r} has a {setting_label(run.meta)} map, the reference "
                    f"{reference!r} has none to align it to"
                )
            target_rows, run_rows = matched_rows([target.paths, run.paths])
            linear, shift = procrustes_transform(target.coords[target_rows], run.coords[run_rows])
            coords.append(np.asarray(run.coords, dtype=np.float64) @ linear + shift)
        aligned.append((set_id, coords))
    return aligned


def _by_column(set_id: str, runs: list[RunRecord], values: list | None = None) -> dict:
    """``values`` (default: the runs themselves) keyed by their run's column; a sheet has one run per cell."""
    keyed = {}
    for run, value in zip(runs, runs if values is None else values):
        if _column(run) in keyed:
            raise AtlasError(f"feature set {set_id!r} has two {setting_label(run.meta)} maps on one sheet")
        keyed[_column(run)] = value
    return keyed


# Mutation testing (`make mutation`, docs/development.md) covers the numbers and the alignment above;
# the figures and tables below are left to the unit and workflow tests.
# pragma: no mutate start
def _class_order(runs: list[RunRecord]) -> list[str]:
    """Every class of the runs, in the first run's order, then any others as met: no point goes undrawn."""
    classes: list[str] = []
    for run in runs:
        classes += [name for name in run.classes if name not in classes]
    return classes


def _one_seed_per_column(runs: list[RunRecord]) -> list:
    """The seeds the sheet shows (one per column; none for PCA): a column of two seeds is refused."""
    seeds: dict[tuple, set] = {}
    for run in runs:
        seeds.setdefault(_column(run), set()).add(run_seed(run.meta))
    mixed = [column for column, found in seeds.items() if len(found) > 1]
    if mixed:
        raise AtlasError(f"the comparison sheet shows the runs of one seed, got seeds {sorted(seeds[mixed[0]])}")
    return sorted({seed for found in seeds.values() for seed in found} - {None})


def row_label(set_id: str, panel_in: float) -> str:
    """A sheet row's feature set id, broken before its node (``<set>\\n.<node>``) when it is longer than
    the panel is high (about 11 characters an inch at 10 pt): ten long ids would overlap their rows."""
    network, dot, node = set_id.partition(".")
    return f"{network}\n.{node}" if dot and len(set_id) > 11 * panel_in else set_id


def wrap_note(note: str, fig: plt.Figure) -> str:
    """A note under a figure wrapped to its width (about 10 characters an inch, bold at 10 pt), between
    words: a note naming many random sets would run off both edges."""
    width = max(30, int(10 * fig.get_figwidth()))
    return "\n".join(
        textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False) for line in note.split("\n")
    )


def plot_compare_sheet(
    rows: list[tuple[str, list[RunRecord]]], reference: str, panel_in: float, note: str = ""
) -> plt.Figure:
    """Rows = feature sets (in ``rows``' order), columns = method and settings (``run_sort_key`` order),
    every run aligned to ``reference``.

    ``note`` (e.g. a subsample note) goes under the legend, after the random-weights note that any
    set with random weights adds; such sets' row labels say so too.
    """
    runs = [run for _, set_runs in rows for run in set_runs]
    seeds = _one_seed_per_column(runs)
    columns = {_column(run): run.meta for run in sorted(runs, key=_column)}
    classes = _class_order([run for set_id, set_runs in rows if set_id == reference for run in set_runs] + runs)
    # Everything that can fail, before a figure exists to leak.
    cells = [
        _by_column(set_id, set_runs, list(zip(set_runs, set_coords)))
        for (set_id, set_runs), (_, set_coords) in zip(rows, aligned_runs(rows, reference))
    ]
    fig, axes = plt.subplots(
        len(rows),
        len(columns),
        figsize=(panel_in * len(columns) + 1.0, panel_in * len(rows) + 1.6),
        squeeze=False,
        layout="constrained",
    )
    random_sets = []
    for row_axes, (set_id, set_runs), at_column in zip(axes, rows, cells):
        for ax, column in zip(row_axes, columns):
            if column in at_column:
                run, coords = at_column[column]
                draw_classes(ax, coords, run.labels, classes, PANEL_POINT_SIZE)
            else:  # keep the frame so the row label stays; say why it is empty
                ax.set_xticks([])
                ax.set_yticks([])
                ax.text(0.5, 0.5, "no run", ha="center", va="center", transform=ax.transAxes, color="0.5")
        random = any(run.meta.get("weights_random") for run in set_runs)
        if random:
            random_sets.append(set_id)
        label = row_label(set_id, panel_in) + ("\n(reference)" if set_id == reference else "")
        label += "\nRANDOM WEIGHTS" if random else ""
        row_axes[0].set_ylabel(label, fontsize=10, color=NOTE_COLOUR if random else "black")
    methods = list(dict.fromkeys(meta["method"] for meta in columns.values()))
    for ax, meta in zip(axes[0], columns.values()):
        # One seed on the sheet: the title says it; several (a method without a run at compare.seed): each column.
        seed = f", seed {run_seed(meta)}" if len(seeds) > 1 and run_seed(meta) is not None else ""
        if methods == ["tsne"]:
            ax.set_title(f"{settings_text(meta)}{seed}", fontsize=10)
        else:
            ax.set_title(f"{METHOD_NAMES[meta['method']]}\n{settings_text(meta)}{seed}".strip(), fontsize=9)
    colours, markers = class_colours(len(classes)), class_markers(len(classes))
    handles = [
        Line2D([], [], linestyle="", marker=m, color=c, markersize=7, label=literal(name))
        for name, c, m in zip(classes, colours, markers)
    ]
    random_note = sets_weights_note(random_sets, [set_id for set_id, _ in rows])
    notes = "\n".join(wrap_note(text, fig) for text in (random_note, note) if text)
    note_legend(
        fig,
        handles,
        [literal(name) for name in classes],
        notes or None,
        # No wider than the figure (about an inch an entry): a one-column sheet is 3.4 in wide.
        ncols=max(1, min(len(classes), max(4, 2 * len(columns)), int(fig.get_figwidth() / 1.0))),
    )
    sizes = {len(run.paths) for run in runs}
    count = f" (N={sizes.pop()})" if len(sizes) == 1 else ""
    # Wrapped to the figure's width (about 12 characters an inch at 11 pt): a sheet may be one column wide.
    width_chars = max(30, int(12 * fig.get_figwidth()))
    what = "perplexity" if methods == ["tsne"] else "method and settings"
    at_seed = f", seed {seeds[0]}" if len(seeds) == 1 else ""
    title = (
        f"{'t-SNE' if methods == ['tsne'] else 'Maps'} of each feature set{count}: rows = feature sets, "
        f"columns = {what}{at_seed}; aligned to {reference} by orthogonal Procrustes (rotation, reflection, "
        "uniform scale)"
    )
    fig.suptitle(
        textwrap.fill(title, width_chars, break_long_words=False),
        fontsize=11,
    )
    return fig


def compare_sheet(
    embeddings: list[str],
    metas: list[str],
    manifest: str,
    order: list[str],
    reference: str,
    png: str,
    pdf: str,
    panel_in: float,
    dpi: int,
) -> None:
    """The comparison contact sheet of one seed (rule compare_sheet): PNG at ``dpi`` and PDF."""
    if len(embeddings) != len(metas):
        raise ValueError(f"{len(embeddings)} embeddings but {len(metas)} meta files")
    by_set: dict[str, list[RunRecord]] = {set_id: [] for set_id in order}
    for embedding, meta_json in zip(embeddings, metas):
        run = read_run(embedding, meta_json, manifest)
        set_id = run.meta.get("features")
        if set_id not in by_set:
            raise AtlasError(f"{meta_json}: feature set {set_id!r} is not one of the compared sets {order}")
        by_set[set_id].append(run)
    missing = [set_id for set_id, runs in by_set.items() if not runs]
    if missing:
        raise AtlasError(f"no runs of feature set(s) {missing} were given to the comparison sheet")
    rows = [(set_id, sorted(by_set[set_id], key=lambda run: run_sort_key(run.meta))) for set_id in order]
    fig = plot_compare_sheet(rows, reference, panel_in)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
    with atomic_path(pdf) as tmp:
        fig.savefig(tmp, format="pdf", metadata=PDF_METADATA, **vector_dpi(fig, dpi))
    plt.close(fig)
    LOGGER.info("wrote %s and %s (%d feature sets x %d runs)", png, pdf, len(rows), len(embeddings) // len(rows))


# --- metrics per feature set -----------------------------------------------------------------

METRIC_PANELS = (
    ("trustworthiness", "trustworthiness (2-D vs features)"),
    ("knn_accuracy_2d", "k-NN label accuracy in 2-D"),
    ("knn_accuracy_features", "k-NN label accuracy in feature space"),
    ("cluster_ari", "clusters vs labels (adjusted Rand index)"),
)


def _check_sets(found: list[str], order: list[str], what: str) -> None:
    unknown = sorted(set(found) - set(order))
    if unknown:
        raise AtlasError(f"{what} of feature set(s) {unknown}, which are not among the compared sets {order}")
    missing = [set_id for set_id in order if set_id not in found]
    if missing:
        raise AtlasError(f"no {what} of feature set(s) {missing}")


def plot_compare_metrics(rows: list[dict], order: list[str], note: str | None = None) -> plt.Figure:
    """One panel per metric, a column per feature set (``order``): every run a dot, the mean with min-max bars.

    Sets with random weights get red tick labels; ``note`` goes under the legend.
    """
    _check_sets([r["features"] for r in rows], order, "metrics")
    positions = np.arange(len(order))
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    # Several methods share a set's column: each gets a slot, its runs' dots beside its mean.
    method_step = 0.8 / len(methods) if len(methods) > 1 else 0.0
    run_offset = RUN_OFFSET if len(methods) == 1 else method_step * 0.3
    fig, axes = plt.subplots(
        len(METRIC_PANELS),
        1,
        # At least wide enough for the random-weights note under the legend.
        figsize=(max(6.5, 0.6 * len(order) * len(methods) + 2.0), 2.1 * len(METRIC_PANELS) + 1.8),
        sharex=True,
        layout="constrained",
    )
    for ax, (key, title) in zip(axes, METRIC_PANELS):
        if any(r[key] is None for r in rows):
            ax.text(0.5, 0.5, "n/a: the images have no labels", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(title, fontsize=10)
            ax.set_yticks([])
            continue
        for i, method in enumerate(methods):
            # Methods side by side within a set's column.
            offset = (i - (len(methods) - 1) / 2) * method_step
            of_method = [
                [r[key] for r in rows if r["features"] == set_id and r["method"] == method] for set_id in order
            ]
            xs = [x + offset for x, vals in zip(positions, of_method) if vals]
            values = [np.array(vals, dtype=float) for vals in of_method if vals]
            colour = COMPARE_COLOUR if len(methods) == 1 else METHOD_COLOURS[method]
            for x, vals in zip(xs, values):
                # Beside the mean, not under it, so single runs stay visible when they agree.
                ax.scatter(
                    np.full(len(vals), x + run_offset), vals, s=12, color="0.55", alpha=0.6, zorder=2, clip_on=False
                )
            means = np.array([v.mean() for v in values])
            spread = np.array([means - [v.min() for v in values], [v.max() for v in values] - means])
            ax.errorbar(xs, means, yerr=spread, fmt="o", color=colour, markersize=6, capsize=4, zorder=3, clip_on=False)
        ax.set_ylim(0.0, 1.0)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    long_ids = max(len(set_id) for set_id in order) > 8 or len(order) > 6
    axes[-1].set_xticks(
        positions, order, rotation=30 if long_ids else 0, ha="right" if long_ids else "center", rotation_mode="anchor"
    )
    axes[-1].set_xlim(-0.5, len(order) - 0.5)
    random_sets = {r["features"] for r in rows if r.get("weights_random")}
    for tick, set_id in zip(axes[-1].get_xticklabels(), order):
        if set_id in random_sets:
            tick.set_color(NOTE_COLOUR)
    handles = [Line2D([], [], linestyle="", marker="o", color=COMPARE_COLOUR, label="mean over runs, bars: min-max")]
    if len(methods) > 1:
        handles = [
            Line2D([], [], linestyle="", marker="o", color=METHOD_COLOURS[m], label=f"{METHOD_NAMES[m]}: mean, min-max")
            for m in methods
        ]
    handles += [
        Line2D(
            [], [], linestyle="", marker="o", color="0.55", alpha=0.6, markersize=4, label="one run (beside the mean)"
        ),
    ]
    note_legend(fig, handles, [h.get_label() for h in handles], note and wrap_note(note, fig), ncols=2, fontsize=8)
    runs_per_set = sorted({sum(r["features"] == set_id for r in rows) for set_id in order})
    runs_text = f"{runs_per_set[0]}" if len(runs_per_set) == 1 else f"{runs_per_set[0]}-{runs_per_set[-1]}"
    what = "perplexities x seeds" if methods == ["tsne"] else "methods x settings x seeds"
    runs_text += " run per set" if runs_per_set == [1] else " runs per set"
    fig.suptitle(
        f"Per feature set: separability, neighbourhood preservation and clusters\n({runs_text}: {what})",
        fontsize=11,
    )
    return fig


def compare_metrics(
    metrics: list[str], clusters_summaries: list[str], order: list[str], table: str, png: str, svg: str, dpi: int
) -> None:
    """Every run's metrics by feature set, as a table and a plot (rule compare_metrics); each row also
    gets its feature set's cluster columns (``clusters_summaries``: one summary.json per set)."""
    summaries = {summary["features"]: summary for summary in map(read_summary, clusters_summaries)}
    _check_sets(list(summaries), order, "clusters")
    rows = [read_run_metrics(path) for path in metrics]
    _check_sets([r.get("features") for r in rows], order, "metrics")
    rows = [{**r, **summary_columns(summaries[r["features"]])} for r in rows]
    write_compare_table(rows, order, table)
    note = sets_weights_note([r.get("features") for r in rows if r.get("weights_random")], order)
    save_figure(plot_compare_metrics(rows, order, note), png, svg, dpi)
    LOGGER.info("gathered %d runs of %d feature sets into %s", len(rows), len(order), table)


# --- CKA -------------------------------------------------------------------------------------


def _luminance(rgba) -> float:
    """Relative luminance (sRGB, WCAG) of a colour, to pick black or white text on it."""
    channels = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def plot_cka(ids: list[str], matrix: np.ndarray, shared_images: int | None = None) -> plt.Figure:
    """Heatmap of a K x K CKA ``matrix`` on a fixed 0-1 scale, each cell labelled with its value.

    ``shared_images``, when given, is said under the title (how many images the CKA was computed on).
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (len(ids), len(ids)):
        raise ValueError(f"a CKA matrix of {len(ids)} sets must be {len(ids)} x {len(ids)}, got {matrix.shape}")
    # Cells keep about 0.55 in a side from 2 to 12 sets, so labels and values stay the same size; the
    # margins grow with the longest id (about 0.07 in a character at 9 pt, the x labels at 40 degrees).
    side = max(3.0, 0.55 * len(ids) + 1.0)
    longest = max(len(set_id) for set_id in ids)
    # At least 5.2 in wide: the title's width.
    width = max(5.2, side + 0.07 * longest + 1.3)
    fig, ax = plt.subplots(figsize=(width, side + 0.045 * longest + 0.9), layout="constrained")
    cmap, norm = plt.get_cmap("viridis"), Normalize(vmin=0.0, vmax=1.0)
    image = ax.imshow(matrix, cmap=cmap, norm=norm)
    for i in range(len(ids)):
        for j in range(len(ids)):
            # WCAG contrast: black beats white on cells brighter than this luminance.
            text_colour = "black" if _luminance(cmap(norm(matrix[i, j]))) > 0.179 else "white"
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color=text_colour, fontsize=9)
    ax.set_xticks(range(len(ids)), ids, rotation=40, ha="right", rotation_mode="anchor", fontsize=9)
    ax.set_yticks(range(len(ids)), ids, fontsize=9)
    ax.tick_params(length=0)
    fig.colorbar(image, ax=ax, label="linear CKA", shrink=0.8)
    on_images = f"\non {shared_images:,} images all sets share" if shared_images else ""
    fig.suptitle(CKA_TITLE + on_images, fontsize=11)
    return fig


def cka_table(
    ids: list[str],
    features: list[np.ndarray],
    paths: list[list[str]],
    max_images: int,
    table: str,
    png: str,
    dpi: int,
    random_state: int = SUBSAMPLE_RANDOM_STATE,
) -> np.ndarray:
    """Linear CKA between the feature sets on the images they share (at most ``max_images`` of them,
    a fixed random subsample): CSV matrix and heatmap PNG. Returns the K x K matrix."""
    if not len(ids) == len(features) == len(paths):
        raise ValueError(f"{len(ids)} ids, {len(features)} feature arrays and {len(paths)} path lists")
    rows = matched_rows(paths)
    keep = fixed_subsample(len(rows[0]), max_images, random_state)
    matrix = cka_matrix([np.asarray(f)[r[keep]] for f, r in zip(features, rows)], ids)
    write_cka_table(ids, matrix, table)
    fig = plot_cka(ids, matrix, shared_images=len(keep))
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
    plt.close(fig)
    LOGGER.info("linear CKA of %d feature sets on %d shared images: %s", len(ids), len(keep), table)
    return matrix


def compare_cka(
    features: list[str], ids: list[str], nodes: list[str], max_images: int, table: str, png: str, dpi: int
) -> np.ndarray:
    """Linear CKA between every pair of feature sets (rule compare_cka): ``features[i]`` is the
    features file of ``ids[i]``, whose node ``nodes[i]`` it reads."""
    arrays, paths = [], []
    for path, node in zip(features, nodes):
        data = read_features(path, node)
        arrays.append(data["features"])
        paths.append(data["paths"])
    return cka_table(ids, arrays, paths, max_images, table, png, dpi)


# pragma: no mutate end
