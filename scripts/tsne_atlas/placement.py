"""What users read off a query set placed beside the reference sample (a test split, a new batch): per
query image its nearest reference images in feature space, their majority label and whether it is the
image's own, an out-of-distribution score, and whether it is a copy of a reference image (a leak
between splits); the leaks with both paths; a summary per query class. The columns of the three
tables: ``files/placement.py``.

Everything is read off the prepared inputs (the query z-scored and PCA-reduced with the reference's
fit, so both live in one space) and the query's exact nearest reference neighbours, found by the
query's preparation; nothing here searches neighbours. The only look at the whole reference is the
hash look-up for exact copies (a dict, O(N)). Deterministic: ties go to the nearer neighbour, then to
the path, so a rerun writes the same bytes.
"""

import logging
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .files.manifest import UNLABELLED, read_images, read_manifest, sample_labels
from .files.map_inputs import read_input, read_neighbours
from .files.placement import ALL_ROW, write_classes, write_leaks, write_placement
from .jobs import AtlasError
from .suspects import DISTANCE_EPS, PAIR_CHUNK, unit_rows

LOGGER = logging.getLogger("tsne_atlas.placement")

# Why ``agrees`` is n/a (the ``note`` column of placement.csv).
NOTE_REFERENCE_UNLABELLED = "reference unlabelled"
NOTE_QUERY_UNLABELLED = "query image unlabelled"
NOTE_UNKNOWN_CLASS = "class not in the reference"


def query_in_reference(
    reference_root: str, reference_paths: list[str], query_root: str, query_paths: list[str]
) -> list[str]:
    """The query paths (in their order) that name the same file as a reference path: equal
    ``os.path.realpath`` of root/path, so a symlink to a reference image or a second root that points
    into the first counts too (a hard link or a copy does not: the hash finds those, ``leak_pairs``)."""
    reference = {os.path.realpath(os.path.join(reference_root, p)) for p in reference_paths}
    return [p for p in query_paths if os.path.realpath(os.path.join(query_root, p)) in reference]


def check_query_apart(
    reference_root: str,
    reference_paths: list[str],
    query_root: str,
    query_paths: list[str],
    query_images: str,
    reference_images: str,
) -> None:
    """Refuse, in one line, a query set holding files of the reference sample (``query_in_reference``)."""
    shared = query_in_reference(reference_root, reference_paths, query_root, query_paths)
    if shared:
        raise AtlasError(
            f"{query_images}: {len(shared)} query image(s) are files of the reference sample ({reference_images}), "
            f"e.g. {shared[0]}; take them out of the query set or the reference"
        )


def check_query_neighbours(
    indices: np.ndarray,
    distances: np.ndarray,
    n_query: int,
    n_reference: int,
    neighbours: int,
    where: str,
    query_where: str,
    reference_where: str,
) -> None:
    """One line naming ``where`` (the query's neighbours file) unless ``indices``/``distances`` are
    n_query x K rows of reference indices, K >= ``neighbours`` >= 1."""
    if indices.ndim != 2 or indices.shape != distances.shape:
        raise AtlasError(
            f"{where}: indices {indices.shape} and distances {distances.shape} are not one neighbour table; "
            f"delete it and rerun"
        )
    if len(indices) != n_query:
        raise AtlasError(f"{where} has {len(indices)} rows but {query_where} {n_query}; delete {where} and rerun")
    if indices.size and (indices.min() < 0 or indices.max() >= n_reference):
        bad = int(indices.max()) if indices.max() >= n_reference else int(indices.min())
        raise AtlasError(
            f"{where} points at reference row {bad} but {reference_where} has {n_reference} images "
            f"(found for another reference sample); delete {where} and rerun"
        )
    if neighbours < 1:
        raise AtlasError(f"neighbours is {neighbours}: ask for at least 1 nearest reference image")
    if neighbours > indices.shape[1]:
        raise AtlasError(
            f"{neighbours} nearest reference images asked for, but {where} holds {indices.shape[1]} per query "
            f"image; ask for at most {indices.shape[1]}, or delete {where} and rerun to find more"
        )


def majority_labels(neighbour_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``neighbour_labels`` (N x k class codes, nearest first): the most common code and its
    count. Of tied codes, the one whose first occurrence is nearest."""
    neighbour_labels = np.asarray(neighbour_labels)
    k = neighbour_labels.shape[1]
    # counts[i, j]: how often neighbour j's code occurs in row i; argmax takes the first maximum, i.e.
    # the nearest neighbour carrying a most common code: the tie rule.
    counts = np.column_stack([(neighbour_labels == neighbour_labels[:, [j]]).sum(axis=1) for j in range(k)])
    best = counts.argmax(axis=1)
    rows = np.arange(len(neighbour_labels))
    return neighbour_labels[rows, best], counts[rows, best]


def ood_scores(query_distances: np.ndarray, reference_distances: np.ndarray, neighbours: int) -> tuple[np.ndarray, int]:
    """(scores, k used): each query image's mean distance to its k nearest reference images over the
    median, over the reference images, of their own mean distance to their k nearest other reference
    images (the reference k-NN graph's first k columns, self excluded). About 1 for a query image
    drawn like the reference (both are out-of-sample distances to the same set); large for one far
    from it.

    k is ``neighbours`` capped at the graph's width (``graph.neighbours``; it is normally far wider):
    numerator and denominator use the same k, so the ratio stays comparable.
    """
    k = min(neighbours, reference_distances.shape[1], query_distances.shape[1])
    scale = np.median(np.asarray(reference_distances, dtype=np.float64)[:, :k].mean(axis=1))
    query_mean = np.asarray(query_distances, dtype=np.float64)[:, :k].mean(axis=1)
    return query_mean / max(float(scale), DISTANCE_EPS), k


def exact_pairs(query_hashes: list[str], reference_hashes: list[str]) -> list[tuple[int, int]]:
    """Every (query index, reference index) of equal content hashes, sorted; every reference image is
    looked at, not only neighbours. Empty hashes are unknown content and match nothing."""
    by_hash: dict[str, list[int]] = {}
    for j, digest in enumerate(reference_hashes):
        if digest:
            by_hash.setdefault(digest, []).append(j)
    return [(i, j) for i, digest in enumerate(query_hashes) if digest for j in by_hash.get(digest, ())]


def pair_cosines(query_unit: np.ndarray, reference_unit: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Cosine of each (query, reference) pair's rows (unit rows given), in chunks; clipped to [-1, 1]."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    cosine = np.empty(len(pairs))
    for start in range(0, len(pairs), PAIR_CHUNK):
        chunk = pairs[start : start + PAIR_CHUNK]
        cosine[start : start + PAIR_CHUNK] = np.einsum("ij,ij->i", query_unit[chunk[:, 0]], reference_unit[chunk[:, 1]])
    return np.clip(cosine, -1.0, 1.0)  # rounding can step just past 1 for identical rows


def near_pairs(
    query_unit: np.ndarray, reference_unit: np.ndarray, indices: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """(pairs M x 2 of (query, reference) index, cosine M) of the query images' neighbours (every column
    of ``indices``) whose cosine is at or above ``threshold``, in (query, neighbour rank) order."""
    indices = np.asarray(indices, dtype=np.int64)
    pairs = np.column_stack([np.repeat(np.arange(len(indices)), indices.shape[1]), indices.ravel()])
    cosine = pair_cosines(query_unit, reference_unit, pairs)
    keep = cosine >= threshold
    return pairs[keep], cosine[keep]


@dataclass
class PlacementTables:
    """The rows of placement.csv, leaks.csv and classes.csv (columns: ``files/placement.py``)."""

    placement: list[dict] = field(default_factory=list)
    leaks: list[dict] = field(default_factory=list)
    classes: list[dict] = field(default_factory=list)
    ood_neighbours: int = 0  # the k of the ood score (``neighbours`` capped at the graph's width)


def leak_rows(
    query_X: np.ndarray,
    reference_X: np.ndarray,
    indices: np.ndarray,
    query_hashes: list[str],
    reference_hashes: list[str],
    threshold: float,
    query_paths: list[str],
    reference_paths: list[str],
    query_labels: list[str],
    reference_labels: list[str],
) -> list[dict]:
    """leaks.csv rows: exact pairs (same hash, any reference image) by path, then near pairs (cosine >=
    ``threshold`` among the neighbours ``indices`` holds) by cosine descending, ties by path; a pair that
    is exact is not listed again as near."""
    if not -1.0 <= threshold <= 1.0:
        raise AtlasError(f"near-copy threshold {threshold} is not a cosine; use a value from -1 to 1")
    query_unit, reference_unit = unit_rows(query_X), unit_rows(reference_X)
    exact = exact_pairs(query_hashes, reference_hashes)
    exact_cosine = pair_cosines(query_unit, reference_unit, np.array(exact, dtype=np.int64))
    near, near_cosine = near_pairs(query_unit, reference_unit, indices, threshold)
    exact_set = set(exact)
    listed = sorted(
        (("exact", i, j, float(c)) for (i, j), c in zip(exact, exact_cosine)),
        key=lambda pair: (query_paths[pair[1]], reference_paths[pair[2]]),
    )
    listed += sorted(
        (("near", int(i), int(j), float(c)) for (i, j), c in zip(near, near_cosine) if (i, j) not in exact_set),
        key=lambda pair: (-pair[3], query_paths[pair[1]], reference_paths[pair[2]]),
    )
    return [
        {
            "kind": kind,
            "query_path": query_paths[i],
            "reference_path": reference_paths[j],
            "cosine": c,
            "query_label": query_labels[i],
            "reference_label": reference_labels[j],
        }
        for kind, i, j, c in listed
    ]


def agreement(label: str, majority: str | None, known: set[str], reference_labelled: bool) -> tuple[bool | None, str]:
    """(agrees, note) of one query image: None and the reason where it cannot be judged."""
    if not reference_labelled:
        return None, NOTE_REFERENCE_UNLABELLED
    if label == UNLABELLED:
        return None, NOTE_QUERY_UNLABELLED
    if label not in known:
        return None, NOTE_UNKNOWN_CLASS
    return majority == label, ""


def class_rows(placement: list[dict], known: set[str], query_labelled: bool) -> list[dict]:
    """classes.csv rows: one per query label, sorted, and the ``all`` row last; one ``unlabelled`` row
    alone when the query set has no labels."""
    groups: dict[str, list[dict]] = {}
    for row in placement:
        groups.setdefault(row["label"], []).append(row)
    wanted = [(label, groups[label], label != UNLABELLED) for label in sorted(groups)]
    if query_labelled:
        wanted.append((ALL_ROW, placement, False))
    rows = []
    for label, members, is_class in wanted:
        judged = [row["agrees"] for row in members if row["agrees"] is not None]
        n_agree = sum(judged) if judged else None
        rows.append(
            {
                "label": label,
                "known": label in known if is_class else None,
                "n": len(members),
                "n_agree": n_agree,
                "share": n_agree / len(judged) if judged else None,
                "mean_ood_score": float(np.mean([row["ood_score"] for row in members])),
                "n_leaks": sum(bool(row["leak"]) for row in members),
            }
        )
    return rows


def placement_table_rows(
    query_X: np.ndarray,
    reference_X: np.ndarray,
    indices: np.ndarray,
    distances: np.ndarray,
    reference_distances: np.ndarray,
    query_paths: list[str],
    query_hashes: list[str],
    query_labels: list[str],
    reference_paths: list[str],
    reference_hashes: list[str],
    reference_labels: list[str],
    neighbours: int,
    near_duplicate_cosine: float,
    query_labelled: bool = True,
    reference_labelled: bool = True,
) -> PlacementTables:
    """The three tables from arrays: the prepared inputs (query rows in ``query_paths``' order,
    reference rows in ``reference_paths``'), the query's nearest reference neighbours (``indices``,
    ``distances``: N_q x K, nearest first, K >= ``neighbours``), the reference k-NN graph's distances
    (N x K', self excluded) for the ood score's scale. ``*_labelled`` False: every image of that side
    carries the placeholder label."""
    indices = np.asarray(indices, dtype=np.int64)
    k = neighbours
    reference_codes_of = {name: code for code, name in enumerate(sorted(set(reference_labels)))}
    reference_classes = sorted(reference_codes_of)
    reference_codes = np.array([reference_codes_of[label] for label in reference_labels], dtype=np.int64)
    majority_codes, majority_counts = majority_labels(reference_codes[indices[:, :k]])
    ood, ood_k = ood_scores(distances, reference_distances, k)
    leaks = leak_rows(
        query_X,
        reference_X,
        indices,
        query_hashes,
        reference_hashes,
        near_duplicate_cosine,
        query_paths,
        reference_paths,
        query_labels,
        reference_labels,
    )
    leak_of = {}
    for row in leaks:  # exact rows come first: an image with both kinds is an exact leak
        leak_of.setdefault(row["query_path"], row["kind"])
    known = set(reference_labels) - {UNLABELLED} if reference_labelled else set()
    placement = []
    for i in sorted(range(len(query_paths)), key=lambda i: query_paths[i]):
        majority = reference_classes[majority_codes[i]] if reference_labelled else None
        agrees, note = agreement(query_labels[i], majority, known, reference_labelled)
        nearest = indices[i, :k]
        placement.append(
            {
                "path": query_paths[i],
                "label": query_labels[i],
                "majority_label": majority,
                "majority_share": float(majority_counts[i]) / k if reference_labelled else None,
                "agrees": agrees,
                "note": note,
                "ood_score": float(ood[i]),
                "leak": leak_of.get(query_paths[i], ""),
                "nearest": reference_paths[nearest[0]],
                "nearest_distance": float(distances[i, 0]),
                "neighbours": [reference_paths[j] for j in nearest],
                "neighbour_labels": [reference_labels[j] for j in nearest],
            }
        )
    return PlacementTables(placement, leaks, class_rows(placement, known, query_labelled), ood_k)


def placement_tables(
    reference_images: str,
    reference_manifest: str,
    query_images: str,
    query_manifest: str,
    prepared: str,
    graph: str,
    query_prepared: str,
    query_neighbours: str,
    root: str,
    query_root: str,
    neighbours: int,
    near_duplicate_cosine: float,
    placement: str,
    leaks: str,
    classes: str,
) -> None:
    """placement.csv, leaks.csv and classes.csv of one feature set's query set (columns:
    ``files/placement.py``), from the reference sample (``images.csv``, ``manifest.csv``), its prepared
    input and the sweep's k-NN graph, and the query sample, its prepared input and its nearest
    reference neighbours (``neighbours.npz``: N_q x K reference rows and distances, nearest first).

    ``neighbours`` (k): how many nearest reference images vote on the majority label and make the ood
    score; at most the K the neighbours file holds. The ood score's k is also capped at the width of
    the reference graph (its scale: the reference images' own mean distance to their k nearest), which
    is normally far wider. ``near_duplicate_cosine``: the cosine at or above which a query image and one of
    its K nearest reference images are a near copy. A query set holding files of the reference sample
    (same real path under the two roots) is refused in one line, as are files that do not fit together.
    """
    reference_paths, reference_hashes = read_images(reference_images)
    reference_labels = sample_labels(reference_manifest, reference_paths, reference_images)
    reference_X, _ = read_input(prepared)
    if len(reference_X) != len(reference_paths):
        raise AtlasError(
            f"{prepared} has {len(reference_X)} rows but {reference_images} {len(reference_paths)}; "
            f"delete {prepared} and rerun"
        )
    _, reference_distances = read_neighbours(graph)
    if reference_distances.ndim != 2 or len(reference_distances) != len(reference_paths):
        raise AtlasError(
            f"{graph} has {len(reference_distances)} rows but {reference_images} {len(reference_paths)}; "
            f"delete {graph} and rerun"
        )

    query_paths, query_hashes = read_images(query_images)
    query_labels = read_manifest(query_manifest)
    if query_labels.paths != query_paths:
        raise AtlasError(
            f"{query_manifest} lists other images than {query_images} ({len(query_labels.paths)} vs "
            f"{len(query_paths)} rows); delete {os.path.dirname(query_images) or '.'} and rerun"
        )
    if not query_paths:
        raise AtlasError(f"{query_images} lists no images: the query set is empty; give it images or remove it")
    check_query_apart(root, reference_paths, query_root, query_paths, query_images, reference_images)
    query_X, _ = read_input(query_prepared)
    if len(query_X) != len(query_paths):
        raise AtlasError(
            f"{query_prepared} has {len(query_X)} rows but {query_images} {len(query_paths)}; "
            f"delete {query_prepared} and rerun"
        )
    if query_X.shape[1:] != reference_X.shape[1:]:
        raise AtlasError(
            f"{query_prepared} has {query_X.shape[1:]} columns but {prepared} {reference_X.shape[1:]} "
            f"(prepared with another fit); delete {query_prepared} and rerun"
        )
    indices, distances = read_neighbours(query_neighbours)
    check_query_neighbours(
        indices,
        distances,
        len(query_paths),
        len(reference_paths),
        neighbours,
        query_neighbours,
        query_prepared,
        reference_images,
    )

    tables = placement_table_rows(
        query_X,
        reference_X,
        indices,
        distances,
        reference_distances,
        query_paths,
        query_hashes,
        query_labels.labels,
        reference_paths,
        reference_hashes,
        reference_labels.labels,
        neighbours,
        near_duplicate_cosine,
        query_labels.labelled,
        reference_labels.labelled,
    )
    write_placement(placement, tables.placement)
    write_leaks(leaks, tables.leaks)
    write_classes(classes, tables.classes)

    if tables.ood_neighbours < neighbours:
        LOGGER.warning(
            "the ood score uses %d neighbours, all that %s holds per image (neighbours is %d)",
            tables.ood_neighbours,
            graph,
            neighbours,
        )
    unknown = sorted({row["label"] for row in tables.placement if row["note"] == NOTE_UNKNOWN_CLASS})
    if unknown:
        LOGGER.warning(
            "%d query class(es) no reference image has (allowed; their agreement is n/a): %s",
            len(unknown),
            ", ".join(unknown),
        )
    kinds = Counter(row["kind"] for row in tables.leaks)
    total = tables.classes[-1]
    LOGGER.info(
        "%d query images placed by their %d nearest of %d reference images: %s agree with their majority "
        "label, mean ood score %.2f; leaks: %d exact and %d near pairs (cosine >= %g)",
        len(query_paths),
        neighbours,
        len(reference_paths),
        "n/a" if total["share"] is None else f"{total['n_agree']} ({total['share']:.0%})",
        total["mean_ood_score"],
        kinds["exact"],
        kinds["near"],
        near_duplicate_cosine,
    )
