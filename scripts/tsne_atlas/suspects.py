"""Which images look wrong: label disagreement with the k nearest neighbours, exact and near duplicates,
and outliers, all read off the k-NN graph of the prepared input X (``files/map_inputs.py``).

Pure numeric functions (numpy only), deterministic: ties are always broken by image index. Nothing
here is N x N; every score looks at the graph's edges only, so 100,000 images cost seconds. The
graph is read a block of BLOCK_ROWS images at a time, so what a score holds besides the graph, X and a
few numbers per image is one block's (BLOCK_ROWS x K values), whatever N is: each image's scores depend
on its own row of the graph (and on per-image numbers computed in a first pass), so the blocks give the
same numbers, bit for bit, as the whole graph at once. Only the listed rows (``max_rows``) become
tables. The files these tables become are described in ``files/suspects.py``.
"""

import logging
from dataclasses import dataclass, field

import numpy as np

from .files.suspects import NO_LABELS_REASON
from .jobs import AtlasError
from .resources import SUSPECTS_BLOCK_ROWS

LOGGER = logging.getLogger("tsne_atlas.suspects")

# Added to a distance before inverting it: an exact duplicate (distance 0) gets a weight so large
# that its label alone decides ``agreement_weighted``, without dividing by zero.
DISTANCE_EPS = 1e-9
# Pairs whose cosine is computed at a time: bounds memory to a few tens of MB whatever N is.
PAIR_CHUNK = 65_536
# Images (rows of the graph) scored at a time (``resources.suspects_need_bytes`` counts their temporaries).
BLOCK_ROWS = SUSPECTS_BLOCK_ROWS


def row_blocks(n_rows: int, block_size: int = BLOCK_ROWS):
    """Slices of ``block_size`` consecutive rows covering 0 .. n_rows."""
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    for start in range(0, n_rows, block_size):
        yield slice(start, min(start + block_size, n_rows))


def check_k(k: int, n_columns: int) -> None:
    """Raise the user-facing error when ``k`` neighbours are asked of a graph that has ``n_columns``."""
    if not 1 <= k <= n_columns:
        raise AtlasError(
            f"k={k} nearest neighbours asked for, but the neighbour graph holds {n_columns} per image; "
            f"use a k from 1 to {n_columns} or build the graph with more neighbours"
        )


def check_graph(indices: np.ndarray, distances: np.ndarray, n_points: int) -> None:
    """A programming error unless ``indices`` and ``distances`` are one N x K graph of ``n_points`` points."""
    if indices.ndim != 2 or indices.shape != distances.shape or len(indices) != n_points:
        raise ValueError(f"neighbour graph of shape {indices.shape} / {distances.shape} does not fit {n_points} points")


def label_disagreement(
    indices: np.ndarray, distances: np.ndarray, labels: np.ndarray, k: int, block_size: int = BLOCK_ROWS
) -> dict:
    """Per image, how much its k nearest neighbours disagree with its label.

    ``indices``/``distances``: the k-NN graph (N x K, K >= k, self excluded, nearest first);
    ``labels``: class index of each image (N,). Returns arrays of length N:

    - ``disagreement``: share of the k neighbours whose label differs from the image's own;
    - ``majority``: the most common label among the k neighbours; of tied labels, the one whose
      first occurrence is nearest;
    - ``agreement_weighted``: share of inverse-distance weight (1 / (d + eps)) carried by the
      neighbours with the image's own label. An exact duplicate in another class drives it to ~0,
      the strongest evidence of a wrong label;
    - ``nearest_other``: distance to the nearest neighbour with another label, over the mean distance
      to the k neighbours (0 for an identical copy under another label, inf when all k agree).

    Computed ``block_size`` images at a time (each image's numbers read its own row only).
    """
    labels = np.asarray(labels)
    indices, distances = np.asarray(indices), np.asarray(distances)
    check_graph(indices, distances, len(labels))
    check_k(k, indices.shape[1])
    n = len(labels)
    scores = {
        "disagreement": np.empty(n),
        "majority": np.empty(n, dtype=labels.dtype),
        "agreement_weighted": np.empty(n),
        "nearest_other": np.empty(n),
    }
    for rows in row_blocks(n, block_size):
        block = _label_disagreement_block(indices[rows, :k], np.asarray(distances[rows, :k], np.float64), labels, rows)
        for name, values in block.items():
            scores[name][rows] = values
    return scores


def _label_disagreement_block(neighbours: np.ndarray, distances: np.ndarray, labels: np.ndarray, rows: slice) -> dict:
    """``label_disagreement`` of the images ``rows``, whose k neighbours and distances are given."""
    k = neighbours.shape[1]
    neighbour_labels = labels[neighbours]  # B x k
    same = neighbour_labels == labels[rows, None]
    weights = 1.0 / (distances + DISTANCE_EPS)
    # counts[i, j]: how often neighbour j's label occurs among i's k neighbours. argmax takes the
    # first maximum, i.e. the nearest neighbour carrying a most common label: the tie rule.
    counts = np.column_stack([(neighbour_labels == neighbour_labels[:, [j]]).sum(axis=1) for j in range(k)])
    majority = neighbour_labels[np.arange(len(neighbour_labels)), counts.argmax(axis=1)]
    other_distance = np.where(same, np.inf, distances).min(axis=1)
    mean_distance = distances.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        nearest_other = np.where(
            np.isinf(other_distance), np.inf, other_distance / np.maximum(mean_distance, DISTANCE_EPS)
        )
    return {
        "disagreement": (~same).sum(axis=1) / k,  # a count over k: equal counts tie exactly
        "majority": majority,
        "agreement_weighted": (weights * same).sum(axis=1) / weights.sum(axis=1),
        "nearest_other": nearest_other,
    }


def rank_suspects(
    disagreement: np.ndarray, agreement_weighted: np.ndarray, nearest_other: np.ndarray | None = None
) -> np.ndarray:
    """Image indices, most suspect first: by distance-weighted disagreement (1 - agreement_weighted,
    to 4 decimals, as the table shows it) descending; then by ``nearest_other`` ascending, so among
    images no neighbour agrees with, one with a near-identical image under another label comes first
    (features of random weights leave many images with no agreeing neighbour at all); then by
    disagreement descending, then index."""
    disagreement, agreement_weighted = np.asarray(disagreement), np.asarray(agreement_weighted)
    nearest_other = np.zeros(len(disagreement)) if nearest_other is None else np.asarray(nearest_other)
    weighted = np.round(1.0 - agreement_weighted, 4)
    # lexsort sorts by its last key first; it is stable, so equal keys keep index order.
    return np.lexsort((np.arange(len(disagreement)), -disagreement, nearest_other, -weighted))


def exact_duplicate_pairs(hashes: list[str]) -> list[tuple[int, int]]:
    """Every pair (i, j), i < j, of images with the same content hash, sorted.

    A group of m equal hashes gives all m (m - 1) / 2 pairs. Empty hashes (None or "") are
    unknown content and match nothing.
    """
    groups: dict[str, list[int]] = {}
    for index, digest in enumerate(hashes):
        if digest:
            groups.setdefault(digest, []).append(index)
    pairs = [(a, b) for members in groups.values() for n, a in enumerate(members) for b in members[n + 1 :]]
    return sorted(pairs)


def block_pairs(neighbours: np.ndarray, rows: slice) -> np.ndarray:
    """The graph's edges leaving images ``rows`` (``neighbours``: their rows of the graph) as pairs (M x 2,
    i < j), in row order; a self edge, should a graph hold one, is no pair. An edge found from both ends
    appears once from each end's block."""
    neighbours = np.asarray(neighbours, dtype=np.int64)
    sources = np.repeat(np.arange(rows.start, rows.stop, dtype=np.int64), neighbours.shape[1])
    targets = neighbours.ravel()
    keep = sources != targets
    sources, targets = sources[keep], targets[keep]
    return np.column_stack((np.minimum(sources, targets), np.maximum(sources, targets)))


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` scaled to unit length; zero rows stay zero (so their cosine with anything is 0)."""
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def pair_cosines(unit: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The cosine of each pair (i, j) of unit rows, PAIR_CHUNK pairs at a time, clipped to [-1, 1]
    (rounding can step just past 1 for identical rows)."""
    cosine = np.empty(len(pairs))
    for start in range(0, len(pairs), PAIR_CHUNK):
        chunk = pairs[start : start + PAIR_CHUNK]
        cosine[start : start + PAIR_CHUNK] = np.einsum("ij,ij->i", unit[chunk[:, 0]], unit[chunk[:, 1]])
    return np.clip(cosine, -1.0, 1.0)


def near_duplicate_pairs(
    X: np.ndarray, indices: np.ndarray, threshold: float, block_size: int = BLOCK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of images whose rows of ``X`` have cosine >= ``threshold``, looked for on the graph's edges only.

    X is centred (z-scored, PCA-reduced), so its cosine is close to a correlation of features.
    Every column of ``indices`` is used; an edge found from both ends counts once. Returns (pairs,
    M x 2 int with i < j; cosine, M), sorted by cosine descending, then (i, j). The graph is read
    ``block_size`` images at a time and only the pairs at or above the threshold are kept, so memory
    holds one block's edges and the pairs found, not all N x K edges.
    """
    if not -1.0 <= threshold <= 1.0:
        raise AtlasError(f"near-duplicate threshold {threshold} is not a cosine; use a value from -1 to 1")
    unit = unit_rows(X)
    if len(indices) != len(unit):
        raise ValueError(f"neighbour graph of {len(indices)} rows does not fit X of {len(unit)} rows")
    n = len(unit)
    keys, cosines = [], []
    for rows in row_blocks(n, block_size):
        pairs = block_pairs(indices[rows], rows)
        cosine = pair_cosines(unit, pairs)
        keep = cosine >= threshold
        # One int64 key per pair: N^2 < 2^63 for any N this workflow meets.
        keys.append(pairs[keep, 0] * n + pairs[keep, 1])
        cosines.append(cosine[keep])
    # A pair found from both ends has the same cosine from either (the same two rows, multiplied and
    # summed in the same order): keep its first.
    found, first = np.unique(np.concatenate(keys or [np.empty(0, np.int64)]), return_index=True)
    edges = np.column_stack(np.divmod(found, n)) if n else np.empty((0, 2), np.int64)
    cosine = np.concatenate(cosines or [np.empty(0)])[first]
    order = np.lexsort((edges[:, 1], edges[:, 0], -cosine))
    return edges[order], cosine[order]


def outlier_scores(distances: np.ndarray, k: int, block_size: int = BLOCK_ROWS) -> np.ndarray:
    """Mean distance of each image to its k nearest neighbours (N,): large for an image far from all others."""
    distances = np.asarray(distances)
    check_k(k, distances.shape[1])
    mean = np.empty(len(distances))
    for rows in row_blocks(len(distances), block_size):
        mean[rows] = np.asarray(distances[rows, :k], dtype=np.float64).mean(axis=1)
    return mean


def neighbour_mean(values: np.ndarray, indices: np.ndarray, k: int, block_size: int = BLOCK_ROWS) -> np.ndarray:
    """Each image's mean of ``values`` (N,) over its k nearest neighbours (N,), a block of images at a time."""
    indices = np.asarray(indices)
    mean = np.empty(len(indices))
    for rows in row_blocks(len(indices), block_size):
        mean[rows] = values[indices[rows, :k]].mean(axis=1)
    return mean


def relative_outlier_scores(
    indices: np.ndarray, distances: np.ndarray, k: int, block_size: int = BLOCK_ROWS
) -> np.ndarray:
    """Each image's mean distance to its k nearest neighbours over theirs (N,): about 1 inside any
    cluster, dense or spread, and large for an image far from neighbours that are close to each other.

    The plain mean distance ranks whole spread-out classes first (features of striped or textured
    images vary more); this ratio, a simple local outlier factor, ranks the images odd *for where
    they are*.
    """
    mean = outlier_scores(distances, k, block_size)
    return mean / np.maximum(neighbour_mean(mean, indices, k, block_size), DISTANCE_EPS)


def wide_outlier_scores(indices: np.ndarray, distances: np.ndarray, block_size: int = BLOCK_ROWS) -> np.ndarray:
    """``relative_outlier_scores`` over every neighbour the graph holds (N,): each image's mean distance
    to all K of its neighbours over theirs, K the graph's width (graph.neighbours; by default 3 x the
    largest t-SNE perplexity).

    A small group of similar odd images shields itself from the k-neighbour ratio: its members are
    each other's nearest neighbours, so their ratio is about 1. Over K neighbours, a group of g << K
    images has K - g neighbours from the bulk, whose own means are ordinary: the ratio rises with how
    far the group sits from the bulk. A class or cluster of about K images or more is its own wide
    neighbourhood and stays near 1, as a spread-out class does at k.
    """
    return relative_outlier_scores(indices, distances, np.asarray(indices).shape[1], block_size)


def combined_outlier_scores(relative: np.ndarray, wide: np.ndarray) -> np.ndarray:
    """The outlier score (N,): the larger of the k-neighbour ratio ``relative`` and the whole-graph
    ratio ``wide``. Both are the same ratio at two scales, about 1 for a typical image, so neither
    needs a weight; either one high is enough: an isolated odd image is high at k (and usually over
    the graph too), a small group of similar odd images over the graph only. A product or mean of
    the two would need both high, and let a group (its k-ratio about 1) fall behind ordinary images
    whose k-ratio is moderately high."""
    return np.maximum(relative, wide)


def rank_outliers(scores: np.ndarray) -> np.ndarray:
    """Image indices by outlier score descending, ties by index."""
    scores = np.asarray(scores)
    return np.lexsort((np.arange(len(scores)), -scores))


@dataclass
class SuspectTables:
    """The rows of suspects.csv, duplicates.csv and outliers.csv (columns: ``files/suspects.py``).

    ``suspects_reason`` says why ``suspects`` is empty (unlabelled data), else None. ``n_suspects``:
    how many images some neighbour disagrees with, listed or not (``max_rows`` lists the first).
    """

    suspects: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    outliers: list[dict] = field(default_factory=list)
    suspects_reason: str | None = None
    n_suspects: int = 0


def neighbour_fields(i: int, indices, distances, labels: list[str], paths: list[str], k: int) -> dict:
    """The neighbour columns of image ``i``'s row: its k nearest neighbours' paths, labels and distances."""
    nearest = indices[i, :k]
    return {
        "neighbours": [paths[j] for j in nearest],
        "neighbour_labels": [labels[j] for j in nearest],
        "neighbour_distances": [float(d) for d in distances[i, :k]],
    }


def suspect_rows(
    indices, distances, labels: list[str], paths: list[str], k: int, max_rows: int | None, block_size=BLOCK_ROWS
) -> list[dict]:
    """suspects.csv rows, most suspect first; images whose k neighbours all share their label are left
    out; the first ``max_rows`` (None: all)."""
    return suspect_rows_counted(indices, distances, labels, paths, k, max_rows, block_size)[0]


def suspect_rows_counted(
    indices, distances, labels: list[str], paths: list[str], k: int, max_rows: int | None, block_size: int
) -> tuple[list[dict], int]:
    """``suspect_rows`` and how many images are suspects in all (before ``max_rows``)."""
    classes, codes = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
    scores = label_disagreement(indices, distances, codes, k, block_size)
    order = rank_suspects(scores["disagreement"], scores["agreement_weighted"], scores["nearest_other"])
    order = order[scores["disagreement"][order] != 0]  # every neighbour agrees: not a suspect
    rows = []
    for rank, i in enumerate(order[:max_rows], start=1):
        rows.append(
            {
                "rank": rank,
                "path": paths[i],
                "label": labels[i],
                "disagreement": float(scores["disagreement"][i]),
                "majority_label": str(classes[scores["majority"][i]]),
                "agreement_weighted": float(scores["agreement_weighted"][i]),
                **neighbour_fields(i, indices, distances, labels, paths, k),
            }
        )
    return rows, len(order)


def duplicate_rows(
    X, indices, labels: list[str], paths: list[str], hashes: list[str], threshold: float, block_size: int = BLOCK_ROWS
) -> list[dict]:
    """duplicates.csv rows: exact pairs (same content hash) first, then near pairs by cosine descending.

    A pair that is an exact duplicate is not listed again as a near one.
    """
    exact = exact_duplicate_pairs(hashes)
    near, cosine = near_duplicate_pairs(X, indices, threshold, block_size)
    exact_set = set(exact)
    listed = [("exact", i, j, 1.0) for i, j in exact]
    listed += [("near", int(i), int(j), float(c)) for (i, j), c in zip(near, cosine) if (i, j) not in exact_set]
    return [
        {
            "kind": kind,
            "path_a": paths[i],
            "path_b": paths[j],
            "label_a": labels[i],
            "label_b": labels[j],
            "cosine": c,
        }
        for kind, i, j, c in listed
    ]


def outlier_rows(
    indices, distances, labels: list[str], paths: list[str], k: int, max_rows: int | None, block_size=BLOCK_ROWS
) -> list[dict]:
    """outliers.csv rows: by outlier score descending (``combined_outlier_scores``: the larger of its
    relative distance to its k nearest neighbours and to all the graph holds), ties by index; with both
    parts and the plain mean distance to the k neighbours; the first ``max_rows`` (None: every image)."""
    mean = outlier_scores(distances, k, block_size)
    relative = mean / np.maximum(neighbour_mean(mean, indices, k, block_size), DISTANCE_EPS)
    wide = wide_outlier_scores(indices, distances, block_size)
    scores = combined_outlier_scores(relative, wide)
    return [
        {
            "rank": rank,
            "path": paths[i],
            "label": labels[i],
            "outlier_score": float(scores[i]),
            "relative_distance": float(relative[i]),
            "wide_relative_distance": float(wide[i]),
            "mean_neighbour_distance": float(mean[i]),
            **neighbour_fields(i, indices, distances, labels, paths, k),
        }
        for rank, i in enumerate(rank_outliers(scores)[:max_rows], start=1)
    ]


def suspect_tables(
    X: np.ndarray,
    indices: np.ndarray,
    distances: np.ndarray,
    labels: list[str],
    paths: list[str],
    hashes: list[str],
    neighbours: int,
    near_duplicate_cosine: float,
    labelled: bool = True,
    *,
    max_rows: int | None,
    block_size: int = BLOCK_ROWS,
) -> SuspectTables:
    """The three tables of one feature set, from its prepared input X and k-NN graph.

    ``labels``, ``paths`` and ``hashes`` are per image, in X's row order. With ``labelled=False``
    (every image carries the same placeholder label) label disagreement means nothing: the
    suspects table is left empty and ``suspects_reason`` says why; duplicates and outliers are
    computed all the same. ``max_rows`` (None: all) caps the suspects and outliers rows made; every
    duplicate pair is listed. ``block_size``: images scored at a time (the tables do not depend on it).
    """
    indices, distances = np.asarray(indices), np.asarray(distances)
    check_graph(indices, distances, len(X))
    if not len(labels) == len(paths) == len(hashes) == len(X):
        raise ValueError(f"{len(labels)} labels, {len(paths)} paths, {len(hashes)} hashes for {len(X)} rows of X")
    check_k(neighbours, indices.shape[1])
    tables = SuspectTables(
        duplicates=duplicate_rows(X, indices, labels, paths, hashes, near_duplicate_cosine, block_size),
        outliers=outlier_rows(indices, distances, labels, paths, neighbours, max_rows, block_size),
    )
    if labelled:
        tables.suspects, tables.n_suspects = suspect_rows_counted(
            indices, distances, labels, paths, neighbours, max_rows, block_size
        )
    else:
        tables.suspects_reason = NO_LABELS_REASON
    return tables


def find_suspects(
    prepared: str,
    graph: str,
    images: str,
    manifest: str,
    neighbours: int,
    near_duplicate_cosine: float,
    max_rows: int,
    suspects: str,
    duplicates: str,
    outliers: str,
) -> SuspectTables:
    """The three tables of one feature set (rule find_suspects), from the sweep's prepared input and
    k-NN graph, the sample's content hashes and its labels. ``max_rows`` caps the ranked suspects
    and outliers lists (every duplicate pair is listed). Refused in one line, before anything is read,
    where the job has too little memory for the graph's size."""
    from .files.map_inputs import graph_shape, input_shape, read_graph_stage_inputs
    from .files.suspects import write_duplicates, write_outliers, write_suspects
    from .jobs import check_memory
    from .resources import suspects_need_bytes

    (n_images, width), (_, n_columns) = graph_shape(graph), input_shape(prepared)
    check_memory(
        "find_suspects",
        suspects_need_bytes(n_images, width, n_columns),
        f"{n_images:,} images and a k-NN graph of {width} neighbours each ({graph})",
        "lower graph.neighbours (the graph's width) or sample.n_images",
    )
    read = read_graph_stage_inputs(prepared, graph, images, manifest, neighbours, "suspects.neighbours", LOGGER)
    X, indices, distances, paths, hashes = read.X, read.indices, read.distances, read.paths, read.hashes
    labels, neighbours = read.labels, read.neighbours
    tables = suspect_tables(
        X,
        indices,
        distances,
        labels.labels,
        paths,
        hashes,
        neighbours,
        near_duplicate_cosine,
        labels.labelled,
        max_rows=max_rows,
    )
    write_suspects(suspects, tables.suspects)
    write_duplicates(duplicates, tables.duplicates)
    write_outliers(outliers, tables.outliers)
    exact = sum(row["kind"] == "exact" for row in tables.duplicates)
    LOGGER.info(
        "%d images: %s; %d exact and %d near-duplicate pairs (cosine >= %g); outliers by relative distance to %d "
        "and to all %d neighbours",
        len(paths),
        tables.suspects_reason
        or f"{tables.n_suspects} with a label some of their {neighbours} neighbours do not share",
        exact,
        len(tables.duplicates) - exact,
        near_duplicate_cosine,
        neighbours,
        indices.shape[1],
    )
    return tables
