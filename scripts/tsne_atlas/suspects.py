"""Which images look wrong: label disagreement with the k nearest neighbours, exact and near duplicates,
and outliers, all read off the k-NN graph of the prepared input X (``files/map_inputs.py``).

Pure numeric functions (numpy only), deterministic: ties are always broken by image index. Nothing
here is N x N; every score looks at the graph's edges only, so 100,000 images cost seconds. The
files these tables become are described in ``files/suspects.py``.
"""

import logging
from dataclasses import dataclass, field

import numpy as np

from .files.suspects import NO_LABELS_REASON
from .jobs import AtlasError

LOGGER = logging.getLogger("tsne_atlas.suspects")

# Added to a distance before inverting it: an exact duplicate (distance 0) gets a weight so large
# that its label alone decides ``agreement_weighted``, without dividing by zero.
DISTANCE_EPS = 1e-9
# Pairs whose cosine is computed at a time: bounds memory to a few tens of MB whatever N is.
PAIR_CHUNK = 65_536


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


def label_disagreement(indices: np.ndarray, distances: np.ndarray, labels: np.ndarray, k: int) -> dict:
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
    """
    labels = np.asarray(labels)
    indices, distances = np.asarray(indices), np.asarray(distances, dtype=np.float64)
    check_graph(indices, distances, len(labels))
    check_k(k, indices.shape[1])
    neighbour_labels = labels[indices[:, :k]]  # N x k
    same = neighbour_labels == labels[:, None]
    weights = 1.0 / (distances[:, :k] + DISTANCE_EPS)
    # counts[i, j]: how often neighbour j's label occurs among i's k neighbours. argmax takes the
    # first maximum, i.e. the nearest neighbour carrying a most common label: the tie rule.
    counts = np.column_stack([(neighbour_labels == neighbour_labels[:, [j]]).sum(axis=1) for j in range(k)])
    majority = neighbour_labels[np.arange(len(labels)), counts.argmax(axis=1)]
    other_distance = np.where(same, np.inf, distances[:, :k]).min(axis=1)
    mean_distance = distances[:, :k].mean(axis=1)
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


def graph_edges(indices: np.ndarray) -> np.ndarray:
    """The graph's undirected edges as sorted unique pairs (M x 2, i < j): an edge found from both ends counts once."""
    indices = np.asarray(indices, dtype=np.int64)
    n = len(indices)
    rows = np.repeat(np.arange(n, dtype=np.int64), indices.shape[1])
    cols = indices.ravel()
    low, high = np.minimum(rows, cols), np.maximum(rows, cols)
    keep = low != high  # a self edge, should a graph hold one, is no pair
    # One int64 key per pair: N^2 < 2^63 for any N this workflow meets.
    keys = np.unique(low[keep] * n + high[keep])
    return np.column_stack(np.divmod(keys, n))


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` scaled to unit length; zero rows stay zero (so their cosine with anything is 0)."""
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def near_duplicate_pairs(X: np.ndarray, indices: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of images whose rows of ``X`` have cosine >= ``threshold``, looked for on the graph's edges only.

    X is centred (z-scored, PCA-reduced), so its cosine is close to a correlation of features.
    Every column of ``indices`` is used. Returns (pairs, M x 2 int with i < j; cosine, M), sorted by
    cosine descending, then (i, j).
    """
    if not -1.0 <= threshold <= 1.0:
        raise AtlasError(f"near-duplicate threshold {threshold} is not a cosine; use a value from -1 to 1")
    unit = unit_rows(X)
    if len(indices) != len(unit):
        raise ValueError(f"neighbour graph of {len(indices)} rows does not fit X of {len(unit)} rows")
    edges = graph_edges(indices)
    cosine = np.empty(len(edges))
    for start in range(0, len(edges), PAIR_CHUNK):
        chunk = edges[start : start + PAIR_CHUNK]
        cosine[start : start + PAIR_CHUNK] = np.einsum("ij,ij->i", unit[chunk[:, 0]], unit[chunk[:, 1]])
    cosine = np.clip(cosine, -1.0, 1.0)  # rounding can step just past 1 for identical rows
    keep = cosine >= threshold
    edges, cosine = edges[keep], cosine[keep]
    order = np.lexsort((edges[:, 1], edges[:, 0], -cosine))
    return edges[order], cosine[order]


def outlier_scores(distances: np.ndarray, k: int) -> np.ndarray:
    """Mean distance of each image to its k nearest neighbours (N,): large for an image far from all others."""
    distances = np.asarray(distances, dtype=np.float64)
    check_k(k, distances.shape[1])
    return distances[:, :k].mean(axis=1)


def relative_outlier_scores(indices: np.ndarray, distances: np.ndarray, k: int) -> np.ndarray:
    """Each image's mean distance to its k nearest neighbours over theirs (N,): about 1 inside any
    cluster, dense or spread, and large for an image far from neighbours that are close to each other.

    The plain mean distance ranks whole spread-out classes first (features of striped or textured
    images vary more); this ratio, a simple local outlier factor, ranks the images odd *for where
    they are*.
    """
    mean = outlier_scores(distances, k)
    neighbours = np.asarray(indices)[:, :k]
    return mean / np.maximum(mean[neighbours].mean(axis=1), DISTANCE_EPS)


def wide_outlier_scores(indices: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """``relative_outlier_scores`` over every neighbour the graph holds (N,): each image's mean distance
    to all K of its neighbours over theirs, K the graph's width (graph.neighbours; by default 3 x the
    largest t-SNE perplexity).

    A small group of similar odd images shields itself from the k-neighbour ratio: its members are
    each other's nearest neighbours, so their ratio is about 1. Over K neighbours, a group of g << K
    images has K - g neighbours from the bulk, whose own means are ordinary: the ratio rises with how
    far the group sits from the bulk. A class or cluster of about K images or more is its own wide
    neighbourhood and stays near 1, as a spread-out class does at k.
    """
    return relative_outlier_scores(indices, distances, np.asarray(indices).shape[1])


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

    ``suspects_reason`` says why ``suspects`` is empty (unlabelled data), else None.
    """

    suspects: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    outliers: list[dict] = field(default_factory=list)
    suspects_reason: str | None = None


def neighbour_fields(i: int, indices, distances, labels: list[str], paths: list[str], k: int) -> dict:
    """The neighbour columns of image ``i``'s row: its k nearest neighbours' paths, labels and distances."""
    nearest = indices[i, :k]
    return {
        "neighbours": [paths[j] for j in nearest],
        "neighbour_labels": [labels[j] for j in nearest],
        "neighbour_distances": [float(d) for d in distances[i, :k]],
    }


def suspect_rows(indices, distances, labels: list[str], paths: list[str], k: int) -> list[dict]:
    """suspects.csv rows, most suspect first; images whose k neighbours all share their label are left out."""
    classes, codes = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
    scores = label_disagreement(indices, distances, codes, k)
    rows = []
    for i in rank_suspects(scores["disagreement"], scores["agreement_weighted"], scores["nearest_other"]):
        if scores["disagreement"][i] == 0:
            continue  # every neighbour agrees: not a suspect
        rows.append(
            {
                "rank": len(rows) + 1,
                "path": paths[i],
                "label": labels[i],
                "disagreement": float(scores["disagreement"][i]),
                "majority_label": str(classes[scores["majority"][i]]),
                "agreement_weighted": float(scores["agreement_weighted"][i]),
                **neighbour_fields(i, indices, distances, labels, paths, k),
            }
        )
    return rows


def duplicate_rows(X, indices, labels: list[str], paths: list[str], hashes: list[str], threshold: float) -> list[dict]:
    """duplicates.csv rows: exact pairs (same content hash) first, then near pairs by cosine descending.

    A pair that is an exact duplicate is not listed again as a near one.
    """
    exact = exact_duplicate_pairs(hashes)
    near, cosine = near_duplicate_pairs(X, indices, threshold)
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


def outlier_rows(indices, distances, labels: list[str], paths: list[str], k: int) -> list[dict]:
    """outliers.csv rows: every image, by outlier score descending (``combined_outlier_scores``: the
    larger of its relative distance to its k nearest neighbours and to all the graph holds), ties by
    index; with both parts and the plain mean distance to the k neighbours."""
    mean = outlier_scores(distances, k)
    relative = relative_outlier_scores(indices, distances, k)
    wide = wide_outlier_scores(indices, distances)
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
        for rank, i in enumerate(rank_outliers(scores), start=1)
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
) -> SuspectTables:
    """The three tables of one feature set, from its prepared input X and k-NN graph.

    ``labels``, ``paths`` and ``hashes`` are per image, in X's row order. With ``labelled=False``
    (every image carries the same placeholder label) label disagreement means nothing: the
    suspects table is left empty and ``suspects_reason`` says why; duplicates and outliers are
    computed all the same.
    """
    indices, distances = np.asarray(indices), np.asarray(distances)
    check_graph(indices, distances, len(X))
    if not len(labels) == len(paths) == len(hashes) == len(X):
        raise ValueError(f"{len(labels)} labels, {len(paths)} paths, {len(hashes)} hashes for {len(X)} rows of X")
    check_k(neighbours, indices.shape[1])
    tables = SuspectTables(
        duplicates=duplicate_rows(X, indices, labels, paths, hashes, near_duplicate_cosine),
        outliers=outlier_rows(indices, distances, labels, paths, neighbours),
    )
    if labelled:
        tables.suspects = suspect_rows(indices, distances, labels, paths, neighbours)
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
    and outliers lists (every duplicate pair is listed)."""
    from .files.map_inputs import read_graph_stage_inputs
    from .files.suspects import write_duplicates, write_outliers, write_suspects

    read = read_graph_stage_inputs(prepared, graph, images, manifest, neighbours, "suspects.neighbours", LOGGER)
    X, indices, distances, paths, hashes = read.X, read.indices, read.distances, read.paths, read.hashes
    labels, neighbours = read.labels, read.neighbours
    tables = suspect_tables(
        X, indices, distances, labels.labels, paths, hashes, neighbours, near_duplicate_cosine, labels.labelled
    )
    write_suspects(suspects, tables.suspects[:max_rows])
    write_duplicates(duplicates, tables.duplicates)
    write_outliers(outliers, tables.outliers[:max_rows])
    exact = sum(row["kind"] == "exact" for row in tables.duplicates)
    LOGGER.info(
        "%d images: %s; %d exact and %d near-duplicate pairs (cosine >= %g); outliers by relative distance to %d "
        "and to all %d neighbours",
        len(paths),
        tables.suspects_reason
        or f"{len(tables.suspects)} with a label some of their {neighbours} neighbours do not share",
        exact,
        len(tables.duplicates) - exact,
        near_duplicate_cosine,
        neighbours,
        indices.shape[1],
    )
    return tables
