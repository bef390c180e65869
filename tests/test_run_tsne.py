import inspect
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import schema_defaults
from tsne_atlas import preparation as ti
from tsne_atlas.files import map_inputs as shared
from tsne_atlas.files.features import features_file_problem, read_features, remove_if_incomplete, write_features
from tsne_atlas.files.runs import read_embedding, write_run
from tsne_atlas.jobs import AtlasError
from tsne_atlas.maps import run_map
from tsne_atlas.methods import tsne as rt
from tsne_atlas.methods.tsne import check_perplexity, graph_neighbours_for, min_images_for_perplexity

# What a t-SNE run takes from the tsne section, at the schema's defaults.
TSNE = schema_defaults("tsne", "implementation", "init", "negative_gradient", "bh_theta")


def blobs(n_per_class=30, dim=40, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, size=(n_classes, dim))
    X = np.concatenate([c + rng.normal(0, 1, size=(n_per_class, dim)) for c in centres]).astype(np.float32)
    return X, np.repeat(np.arange(n_classes), n_per_class)


@pytest.fixture
def features_file(tmp_path):
    X, _ = blobs()
    X[:, 5] = 0.0  # a constant dimension, as random-init ResNets have
    path = tmp_path / "blobs.h5"
    attrs = {
        "feature_set": "blobs",
        "source": "torchvision",
        "model": "resnet18",
        "weights": "none",
        "weights_random": True,
        "weights_source": "random",
        "precision": "fp32",
        "config_hash": "abc",
    }
    paths = [f"p/{i}.png" for i in range(len(X))]
    write_features(path, [{"penultimate": X}], len(X), paths, attrs, {"penultimate": "flatten"})
    return path


def test_preprocess_standardises_without_nans_and_reduces_dimension():
    X, _ = blobs()
    X[:, 3] = 7.0
    Z = ti.preprocess(X, standardize=True, pca_components=0)
    assert np.isfinite(Z).all() and np.allclose(Z[:, 3], 0)
    assert np.allclose(np.delete(Z, 3, axis=1).std(axis=0), 1)
    assert ti.preprocess(X, standardize=False, pca_components=10).shape == (90, 10)
    # PCA wider than the data is clipped to what the data can hold.
    assert ti.preprocess(X[:20], standardize=False, pca_components=50).shape == (20, 20)
    assert ti.pca_dimensions((20, 40), 50) == 20 and ti.pca_dimensions((90, 40), 0) == 0


@pytest.mark.parametrize("standardize", [True, False])
def test_prepare_input_writes_x_and_how_it_was_made(features_file, tmp_path, caplog, standardize):
    caplog.set_level("INFO", logger="tsne_atlas.preparation")
    attrs = ti.prepare_input(
        str(features_file), "penultimate", standardize, pca_components=20, prepared=str(tmp_path / "input.h5")
    )
    features = read_features(features_file)["features"]
    X, saved = shared.read_input(tmp_path / "input.h5")
    np.testing.assert_array_equal(X, ti.preprocess(features, standardize, 20))
    assert (
        saved
        == attrs
        == {
            "standardize": standardize,
            "pca_components": 20,
            "feature_dim": features.shape[1],
            "n_images": len(features),
            "features_file": str(features_file),
            "node": "penultimate",
        }
    )
    assert caplog.messages == [f"prepared input: {len(features)} x {features.shape[1]} -> {len(features)} x 20"]
    # No creation time in the file: the same input gives the same bytes on a rerun.
    with h5py.File(tmp_path / "input.h5") as h5:
        assert h5py.h5o.get_info(h5["X"].id).ctime == 0
    ti.prepare_input(
        str(features_file), "penultimate", standardize, pca_components=20, prepared=str(tmp_path / "again.h5")
    )
    assert (tmp_path / "again.h5").read_bytes() == (tmp_path / "input.h5").read_bytes()


def test_pca_that_would_keep_every_dimension_is_skipped():
    """pca_components at or above the feature width keeps X as it is (no rotation); below it, PCA runs."""
    X, _ = blobs()  # 90 x 40, float32
    for width in (40, 50):
        assert ti.pca_dimensions(X.shape, width) == 0
        np.testing.assert_array_equal(ti.preprocess(X, standardize=False, pca_components=width), X.astype(np.float64))
    assert ti.pca_dimensions(X.shape, 39) == 39 and ti.preprocess(X, False, 39).shape == (90, 39)
    # float64 whatever comes in: what tsne/input.h5 stores and openTSNE computes with.
    assert ti.preprocess(X, standardize=False, pca_components=0).dtype == np.float64


def test_preprocess_leaves_the_callers_features_alone():
    X = blobs()[0].astype(np.float64)
    before = X.copy()
    Z = ti.preprocess(X, standardize=True, pca_components=0)
    np.testing.assert_array_equal(X, before)
    assert not np.shares_memory(X, Z)


def test_pca_is_exact_with_the_solver_the_shape_calls_for(monkeypatch):
    """Covariance eigendecomposition when images >= dimensions (memory D^2), else a full SVD; never randomised."""
    from sklearn.decomposition import PCA

    solvers = []

    def spy(*args, **kwargs):
        solvers.append(kwargs["svd_solver"])
        return PCA(*args, **kwargs)

    monkeypatch.setattr(ti, "PCA", spy)
    X, _ = blobs(dim=40)
    for n_images, expected in ((90, "covariance_eigh"), (40, "covariance_eigh"), (39, "full")):
        Z = ti.preprocess(X[:n_images], standardize=False, pca_components=10)
        assert solvers[-1] == expected and Z.shape == (n_images, 10)
        np.testing.assert_allclose(
            np.abs(Z), np.abs(PCA(10, svd_solver="full").fit_transform(X[:n_images].astype(np.float64))), atol=1e-8
        )


def test_neighbors_for_is_3_x_perplexity_but_at_most_n_minus_1():
    assert ti.neighbours_for(10, 100) == 30 and ti.neighbours_for(7.5, 100) == 22
    assert ti.neighbours_for(10, 20) == 19 and ti.neighbours_for(10, 31) == 30


def test_nearest_neighbours_of_a_tiny_set_are_all_the_other_points():
    X, _ = blobs(n_per_class=3)  # 9 points, fewer than k
    indices, distances = ti.nearest_neighbours(X.astype(np.float64), k=30)
    assert indices.shape == distances.shape == (9, 8)
    assert all(sorted(row) == [j for j in range(9) if j != i] for i, row in enumerate(indices.tolist()))


def test_approximate_neighbours_are_the_same_on_every_run():
    """From 1,000 points openTSNE uses Annoy, which is random: the fixed seed keeps the graph a function of the data."""
    X = blobs(n_per_class=400)[0].astype(np.float64)
    first, _ = ti.nearest_neighbours(X, k=30)
    again, _ = ti.nearest_neighbours(X, k=30)
    np.testing.assert_array_equal(first, again)


def test_the_approximate_graph_is_built_on_one_thread_whatever_the_rules_threads(monkeypatch):
    """Annoy's index differs with the number of threads that build it (mutation testing found 1,666 of
    36,000 neighbours differing at 1,200 points with 1 vs 2), so tsne.threads or --cores would change the
    graph: the search runs on one thread, and the rule asks for no more."""
    from openTSNE import nearest_neighbors

    asked = []
    real = nearest_neighbors.Annoy.__init__
    monkeypatch.setattr(
        nearest_neighbors.Annoy,
        "__init__",
        lambda self, *a, **kw: (asked.append(kw["n_jobs"]), real(self, *a, **kw))[1],
    )
    X = blobs(n_per_class=400)[0].astype(np.float64)  # 1,200 points: Annoy
    ti.nearest_neighbours(X, k=30)
    assert asked == [1]
    rule = Path(ti.__file__).parents[2].joinpath("rules", "embeddings.smk").read_text().split("rule knn_graph:")[1]
    assert "threads:" not in rule.split("\nrule ")[0]


def test_shared_file_stages_pass_threads_on_and_log_what_they_made(sweep_inputs, tmp_path, monkeypatch, caplog):
    """The rule's threads reach the affinity calibration (the neighbour search runs on one thread, see
    below); the job log says the sizes."""
    calls = []
    for name in ("symmetric_affinities",):
        real = getattr(ti, name)

        def spy(*args, real=real, name=name, **kwargs):
            bound = inspect.signature(real).bind(*args, **kwargs)
            bound.apply_defaults()
            calls.append((name, bound.arguments["n_jobs"]))
            return real(*args, **kwargs)

        monkeypatch.setattr(ti, name, spy)
    caplog.set_level("INFO", logger="tsne_atlas.preparation")
    ti.knn_graph(str(tmp_path / "input.h5"), k=20, graph=str(tmp_path / "k-20.npz"))
    ti.tsne_affinities(str(tmp_path / "k-20.npz"), 5.0, affinities=str(tmp_path / "p5.npz"), threads=2)
    assert calls == [("symmetric_affinities", 2)]
    indices, _ = shared.read_neighbours(tmp_path / "k-20.npz")
    assert indices.shape == (90, 20)
    assert caplog.messages == [
        "k-NN graph: 90 points x 20 neighbours",
        f"affinities for perplexity 5: {shared.read_affinities(tmp_path / 'p5.npz').nnz} non-zeros",
    ]


@pytest.mark.parametrize("implementation", ["opentsne", "sklearn"])
def test_embedding_is_reproducible_and_separates_blobs(implementation):
    X, labels = blobs()
    a, kl = rt.embed(X, perplexity=10, random_state=0, implementation=implementation, init="pca")
    b, _ = rt.embed(X, perplexity=10, random_state=0, implementation=implementation, init="pca")
    assert a.shape == (90, 2) and np.isfinite(kl) and kl > 0
    np.testing.assert_array_equal(a, b)
    centroids = np.array([a[labels == k].mean(axis=0) for k in range(3)])
    spread = max(np.linalg.norm(a[labels == k] - centroids[k], axis=1).mean() for k in range(3))
    gaps = min(np.linalg.norm(centroids[i] - centroids[j]) for i in range(3) for j in range(i + 1, 3))
    assert gaps > 2 * spread


def test_seed_changes_a_random_init_embedding():
    X, _ = blobs()
    a, _ = rt.embed(X, 10, random_state=0, init="random")
    b, _ = rt.embed(X, 10, random_state=1, init="random")
    assert not np.allclose(a, b)


def test_perplexity_too_large_for_the_sample_says_why():
    assert min_images_for_perplexity(30) == 92
    check_perplexity(30, 92)
    with pytest.raises(
        AtlasError, match=r"perplexity 30 needs at least 92 images .* has 40; use perplexities below 12.67"
    ):
        check_perplexity(30, 40)
    with pytest.raises(AtlasError, match="perplexity 50 needs"):
        rt.embed(blobs()[0], perplexity=50, random_state=0, init="pca")


@pytest.fixture
def sweep_inputs(features_file, tmp_path):
    """The shared files of a sweep with perplexities up to 10: input, k-NN graph (k=30), P at 10."""
    ti.prepare_input(
        str(features_file), "penultimate", standardize=True, pca_components=20, prepared=str(tmp_path / "input.h5")
    )
    ti.knn_graph(str(tmp_path / "input.h5"), k=30, graph=str(tmp_path / "k-30.npz"))
    ti.tsne_affinities(str(tmp_path / "k-30.npz"), 10.0, affinities=str(tmp_path / "p10.npz"), threads=1)
    return tmp_path


def run_tsne(
    features, features_id, node, prepared, perplexity, seed, *, embedding, meta, threads, affinities=None, **options
):
    """One t-SNE run as the map rule runs it (``maps.run_map``), with the section's options as keywords."""
    settings = {"perplexity": perplexity, "seed": seed}
    return run_map(
        features, prepared, embedding, meta, "tsne", features_id, node, settings, options, threads, affinities
    )


def test_run_tsne_writes_table_and_provenance(features_file, sweep_inputs, tmp_path):
    meta = run_tsne(
        str(features_file),
        "blobs",
        "penultimate",
        str(tmp_path / "input.h5"),
        10.0,
        2,
        **TSNE,
        embedding=str(tmp_path / "e.tsv"),
        meta=str(tmp_path / "e.json"),
        affinities=str(tmp_path / "p10.npz"),
        threads=1,
    )
    paths, coords = read_embedding(tmp_path / "e.tsv")
    assert len(paths) == 90 and paths[0] == "p/0.png" and paths[-1] == "p/89.png"
    # No labels in a run: relabelling reruns no t-SNE.
    assert (tmp_path / "e.tsv").read_text().splitlines()[0] == "path\tx\ty"
    assert coords.shape == (90, 2)
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved == json.loads(json.dumps(meta))
    assert saved["perplexity"] == 10.0 and saved["seed"] == 2 and saved["pca_components"] == 20
    assert saved["precomputed_affinities"] is True and saved["feature_dim"] == 40
    assert saved["negative_gradient"] == "bh"
    assert saved["weights_random"] is True and "classes" not in saved
    assert saved["features"] == "blobs" and saved["feature_set"] == "blobs" and saved["node"] == "penultimate"
    assert saved["graph_node"] == "flatten" and saved["model"] == "resnet18"
    assert saved["kl_divergence"] > 0 and saved["runtime_s"] >= 0
    # Coordinates are written at full precision, and sharing the input and P changes nothing:
    # a self-contained run (its own PCA, neighbours and P) gives the same numbers, bit for bit.
    again, _ = rt.embed(ti.preprocess(read_features(features_file)["features"], True, 20), 10.0, 2, init="pca")
    np.testing.assert_array_equal(coords, again)


def opentsne_directly(X, P, perplexity, seed, theta, method):
    """openTSNE itself, called as its documentation shows, on the same input and affinities."""
    from openTSNE import TSNE
    from openTSNE.affinity import PrecomputedAffinities

    tsne = TSNE(
        perplexity=perplexity,
        initialization="pca",
        random_state=seed,
        n_jobs=1,
        negative_gradient_method=method,
        theta=theta,
        verbose=False,
    )
    return np.asarray(tsne.fit(X, affinities=PrecomputedAffinities(P, normalize=False)))


@pytest.mark.slow
def test_bh_theta_and_the_gradient_method_change_the_embedding(features_file, sweep_inputs, tmp_path):
    """tsne.bh_theta and tsne.negative_gradient, as run_tsne (what the rule calls) gets them, reach
    openTSNE: each setting gives openTSNE's own result for it, and the settings give different results."""
    X, _ = shared.read_input(tmp_path / "input.h5")
    coords = {}
    for name, gradient, theta in (("bh-0.5", "bh", 0.5), ("bh-0.8", "bh", 0.8), ("fft", "fft", 0.8)):
        meta = run_tsne(
            str(features_file),
            "blobs",
            "penultimate",
            str(tmp_path / "input.h5"),
            10.0,
            0,
            **{**TSNE, "negative_gradient": gradient, "bh_theta": theta},
            embedding=str(tmp_path / f"{name}.tsv"),
            meta=str(tmp_path / f"{name}.json"),
            threads=1,
            affinities=str(tmp_path / "p10.npz"),
        )
        assert meta["negative_gradient"] == gradient
        coords[name] = read_embedding(tmp_path / f"{name}.tsv")[1]
        assert np.isfinite(coords[name]).all() and coords[name].shape == (90, 2)
    for name, theta in (("bh-0.5", 0.5), ("bh-0.8", 0.8)):
        expected = opentsne_directly(X, shared.read_affinities(tmp_path / "p10.npz"), 10.0, 0, theta, "bh")
        np.testing.assert_array_equal(coords[name], expected)
    # Theta changes the Barnes-Hut embedding; the FFT gradient is really used (it is not Barnes-Hut's).
    assert np.abs(coords["bh-0.5"] - coords["bh-0.8"]).max() > 1e-3
    assert (
        np.abs(coords["fft"] - coords["bh-0.8"]).max() > 1e-3 and np.abs(coords["fft"] - coords["bh-0.5"]).max() > 1e-3
    )
    # The FFT embedding still separates the three blobs.
    labels = np.repeat(np.arange(3), 30)
    centroids = np.array([coords["fft"][labels == k].mean(axis=0) for k in range(3)])
    spread = max(np.linalg.norm(coords["fft"][labels == k] - centroids[k], axis=1).mean() for k in range(3))
    assert min(np.linalg.norm(centroids[i] - centroids[j]) for i in range(3) for j in range(i + 1, 3)) > 2 * spread


def test_sklearn_runs_from_the_shared_input_alone(features_file, sweep_inputs, tmp_path):
    meta = run_tsne(
        str(features_file),
        "blobs",
        "penultimate",
        str(tmp_path / "input.h5"),
        10.0,
        0,
        **{**TSNE, "implementation": "sklearn"},
        embedding=str(tmp_path / "s.tsv"),
        meta=str(tmp_path / "s.json"),
        threads=1,
    )
    assert meta["implementation"] == "sklearn" and meta["precomputed_affinities"] is False
    # scikit-learn's own Barnes-Hut angle (its TSNE's default), not tsne.bh_theta, which is openTSNE's.
    assert (meta["negative_gradient"], meta["bh_theta"]) == ("bh", 0.5)
    X, _ = shared.read_input(tmp_path / "input.h5")
    np.testing.assert_array_equal(read_embedding(tmp_path / "s.tsv")[1], rt.embed(X, 10.0, 0, "sklearn", init="pca")[0])


@pytest.mark.parametrize("n_per_class", [30, 400])  # exact neighbours below 1,000 points, Annoy above
def test_affinities_from_the_largest_graph_match_a_fresh_computation(n_per_class):
    """P for a small perplexity from the graph built at the largest equals openTSNE's own P."""
    from openTSNE.affinity import PerplexityBasedNN

    X, _ = blobs(n_per_class=n_per_class)
    indices, distances = ti.nearest_neighbours(X.astype(np.float64), k=75)
    for perplexity in (5, 12, 25):
        shared = ti.affinities_from_neighbours(indices, distances, perplexity)
        fresh = PerplexityBasedNN(X.astype(np.float64), perplexity=perplexity, random_state=0).P
        assert abs(shared.sum() - 1) < 1e-9
        # Annoy's approximate search may rank a far neighbour differently: compare as matrices.
        assert abs(shared - fresh).sum() < (1e-9 if len(X) < 1000 else 0.02), perplexity


def test_a_shared_affinity_matrix_is_not_changed_by_a_run():
    """openTSNE's optimiser must not alter the P a run is given: runs from one file stay reproducible."""
    X, _ = blobs()
    indices, distances = ti.nearest_neighbours(X.astype(np.float64), k=30)
    P = ti.affinities_from_neighbours(indices, distances, 10)
    before = P.copy()
    a, _ = rt.embed(X, 10, 0, init="pca", affinities=P)
    assert abs(P - before).sum() == 0
    b, _ = rt.embed(X, 10, 0, init="pca", affinities=P)
    np.testing.assert_array_equal(a, b)


def test_a_graph_too_small_for_the_perplexity_names_the_file_and_the_fix(sweep_inputs, tmp_path):

    assert graph_neighbours_for([5, 10]) == 30 and graph_neighbours_for([7.5]) == 22
    ti.knn_graph(str(tmp_path / "input.h5"), k=15, graph=str(tmp_path / "k-15.npz"))
    with pytest.raises(
        AtlasError,
        match=r"k-15.npz: perplexity 10 needs 30 neighbours but the graph has 15; "
        r"delete it and rerun",
    ):
        ti.tsne_affinities(str(tmp_path / "k-15.npz"), 10.0, affinities=str(tmp_path / "p.npz"), threads=1)
    assert not (tmp_path / "p.npz").exists()


def test_truncated_shared_files_are_rejected(sweep_inputs, tmp_path):
    for name, loader, what in [
        ("input.h5", shared.read_input, "not a complete prepared input file"),
        ("k-30.npz", shared.read_neighbours, "not a complete neighbour graph"),
        ("p10.npz", shared.read_affinities, "not a complete affinity matrix"),
    ]:
        data = (tmp_path / name).read_bytes()
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(AtlasError) as err:
            loader(cut)
        # One line naming the file and the fix.
        message = str(err.value)
        assert message.startswith(f"{cut}: {what} (") and "\n" not in message, message
        assert message.endswith("); delete it and rerun"), message


def test_the_graph_is_the_one_opentsne_would_build_without_importing_pynndescent():
    """openTSNE's own choice (get_knn_index "auto"), made without its pynndescent import: with umap-learn
    installed that import alone compiles ~15 s of numba code in every graph job."""
    import subprocess
    import sys

    from openTSNE.affinity import get_knn_index

    for n_per_class in (100, 400):  # 300 points: exact; 1,200: Annoy
        X = blobs(n_per_class=n_per_class)[0].astype(np.float64)
        expected = get_knn_index(X, "auto", 30, "euclidean", n_jobs=1, random_state=0).build()
        for ours, theirs in zip(ti.nearest_neighbours(X, 30), expected):
            np.testing.assert_array_equal(ours, theirs)
    code = (
        "import sys, numpy as np, tsne_atlas.preparation as p; "
        "p.nearest_neighbours(np.random.default_rng(0).normal(size=(1200, 10)), 30); print('pynndescent' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(Path(ti.__file__).parents[1])
    )
    assert out.stdout.strip() == "False"


def test_tsne_modules_do_not_import_torch():
    import subprocess
    import sys

    code = "import sys, tsne_atlas.maps, tsne_atlas.preparation, tsne_atlas.metrics; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(Path(ti.__file__).parents[1]),
    )
    assert out.stdout.strip() == "False"


def test_truncated_features_file_is_rejected(features_file, tmp_path):
    data = features_file.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(AtlasError, match="not a complete features file"):
        read_features(tmp_path / "cut.h5")


def test_incomplete_features_files_are_found_and_removed(features_file, tmp_path):
    assert features_file_problem(features_file) is None
    with h5py.File(features_file, "a") as h5:
        dims = h5.attrs["feature_dims"]
        del h5.attrs["feature_dims"]  # written last: a file without it was cut short
    assert features_file_problem(features_file) == "attributes are missing"
    with h5py.File(features_file, "a") as h5:
        h5.attrs["feature_dims"] = dims
    assert features_file_problem(features_file) is None
    assert remove_if_incomplete(features_file) is None and features_file.exists()
    data = features_file.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    assert features_file_problem(cut).startswith("not readable as HDF5")
    assert remove_if_incomplete(cut).startswith("not readable") and not cut.exists()
    with h5py.File(tmp_path / "partial.h5", "w") as h5:
        h5["features/penultimate"] = np.zeros((3, 2))
    assert features_file_problem(tmp_path / "partial.h5") == "datasets ['paths'] are missing"
    # A file of the layout before feature sets (one /features matrix) is rebuilt, not misread.
    with h5py.File(tmp_path / "old.h5", "w") as h5:
        for name in ("features", "labels", "classes", "paths"):
            h5[name] = np.zeros((3, 2)) if name == "features" else np.zeros(3)
        h5.attrs["feature_dim"] = 2
    assert features_file_problem(tmp_path / "old.h5") == "no node's features (a file of an older version?)"
    # Every dataset present, but the rows disagree (one image fewer in 'paths' than in 'features').
    with h5py.File(features_file, "a") as h5:
        paths = h5["paths"][:]
        del h5["paths"]
        h5.create_dataset("paths", data=paths[:-1], dtype=h5py.string_dtype())
    assert features_file_problem(features_file) == (
        "datasets disagree on the number of images ({'paths': 89, 'features/penultimate': 90})"
    )
    assert remove_if_incomplete(features_file).startswith("datasets disagree") and not features_file.exists()


def test_gradient_method_auto_switches_to_fft_for_large_runs():
    assert rt.gradient_method("auto", 10_000) == "bh"
    assert rt.gradient_method("auto", rt.BH_MAX_POINTS) == "fft"
    assert rt.gradient_method("fft", 100) == "fft" and rt.gradient_method("bh", 10**6) == "bh"


def test_run_file_stems_round_trip_with_their_types_and_a_wrong_stem_names_the_expected_form():
    """run_params, parse_params and run_name (files/runs.py), here so that mutation testing reaches them
    (test_maps.py, which uses them too, is outside its test selection)."""
    from tsne_atlas.files.runs import parse_params, run_name, run_params

    assert run_params("tsne", {"perplexity": 7.5, "seed": 2, "other": 1}) == "perplexity-7.5_seed-2"
    assert run_params("umap", {"n_neighbors": 15.0, "min_dist": 0.1, "seed": 0}) == "n_neighbors-15_min_dist-0.1_seed-0"
    assert run_params("pca", {"components": 2}) == "components-2"
    tsne = parse_params("tsne", "perplexity-30_seed-12")
    assert tsne == {"perplexity": 30.0, "seed": 12}
    assert [type(v) for v in tsne.values()] == [float, int]
    umap = parse_params("umap", "n_neighbors-15_min_dist-0.25_seed-3")
    assert umap == {"n_neighbors": 15.0, "min_dist": 0.25, "seed": 3}
    assert [type(v) for v in umap.values()] == [int, float, int]
    pca = parse_params("pca", "components-2")
    assert pca == {"components": 2} and type(pca["components"]) is int
    for method, stem in (("tsne", "perplexity-30_seed-1x"), ("tsne", "xperplexity-30_seed-1"), ("pca", "seed-0")):
        with pytest.raises(AtlasError) as error:
            parse_params(method, stem)
        name = {"tsne": "t-SNE", "pca": "PCA"}[method]
        expected = {"tsne": "perplexity-1_seed-1", "pca": "components-1"}[method]
        assert str(error.value) == f"'{stem}' is not a {name} run's name (expected {expected})"
    meta = {"features": "resnet18.b", "method": "umap", "n_neighbors": 5, "min_dist": 0.5, "seed": 7}
    assert run_name(meta) == "resnet18.b/umap/n_neighbors-5_min_dist-0.5_seed-7"
    assert run_name({"features": "f", "method": "pca", "components": 2}) == "f/pca/components-2"


def test_run_labels_long_and_short_with_and_without_a_seed():
    """run_label (files/runs.py), the menu and panel texts of figures and the explorer."""
    from tsne_atlas.files.runs import run_label

    tsne = {"features": "f", "method": "tsne", "perplexity": 30, "seed": 2}
    pca = {"features": "f", "method": "pca", "components": 2}
    assert run_label(tsne) == "t-SNE perplexity 30, seed 2"
    assert run_label(tsne, short=True) == "t-SNE p=30 s=2"
    assert run_label(pca) == "PCA" and run_label(pca, short=True) == "PCA"
    umap = {"features": "f", "method": "umap", "n_neighbors": 15, "min_dist": 0.1, "seed": 0}
    assert run_label(umap) == "UMAP n_neighbors 15, min_dist 0.1, seed 0"


def test_run_keys_sort_keys_provenance_and_a_read_run_with_metadata(tmp_path):
    """The rest of files/runs.py's small functions, exactly: a feature set id is its own wildcard value, PCA
    has no seed and sorts as seed -1, short UMAP settings, the provenance keys, and read_run joins the
    manifest's metadata columns."""
    from tsne_atlas.files.manifest import write_manifest
    from tsne_atlas.files.runs import (
        input_provenance,
        read_run,
        run_seed,
        run_sort_key,
        settings_text,
        wildcard_value,
        write_run,
    )

    assert wildcard_value("resnet18.layer4") == "resnet18.layer4" and wildcard_value(0.5) == "0.5"
    pca = {"features": "f", "method": "pca", "components": 2}
    assert run_seed(pca) is None and run_seed({"seed": "3"}) == 3
    assert run_sort_key(pca) == ("f", 2, (2.0,), -1)
    assert settings_text(pca) == "" and settings_text(pca, short=True) == ""
    umap = {"features": "f", "method": "umap", "n_neighbors": 15, "min_dist": 0.1, "seed": 0}
    assert settings_text(umap, short=True) == "k=15 d=0.1"
    assert settings_text(umap) == "n_neighbors 15, min_dist 0.1"
    provenance = input_provenance(
        "f.h5", {"shape": (3, 8), "attrs": {"model": "m"}}, {"standardize": 1, "pca_components": 0}, 3
    )
    assert list(provenance)[:5] == ["standardize", "pca_components", "n_images", "feature_dim", "features_file"]
    assert provenance["standardize"] is True and provenance["model"] == "m" and provenance["weights"] is None
    assert [provenance[key] for key in ("pca_components", "n_images", "feature_dim", "features_file")] == [
        0,
        3,
        8,
        "f.h5",
    ]
    write_run(tmp_path / "r.tsv", tmp_path / "r.json", ["a.png", "b.png"], np.zeros((2, 2)), pca)
    write_manifest(tmp_path / "manifest.csv", ["a.png", "b.png"], ["x", "y"], {"site": ["s1", "s2"]})
    record = read_run(tmp_path / "r.tsv", tmp_path / "r.json", tmp_path / "manifest.csv")
    assert (tmp_path / "r.json").read_text(encoding="utf-8") == (
        '{\n  "components": 2,\n  "features": "f",\n  "method": "pca"\n}\n'
    )
    assert record.labels == ["x", "y"] and record.metadata == {"site": ["s1", "s2"]} and record.meta == pca


def test_embedding_tables_keep_odd_paths_and_an_empty_or_foreign_file_is_one_line(tmp_path):
    """read_embedding (files/runs.py): a path holding a carriage return or a tab reads back as it is, a
    run of no images is a 0 x 2 matrix, an empty or foreign file is one line naming it."""
    paths = ["a\rb.png", "c\td.png"]
    write_run(tmp_path / "r.tsv", tmp_path / "r.json", paths, np.array([[0.1, 2.0], [3.0, -4.5]]), {})
    read_paths, coords = read_embedding(tmp_path / "r.tsv")
    assert read_paths == paths and coords.tolist() == [[0.1, 2.0], [3.0, -4.5]]
    write_run(tmp_path / "e.tsv", tmp_path / "e.json", [], np.zeros((0, 2)), {})
    assert read_embedding(tmp_path / "e.tsv")[1].shape == (0, 2)
    for text, header in (("", None), ("path,x,y\n", ["path,x,y"])):
        (tmp_path / "bad.tsv").write_text(text, encoding="utf-8")
        with pytest.raises(AtlasError) as error:
            read_embedding(tmp_path / "bad.tsv")
        assert (
            str(error.value) == f"{tmp_path / 'bad.tsv'}: not an embedding table (header {header}); delete it and rerun"
        )


@pytest.mark.parametrize("n_per_class", [30, 400])  # exact neighbours below 1,000 points, Annoy above
def test_affinities_are_opentsnes_joint_probabilities_bit_for_bit(n_per_class, tmp_path):
    """symmetric_affinities frees the graph and openTSNE's intermediates as it goes (so 1,000,000 images
    fit): its P is openTSNE's joint_probabilities_nn's, array for array, byte for byte, also through the
    stage, which reads only the perplexity's first 3 x perplexity columns of a wider graph."""
    from openTSNE.affinity import joint_probabilities_nn

    X, _ = blobs(n_per_class=n_per_class)
    indices, distances = ti.nearest_neighbours(X.astype(np.float64), k=75)
    shared.write_neighbours(tmp_path / "k-75.npz", indices, distances)
    for perplexity in (5, 12.5, 25):
        k = ti.neighbours_for(perplexity, len(X))
        expected = joint_probabilities_nn(
            np.ascontiguousarray(indices[:, :k]), np.ascontiguousarray(distances[:, :k]), [perplexity], symmetrize=True
        ).tocsr()
        ti.tsne_affinities(str(tmp_path / "k-75.npz"), perplexity, str(tmp_path / "p.npz"), threads=1)
        for P in (
            ti.affinities_from_neighbours(indices, distances, perplexity),
            shared.read_affinities(tmp_path / "p.npz"),
        ):
            for name in ("data", "indices", "indptr"):
                got, want = getattr(P, name), getattr(expected, name)
                assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (perplexity, name)
            assert P.shape == expected.shape
    # The graph's first columns, read a few rows at a time, are the whole graph's.
    with np.load(tmp_path / "k-75.npz") as npz:
        whole = npz["indices"], npz["distances"]
    for columns in (0, 1, 30, 75):
        for read_bytes in (1, 1000, 10**9):
            with zipfile.ZipFile(tmp_path / "k-75.npz") as archive:
                for name, array in zip(("indices", "distances"), whole):
                    part = shared.first_columns(archive, f"{name}.npy", columns, read_bytes)
                    assert (
                        part.dtype == array.dtype
                        and part.tobytes() == np.ascontiguousarray(array[:, :columns]).tobytes()
                    )
    with pytest.raises(
        AtlasError, match=r"k-75\.npz: not a complete neighbour graph \(indices.npy holds 75 columns, not 76\)"
    ):
        shared.read_neighbours(tmp_path / "k-75.npz", columns=76)
