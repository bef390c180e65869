"""Placing new (query) points on an existing run's map without moving it (``MapMethod.place``,
docs/placement.md): every method places, deterministically, leaving the map as it is; each follows its
library's own transform; and what a placement is worth, measured against a joint map on held-apart
digits (the numbers docs/placement.md quotes; ``-s`` prints them)."""

import inspect

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from conftest import schema_defaults, schema_document
from tsne_atlas.files.map_inputs import write_affinities, write_neighbours
from tsne_atlas.jobs import AtlasError
from tsne_atlas.methods import MAP_METHODS
from tsne_atlas.methods import pacmap as pacmap_method
from tsne_atlas.methods import tsne as tsne_method
from tsne_atlas.methods import umap as umap_method
from tsne_atlas.preparation import (
    affinities_from_neighbours,
    nearest_neighbours,
    pca_dimensions,
    preprocess,
)

# Neighbours on the map compared between a placement and a joint map.
MAP_NEIGHBOURS = 10


def method_config() -> dict:
    """Every method's section at the schema's defaults (t-SNE's holds the seeds the others default to)."""
    sections = schema_document()["properties"]
    return {name: schema_defaults(name) if name in sections else {} for name in MAP_METHODS}


def first_run(name: str, config: dict, **settings) -> tuple[dict, dict]:
    """(settings, options) of a method's first run in the default sweep, with ``settings`` changed, as
    the map rule hands them to compute."""
    method = MAP_METHODS[name]
    run = {**method.settings(config)[0], **settings}
    return {axis.key: axis.type(run[axis.key]) for axis in method.axes}, method.run_options(config)


def shared_files(name: str, config: dict, settings: dict, X: np.ndarray, folder) -> dict:
    """The shared files a method's run reads (a graph, t-SNE's P), made as the workflow makes them."""
    method = MAP_METHODS[name]
    sweep_k = min(len(X) - 1, tsne_method.graph_neighbours_for(config["tsne"]["perplexities"]))
    shared = {}
    for input_name, (kind, value) in method.shared_inputs(config, settings, sweep_k).items():
        indices, distances = nearest_neighbours(X, max(sweep_k, int(value) if kind == "graph" else 0))
        path = folder / f"{name}-{input_name}-{len(X)}.npz"
        if kind == "graph":
            write_neighbours(path, indices, distances)
        else:
            write_affinities(path, affinities_from_neighbours(indices, distances, value))
        shared[input_name] = str(path)
    return shared


def query_neighbours(X: np.ndarray, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query point's k nearest rows of X, exact, ascending (int64, float64): what place is handed."""
    if k == 0:
        return np.empty((len(Q), 0), dtype=np.int64), np.empty((len(Q), 0))
    distances, indices = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(X).kneighbors(Q)
    return indices.astype(np.int64), distances


def read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float64)
    array.flags.writeable = False
    return array


def nearest_on_map(coords: np.ndarray, points: np.ndarray, k: int = 1) -> np.ndarray:
    return NearestNeighbors(n_neighbors=k).fit(coords).kneighbors(points)[1]


# ---------------------------------------------------------------- every method, on well-separated blobs


@pytest.fixture(scope="module")
def blobs():
    """Four well-separated Gaussian blobs in 10 dimensions, 60 points each; 10% held apart as the query."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 60)
    data = rng.normal(scale=8, size=(4, 10))[labels] + rng.normal(size=(240, 10))
    query = np.zeros(len(data), dtype=bool)
    query[rng.choice(len(data), 24, replace=False)] = True
    return data[~query], labels[~query], data[query], labels[query]


@pytest.fixture(scope="module")
def blob_maps(blobs, tmp_path_factory):
    """Each method's map of the blobs' reference, made by its compute as the map rule calls it."""
    X = blobs[0]
    folder, config, maps = tmp_path_factory.mktemp("blob-maps"), method_config(), {}
    for name, method in MAP_METHODS.items():
        settings, options = first_run(name, config)
        shared = shared_files(name, config, settings, X, folder)
        coords, _ = method.compute(X, dict(settings), dict(options), 1, shared)
        maps[name] = (read_only(coords), settings, options, shared)
    return config, maps


@pytest.mark.parametrize("name", list(MAP_METHODS))
def test_every_method_places_query_points_deterministically_without_moving_the_map(name, blobs, blob_maps):
    """Every declared method places (a method without ``place`` fails here): N_q x 2 finite float64 from
    the neighbours its place_neighbours declares, byte-identical twice in one process, the map unmoved,
    and each placed point nearest to a reference point of its own blob."""
    X, labels, Q, query_labels = blobs
    _config, maps = blob_maps
    coords, settings, options, shared = maps[name]
    method = MAP_METHODS[name]
    before = coords.tobytes()
    neighbours = query_neighbours(X, Q, method.place_neighbours(settings))
    first, record = method.place(X, coords, Q, neighbours, dict(settings), dict(options), 1, shared)
    second, _ = method.place(X, coords, Q, neighbours, dict(settings), dict(options), 1, shared)
    assert first.shape == (len(Q), 2) and first.dtype == np.float64 and np.isfinite(first).all()
    assert first.tobytes() == second.tobytes()
    assert coords.tobytes() == before
    assert isinstance(record, dict) and record["placement"]
    own_blob = labels[nearest_on_map(coords, first)[:, 0]] == query_labels
    assert own_blob.mean() >= 0.9, (name, own_blob.mean())


@pytest.mark.parametrize("name", [name for name in MAP_METHODS if name != "pca"])
def test_too_few_neighbours_for_a_methods_placement_is_one_line_naming_them(name, blobs, blob_maps):
    X, _, Q, _ = blobs
    _config, maps = blob_maps
    coords, settings, options, shared = maps[name]
    method = MAP_METHODS[name]
    neighbours = query_neighbours(X, Q, method.place_neighbours(settings) - 1)
    with pytest.raises(AtlasError, match=f"^{name}: the query's neighbours are 24 x .* placement needs .*; delete"):
        method.place(X, coords, Q, neighbours, settings, options, 1, shared)


@pytest.mark.parametrize("name", list(MAP_METHODS))
def test_a_map_or_query_that_does_not_fit_the_reference_is_refused_in_one_line(name, blobs, blob_maps):
    X, _, Q, _ = blobs
    _config, maps = blob_maps
    coords, settings, options, shared = maps[name]
    method = MAP_METHODS[name]
    neighbours = query_neighbours(X, Q, method.place_neighbours(settings))
    with pytest.raises(AtlasError, match=f"^{name}: the run's map holds {len(X) - 1} points but the prepared input"):
        method.place(X, coords[1:], Q, neighbours, settings, options, 1, shared)
    with pytest.raises(AtlasError, match=f"^{name}: the query's prepared input has 9 dimensions, the reference's 10"):
        method.place(X, coords, Q[:, 1:], neighbours, settings, options, 1, shared)


def test_pca_placement_refuses_a_map_its_refit_does_not_reproduce(blobs, blob_maps):
    """PCA refits the run's PCA on X and checks it is the run's map; a map of other data is refused."""
    X, _, Q, _ = blobs
    coords, settings, options, shared = blob_maps[1]["pca"]
    pca = MAP_METHODS["pca"]
    _, record = pca.place(X, coords, Q, query_neighbours(X, Q, 0), settings, options, 1, shared)
    assert record["refit_difference"] <= 1e-12
    # A query point that is a reference point lands on it.
    on_itself, _ = pca.place(X, coords, X[:5], query_neighbours(X, X[:5], 0), settings, options, 1, shared)
    np.testing.assert_allclose(on_itself, coords[:5], atol=1e-9 * np.abs(coords).max())
    with pytest.raises(AtlasError, match=r"^pca: refitting the run's PCA .* disagree; delete the run's map and rerun$"):
        pca.place(X, coords * 1.001, Q, query_neighbours(X, Q, 0), settings, options, 1, shared)


def test_pacmap_placement_refuses_coordinates_no_pacmap_map_holds(blobs, blob_maps):
    X, _, Q, _ = blobs
    _config, maps = blob_maps
    coords, settings, options, shared = maps["pacmap"]
    neighbours = query_neighbours(X, Q, MAP_METHODS["pacmap"].place_neighbours(settings))
    with pytest.raises(AtlasError, match="^pacmap: the run's map holds coordinates no float32 holds"):
        MAP_METHODS["pacmap"].place(X, coords + 1e-9, Q, neighbours, settings, options, 1, shared)


# ---------------------------------------------------------------- each library's own transform


def test_tsne_placement_is_opentsnes_transform_with_its_defaults(blobs, blob_maps):
    """openTSNE's own TSNEEmbedding.transform, on a map of X with X's affinities, gives the placement bit
    for bit from the neighbours its index finds, in the map's frame (transform centres its reference),
    with either gradient; the defaults PLACE_PERPLEXITY restates are openTSNE's."""
    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import PerplexityBasedNN

    defaults = inspect.signature(TSNEEmbedding.transform).parameters
    assert defaults["perplexity"].default == tsne_method.PLACE_PERPLEXITY
    assert defaults["initialization"].default == "median"
    assert defaults["k"].default >= tsne_method.PLACE_NEIGHBOURS  # median of the 15 neighbours to_new returns
    X, _, Q, _ = blobs
    coords = blob_maps[1]["tsne"][0]
    affinities = PerplexityBasedNN(X, perplexity=10, method="exact", random_state=0)
    indices, distances = affinities.knn_index.query(Q, tsne_method.PLACE_NEIGHBOURS)
    for gradient in ("bh", "fft"):
        reference = TSNEEmbedding(coords, affinities, negative_gradient_method=gradient, theta=0.8, random_state=0)
        theirs = np.asarray(reference.transform(Q))  # in the reference's frame, centred by transform
        centred = np.asarray(reference)
        shift = (coords.max(axis=0) + coords.min(axis=0)) / 2 - (centred.max(axis=0) + centred.min(axis=0)) / 2
        ours, _ = tsne_method.place_points(coords, indices, distances, 0, negative_gradient=gradient, bh_theta=0.8)
        np.testing.assert_array_equal(ours, theirs + shift)


@pytest.mark.parametrize(
    ("implementation", "negative_gradient", "expected"),
    [("opentsne", "fft", ("fft", 0.8)), ("opentsne", "auto", ("bh", 0.8)), ("sklearn", "fft", ("bh", 0.5))],
)
def test_tsne_placement_uses_the_gradient_the_run_used(implementation, negative_gradient, expected, blobs, blob_maps):
    """openTSNE runs place with their own gradient and theta; a scikit-learn map with Barnes-Hut at
    scikit-learn's angle, as its record says it was made."""
    X, _, Q, _ = blobs
    coords, settings, options, shared = blob_maps[1]["tsne"]
    options = {**options, "implementation": implementation, "negative_gradient": negative_gradient, "bh_theta": 0.8}
    neighbours = query_neighbours(X, Q, tsne_method.PLACE_NEIGHBOURS)
    placed, record = MAP_METHODS["tsne"].place(X, coords, Q, neighbours, settings, options, 1, shared)
    assert (record["negative_gradient"], record["bh_theta"]) == expected
    gradient, theta = expected
    alone, _ = tsne_method.place_points(coords, *neighbours, 0, negative_gradient=gradient, bh_theta=theta)
    np.testing.assert_array_equal(placed, alone)


def test_umap_placement_is_umap_learns_transform(blobs):
    """umap-learn's own UMAP.transform, of a model fitted on a precomputed k-NN as the map rule fits it and
    handed the query's neighbours through its search index's place, gives the placement bit for bit.
    (Each new point's random stream starts from its start position's bits, so distances rounded
    otherwise give another, equally valid, placement.)"""
    import umap

    X, _, Q, _ = blobs
    indices, distances = query_neighbours(X, Q, 15)
    graph = query_neighbours(X, X, 16)

    class GivenNeighbours:
        _angular_trees = False

        def query(self, query, k, epsilon):
            assert len(query) == len(Q)
            return indices[:, :k].copy(), distances[:, :k].copy()

    knn = (*umap_method.umap_knn(graph[0][:, 1:], graph[1][:, 1:], 15), GivenNeighbours())
    with pytest.warns(UserWarning, match="is not an NNDescent object"):
        model = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=0, n_jobs=1, precomputed_knn=knn).fit(X)
    theirs = model.transform(Q)
    ours, record = umap_method.place_points(read_only(model.embedding_), indices, distances, 15, 0.1)
    np.testing.assert_array_equal(ours, theirs)
    assert record == {
        "placement": "umap-learn transform",
        "place_neighbours": 15,
        "n_epochs": 100,
        "transform_seed": 42,
    }


def test_pacmap_placement_is_pacmaps_transform(blobs):
    """pacmap's own PaCMAP.transform (its faiss index of the reference finds the same neighbours here)
    gives the placement bit for bit; it needs no refit of the map."""
    import pacmap

    X, _, Q, _ = blobs
    model = pacmap.PaCMAP(n_components=2, n_neighbors=10, random_state=3)
    coords = read_only(model.fit_transform(np.asarray(X, dtype=np.float32), init="pca"))
    theirs = model.transform(np.asarray(Q, dtype=np.float32), basis=np.asarray(X, dtype=np.float32))
    indices, distances = query_neighbours(X, Q, 10)
    ours, pairs = pacmap_method.place_points(X, coords, Q, indices, distances, 10, 3, "pca")
    np.testing.assert_array_equal(ours, theirs)
    assert pairs == 10


# ---------------------------------------------------------------- honest placement: placed vs joint map


def prepared_digits():
    """sklearn's digits (8 x 8 images, 1,797): every 0 (a class the reference lacks) and 10% of the other
    digits (a fixed random draw) are the query. The reference is prepared as the workflow prepares it
    (``preparation.preprocess``, schema defaults) and the query with the reference's own z-scoring and
    PCA, so a joint map of both is a map of the same points in the same feature space."""
    digits = load_digits()
    features, labels = digits.data, digits.target
    rng = np.random.default_rng(0)
    known = np.flatnonzero(labels != 0)
    query = labels == 0
    query[rng.choice(known, len(known) // 10, replace=False)] = True
    prepare = schema_defaults("prepare")
    X = preprocess(features[~query], prepare["standardize"], prepare["pca_components"])
    scaler = StandardScaler().fit(features[~query])
    n_components = pca_dimensions(features[~query].shape, prepare["pca_components"])
    pca = PCA(n_components=n_components, svd_solver="covariance_eigh", random_state=0)
    pca.fit(scaler.transform(features[~query]))
    assert np.abs(pca.transform(scaler.transform(features[~query])) - X).max() <= 1e-9  # the same preparation
    Q = pca.transform(scaler.transform(features[query]))
    return X, labels[~query], Q, labels[query]


def agreement(coords, placed, joint, labels, query_labels):
    """Placed vs joint map for the query points of known classes (``new``: the new class's): the mean
    share of their MAP_NEIGHBOURS nearest reference points on the map the two maps share, and the share
    whose nearest reference point has their label, placed and joint; and for the new class, its median
    distance to the nearest reference point relative to the reference's own median nearest-neighbour
    distance on that map (about 1: among the reference; far above: an island of its own)."""
    n = len(coords)
    known = query_labels != 0
    placed_near = nearest_on_map(coords, placed[known], MAP_NEIGHBOURS)
    joint_near = nearest_on_map(joint[:n], joint[n:][known], MAP_NEIGHBOURS)
    overlap = np.mean([len(set(a) & set(b)) / MAP_NEIGHBOURS for a, b in zip(placed_near, joint_near)])

    def apart(reference, new):
        own = NearestNeighbors(n_neighbors=2).fit(reference).kneighbors(reference)[0][:, 1]
        return float(
            np.median(NearestNeighbors(n_neighbors=1).fit(reference).kneighbors(new)[0][:, 0]) / np.median(own)
        )

    return {
        "overlap": float(overlap),
        "label_placed": float(np.mean(labels[placed_near[:, 0]] == query_labels[known])),
        "label_joint": float(np.mean(labels[joint_near[:, 0]] == query_labels[known])),
        "new_apart_placed": apart(coords, placed[~known]),
        "new_apart_joint": apart(joint[:n], joint[n:][~known]),
    }


@pytest.fixture(scope="module")
def digits_measured(tmp_path_factory):
    X, labels, Q, query_labels = prepared_digits()
    folder, config, measured = tmp_path_factory.mktemp("digits"), method_config(), {}
    joint_input = np.vstack([X, Q])
    feature_label = np.mean(
        labels[query_neighbours(X, Q, 1)[0][:, 0]][query_labels != 0] == query_labels[query_labels != 0]
    )
    for name in ("tsne", "umap"):
        method = MAP_METHODS[name]
        settings, options = first_run(name, config, **({"perplexity": 30.0} if name == "tsne" else {}))
        shared = shared_files(name, config, settings, X, folder)
        coords, _ = method.compute(X, dict(settings), dict(options), 1, shared)
        neighbours = query_neighbours(X, Q, method.place_neighbours(settings))
        placed, _ = method.place(X, read_only(coords), Q, neighbours, dict(settings), dict(options), 1, shared)
        joint_shared = shared_files(name, config, settings, joint_input, folder)
        joint, _ = method.compute(joint_input, dict(settings), dict(options), 1, joint_shared)
        measured[name] = agreement(coords, placed, joint, labels, query_labels)
        measured[name]["settings"] = settings
    print(f"\ndigits: {len(X)} reference, {len(Q)} query ({np.sum(query_labels == 0)} of the new class 0)")
    print(f"features: nearest reference image of the query's label {feature_label:.3f}")
    for name, numbers in measured.items():
        print(name, {key: round(value, 3) if isinstance(value, float) else value for key, value in numbers.items()})
    return len(X), measured


@pytest.mark.parametrize("name", ["tsne", "umap"])
def test_placed_query_images_keep_most_of_a_joint_maps_neighbours_and_labels(name, digits_measured):
    """Held-apart digits of known classes: placed on the reference's map, most of their 10 nearest
    reference points on the map are those a joint map of reference and query gives them (chance: 10 of
    1,458, under 1%), and their nearest reference point has their label about as often as in the joint map."""
    n_reference, measured = digits_measured
    numbers = measured[name]
    chance = MAP_NEIGHBOURS / n_reference
    assert numbers["overlap"] >= 0.45 > 50 * chance, numbers
    assert numbers["label_placed"] >= 0.88, numbers
    assert numbers["label_placed"] >= numbers["label_joint"] - 0.05, numbers


@pytest.mark.parametrize("name", ["tsne", "umap"])
def test_a_class_the_reference_lacks_is_squeezed_among_known_ones_where_a_joint_map_gives_it_an_island(
    name, digits_measured
):
    """The 0s, absent from the reference: placed, they land beside reference points (within a few of the
    reference's own nearest-neighbour distances), while a joint map sets them apart as an island of their
    own: what docs/placement.md warns of."""
    numbers = digits_measured[1][name]
    assert numbers["new_apart_placed"] <= 5, numbers
    assert numbers["new_apart_joint"] >= 4 * numbers["new_apart_placed"] + 5, numbers
