"""The file formats of ``files/features.py``, ``files/feature_shards.py`` and ``files/manifest.py`` on real
HDF5 and CSV files written by their own writers from small synthetic arrays: no network, no Snakemake, so
each test takes milliseconds and the mutation run (docs/development.md) can afford them for every mutant.
What extraction writes into these files is tested in test_extract_features.py, test_predictions.py and
test_shards.py, with real networks."""

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from tsne_atlas.files.feature_shards import (
    SHARD_ATTR,
    Shard,
    check_shards,
    merge_shards,
    read_shard,
    shard_batches,
    shard_header,
    write_shard,
)
from tsne_atlas.files.features import (
    NO_PREDICTIONS_OLD_FILE,
    TOP_INDEX,
    TOP_PROBABILITY,
    features_file_problem,
    plain_value,
    read_features,
    read_predictions,
    remove_if_incomplete,
    write_features,
)
from tsne_atlas.files.manifest import (
    SampleLabels,
    read_images,
    read_manifest,
    sample_labels,
    write_images,
    write_manifest,
    write_skipped,
)
from tsne_atlas.jobs import AtlasError, file_sha256

N = 10
BATCH = 4  # batches of 4, 4 and 2 rows: the last one short
PATHS = [f"{'cat' if i % 2 else 'dog'}/{i:02d}-é.png" for i in range(N)]
NODES = {"penultimate": "avgpool", "layer3": "layer3.1.relu"}
DIMS = {"penultimate": 3, "layer3": 2}
CLASSES = ["ant", "bee", "cat", "dog", "eel", "fox"]
K = 5
ATTRS = {
    "feature_set": "net",
    "source": "torchvision",
    "model": "resnet18",
    "batch_size": BATCH,
    "channels_last": True,
    "precision": "fp32",
    "versions": {"torch": "2.5", "h5py": "3.12"},
    "preprocessing": ["resize", 224],
}


def rows(node: str) -> np.ndarray:
    """Distinct float32 rows for every image: row i of ``node`` is i + 0.25 * column (+ 100 for layer3)."""
    offset = 100.0 if node == "layer3" else 0.0
    return (np.arange(N)[:, None] + 0.25 * np.arange(DIMS[node])[None, :] + offset).astype("float32")


def top_rows() -> tuple[np.ndarray, np.ndarray]:
    index = (np.arange(N)[:, None] + np.arange(K)[None, :]) % len(CLASSES)
    probability = np.linspace(0.5, 0.01, K, dtype="float32")[None, :] / (1 + np.arange(N, dtype="float32"))[:, None]
    return index.astype("int32"), probability.astype("float32")


def batches(start: int = 0, stop: int = N, with_top: bool = False, size: int = BATCH):
    """Rows start..stop-1 in batches of ``size``, as extraction yields them."""
    index, probability = top_rows()
    for first in range(start, stop, size):
        part = slice(first, min(first + size, stop))
        batch = {node: rows(node)[part] for node in NODES}
        if with_top:
            batch.update({TOP_INDEX: index[part], TOP_PROBABILITY: probability[part]})
        yield batch


def write(path, with_top: bool = False, predictions: str = "none: random weights") -> dict:
    return write_features(
        path,
        batches(with_top=with_top),
        N,
        PATHS,
        ATTRS,
        NODES,
        CLASSES if with_top else None,
        predictions,
    )


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# --- files/features.py -------------------------------------------------------------------------------


def test_features_round_trip_every_node_row_path_and_attribute(tmp_path):
    path = tmp_path / "f.h5"
    assert write(path) == DIMS
    read = read_features(path, "penultimate")
    assert read["features"].dtype == "float32"
    np.testing.assert_array_equal(read["features"], rows("penultimate"))
    assert read["shape"] == (N, 3) and all(type(n) is int for n in read["shape"])
    assert read["paths"] == PATHS and all(type(p) is str for p in read["paths"])
    assert read["attrs"] == {
        **ATTRS,
        "preprocessing": '["resize", 224]',  # list-valued: JSON text, decoded only for the known JSON keys
        "nodes": ["penultimate", "layer3"],
        "predictions": "none: random weights",
        "feature_dims": DIMS,
        "node": "penultimate",
        "graph_node": "avgpool",
    }
    assert type(read["attrs"]["batch_size"]) is int and type(read["attrs"]["channels_last"]) is bool
    layer3 = read_features(path, "layer3", with_features=False)
    assert layer3["features"] is None and layer3["shape"] == (N, 2)
    assert (layer3["attrs"]["node"], layer3["attrs"]["graph_node"]) == ("layer3", "layer3.1.relu")
    np.testing.assert_array_equal(read_features(path, "layer3")["features"], rows("layer3"))
    with h5py.File(path, "r") as h5:
        # Attributes in the order written, JSON with sorted keys, feature_dims last (the completeness mark).
        assert list(h5.attrs) == [*ATTRS, "nodes", "predictions", "feature_dims"]
        assert h5.attrs["versions"] == '{"h5py": "3.12", "torch": "2.5"}'
        assert h5.attrs["feature_dims"] == '{"layer3": 2, "penultimate": 3}'
        assert list(h5["features"]) == ["penultimate", "layer3"]  # config order, not alphabetical
        assert "predictions" not in h5
        for name, dataset in (("paths", h5["paths"]), *((n, h5["features"][n]) for n in NODES)):
            assert h5py.h5o.get_info(dataset.id).ctime == 0, name  # no HDF5 times: byte-reproducible
        assert h5["features/penultimate"].chunks == (N, 3)
        assert h5py.check_string_dtype(h5["paths"].dtype).encoding == "utf-8"


def test_a_file_of_one_node_is_read_without_naming_it_and_big_files_chunk_by_256_rows(tmp_path):
    path = tmp_path / "one.h5"
    n = 300
    data = np.arange(n * 2, dtype="float32").reshape(n, 2)
    top = {TOP_INDEX: np.zeros((n, 2), "int32"), TOP_PROBABILITY: np.ones((n, 2), "float32")}
    parts = [
        {"x": data[:200], **{k: v[:200] for k, v in top.items()}},
        {"x": data[200:], **{k: v[200:] for k, v in top.items()}},
    ]
    write_features(path, parts, n, [f"{i}.png" for i in range(n)], {}, {"x": "fc"}, ["a", "b"])
    read = read_features(path)
    np.testing.assert_array_equal(read["features"], data)
    assert read["attrs"] == {
        "nodes": ["x"],
        "predictions": "stored",
        "feature_dims": {"x": 2},
        "node": "x",
        "graph_node": "fc",
    }
    with h5py.File(path, "r") as h5:
        assert h5["features/x"].chunks == (256, 2)
        assert h5["predictions/top_index"].chunks == h5["predictions/top_probability"].chunks == (256, 2)


def test_a_write_with_too_few_or_no_rows_leaves_nothing_and_says_how_many(tmp_path):
    path = tmp_path / "f.h5"
    with pytest.raises(RuntimeError) as error:
        write_features(path, batches(stop=N - 2), N, PATHS, ATTRS, NODES)
    assert str(error.value) == f"extracted {N - 2} feature rows for {N} images"
    with pytest.raises(RuntimeError) as error:
        write_features(path, [], N, PATHS, ATTRS, NODES)
    assert str(error.value) == f"extracted 0 feature rows for {N} images"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"^predictions 'stored' without classes$"):
        write_features(path, batches(), N, PATHS, ATTRS, NODES, None, "stored")
    assert list(tmp_path.iterdir()) == []


def test_predictions_round_trip_with_their_types_and_top1(tmp_path):
    path = tmp_path / "p.h5"
    write(path, with_top=True, predictions="ignored when classes are given")
    predictions, reason = read_predictions(path)
    assert reason == "stored"
    assert read_features(path, "layer3")["attrs"]["predictions"] == "stored"
    index, probability = top_rows()
    assert predictions.classes == CLASSES and all(type(c) is str for c in predictions.classes)
    assert predictions.top_index.dtype == "int32" and predictions.top_probability.dtype == "float32"
    np.testing.assert_array_equal(predictions.top_index, index)
    np.testing.assert_array_equal(predictions.top_probability, probability)
    names, best = predictions.top1()
    assert names == [CLASSES[i % len(CLASSES)] for i in range(N)]
    np.testing.assert_array_equal(best, probability[:, 0])
    with h5py.File(path, "r") as h5:
        assert list(h5["predictions"]) == ["classes", "top_index", "top_probability"]
        assert h5["predictions/top_index"].chunks == (N, K)
        assert h5["predictions/top_probability"].chunks == (N, K)
        for name in ("classes", "top_index", "top_probability"):
            assert h5py.h5o.get_info(h5["predictions"][name].id).ctime == 0, name
    write(tmp_path / "none.h5")
    assert read_predictions(tmp_path / "none.h5") == (None, "none: random weights")
    with h5py.File(tmp_path / "none.h5", "a") as h5:
        del h5.attrs["predictions"]  # as a file of a version before predictions has it
    assert read_predictions(tmp_path / "none.h5") == (None, NO_PREDICTIONS_OLD_FILE)


def test_readers_refuse_a_missing_node_or_an_incomplete_file_in_one_line_with_the_fix(tmp_path):
    path = tmp_path / "f.h5"
    write(path)
    fix = "delete it and rerun to extract features again"
    for node in (None, "logits"):
        with pytest.raises(AtlasError) as error:
            read_features(path, node)
        assert one_line(error) == f"{path} holds nodes ['penultimate', 'layer3'], not '{node}'; {fix}"
    with h5py.File(path, "a") as h5:
        del h5["paths"]
    with pytest.raises(AtlasError) as error:
        read_features(path, "layer3")
    assert re.fullmatch(rf"{re.escape(str(path))}: not a complete features file \(.*\); {fix}", one_line(error))
    (tmp_path / "text.h5").write_text("not hdf5")
    for reader in (read_features, read_predictions):
        with pytest.raises(AtlasError) as error:
            reader(tmp_path / "text.h5")
        assert one_line(error).startswith(f"{tmp_path / 'text.h5'}: not a complete features file (")
        assert one_line(error).endswith(f"); {fix}")
    stored = tmp_path / "p.h5"
    write(stored, with_top=True)
    with h5py.File(stored, "a") as h5:
        del h5["predictions/top_probability"]
    with pytest.raises(AtlasError) as error:
        read_predictions(stored)
    assert re.fullmatch(rf"{re.escape(str(stored))}: not a complete features file \(.*\); {fix}", one_line(error))


def test_text_of_hdf5_strings_is_str_whether_h5py_gives_bytes_or_str():
    """h5py 3 reads variable-length strings as bytes, ``.asstr()`` and other versions as str: both read alike."""
    from tsne_atlas.files import feature_shards, features

    for text in (features._text, feature_shards._text):
        assert text("é/x.png") == "é/x.png" and text("é/x.png".encode()) == "é/x.png"


def test_plain_values_are_python_values():
    assert plain_value(np.int64(3)) == 3 and type(plain_value(np.int64(3))) is int
    assert type(plain_value(np.float32(0.5))) is float and type(plain_value(np.bool_(True))) is bool
    assert plain_value(b"caf\xc3\xa9") == "café"
    assert plain_value("x") == "x" and plain_value([1]) == [1]


def test_features_file_problem_names_what_is_incomplete(tmp_path):
    path = tmp_path / "f.h5"
    assert features_file_problem(path) is None and remove_if_incomplete(path) is None  # absent
    write(path, with_top=True)
    assert features_file_problem(path) is None
    assert remove_if_incomplete(path) is None and path.exists()

    def problem(change) -> str:
        spoiled = tmp_path / "spoiled.h5"
        write(spoiled, with_top=True)
        with h5py.File(spoiled, "a") as h5:
            change(h5)
        return features_file_problem(spoiled)

    assert problem(lambda h5: h5.__delitem__("paths")) == "datasets ['paths'] are missing"
    assert problem(lambda h5: h5.__delitem__("features")) == "datasets ['features'] are missing"

    def flat_features(h5):
        del h5["features"]
        h5["features"] = np.zeros((N, 2))

    assert problem(flat_features) == "no node's features (a file of an older version?)"

    def no_nodes(h5):
        for node in NODES:
            del h5["features"][node]

    assert problem(no_nodes) == "no node's features (a file of an older version?)"
    for name in ("classes", "top_index", "top_probability"):
        assert (
            problem(lambda h5, name=name: h5["predictions"].__delitem__(name)) == f"predictions ['{name}'] are missing"
        )
    assert problem(lambda h5: h5.__delitem__("predictions")) == (
        "predictions ['classes', 'top_index', 'top_probability'] are missing"
    )

    def short(name):
        def change(h5):
            data = h5[name][:]
            del h5[name]
            h5[name] = data[:-1]

        return change

    assert problem(short("predictions/top_probability")) == (
        "datasets disagree on the number of images ({'paths': 10, 'features/penultimate': 10, "
        "'features/layer3': 10, 'predictions/top_index': 10, 'predictions/top_probability': 9})"
    )
    assert problem(short("predictions/top_index")).endswith(
        "'predictions/top_index': 9, 'predictions/top_probability': 10})"
    )
    assert problem(short("features/layer3")).startswith(
        "datasets disagree on the number of images ({'paths': 10, 'features/penultimate': 10, 'features/layer3': 9,"
    )
    assert problem(lambda h5: h5.attrs.__delitem__("feature_dims")) == "attributes are missing"
    # Without stored predictions their datasets are not looked for.
    plain = tmp_path / "plain.h5"
    write(plain)
    assert features_file_problem(plain) is None
    with h5py.File(plain, "a") as h5:
        h5["predictions/top_index"] = np.zeros((N - 1, K))
    assert features_file_problem(plain) is None
    # Cut short: the reason is one line of at most 100 characters of HDF5's error.
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    reason = features_file_problem(cut)
    assert reason.startswith("not readable as HDF5 (") and reason.endswith(")")
    with pytest.raises(OSError) as error:
        h5py.File(cut, "r")
    words = str(error.value).split()
    assert len(" ".join(words)) > 100  # HDF5's error is longer: its first 100 characters, spaces collapsed
    assert reason == f"not readable as HDF5 ({' '.join(words)[:100]})"
    assert remove_if_incomplete(cut) == reason and not cut.exists()
    spoiled = tmp_path / "spoiled.h5"
    assert remove_if_incomplete(spoiled) == "attributes are missing" and not spoiled.exists()


# --- files/feature_shards.py -------------------------------------------------------------------------


@pytest.fixture
def sample(tmp_path) -> Path:
    images = tmp_path / "images.csv"
    write_images(images, PATHS, [f"{i:064x}" for i in range(N)])
    return images


def shard_files(folder: Path, images: Path, cuts=((0, 4), (4, 8), (8, N)), with_top=False, change=None) -> list[str]:
    """One shard file per (start, stop), written as extraction's shard jobs write them; ``change(i, header,
    attrs, nodes)`` (i 1-based) may alter what shard i records."""
    files = []
    for position, (start, stop) in enumerate(cuts, start=1):
        header = shard_header(images, position, len(cuts), start, stop)
        attrs, nodes, paths = dict(ATTRS), dict(NODES), PATHS[start:stop]
        if change:
            paths = change(position, header, attrs, nodes) or paths
        path = folder / f"{position}-of-{len(cuts)}.h5"
        write_shard(
            path,
            batches(start, stop, with_top),
            paths,
            attrs,
            nodes,
            header,
            CLASSES if with_top else None,
            "none: random weights",
        )
        files.append(str(path))
    return files


def test_a_shard_header_names_its_place_and_the_sample_it_was_cut_from(sample):
    assert shard_header(sample, 2, 3, 4, 8) == {
        "index": 2,
        "count": 3,
        "start": 4,
        "stop": 8,
        "sample_sha256": file_sha256(sample),
    }


def test_a_shard_reads_back_its_header_attributes_nodes_classes_and_paths(tmp_path, sample):
    first, second, _ = shard_files(tmp_path, sample, with_top=True)
    shard = read_shard(second)
    assert shard.path == second
    assert shard.header == shard_header(sample, 2, 3, 4, 8)
    assert list(shard.attrs) == [*ATTRS, "nodes", "predictions", "feature_dims"]  # as written, shard left out
    assert shard.attrs["predictions"] == "stored" and shard.attrs["versions"] == '{"h5py": "3.12", "torch": "2.5"}'
    assert shard.graph_nodes == NODES and list(shard.graph_nodes) == list(NODES)
    assert shard.classes == CLASSES and shard.paths == PATHS[4:8]
    assert all(type(name) is str for name in shard.classes + shard.paths + list(shard.graph_nodes.values()))
    with h5py.File(first, "r") as h5:
        assert json.loads(h5.attrs[SHARD_ATTR]) == shard_header(sample, 1, 3, 0, 4)
    plain = read_shard(shard_files(tmp_path / "plain", sample)[0])
    assert plain.classes is None and plain.attrs["predictions"] == "none: random weights"


def test_read_shard_refuses_a_missing_incomplete_or_plain_features_file_in_one_line(tmp_path, sample):
    missing = tmp_path / "gone.h5"
    with pytest.raises(AtlasError) as error:
        read_shard(missing)
    assert one_line(error) == f"{missing}: not a complete shard (it does not exist); delete it and rerun"
    (shard,) = shard_files(tmp_path, sample, cuts=((0, N),))
    with h5py.File(shard, "a") as h5:
        del h5.attrs["feature_dims"]
    with pytest.raises(AtlasError) as error:
        read_shard(shard)
    assert one_line(error) == f"{shard}: not a complete shard (attributes are missing); delete it and rerun"
    write(tmp_path / "plain.h5")
    with pytest.raises(AtlasError) as error:
        read_shard(tmp_path / "plain.h5")
    assert one_line(error) == (
        f"{tmp_path / 'plain.h5'} is not an extraction shard (no 'shard' attribute); delete it and rerun"
    )


@pytest.mark.parametrize("with_top", [False, True], ids=["features", "predictions"])
def test_merged_shards_are_byte_identical_to_one_job_in_shard_order(tmp_path, sample, with_top):
    one_job = tmp_path / "one.h5"
    write_features(
        one_job,
        batches(with_top=with_top),
        N,
        PATHS,
        ATTRS,
        NODES,
        CLASSES if with_top else None,
        "none: random weights",
    )
    files = shard_files(tmp_path, sample, with_top=with_top)
    merged = tmp_path / "merged.h5"
    attrs = merge_shards(files, sample, merged)
    assert merged.read_bytes() == one_job.read_bytes()
    assert attrs == read_shard(files[0]).attrs
    read = read_features(merged, "layer3")
    np.testing.assert_array_equal(read["features"], rows("layer3"))
    assert read["paths"] == PATHS and SHARD_ATTR not in read["attrs"]
    # One shard of every row (1 of 1) merges into the same file as well.
    single = shard_files(tmp_path / "single", sample, cuts=((0, N),), with_top=with_top)
    merge_shards(single, sample, tmp_path / "single.h5")
    assert (tmp_path / "single.h5").read_bytes() == one_job.read_bytes()


def test_shard_batches_are_one_jobs_batches_of_each_shard_in_turn(tmp_path, sample):
    shards = [read_shard(path) for path in shard_files(tmp_path, sample, with_top=True)]
    got = list(shard_batches(shards, 3))
    # Shards of 4, 4 and 2 rows in batches of 3: 3+1, 3+1, 2; never across a shard's end.
    assert [len(batch["penultimate"]) for batch in got] == [3, 1, 3, 1, 2]
    index, probability = top_rows()
    for name, expected in (("penultimate", rows("penultimate")), ("layer3", rows("layer3"))):
        np.testing.assert_array_equal(np.concatenate([b[name] for b in got]), expected)
    np.testing.assert_array_equal(np.concatenate([b[TOP_INDEX] for b in got]), index)
    np.testing.assert_array_equal(np.concatenate([b[TOP_PROBABILITY] for b in got]), probability)
    plain = [read_shard(path) for path in shard_files(tmp_path / "plain", sample)]
    assert all(set(batch) == set(NODES) for batch in shard_batches(plain, BATCH))


def merge_refusal(files, sample, tmp_path) -> str:
    out = tmp_path / "merged.h5"
    with pytest.raises(AtlasError) as error:
        merge_shards(files, sample, out)
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))
    return one_line(error)


def test_the_merge_refuses_shards_out_of_place_in_one_line_naming_the_file(tmp_path, sample):
    files = shard_files(tmp_path, sample)
    assert merge_refusal([files[1], files[0], files[2]], sample, tmp_path) == (
        f"{files[1]} is shard 2 of 3, not 1 of 3; delete it and rerun"
    )
    assert merge_refusal(files[:2], sample, tmp_path) == f"{files[0]} is shard 1 of 3, not 1 of 2; delete it and rerun"
    with pytest.raises(ValueError, match="^no shards to merge$"):
        merge_shards([], sample, tmp_path / "merged.h5")

    def cuts(*bounds):
        return shard_files(tmp_path / f"cut{len(list(tmp_path.iterdir()))}", sample, cuts=bounds)

    assert merge_refusal(cuts((0, 4), (8, N)), sample, tmp_path).endswith(
        f"2-of-2.h5 starts at row 8: rows 4-7 of {sample} are in no shard; delete it and rerun"
    )
    assert merge_refusal(cuts((0, 8), (4, N)), sample, tmp_path).endswith(
        "2-of-2.h5 starts at row 4, inside the shard before it (up to row 7): rows 4-7 are in two shards; "
        "delete it and rerun"
    )
    assert merge_refusal(cuts((0, 6), (6, N)), sample, tmp_path).endswith(
        "2-of-2.h5 starts at row 6, not on a batch boundary of batch_size 4 (its batches are not one job's); "
        "delete it and rerun"
    )
    last = cuts((0, 4), (4, 8))
    assert merge_refusal(last, sample, tmp_path) == (
        f"rows 8-9 of {sample} are in no shard (the last, {last[1]}, ends at row 7); delete the shards and rerun"
    )
    # Three shards of batch_size 2 that end at row 7: the message names the last of them, not the second.
    folder = tmp_path / "three"
    three = shard_files(
        folder, sample, cuts=((0, 2), (2, 4), (4, 8)), change=lambda i, h, attrs, n: attrs.update(batch_size=2)
    )
    assert merge_refusal(three, sample, tmp_path) == (
        f"rows 8-9 of {sample} are in no shard (the last, {three[2]}, ends at row 7); delete the shards and rerun"
    )


def test_the_merge_refuses_shards_of_another_sample_or_setting_in_one_line_naming_the_file(tmp_path, sample):
    def spoiled(position, change):
        def alter(i, header, attrs, nodes):
            if i == position:
                return change(header, attrs, nodes)

        return shard_files(tmp_path / f"s{len(list(tmp_path.iterdir()))}", sample, change=alter)

    files = spoiled(3, lambda header, attrs, nodes: header.update(sample_sha256="0" * 64))
    assert merge_refusal(files, sample, tmp_path) == (
        f"{files[2]} was cut from another sample than {sample} (it changed since); delete it and rerun"
    )
    files = spoiled(2, lambda header, attrs, nodes: attrs.update(precision="bf16"))
    assert merge_refusal(files, sample, tmp_path) == (
        f"{files[1]} was extracted with precision 'bf16', {files[0]} with 'fp32': one features file needs one "
        f"setting; delete both and rerun"
    )
    files = spoiled(2, lambda header, attrs, nodes: attrs.update(device="cuda"))
    assert merge_refusal(files, sample, tmp_path) == (
        f"{files[1]} was extracted with device 'cuda', {files[0]} with None: one features file needs one "
        f"setting; delete both and rerun"
    )
    files = spoiled(1, lambda header, attrs, nodes: attrs.update(device="cuda"))
    assert merge_refusal(files, sample, tmp_path).startswith(
        f"{files[1]} was extracted with device None, {files[0]} with 'cuda'"
    )
    long = "x" * 100
    files = spoiled(2, lambda header, attrs, nodes: attrs.update(model=long))
    assert merge_refusal(files, sample, tmp_path) == (
        f"{files[1]} was extracted with model {repr(long)[:77]}..., {files[0]} with 'resnet18': one features "
        f"file needs one setting; delete both and rerun"
    )
    fits, too_long = "y" * 78, "z" * 79  # reprs of 80 characters (shown whole) and 81 (cut to 77 + "...")
    files = spoiled(2, lambda header, attrs, nodes: attrs.update(model=fits))
    assert f"with model {fits!r}, " in merge_refusal(files, sample, tmp_path)
    files = spoiled(2, lambda header, attrs, nodes: attrs.update(model=too_long))
    assert f"with model {repr(too_long)[:77]}..., " in merge_refusal(files, sample, tmp_path)
    files = spoiled(2, lambda header, attrs, nodes: nodes.update(penultimate="fc"))
    assert merge_refusal(files, sample, tmp_path) == (
        f"{files[1]} holds other nodes or class names than {files[0]}; delete both and rerun"
    )
    files = spoiled(2, lambda header, attrs, nodes: ["cat/other.png", *PATHS[5:8]])
    assert merge_refusal(files, sample, tmp_path) == (
        f"{files[1]}: row 4 is 'cat/other.png' but '{PATHS[4]}' in {sample}; delete it and rerun"
    )
    files = spoiled(2, lambda header, attrs, nodes: [*PATHS[4:7], "dog/other.png"])
    assert merge_refusal(files, sample, tmp_path) == (
        f"{files[1]}: row 7 is 'dog/other.png' but '{PATHS[7]}' in {sample}; delete it and rerun"
    )
    files = spoiled(3, lambda header, attrs, nodes: header.update(stop=N - 1))
    assert merge_refusal(files, sample, tmp_path) == (f"{files[2]} holds 2 rows, not rows 8-8; delete it and rerun")


def test_check_shards_compares_class_names_and_the_first_shards_batch_size(tmp_path, sample):
    files = shard_files(tmp_path, sample, with_top=True)
    shards = [read_shard(path) for path in files]
    sha = file_sha256(sample)
    check_shards(shards, PATHS, sample, sha)  # fits
    other = Shard(**{**vars(shards[1]), "classes": [*CLASSES[:-1], "yak"]})
    with pytest.raises(AtlasError) as error:
        check_shards([shards[0], other, shards[2]], PATHS, sample, sha)
    assert one_line(error) == f"{files[1]} holds other nodes or class names than {files[0]}; delete both and rerun"
    # The batch size is the first shard's: each shard's start must be a multiple of it.
    wide = [Shard(**{**vars(s), "attrs": {**s.attrs, "batch_size": 8}}) for s in shards]
    with pytest.raises(AtlasError) as error:
        check_shards(wide, PATHS, sample, sha)
    assert one_line(error).startswith(f"{files[1]} starts at row 4, not on a batch boundary of batch_size 8 ")


# --- files/manifest.py -------------------------------------------------------------------------------


def test_image_list_round_trips_in_its_exact_csv_and_refuses_a_foreign_header(tmp_path):
    path = tmp_path / "images.csv"
    write_images(path, ["b/x, y.png", 'a/"q".png'], ["1" * 64, "0" * 64])
    assert path.read_bytes() == (f'path,sha256\r\n"b/x, y.png",{"1" * 64}\r\n"a/""q"".png",{"0" * 64}\r\n'.encode())
    assert read_images(path) == (["b/x, y.png", 'a/"q".png'], ["1" * 64, "0" * 64])
    write_images(path, [], [])
    assert read_images(path) == ([], [])
    path.write_text("path,hash\r\na.png,00\r\n", encoding="utf-8")
    with pytest.raises(AtlasError) as error:
        read_images(path)
    assert one_line(error) == f"{path}: not a sample image list (header ['path', 'hash'], expected ['path', 'sha256'])"
    path.write_text("", encoding="utf-8")
    with pytest.raises(AtlasError) as error:
        read_images(path)
    assert one_line(error) == f"{path}: not a sample image list (header None, expected ['path', 'sha256'])"


@pytest.mark.parametrize("relative", ["/data/a.png", "../a.png", "a/../../b.png"])
def test_image_list_and_manifest_refuse_a_path_that_leaves_the_dataset_root(tmp_path, relative):
    images, manifest = tmp_path / "images.csv", tmp_path / "manifest.csv"
    write_images(images, ["ok.png", relative], ["0" * 64, "1" * 64])
    write_manifest(manifest, ["ok.png", relative], ["cat", "dog"])
    for reader, path in ((read_images, images), (read_manifest, manifest)):
        with pytest.raises(AtlasError) as error:
            reader(path)
        assert one_line(error) == (
            f"{path}: image path '{relative}' leaves the dataset root; manifest paths must be relative"
        )
    write_images(images, ["a..b/c..png", "..hidden.png"], ["0" * 64, "1" * 64])  # dots in names are fine
    assert read_images(images)[0] == ["a..b/c..png", "..hidden.png"]


def test_manifest_round_trips_labels_and_metadata_in_its_exact_csv(tmp_path):
    path = tmp_path / "manifest.csv"
    metadata = {"site": ["north, 2", "south"], "note": ['say "hi"', "two\nlines"]}
    write_manifest(path, ["a.png", "b.png"], ["cat", "dog"], metadata)
    assert path.read_bytes() == (
        b'path,label,site,note\r\na.png,cat,"north, 2","say ""hi"""\r\nb.png,dog,south,"two\nlines"\r\n'
    )
    read = read_manifest(path)
    assert (read.paths, read.labels, read.metadata) == (["a.png", "b.png"], ["cat", "dog"], metadata)
    assert list(read.metadata) == ["site", "note"]
    write_manifest(path, ["a.png"], ["cat"])
    assert path.read_bytes() == b"path,label\r\na.png,cat\r\n"
    assert read_manifest(path).metadata == {}
    path.write_text("label,path\r\ncat,a.png\r\n", encoding="utf-8")
    with pytest.raises(AtlasError) as error:
        read_manifest(path)
    assert one_line(error) == (
        f"{path}: not a sample manifest (header ['label', 'path'], expected ['path', 'label'] first)"
    )


def test_sample_labels_must_list_the_same_images_in_the_same_order(tmp_path):
    path = tmp_path / "manifest.csv"
    write_manifest(path, ["a.png", "b.png"], ["cat", "unlabelled"], {"site": ["n", "s"]})
    labels = sample_labels(path, ("a.png", "b.png"), "the features")
    assert labels == SampleLabels(["a.png", "b.png"], ["cat", "unlabelled"], {"site": ["n", "s"]})
    for paths, counts in ((["b.png", "a.png"], "2 vs 2"), (["a.png"], "2 vs 1")):
        with pytest.raises(AtlasError) as error:
            sample_labels(path, paths, "f.h5")
        assert one_line(error) == (
            f"{path} lists other images than f.h5 ({counts} rows); delete the results/sample folder and rerun"
        )


def test_sample_labels_say_whether_any_image_is_labelled_and_list_sorted_classes():
    labels = SampleLabels(["a", "b", "c"], ["zebra", "unlabelled", "ant"])
    assert labels.labelled and labels.classes == ["ant", "unlabelled", "zebra"]
    assert labels.indices().tolist() == [2, 1, 0]
    assert not SampleLabels(["a"], ["unlabelled"]).labelled and not SampleLabels([], []).labelled
    assert SampleLabels(["a"], ["x"]).metadata == {}


def test_skipped_files_are_listed_sorted_in_their_exact_csv(tmp_path):
    path = tmp_path / "skipped.csv"
    write_skipped(path, [("b.png", "cat", "not an image"), ("a.png", "dog", "truncated, 3 bytes")])
    assert path.read_bytes() == (b'path,label,reason\r\na.png,dog,"truncated, 3 bytes"\r\nb.png,cat,not an image\r\n')
    write_skipped(path, [])
    assert path.read_bytes() == b"path,label,reason\r\n"
