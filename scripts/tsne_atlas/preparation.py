"""What every map of a sweep shares, computed once instead of once per run.

One function per rule, per feature set (files: ``files.map_inputs``):

- ``prepare_input``: z-scoring and PCA of the features (config section ``prepare``), once for the
  whole sweep -> ``embeddings/{features}/input.h5`` (``/X``, float64 N x d, and how it was made as
  attributes): what every method maps, the suspects and the metrics read. Above ``prepare.block_rows``
  images the features are read and prepared that many rows at a time (``fit_preparation_blocks``: the
  same within float tolerance, memory one block + D x D + the result); up to it whole, byte for byte as
  before. ``prepare_query`` refits the same way and checks the refit against the stored input bit for bit.
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

from .files.features import feature_blocks, features_shape, read_features
from .files.map_inputs import read_input, read_neighbours, write_affinities, write_input, write_neighbours
from .jobs import AtlasError, check_memory
from .methods.tsne import check_perplexity, neighbours_for
from .resources import prepare_blocked, prepare_need_bytes

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


def column_moments(path: str, node: str, block_rows: int, n_images: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and population variance in float64, from the features file ``block_rows`` rows
    at a time: each block's sums, combined as scikit-learn's StandardScaler.partial_fit combines them
    (Chan, Golub & LeVeque's update, with its correction term)."""
    total = np.zeros(dim)
    squares = np.zeros(dim)
    seen = 0
    work = np.empty((min(block_rows, n_images), dim))
    for _, block in feature_blocks(path, node, block_rows):
        rows = work[: len(block)]
        np.copyto(rows, block)
        block_sum = rows.sum(axis=0)
        block_mean = block_sum / len(block)
        rows -= block_mean
        correction = rows.sum(axis=0)
        np.square(rows, out=rows)
        block_squares = rows.sum(axis=0) - correction**2 / len(block)
        if seen:
            delta = total / seen - block_mean
            squares += block_squares + seen / len(block) / (seen + len(block)) * (delta * len(block)) ** 2
        else:
            squares = block_squares
        total += block_sum
        seen += len(block)
    return total / seen, squares / seen


def standard_scale(mean: np.ndarray, variance: np.ndarray, n_images: int) -> np.ndarray:
    """StandardScaler's ``scale_``: the standard deviation, 1 for columns indistinguishable from constant
    (its ``_is_constant_feature`` bound on the variance), so they stay 0 instead of turning into NaN."""
    eps = np.finfo(np.float64).eps
    constant = variance <= n_images * eps * variance + (n_images * mean * eps) ** 2
    scale = np.sqrt(variance)
    scale[constant] = 1.0
    return scale


def covariance_components(C: np.ndarray, column_sum: np.ndarray, n_images: int, n_components: int):
    """(components, mean): PCA(svd_solver="covariance_eigh")'s fit from the sum of the rows' outer products
    ``C`` (overwritten) and of the rows: the covariance with N - 1, its eigenvectors by decreasing
    eigenvalue, each signed as ``svd_flip`` signs them (its largest entry positive), the first
    ``n_components`` of them (scikit-learn's ``random_state`` plays no part in this solver)."""
    mean = column_sum / n_images
    C -= n_images * mean[:, None] * mean[None, :]
    C /= n_images - 1
    _, vectors = np.linalg.eigh(C)
    Vt = np.flip(vectors, axis=1).T
    biggest = np.argmax(np.abs(Vt), axis=1)
    Vt *= np.sign(Vt[np.arange(len(Vt)), biggest])[:, None]
    return np.array(Vt[:n_components]), mean


def fit_preparation_blocks(
    path: str, node: str, standardize: bool, pca_components: int, block_rows: int, random_state: int = 0
):
    """``fit_preparation`` on the features file's rows ``block_rows`` at a time: the same z-scoring and PCA
    within float tolerance, in memory one block, the D x D covariance and the N x d result.

    Pass 1 (with ``standardize``): each column's mean and variance. Pass 2 (with PCA): the D x D sum of the
    z-scored rows' outer products, in float64, and its eigendecomposition. Pass 3: each block z-scored and
    projected into the result. ``random_state``: unused (as by scikit-learn's covariance_eigh solver)."""
    n_images, dim = features_shape(path, node)
    mean = scale = components = offset = None
    if standardize:
        mean, variance = column_moments(path, node, block_rows, n_images, dim)
        scale = standard_scale(mean, variance, n_images)
    n_components = pca_dimensions((n_images, dim), pca_components)
    work = np.empty((min(block_rows, n_images), dim))
    if n_components:
        C, column_sum = outer_product_sums(path, node, block_rows, mean, scale, work)
        components, pca_mean = covariance_components(C, column_sum, n_images, n_components)
        del C
        offset = pca_mean[None, :] @ components.T

    def apply(rows: np.ndarray, out: np.ndarray, work: np.ndarray) -> None:
        """``rows`` z-scored and projected into ``out`` (``work``: float64 of rows' shape, overwritten)."""
        if components is None:
            _scaled(rows, mean, scale, out)
        else:
            np.matmul(_scaled(rows, mean, scale, work), components.T, out=out)
            out -= offset

    X = np.empty((n_images, n_components or dim))
    for start, block in feature_blocks(path, node, block_rows):
        apply(block, X[start : start + len(block)], work[: len(block)])
    del work

    def transform(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        out = np.empty((len(rows), n_components or dim))
        apply(rows, out, np.empty(rows.shape))
        return out

    return X, transform


def outer_product_sums(path: str, node: str, block_rows: int, mean, scale, work: np.ndarray):
    """(the D x D sum of the rows' outer products, the sum of the rows), in float64, of the features file's
    rows z-scored (when ``mean`` is given) ``block_rows`` at a time in ``work``. A function of its own so
    that its last block is let go on return, before the next pass reads its first."""
    dim = work.shape[1]
    C = np.zeros((dim, dim))
    column_sum = np.zeros(dim)
    for _, block in feature_blocks(path, node, block_rows):
        rows = _scaled(block, mean, scale, work[: len(block)])
        C += rows.T @ rows
        column_sum += rows.sum(axis=0)
    return C, column_sum


def _scaled(block: np.ndarray, mean, scale, out: np.ndarray) -> np.ndarray:
    """``block`` as float64 in ``out``, z-scored there when ``mean`` is given (as StandardScaler.transform)."""
    np.copyto(out, block)
    if mean is not None:
        out -= mean
        out /= scale
    return out


def prepared_features(path: str, node: str, standardize: bool, pca_components: int, block_rows: int):
    """(the prepared input, the function preparing other rows alike, (N, D)) of one node's features: up to
    ``block_rows`` images (or fewer images than dimensions) read whole and prepared by ``fit_preparation``,
    today's code, byte for byte; above, by ``fit_preparation_blocks``."""
    shape = features_shape(path, node)
    if not prepare_blocked(*shape, block_rows):
        X, transform = fit_preparation(read_features(path, node)["features"], standardize, pca_components)
    else:
        X, transform = fit_preparation_blocks(path, node, standardize, pca_components, block_rows)
    return X, transform, shape


def check_preparation_memory(stage: str, shape: tuple[int, int], pca_components: int, block_rows: int, extra: int = 0):
    """Refuse, in one line, a preparation this machine has too little memory for (``extra``: bytes held
    beside it)."""
    n_images, dim = shape
    need = prepare_need_bytes(n_images, dim, block_rows, pca_components) + extra
    lower = "lower prepare.block_rows"
    if not pca_components:
        lower += (
            f" or set prepare.pca_components (without PCA the prepared input alone is {n_images:,} x {dim:,} float64)"
        )
    check_memory(stage, need, f"{n_images:,} x {dim:,} features", lower)


def prepare_input(
    features: str, node: str, standardize: bool, pca_components: int, prepared: str, block_rows: int = 100_000
) -> dict:
    """z-score and PCA one node's features once for the sweep; write them to ``prepared`` (rule prepare_input).
    Above ``block_rows`` images the features are read and prepared in blocks of that many rows."""
    features_file = features
    shape = features_shape(features_file, node)
    check_preparation_memory("prepare_input", shape, pca_components, block_rows)
    X, _, _ = prepared_features(features_file, node, standardize, pca_components, block_rows)
    attrs = {
        "standardize": bool(standardize),
        "pca_components": pca_dimensions(shape, pca_components),
        "feature_dim": int(shape[1]),
        "n_images": len(X),
        "features_file": str(features_file),
        "node": node,
    }
    write_input(prepared, X, attrs)
    LOGGER.info(
        "prepared input: %d x %d -> %d x %d%s",
        *shape,
        *X.shape,
        f" (in blocks of {block_rows:,} rows)" if prepare_blocked(*shape, block_rows) else "",
    )
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
    block_rows: int = 100_000,
) -> dict:
    """The query set prepared with the reference's own z-scoring and PCA, fitted on the reference only
    (refitted here, in blocks as prepare_input fits it: the fit is deterministic and is checked to give the
    reference's prepared input bit for bit) (rule prepare_query)."""
    shape = features_shape(features, node)
    query_shape = features_shape(query_features, node)
    n_out = pca_dimensions(shape, pca_components) or shape[1]
    check_preparation_memory("prepare_query", shape, pca_components, block_rows, extra=shape[0] * n_out * 8)
    X, transform, _ = prepared_features(features, node, standardize, pca_components, block_rows)
    stored, _ = read_input(prepared)
    if not np.array_equal(X, stored):
        raise AtlasError(f"{prepared} was not prepared from {features} with these settings; delete it and rerun")
    del X, stored
    if query_shape[1] != shape[1]:
        raise AtlasError(
            f"{query_features} has {query_shape[1]} features per image, {features} "
            f"{shape[1]}; delete {query_features} and rerun"
        )
    if query_shape[0] <= block_rows:
        Q = transform(read_features(query_features, node)["features"])
    else:
        Q = np.empty((query_shape[0], n_out))
        for start, block in feature_blocks(query_features, node, block_rows):
            Q[start : start + len(block)] = transform(block)
    attrs = {
        "standardize": bool(standardize),
        "pca_components": pca_dimensions(shape, pca_components),
        "feature_dim": int(query_shape[1]),
        "n_images": len(Q),
        "features_file": str(query_features),
        "reference_features_file": str(features),
        "node": node,
    }
    write_input(query_prepared, Q, attrs)
    LOGGER.info("query prepared: %d x %d -> %d x %d", *query_shape, *Q.shape)
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
