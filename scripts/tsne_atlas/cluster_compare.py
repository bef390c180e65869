"""Stage compare_clusters: how the reference feature set's clusters split or merge in each other set.

For each other set a contingency heatmap: a row per reference cluster, a column per cluster of the other
set, each cell the share of the row's images that fall in the column's cluster (rows sum to 1). Columns are
ordered by the row holding most of their images, so clusters both sets agree on lie on the diagonal, a
reference cluster the other set splits spreads along its row, and a column collecting several rows is a
merge. Each panel names the adjusted Rand index between the two clusterings (1: the same groups). The
cells are also a table, ``compare/clusters.csv`` (files/compare.py).
"""

import logging

import numpy as np

from .compare import _check_sets, _luminance, wrap_note
from .figure_style import NOTE_COLOUR, literal, plt, save_figure, sets_weights_note
from .files.clusters import read_assignments, read_summary
from .files.compare import write_cluster_contingency
from .jobs import AtlasError

LOGGER = logging.getLogger("tsne_atlas.cluster_compare")

# Cells at or above this share are written in the heatmap (smaller ones are colour only).
LABEL_SHARE = 0.1
PANELS_PER_ROW = 4


def contingency(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Counts (R, C): images in reference cluster r and other cluster c (clusters numbered from 0)."""
    counts = np.zeros((int(reference.max()) + 1, int(other.max()) + 1), dtype=np.int64)
    np.add.at(counts, (reference, other), 1)
    return counts


def diagonal_order(counts: np.ndarray) -> np.ndarray:
    """The other set's clusters (columns) ordered by the reference cluster holding most of their
    images, then by that count descending, then by number: agreement lies on the diagonal."""
    best = counts.argmax(axis=0)
    return np.lexsort((np.arange(counts.shape[1]), -counts.max(axis=0), best))


def matched_clusters(assignments: list[dict], paths: list[str], where: str) -> np.ndarray:
    """Each of ``paths``' cluster from clusters.csv rows; the sets must have clustered the same images."""
    by_path = {row["path"]: row["cluster"] for row in assignments}
    if set(by_path) != set(paths):
        raise AtlasError(
            f"{where} lists other images than the reference set's clusters.csv; delete it and rerun the workflow"
        )
    return np.array([by_path[p] for p in paths])


def plot_contingency(panels: list[dict], reference_id: str, note: str | None = None) -> plt.Figure:
    """One heatmap per other set (``panels``: id, shares R x C in diagonal order, row and column names, ari)."""
    rows = len(panels[0]["row_names"])
    # Up to PANELS_PER_ROW heatmaps a row (eight layers compared make two rows, not one 30-inch strip).
    ncols = min(len(panels), PANELS_PER_ROW)
    nrows = -(-len(panels) // ncols)
    width = max(2.5, 0.42 * max(len(p["column_names"]) for p in panels) + 0.5)
    longest_row = max(len(name) for name in panels[0]["row_names"])
    longest_column = max(len(name) for p in panels for name in p["column_names"])
    fig, axes = plt.subplots(
        nrows,
        ncols,
        # At least 6.4 in wide: the title's width.
        figsize=(
            max(6.4, ncols * width + 0.075 * longest_row + 1.6),
            nrows * (0.42 * rows + 0.06 * longest_column + 1.4) + 1.2,
        ),
        layout="constrained",
        squeeze=False,
    )
    cmap = plt.get_cmap("Blues")
    for number, ax in enumerate(axes.flat):
        if number >= len(panels):
            ax.set_axis_off()
            continue
        panel = panels[number]
        shares = panel["shares"]
        image = ax.imshow(100 * shares, cmap=cmap, vmin=0.0, vmax=100.0, aspect="auto")
        for i, j in zip(*np.nonzero(shares >= LABEL_SHARE)):
            colour = "black" if _luminance(cmap(shares[i, j])) > 0.179 else "white"
            ax.text(j, i, f"{100 * shares[i, j]:.0f}", ha="center", va="center", color=colour, fontsize=7)
        ax.set_xticks(
            range(len(panel["column_names"])),
            [literal(n) for n in panel["column_names"]],
            rotation=60,
            ha="right",
            rotation_mode="anchor",
            fontsize=7,
        )
        first_column = number % ncols == 0
        ax.set_yticks(range(rows), [literal(n) for n in panel["row_names"]] if first_column else [], fontsize=8)
        ax.tick_params(length=0)
        title = f"{panel['id']}: {len(panel['column_names'])} clusters\nARI with {reference_id}: {panel['ari']:.2f}"
        ax.set_title(title, fontsize=9, color=NOTE_COLOUR if panel.get("random") else "black")
    fig.colorbar(image, ax=axes.ravel().tolist(), label="share of the row's images (%)", shrink=0.8)
    fig.supylabel(f"clusters of {reference_id} (reference)", fontsize=9)
    title = (
        f"Where the clusters of {reference_id} (rows) fall in each other set's clusters (columns):\n"
        "a row spread over columns is split, a column collecting rows is a merge"
    )
    fig.suptitle(title, fontsize=10)
    if note:
        fig.supxlabel(wrap_note(note, fig), color=NOTE_COLOUR, fontsize=9, fontweight="bold")
    return fig


def compare_clusters(
    assignments: list[str],
    summaries: list[str],
    order: list[str],
    reference: str,
    table: str,
    png: str,
    svg: str,
    dpi: int,
) -> list[dict]:
    """compare/clusters.csv and the contingency figure (rule compare_clusters). ``assignments`` and
    ``summaries``: each feature set's clusters.csv and summary.json, in ``order``. Sets of random
    weights get red titles and the note names them."""
    from sklearn.metrics import adjusted_rand_score

    read = [read_summary(path) for path in summaries]
    found = [summary["features"] for summary in read]
    _check_sets(found, order, "clusters")
    random_sets = [summary["features"] for summary in read if summary.get("weights_random")]
    files_by_set = dict(zip(found, assignments))
    rows_by_set = {set_id: read_assignments(path) for set_id, path in files_by_set.items()}
    reference_rows = rows_by_set[reference]
    paths = [row["path"] for row in reference_rows]
    ref = np.array([row["cluster"] for row in reference_rows])
    names = {row["cluster"]: row["cluster_name"] for row in reference_rows}
    row_names = [f"{names[c]} ({c})" for c in range(int(ref.max()) + 1)]
    panels, cells = [], []
    for set_id in order:
        if set_id == reference:
            continue
        other = matched_clusters(rows_by_set[set_id], paths, files_by_set[set_id])
        other_names = {row["cluster"]: row["cluster_name"] for row in rows_by_set[set_id]}
        counts = contingency(ref, other)
        columns = diagonal_order(counts)
        shares = counts / counts.sum(axis=1, keepdims=True)
        panels.append(
            {
                "id": set_id,
                "shares": shares[:, columns],
                "row_names": row_names,
                "column_names": [f"{other_names[c]} ({c})" for c in columns],
                "ari": float(adjusted_rand_score(ref, other)),
                "random": set_id in random_sets,
            }
        )
        cells += [
            {
                "features": set_id,
                "cluster": int(c),
                "name": other_names[c],
                "reference_cluster": int(r),
                "reference_name": names[r],
                "images": int(counts[r, c]),
                "share_of_reference": float(shares[r, c]),
            }
            for r in range(counts.shape[0])
            for c in columns
            if counts[r, c]
        ]
    write_cluster_contingency(table, cells)
    note = sets_weights_note(random_sets, order)
    save_figure(plot_contingency(panels, reference, note), png, svg, dpi)
    LOGGER.info(
        "clusters of %s against %s: ARI %s",
        reference,
        ", ".join(p["id"] for p in panels),
        ", ".join(f"{p['ari']:.3f}" for p in panels),
    )
    return panels
