import json

import h5py
import numpy as np
import pytest

import run_tsne as rt
from atlas_config import check_perplexity, min_images_for_perplexity
from workflow_utils import AtlasError


def blobs(n_per_class=30, dim=40, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, size=(n_classes, dim))
    X = np.concatenate([c + rng.normal(0, 1, size=(n_per_class, dim)) for c in centres]).astype(np.float32)
    return X, np.repeat(np.arange(n_classes), n_per_class)


@pytest.fixture
def features_file(tmp_path):
    X, labels = blobs()
    X[:, 5] = 0.0  # a constant dimension, as random-init ResNets have
    path = tmp_path / "features.h5"
    with h5py.File(path, "w") as h5:
        h5["features"] = X
        h5["labels"] = labels
        h5.create_dataset("classes", data=np.array(["a", "b", "c"], dtype=object), dtype=h5py.string_dtype())
        h5.create_dataset("paths", data=np.array([f"p/{i}.png" for i in range(len(X))], dtype=object),
                          dtype=h5py.string_dtype())
        h5.attrs.update({"model": "resnet18", "node": "flatten", "weights": "none", "weights_random": True,
                         "weights_source": "random", "precision": "fp32", "config_hash": "abc"})
    return path


def test_preprocess_standardises_without_nans_and_reduces_dimension():
    X, _ = blobs()
    X[:, 3] = 7.0
    Z = rt.preprocess(X, standardize=True, pca_components=0)
    assert np.isfinite(Z).all() and np.allclose(Z[:, 3], 0)
    assert np.allclose(np.delete(Z, 3, axis=1).std(axis=0), 1)
    assert rt.preprocess(X, standardize=False, pca_components=10).shape == (90, 10)
    # PCA wider than the data is clipped to what the data can hold.
    assert rt.preprocess(X[:20], standardize=False, pca_components=50).shape == (20, 20)
    assert rt.pca_dimensions((20, 40), 50) == 20 and rt.pca_dimensions((90, 40), 0) == 0


@pytest.mark.parametrize("implementation", ["opentsne", "sklearn"])
def test_embedding_is_reproducible_and_separates_blobs(implementation):
    X, labels = blobs()
    a, kl = rt.embed(X, perplexity=10, random_state=0, implementation=implementation)
    b, _ = rt.embed(X, perplexity=10, random_state=0, implementation=implementation)
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
    with pytest.raises(AtlasError, match=r"perplexity 30 needs at least 92 images .* has 40; use perplexities below 12.67"):
        check_perplexity(30, 40)
    with pytest.raises(AtlasError, match="perplexity 50 needs"):
        rt.embed(blobs()[0], perplexity=50, random_state=0)


def test_run_tsne_writes_table_and_provenance(features_file, tmp_path):
    meta = rt.run_tsne(str(features_file), str(tmp_path / "e.tsv"), str(tmp_path / "e.json"), 10.0, 2,
                       pca_components=20)
    paths, labels, coords = rt.read_embedding(tmp_path / "e.tsv")
    assert len(paths) == 90 and paths[0] == "p/0.png" and labels[0] == "a" and labels[-1] == "c"
    assert coords.shape == (90, 2)
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved == json.loads(json.dumps(meta))
    assert saved["perplexity"] == 10.0 and saved["seed"] == 2 and saved["pca_components"] == 20
    assert saved["weights_random"] is True and saved["classes"] == ["a", "b", "c"]
    assert saved["kl_divergence"] > 0 and saved["runtime_s"] >= 0
    # Coordinates are written at full precision: reading back gives the numbers computed.
    again, _ = rt.embed(rt.preprocess(h5py.File(features_file)["features"][:], True, 20, 2), 10.0, 2)
    np.testing.assert_array_equal(coords, again)


def test_truncated_features_file_is_rejected(features_file, tmp_path):
    data = features_file.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(AtlasError, match="not a complete features file"):
        rt.load_features(tmp_path / "cut.h5")


def test_unknown_implementation():
    with pytest.raises(AtlasError, match="tsne.implementation 'umap'"):
        rt.embed(blobs()[0], 5, 0, implementation="umap")


def test_incomplete_features_files_are_found_and_removed(features_file, tmp_path):
    from output_checks import features_file_problem, remove_if_incomplete

    assert features_file_problem(features_file) == "attributes are missing"  # this fixture lacks feature_dim
    with h5py.File(features_file, "a") as h5:
        h5.attrs["feature_dim"] = 40
    assert features_file_problem(features_file) is None
    assert remove_if_incomplete(features_file) is None and features_file.exists()
    data = features_file.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    assert features_file_problem(cut).startswith("not readable as HDF5")
    assert remove_if_incomplete(cut).startswith("not readable") and not cut.exists()
    with h5py.File(tmp_path / "partial.h5", "w") as h5:
        h5["features"] = np.zeros((3, 2))
    assert features_file_problem(tmp_path / "partial.h5") == "datasets ['labels', 'classes', 'paths'] are missing"
