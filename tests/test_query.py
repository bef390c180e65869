"""The query set before placement: sampled whole with the reference's rules (labels through its label map,
unusable files listed, a file of the reference sample refused in one line), prepared with the
reference's own fitted z-scoring and PCA, its nearest reference images found exactly; and planned (its
size, its extraction shards, an empty query set refused)."""

import logging
import shutil

import numpy as np
import pytest

from conftest import TINY, make_image_folder, sample_and_label
from test_plan import SET_DEFAULTS, validated
from tsne_atlas.files.features import write_features
from tsne_atlas.files.manifest import read_images, read_manifest
from tsne_atlas.files.map_inputs import read_input, read_neighbours, write_input
from tsne_atlas.jobs import AtlasError
from tsne_atlas.plan import load_plan
from tsne_atlas.preparation import fit_preparation, nearest_reference, prepare_query, preprocess, query_neighbours
from tsne_atlas.sampling import label_query, sample_query

pytestmark = pytest.mark.unit


COLLECTION = {"layout": "folders", "extensions": [".png"], "label_column": "", "missing_label": "fail", "split": None}


def query_settings(root, tmp_path, reference, **changes):
    """sample_query's arguments as the rule gives them, and the query's images.csv and manifest.csv."""
    settings = {
        **COLLECTION,
        "query_root": str(root),
        "on_bad_image": "skip",
        "reference_images": str(reference / "images.csv"),
        "root": str(reference / "images"),
        "images": str(tmp_path / "q-images.csv"),
        "skipped": str(tmp_path / "q-skipped.csv"),
    }
    return {**settings, **changes}


def sample_and_label_query(settings: dict, label_map=None, tmp_path=None):
    """sample_query, then label_query as the rules run them; returns label_query's SampleLabels."""
    sample_query(**settings)
    labelling = {key: settings[key] for key in (*COLLECTION, "query_root", "images")}
    if settings.get("query_manifest"):
        labelling["query_manifest"] = settings["query_manifest"]
    manifest = str(tmp_path / "q-manifest.csv")
    return label_query(**labelling, label_map=label_map or {}, manifest=manifest)


@pytest.fixture
def reference(tmp_path):
    """A sampled and labelled reference of ant and bee images in tmp_path/ref."""
    folder = tmp_path / "ref"
    make_image_folder(folder / "images", {"ant": 3, "bee": 3})
    sample_and_label(folder / "images", folder)
    return folder


def test_a_query_folder_is_sampled_whole_and_labelled_through_the_label_map(reference, tmp_path, caplog):
    root = make_image_folder(tmp_path / "query", {"ant": 2, "wasp": 2, "insect": 1})
    (root / "ant" / "broken.png").write_bytes(b"not an image")
    caplog.set_level(logging.INFO)
    labels = sample_and_label_query(query_settings(root, tmp_path, reference), {"insect": "bee"}, tmp_path)
    paths, hashes = read_images(tmp_path / "q-images.csv")
    assert paths == [
        "ant/ant_000.png",
        "ant/ant_001.png",
        "insect/insect_000.png",
        "wasp/wasp_000.png",
        "wasp/wasp_001.png",
    ]
    assert len(set(hashes)) == 5 and all(len(h) == 64 for h in hashes)
    assert read_manifest(tmp_path / "q-manifest.csv").labels == ["ant", "ant", "bee", "wasp", "wasp"] == labels.labels
    assert "ant/broken.png" in (tmp_path / "q-skipped.csv").read_text()
    assert "query set: 5 images" in caplog.text


def test_a_query_image_that_is_a_reference_image_is_refused_in_one_line(reference, tmp_path):
    # The reference's own folder as the query: every image is a sampled reference file.
    with pytest.raises(AtlasError) as err:
        sample_query(**query_settings(reference / "images", tmp_path, reference))
    message = str(err.value)
    assert "query image 'ant/ant_000.png' is the reference sample's 'ant/ant_000.png'" in message
    assert "6 such image(s)" in message and "query.layout: split" in message and "\n" not in message
    assert not (tmp_path / "q-images.csv").exists()
    # A copy of the same images in another folder is another set of files: placed (leaks.csv finds the copies).
    shutil.copytree(reference / "images", tmp_path / "copy")
    assert len(sample_query(**query_settings(tmp_path / "copy", tmp_path, reference))) == 6


def test_a_query_of_only_unusable_files_is_refused(reference, tmp_path):
    (tmp_path / "bad" / "x").mkdir(parents=True)
    (tmp_path / "bad" / "x" / "a.png").write_bytes(b"")
    with pytest.raises(AtlasError, match=r"query.folder '.*bad': none of its 1 image\(s\) is usable"):
        sample_query(**query_settings(tmp_path / "bad", tmp_path, reference))


def features_file(path, X, paths):
    write_features(path, [{"penultimate": X.astype(np.float32)}], len(X), paths, {}, {"penultimate": "flatten"})
    return str(path)


def test_the_query_is_prepared_with_the_reference_fit_and_its_nearest_reference_images_are_exact(tmp_path):
    rng = np.random.default_rng(0)
    R, Q = rng.normal(size=(60, 12)) * np.arange(1, 13), rng.normal(size=(7, 12)) * np.arange(1, 13) + 0.5
    reference = features_file(tmp_path / "r.h5", R, [f"r{i}.png" for i in range(60)])
    query = features_file(tmp_path / "q.h5", Q, [f"q{i}.png" for i in range(7)])
    prepared = tmp_path / "input.h5"
    X = preprocess(R.astype(np.float32), True, 5)
    write_input(prepared, X, {})
    out = {"query_prepared": str(tmp_path / "qi.h5")}
    prepare_query(reference, query, str(prepared), "penultimate", True, 5, **out)
    Y, attrs = read_input(out["query_prepared"])
    # The reference's scaler and PCA, not the query's own: the same as transforming it beside the reference.
    _, transform = fit_preparation(R.astype(np.float32), True, 5)
    assert Y.shape == (7, 5) and np.array_equal(Y, transform(Q.astype(np.float32))) and attrs["n_images"] == 7
    assert not np.allclose(Y, preprocess(Q.astype(np.float32), True, 5))
    query_neighbours(str(prepared), out["query_prepared"], 8, str(tmp_path / "qn.npz"))
    indices, distances = read_neighbours(tmp_path / "qn.npz")
    exact = np.linalg.norm(Y[:, None] - X[None], axis=-1)
    assert indices.shape == (7, 8) and np.array_equal(indices, np.argsort(exact, axis=1, kind="stable")[:, :8])
    assert np.allclose(distances, np.sort(exact, axis=1)[:, :8]) and np.all(np.diff(distances, axis=1) >= 0)
    # A prepared input made otherwise (other settings, another sample) is refused, not silently mixed.
    write_input(prepared, preprocess(R.astype(np.float32), True, 4), {})
    with pytest.raises(AtlasError, match=r"input.h5 was not prepared from .*r.h5 with these settings; delete it"):
        prepare_query(reference, query, str(prepared), "penultimate", True, 5, **out)


def test_nearest_reference_works_in_chunks_and_caps_k_at_the_reference_size():
    rng = np.random.default_rng(1)
    X, Q = rng.normal(size=(30, 4)), rng.normal(size=(25, 4))
    whole = nearest_reference(X, Q, 5)
    assert all(np.array_equal(a, b) for a, b in zip(whole, nearest_reference(X, Q, 5, chunk=4)))
    assert nearest_reference(X, Q, 99)[0].shape == (25, 30)


def test_the_plan_counts_the_query_set_shards_its_extraction_and_refuses_an_empty_one(tmp_path):
    root = make_image_folder(tmp_path / "query", {"ant": 5})
    config = validated(
        TINY, query={"layout": "flat", "folder": str(root), "manifest": ""}, extraction={"shards": 2, "batch_size": 2}
    )
    plan = load_plan(config, SET_DEFAULTS)
    assert plan.dataset.n_query == 5 and plan.query and set(plan.query_shards.values()) == {2}
    assert "query/placement/<feature set>/placement.csv" in plan.summary()
    (tmp_path / "empty").mkdir()
    with pytest.raises(AtlasError, match=r"query.folder '.*empty' holds no images with extensions"):
        load_plan(validated(config, query={"layout": "flat", "folder": str(tmp_path / "empty")}), SET_DEFAULTS)
    with pytest.raises(AtlasError, match="query.layout is 'split' but dataset.layout is 'folders'"):
        load_plan(validated(config, query={"layout": "split"}), SET_DEFAULTS)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,split\nant/ant_000.png,test\nant/ant_001.png,train\n")
    split = {"dataset": {"root": str(root), "layout": "manifest", "manifest": str(manifest)}}
    with pytest.raises(AtlasError, match=r"^query.folder is set but query.layout is 'split', whose images are rows"):
        load_plan(validated(config, **split, query={"layout": "split"}), SET_DEFAULTS)
    with pytest.raises(AtlasError, match=r"query.folder 'nowhere' is not a folder"):
        load_plan(validated(config, query={"layout": "folders", "folder": "nowhere"}), SET_DEFAULTS)
    none = load_plan(validated(config, query={"layout": "none"}), SET_DEFAULTS)
    assert not none.query and none.query_shards == {} and "query/" not in none.summary()


def test_a_query_manifest_is_read_like_the_datasets_and_its_mistakes_name_the_query_keys(reference, tmp_path):
    root = make_image_folder(tmp_path / "query", {"ant": 2})
    manifest = tmp_path / "q.csv"
    # Excel's "CSV UTF-8": a byte-order mark, CRLF line ends; metadata kept, the label column chosen.
    manifest.write_bytes("\ufeffpath,kind,week\r\nant/ant_000.png,ant,48\r\nant/ant_001.png,wasp,49\r\n".encode())
    settings = query_settings(root, tmp_path, reference, layout="manifest", query_manifest=str(manifest))
    labels = sample_and_label_query({**settings, "label_column": "kind"}, tmp_path=tmp_path)
    assert labels.labels == ["ant", "wasp"] and labels.metadata == {"week": ["48", "49"]}
    with pytest.raises(AtlasError, match=r"^query.label_column 'species' is not a column of .*q.csv"):
        sample_query(**{**settings, "label_column": "species"})
    manifest.write_text("path,kind\n../outside.png,ant\n")
    with pytest.raises(AtlasError, match=r"q.csv: line 2: '../outside.png' leaves query.folder with '..'"):
        sample_query(**{**settings, "label_column": "kind"})


def test_labelling_a_query_image_the_query_set_no_longer_has_is_one_line(reference, tmp_path):
    root = make_image_folder(tmp_path / "query", {"ant": 2})
    settings = query_settings(root, tmp_path, reference)
    sample_query(**settings)
    (root / "ant" / "ant_001.png").unlink()
    labelling = {key: settings[key] for key in (*COLLECTION, "query_root", "images")}
    with pytest.raises(AtlasError) as err:
        label_query(**labelling, label_map={}, manifest=str(tmp_path / "q-manifest.csv"))
    assert str(err.value).endswith(
        "q-images.csv lists 'ant/ant_001.png', which the query set no longer has; delete the "
        "results/query/sample folder and rerun"
    )
