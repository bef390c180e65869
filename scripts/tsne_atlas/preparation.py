"""What every map of a sweep shares, computed once instead of once per run.

One function per rule, per feature set (files: ``files.map_inputs``):

- ``prepare_input``: z-scoring and PCA of the features (config section ``prepare``), once for the
  whole sweep -> ``embeddings/{features}/input.h5`` (``/X``, float64 N x d, and how it was made as
  attributes): what every method maps, the suspects and the metrics read.
- ``knn_graph``: the k-nearest-neighbour graph of that input, once (``graph.neighbours``: by default
  3 x the largest perplexity, openTSNE's rule) -> ``embeddings/{features}/graph/k-{k}.npz``; UMAP's
  maps read its first columns too, or a graph of their own when they need more neighbours; the
  suspects and the explorer read it.
- ``tsne_affinities``: the perplexity-calibrated affinity matrix P for one perplexity, from the
  first 3 x perplexity neighbours of that graph -> ``embeddings/{features}/affinities/perplexity-{p}.npz``.
  This is what openTSNE's ``PerplexityBasedNN.set_perplexity`` does: the neighbour search,
  which dominates affinity cost, is not repeated per perplexity.

Each t-SNE run then loads X and P and only optimises (``methods.tsne``). Adding seeds, or
perplexities up to the largest, adds runs without touching the shared files; raising the
largest perplexity rebuilds the neighbour graph (its file name carries k).

Free of torch imports, like every map job.
"""

import logging

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from .files.features import read_features
from .files.map_inputs import read_input, read_neighbours, write_affinities, write_input, write_neighbours
from .jobs import AtlasError
from .methods.tsne import check_perplexity

LOGGER = logging.getLogger("tsne_atlas.preparation")
# The neighbour search is approximate (Annoy) from 1,000 points on; its seed is fixed, and it runs
# on one thread (Annoy's index differs with the number of threads building it: 1,666 of 36,000
# neighbours at 1,200 points with 1 vs 2), so the graph, and so every run's affinities, depend on
# the data alone, whatever tsne.threads or --cores.
NEIGHBOURS_RANDOM_STATE = 0
NEIGHBOURS_THREADS = 1
# openTSNE's switch from the exact search to Annoy.
EXACT_MAX_POINTS = 1000


def pca_dimensions(features_shape: tuple[int, int], pca_components: int) -> int:
    """Dimensions PCA keeps for this input (0 when it is off or would keep everything)."""
    n_components = min(pca_components, *features_shape) if pca_components else 0
    return n_components if n_components < features_shape[1] else 0


def fit_preparation(features: np.ndarray, standardize: bool, pca_components: int, random_state: int = 0):
    """``preprocess``'s result and the function applying the same fitted z-scoring and PCA to other rows
    (a query set, prepared like the reference without changing it)."""
    X = np.asarray(features, dtype=np.float64)
    scaler = pca = None
    if standardize:
        scaler = StandardScaler(copy=X is features)
        X = scaler.fit_transform(X)
    n_components = pca_dimensions(X.shape, pca_components)
    if n_components:
        solver = "covariance_eigh" if X.shape[0] >= X.shape[1] else "full"
        pca = PCA(n_components=n_components, svd_solver=solver, random_state=random_state)
        X = pca.fit_transform(X)

    def transform(rows: np.ndarray) -> np.ndarray:
        Y = np.array(rows, dtype=np.float64)
        if scaler is not None:
            Y = scaler.transform(Y)
        if pca is not None:
            Y = pca.transform(Y)
        return np.ascontiguousarray(Y)

    return np.ascontiguousarray(X), transform


def preprocess(features: np.ndarray, standardize: bool, pca_components: int, random_state: int = 0) -> np.ndarray:
    """Optional z-scoring per dimension, then optional PCA to ``pca_components``.

    Constant dimensions (random-init ResNets have dozens of all-zero ones) keep
    scale 1 in the scaler, so they stay zero instead of turning into NaN.
    PCA is exact: with more images than dimensions it eigendecomposes the D x D covariance
    (memory D^2, fast at 100,000 images), else a full SVD.
    """
    return fit_preparation(features, standardize, pca_components, random_state)[0]


def prepare_input(features: str, node: str, standardize: bool, pca_components: int, prepared: str) -> dict:
    """z-score and PCA one node's features once for the sweep; write them to ``prepared`` (rule prepare_input)."""
    features_file = features
    data = read_features(features_file, node)
    X = preprocess(data["features"], standardize, pca_components)
    attrs = {
        "standardize": bool(standardize),
        "pca_components": pca_dimensions(data["features"].shape, pca_components),
        "feature_dim": int(data["features"].shape[1]),
        "n_images": len(X),
        "features_file": str(features_file),
        "node": node,
    }
    write_input(prepared, X, attrs)
    LOGGER.info("prepared input: %d x %d -> %d x %d", *data["features"].shape, *X.shape)
    return attrs


def nearest_reference(X: np.ndarray, Q: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``Q``'s ``k`` nearest rows of ``X`` (exact euclidean, ascending, ties by row): (indices,
    distances), each len(Q) x k. Query rows a chunk at a time, so memory stays chunk x len(X)."""
    k = min(k, len(X))
    squared = np.einsum("ij,ij->i", X, X)
    indices = np.empty((len(Q), k), dtype=np.int64)
    distances = np.empty((len(Q), k), dtype=np.float64)
    for start in range(0, len(Q), chunk):
        rows = Q[start : start + chunk]
        d2 = np.maximum(np.einsum("ij,ij->i", rows, rows)[:, None] + squared[None, :] - 2.0 * rows @ X.T, 0.0)
        nearest = np.argsort(d2, axis=1, kind="stable")[:, :k]
        indices[start : start + chunk] = nearest
        distances[start : start + chunk] = np.sqrt(np.take_along_axis(d2, nearest, axis=1))
    return indices, distances


def prepare_query(
    features: str,
    query_features: str,
    prepared: str,
    node: str,
    standardize: bool,
    pca_components: int,
    query_prepared: str,
) -> dict:
    """The query set prepared with the reference's own z-scoring and PCA, fitted on the reference only
    (refitted here: the fit is deterministic and is checked to give the reference's prepared input bit for
    bit) (rule prepare_query)."""
    reference = read_features(features, node)
    query = read_features(query_features, node)
    X, transform = fit_preparation(reference["features"], standardize, pca_components)
    stored, _ = read_input(prepared)
    if not np.array_equal(X, stored):
        raise AtlasError(f"{prepared} was not prepared from {features} with these settings; delete it and rerun")
    if query["features"].shape[1] != reference["features"].shape[1]:
        raise AtlasError(
            f"{query_features} has {query['features'].shape[1]} features per image, {features} "
            f"{reference['features'].shape[1]}; delete {query_features} and rerun"
        )
    Q = transform(query["features"])
    attrs = {
        "standardize": bool(standardize),
        "pca_components": pca_dimensions(reference["features"].shape, pca_components),
        "feature_dim": int(query["features"].shape[1]),
        "n_images": len(Q),
        "features_file": str(query_features),
        "reference_features_file": str(features),
        "node": node,
    }
    write_input(query_prepared, Q, attrs)
    LOGGER.info("query prepared: %d x %d -> %d x %d", *query["features"].shape, *Q.shape)
    return attrs


def query_neighbours(prepared: str, query_prepared: str, neighbours: int, query_neighbours: str) -> None:
    """Each query image's ``neighbours`` nearest reference images in the prepared space, exact (rule
    query_neighbours: what the placement tables and the explorer read; each placement searches its own)."""
    X, _ = read_input(prepared)
    Q, _ = read_input(query_prepared)
    if Q.shape[1] != X.shape[1]:
        raise AtlasError(
            f"{query_prepared} has {Q.shape[1]} columns, {prepared} {X.shape[1]}; delete the first and rerun"
        )
    indices, distances = nearest_reference(X, Q, neighbours)
    write_neighbours(query_neighbours, indices, distances)
    LOGGER.info("%d query images: their %d nearest reference images", *indices.shape)


def neighbours_for(perplexity: float, n_images: int) -> int:
    """openTSNE's neighbour count for a perplexity: 3 x perplexity, at most N - 1."""
    return min(n_images - 1, int(3 * perplexity))


def nearest_neighbours(X: np.ndarray, k: int, random_state: int = NEIGHBOURS_RANDOM_STATE):
    """(indices, distances), each N x k, by openTSNE's own choice of method for euclidean distances
    (``get_knn_index(X, "auto", ...)``: exact below EXACT_MAX_POINTS, Annoy from there on), made here:
    get_knn_index imports pynndescent to decide, which costs ~15 s of numba compilation in every graph
    job once umap-learn (and so pynndescent) is installed, and changes nothing for euclidean distances."""
    from openTSNE import nearest_neighbors as knn

    index_class = knn.Sklearn if len(X) < EXACT_MAX_POINTS else knn.Annoy
    index = index_class(
        data=X,
        k=min(k, len(X) - 1),
        metric="euclidean",
        metric_params=None,
        n_jobs=NEIGHBOURS_THREADS,
        random_state=random_state,
        verbose=False,
        knn_kwargs=None,
    )
    indices, distances = index.build()
    return np.ascontiguousarray(indices, dtype=np.int64), np.ascontiguousarray(distances, dtype=np.float64)


def affinities_from_neighbours(indices: np.ndarray, distances: np.ndarray, perplexity: float, n_jobs: int = 1):
    """Symmetric perplexity-based P (CSR, sums to 1) from the first 3 x perplexity neighbours."""
    check_perplexity(perplexity, len(indices))
    k = neighbours_for(perplexity, len(indices))
    if k > indices.shape[1]:
        raise AtlasError(f"perplexity {perplexity:g} needs {k} neighbours but the graph has {indices.shape[1]}")
    return symmetric_affinities([indices[:, :k], distances[:, :k]], perplexity, n_jobs)


def symmetric_affinities(graph: list, perplexity: float, n_jobs: int = 1):
    """openTSNE's ``joint_probabilities_nn(indices, distances, [perplexity], symmetrize=True)`` step for
    step (the same operations on the same arrays: the same P, bit for bit), from ``graph``, a list
    [indices, distances] of k columns each, which it empties, so that each array is freed as soon as
    it is used: at 1,000,000 images x 150 neighbours the graph (2.4 GB), openTSNE's copy of the
    distances, the conditional P and the halved copy of P + P.T would otherwise all be held at once.
    ``(P + P.T) / 2`` is halved in place: multiplying by 0.5, as scipy's division by 2 does, is exact."""
    from openTSNE import _tsne

    indices, distances = graph
    graph.clear()
    n, k = distances.shape
    conditional = np.asarray(
        _tsne.compute_gaussian_perplexity(
            np.array(distances, dtype=float), np.array([perplexity], dtype=float), num_threads=n_jobs
        )
    )
    del distances
    P = sp.csr_matrix(
        (conditional.ravel(), np.ascontiguousarray(indices).ravel(), range(0, n * k + 1, k)), shape=(n, n)
    )
    del indices, conditional
    P = P + P.T
    P.data *= 0.5
    P /= np.sum(P)
    return P.tocsr()


def knn_graph(prepared: str, k: int, graph: str) -> None:
    """A k-NN graph of the prepared input (rule knn_graph; one thread, see NEIGHBOURS_THREADS)."""
    X, _ = read_input(prepared)
    indices, distances = nearest_neighbours(X, k)
    write_neighbours(graph, indices, distances)
    LOGGER.info("k-NN graph: %d points x %d neighbours", *indices.shape)


def tsne_affinities(graph: str, perplexity: float, affinities: str, threads: int) -> None:
    """One perplexity's P from the first 3 x perplexity neighbours of the graph (rule tsne_affinities),
    reading only those columns of it (``resources.affinities_need_bytes``; refused in one line, before reading,
    where the job has too little memory)."""
    from .files.map_inputs import graph_shape
    from .jobs import check_memory
    from .resources import affinities_need_bytes

    n_images, width = graph_shape(graph)
    try:
        check_perplexity(perplexity, n_images)
        k = neighbours_for(perplexity, n_images)
        if k > width:
            raise AtlasError(f"perplexity {perplexity:g} needs {k} neighbours but the graph has {width}")
    except AtlasError as err:
        raise AtlasError(f"{graph}: {err}; delete it and rerun") from None
    check_memory(
        "tsne_affinities",
        affinities_need_bytes(n_images, k),
        f"the affinities of {n_images:,} images at perplexity {perplexity:g} ({k} neighbours each)",
        "lower tsne.perplexities or sample.n_images",
    )
    P = symmetric_affinities(list(read_neighbours(graph, columns=k)), perplexity, threads)
    write_affinities(affinities, P)
    LOGGER.info("affinities for perplexity %g: %d non-zeros", perplexity, P.nnz)
