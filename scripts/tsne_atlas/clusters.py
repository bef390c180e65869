"""Stage clusters: the groups of one feature set's images, found once in feature space so that every map
of the set (each method, setting and seed) shows the same groups and they can be compared.

Leiden community detection (Traag et al. 2019, the ``leidenalg`` library) on the sweep's k-NN graph of the
prepared input, as single-cell analysis does (Scanpy's ``leiden`` on its neighbour graph): it works on the
graph the workflow already has, scales to millions of images, needs no number of clusters and finds
groups of any shape and density. HDBSCAN, the other candidate, clusters by density in the prepared
input's 50 dimensions, where distances concentrate and it leaves many images as noise. The graph is
the k nearest neighbours of each image, made undirected (an edge where either is among the other's
k), unweighted; ``resolution`` is the RB configuration model's (1.0: modularity; larger: more, smaller
clusters). Leiden runs until no move improves the partition, from ``random_state``: the same input
gives the same clusters, byte for byte.
"""

import logging
from collections import Counter

import numpy as np

from .files.metrics import NOT_APPLICABLE
from .jobs import AtlasError

LOGGER = logging.getLogger("tsne_atlas.clusters")

# What summary.json says where there are no labels to agree with.
NO_LABELS_AGREEMENT = "n/a: the images have no labels"
# A cluster whose majority label holds this share or less is named by its two most common labels.
MIXED_SHARE = 0.5
# Edges handed to igraph at a time: its conversion of a whole list of 15,000,000 edges (1,000,000 images,
# 15 neighbours) held 2.2 GB of Python objects at once; in blocks of 4,000,000, 0.6 GB for the same graph.
EDGE_BLOCK = 4_000_000


def neighbour_edges(indices: np.ndarray, neighbours: int) -> np.ndarray:
    """The undirected edges (E, 2), i < j, sorted, of the graph joining each image to its ``neighbours``
    nearest (columns of ``indices``, nearest first; an image's own index, if listed, is dropped)."""
    indices = np.asarray(indices)
    if not 1 <= neighbours <= indices.shape[1]:
        raise ValueError(f"neighbours must be in 1..{indices.shape[1]}, got {neighbours}")
    rows = np.repeat(np.arange(len(indices)), neighbours)
    cols = indices[:, :neighbours].ravel()
    keep = rows != cols
    edges = np.sort(np.stack([rows[keep], cols[keep]], axis=1), axis=1)
    return np.unique(edges, axis=0)


def by_size(membership: np.ndarray) -> np.ndarray:
    """``membership`` renumbered so that 0 is the largest cluster, then 1, ...; equal sizes by their
    first image (so the numbers do not depend on the order the algorithm found them in)."""
    membership = np.asarray(membership)
    found, first, counts = np.unique(membership, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    number = np.empty(len(found), dtype=np.int64)
    number[order] = np.arange(len(found))
    return number[np.searchsorted(found, membership)]


def neighbour_graph(indices: np.ndarray, neighbours: int, edge_block: int = EDGE_BLOCK):
    """The igraph Graph of ``neighbour_edges``, its edges added ``edge_block`` at a time (in order: the
    same edge ids as all at once)."""
    import igraph

    edges = neighbour_edges(indices, neighbours)
    graph = igraph.Graph(n=len(indices))
    for start in range(0, len(edges), edge_block):
        graph.add_edges(edges[start : start + edge_block])
    return graph


def leiden_clusters(
    indices: np.ndarray, neighbours: int, resolution: float, random_state: int, edge_block: int = EDGE_BLOCK
) -> np.ndarray:
    """Each image's cluster (N,), 0 the largest, by Leiden on the k-NN graph (module docstring)."""
    import leidenalg

    graph = neighbour_graph(indices, neighbours, edge_block)
    partition = leidenalg.find_partition(
        graph,
        leidenalg.RBConfigurationVertexPartition,
        resolution_parameter=resolution,
        seed=random_state,
        n_iterations=-1,
    )
    return by_size(np.asarray(partition.membership))


def label_agreement(clusters: np.ndarray, labels: list[str], labelled: bool) -> dict:
    """How well the clusters agree with the labels: adjusted Rand index and normalised mutual
    information (scikit-learn's; both 1 for the same partition, ~0 for chance); None without labels."""
    if not labelled:
        return {"adjusted_rand_index": None, "normalized_mutual_info": None, "agreement": NO_LABELS_AGREEMENT}
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "adjusted_rand_index": float(adjusted_rand_score(labels, clusters)),
        "normalized_mutual_info": float(normalized_mutual_info_score(labels, clusters)),
        "agreement": "with the labels",
    }


def most_common(values: list[str]) -> tuple[str, float, str | None]:
    """The most common value (ties: alphabetical), its share, and the runner-up (None if there is none)."""
    counts = sorted(Counter(values).items(), key=lambda item: (-item[1], item[0]))
    runner_up = counts[1][0] if len(counts) > 1 else None
    return counts[0][0], counts[0][1] / len(values), runner_up


def central_members(X: np.ndarray, members: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` members (indices into X) nearest the members' mean, nearest first, ties by index."""
    rows = X[members]
    distance = np.linalg.norm(rows - rows.mean(axis=0), axis=1)
    return members[np.lexsort((members, distance))][:count]


def cluster_name(number: int, majority: tuple | None, predicted: tuple | None) -> str:
    """What a cluster is called on the maps: its majority label (its two most common, "a / b", when
    the majority holds half or less), else the network's majority prediction, else ``cluster <n>``."""
    if majority is not None:
        label, share, runner_up = majority
        return f"{label} / {runner_up}" if share <= MIXED_SHARE and runner_up is not None else label
    if predicted is not None:
        return predicted[0]
    return f"cluster {number}"


def cluster_rows(
    X: np.ndarray,
    clusters: np.ndarray,
    paths: list[str],
    labels: list[str],
    labelled: bool,
    predicted: list[str] | None,
    examples: int,
) -> list[dict]:
    """table.csv's rows (files/clusters.py), largest cluster first."""
    rows = []
    for number in range(int(clusters.max()) + 1):
        members = np.flatnonzero(clusters == number)
        majority = most_common([labels[i] for i in members]) if labelled else None
        top = most_common([predicted[i] for i in members]) if predicted is not None else None
        central = central_members(X, members, examples + 1)
        rows.append(
            {
                "cluster": number,
                "name": cluster_name(number, majority, top),
                "size": len(members),
                "majority_label": majority[0] if majority else None,
                "purity": majority[1] if majority else None,
                "predicted_class": top[0] if top else None,
                "predicted_share": top[1] if top else None,
                "representative": paths[central[0]],
                "examples": [paths[i] for i in central[1:]],
            }
        )
    return rows


def find_clusters(
    prepared: str,
    graph: str,
    images: str,
    manifest: str,
    features: str,
    neighbours: int,
    resolution: float,
    seed: int,
    examples: int,
    features_id: str,
    node: str,
    assignments: str,
    table: str,
    summary: str,
) -> dict:
    """clusters.csv, table.csv and summary.json of one feature set (rule clusters)."""
    from .files.clusters import write_assignments, write_cluster_table, write_summary
    from .files.features import read_features, read_predictions
    from .files.map_inputs import read_graph_stage_inputs

    read = read_graph_stage_inputs(
        prepared, graph, images, manifest, neighbours, "clusters.neighbours", LOGGER, nearest_only=True
    )
    X, indices, paths, labels, neighbours = read.X, read.indices, read.paths, read.labels, read.neighbours
    predictions, reason = read_predictions(features)
    predicted = predictions.top1()[0] if predictions is not None else None
    if predicted is not None and len(predicted) != len(paths):
        raise AtlasError(
            f"{features} holds predictions for {len(predicted)} images, {images} {len(paths)}; delete {features} and rerun"
        )
    clusters = leiden_clusters(indices, neighbours, resolution, seed)
    rows = cluster_rows(X, clusters, paths, labels.labels, labels.labelled, predicted, examples)
    names = [row["name"] for row in rows]
    write_assignments(
        assignments,
        [
            {"path": p, "label": label, "cluster": int(c), "cluster_name": names[c]}
            for p, label, c in zip(paths, labels.labels, clusters)
        ],
    )
    write_cluster_table(table, rows)
    agreement = label_agreement(clusters, labels.labels, labels.labelled)
    result = {
        "features": features_id,
        "method": "leiden",
        "neighbours": neighbours,
        "resolution": resolution,
        "seed": seed,
        "n_images": len(paths),
        "n_clusters": len(rows),
        "predictions": reason,
        "weights_random": bool(read_features(features, node, with_features=False)["attrs"].get("weights_random")),
        **agreement,
    }
    write_summary(summary, result)
    ari = agreement["adjusted_rand_index"]
    LOGGER.info(
        "%d images in %d clusters (Leiden, %d neighbours, resolution %g, seed %d); agreement with labels: %s",
        len(paths),
        len(rows),
        neighbours,
        resolution,
        seed,
        NOT_APPLICABLE if ari is None else f"ARI {ari:.3f}, NMI {agreement['normalized_mutual_info']:.3f}",
    )
    return result
