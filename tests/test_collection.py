"""The three input layouts (class folders, a CSV/TSV manifest, a flat folder) and every bad manifest,
each refused in one line that names the file, the line and the fix."""

import pytest

from conftest import make_image_folder, sample_and_label
from tsne_atlas import config as atlas_config
from tsne_atlas.collection import count_images, flat_collection, manifest_digest, read_dataset_manifest
from tsne_atlas.files.manifest import UNLABELLED, read_manifest
from tsne_atlas.jobs import AtlasError


@pytest.fixture
def dataset(tmp_path):
    """Six images in class folders, and a manifest over five of them with a label and two metadata columns."""
    root = make_image_folder(tmp_path / "images", {"ant": 3, "bee": 3})
    return root


def read_manifest_file(manifest, root, label_column="label", missing_label="fail", **options):
    """read_dataset_manifest with the schema's defaults (the function itself has none: two sections set them)."""
    return read_dataset_manifest(manifest, root, label_column, missing_label, **options)


def write(path, text: str, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


GOOD = (
    "path,species,source,note\n"
    "ant/ant_000.png,formica,field,plain\n"
    'ant/ant_001.png,formica,lab,"comma, and ""quotes"""\n'
    "bee/bee_000.png,apis,field,<b>bold</b>\n"
    "./bee/bee_001.png,apis,lab,\n"
    "bee/bee_002.png,apis,field,last\n"
)


def test_a_manifest_gives_paths_labels_and_metadata(dataset, tmp_path):
    manifest = write(tmp_path / "m.csv", GOOD)
    collection = read_manifest_file(manifest, dataset, label_column="species")
    assert collection.paths == sorted(collection.paths) and "bee/bee_001.png" in collection.paths  # ./ dropped
    assert collection.groups == ["formica", "formica", "apis", "apis", "apis"]
    assert collection.metadata["note"][1] == 'comma, and "quotes"' and collection.metadata["source"][0] == "field"
    # Through both sampling stages: metadata kept as text, HTML included, the label map applied.
    rows = sample_and_label(
        dataset,
        tmp_path,
        label_map={"apis": "honey bee"},
        layout="manifest",
        dataset_manifest=str(manifest),
        label_column="species",
    )
    assert [label for _, label in rows] == ["formica", "formica", "honey bee", "honey bee", "honey bee"]
    labels = read_manifest(tmp_path / "manifest.csv")
    assert list(labels.metadata) == ["source", "note"] and labels.metadata["note"][2] == "<b>bold</b>"
    # A TSV reads the same.
    tsv = write(tmp_path / "m.tsv", GOOD.replace(",", "\t").replace('"comma\t and ""quotes"""', "x"))
    assert read_manifest_file(tsv, dataset, label_column="species").groups == collection.groups


def test_absolute_paths_under_the_root_are_made_relative(dataset, tmp_path):
    manifest = write(tmp_path / "m.csv", f"path\n{dataset / 'ant' / 'ant_000.png'}\nbee/bee_000.png\n")
    collection = read_manifest_file(manifest, dataset)
    assert collection.paths == ["ant/ant_000.png", "bee/bee_000.png"]
    assert collection.groups == [UNLABELLED, UNLABELLED]  # no label column: unlabelled


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("file,label\na.png,x\n", "no 'path' column (columns: file, label); name the column of image paths 'path'"),
        ("", "the file is empty; give a header line with a 'path' column and one row per image"),
        ("path,label\n", "lists no images (only a header, or every row left out); add one row per image"),
        ("path\nant/ant_000.png\nant/ant_000.png\n", "line 3 lists 'ant/ant_000.png' again (first on line 2)"),
        ("path\nant/nope.png\n", "line 2: 'ant/nope.png' does not exist under dataset.root"),
        ("path\n../outside.png\n", "line 2: '../outside.png' leaves dataset.root with '..'"),
        ("path\nant/../../outside.png\n", "line 2: 'ant/../../outside.png' leaves dataset.root with '..'"),
        ("path\n/etc/passwd\n", "line 2: '/etc/passwd' is outside dataset.root"),
        ("path,label\nant/ant_000.png,\n", "line 2: 'ant/ant_000.png' has an empty 'label'; fill it in"),
        ("path,label,x\nant/ant_000.png,a,1\n", "column 'x' is named like one the workflow writes"),
        ("path,label,path\nant/ant_000.png,a,b\n", "column 'path' appears twice in the header line"),
        ("path,label\nant/ant_000.png,a,extra\n", "line 2 has 3 fields but the header has 2"),
        ("path,\nant/ant_000.png,x\n", "a column has no name in the header line; name every column"),
        ("path,label\n,a\n", "line 2: the path is empty; give each row the image's path relative to dataset.root"),
    ],
)
def test_bad_manifests_are_one_line_errors_naming_file_line_and_fix(dataset, tmp_path, text, expected):
    manifest = write(tmp_path / "m.csv", text)
    with pytest.raises(AtlasError) as err:
        read_manifest_file(manifest, dataset)
    message = str(err.value)
    assert expected in message and str(manifest) in message and "\n" not in message


def test_a_byte_order_mark_is_read_past_and_other_encodings_are_refused_with_the_fix(dataset, tmp_path):
    # Excel's "CSV UTF-8" starts the file with a byte-order mark: the same manifest as without it.
    plain = read_manifest_file(write(tmp_path / "plain.csv", GOOD), dataset, label_column="species")
    bom = read_manifest_file(write(tmp_path / "bom.csv", "\ufeff" + GOOD), dataset, label_column="species")
    assert bom == plain and "path" not in bom.metadata and len(bom.paths) == 5
    latin = write(tmp_path / "latin.csv", "path,label\nant/ant_000.png,caf\u00e9\n", encoding="latin-1")
    with pytest.raises(AtlasError, match=r"latin.csv: line 2 is not UTF-8 text \(byte 0xe9\); save the file as UTF-8"):
        read_manifest_file(latin, dataset)
    with pytest.raises(AtlasError, match="must end in .csv or .tsv"):
        read_manifest_file(write(tmp_path / "m.txt", "path\n"), dataset)
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(
        AtlasError, match=r"dataset.manifest '.*folder.csv' cannot be read \(Is a directory\); fix the path"
    ):
        read_manifest_file(tmp_path / "folder.csv", dataset)


def test_missing_labels_fail_or_are_skipped_and_listed(dataset, tmp_path):
    manifest = write(tmp_path / "m.csv", "path,label\nant/ant_000.png,ant\nant/ant_001.png,\nbee/bee_000.png,bee\n")
    collection = read_manifest_file(manifest, dataset, missing_label="skip")
    assert collection.paths == ["ant/ant_000.png", "bee/bee_000.png"]
    assert collection.left_out == [("ant/ant_001.png", "", "no label in the manifest")]
    sample_and_label(dataset, tmp_path, layout="manifest", dataset_manifest=str(manifest), missing_label="skip")
    assert "ant/ant_001.png,,no label in the manifest" in (tmp_path / "skipped.csv").read_text()


def test_label_column_choice(dataset, tmp_path):
    manifest = write(tmp_path / "m.csv", GOOD)
    # A metadata column can be the label; "" makes the images unlabelled (then 'species' is metadata).
    assert set(read_manifest_file(manifest, dataset, label_column="source").groups) == {"field", "lab"}
    unlabelled = read_manifest_file(manifest, dataset, label_column="")
    assert set(unlabelled.groups) == {UNLABELLED} and "species" in unlabelled.metadata
    with pytest.raises(AtlasError, match="dataset.label_column 'kind' is not a column of .*m.csv"):
        read_manifest_file(manifest, dataset, label_column="kind")
    # A 'label' column that is not the label column would be ambiguous.
    with pytest.raises(
        AtlasError, match="column 'label' is named like one the workflow writes.*set dataset.label_column"
    ):
        read_manifest_file(write(tmp_path / "l.csv", "path,label,kind\nant/ant_000.png,a,b\n"), dataset, "kind")


def test_flat_folder_is_every_image_unlabelled(tmp_path):
    root = make_image_folder(tmp_path / "flat", {"day1": 2, "day2": 3})
    (root / "loose.png").write_bytes((root / "day1" / "day1_000.png").read_bytes())
    collection = flat_collection(root, [".png"])
    assert len(collection.paths) == 6 and "loose.png" in collection.paths
    assert set(collection.groups) == {UNLABELLED}
    rows = sample_and_label(root, tmp_path, layout="flat", n_images=4)
    assert len(rows) == 4 and {label for _, label in rows} == {UNLABELLED}
    assert read_manifest(tmp_path / "manifest.csv").labelled is False
    assert count_images({"layout": "flat", "root": str(root), "extensions": [".png"]}) == 6


def test_the_sample_depends_on_paths_and_stratifying_labels_only(dataset, tmp_path):
    """Editing metadata (or, unstratified, labels) leaves the digest the sampling rule reruns on unchanged."""
    manifest = write(tmp_path / "m.csv", GOOD)
    settings = {"layout": "manifest", "root": str(dataset), "manifest": str(manifest), "missing_label": "fail"}
    settings["label_column"] = "species"
    before = {stratified: manifest_digest(settings, stratified) for stratified in (True, False)}
    write(manifest, GOOD.replace("plain", "edited note"))
    assert {s: manifest_digest(settings, s) for s in (True, False)} == before
    write(manifest, GOOD.replace("ant_000.png,formica", "ant_000.png,apis"))
    assert manifest_digest(settings, False) == before[False] and manifest_digest(settings, True) != before[True]
    write(manifest, GOOD.replace("bee/bee_002.png,apis,field,last\n", ""))
    assert manifest_digest(settings, False) != before[False]
    assert manifest_digest({**settings, "layout": "folders"}, True) is None


def test_layout_and_manifest_must_agree(dataset, tmp_path):
    base = {"root": str(dataset), "extensions": [".png"]}
    with pytest.raises(AtlasError, match="dataset.layout is 'manifest' but dataset.manifest is empty"):
        atlas_config.check_dataset({**base, "layout": "manifest", "manifest": ""})
    with pytest.raises(AtlasError, match="dataset.manifest is set but dataset.layout is 'folders'"):
        atlas_config.check_dataset({**base, "layout": "folders", "manifest": "m.csv"})
    with pytest.raises(AtlasError, match="dataset.manifest '.*nope.csv' does not exist"):
        atlas_config.check_dataset({**base, "layout": "manifest", "manifest": str(tmp_path / "nope.csv")})


def test_label_map_names_only_existing_labels(dataset, tmp_path):
    manifest = write(tmp_path / "m.csv", GOOD)
    with pytest.raises(
        AtlasError, match="dataset.label_map names \\['vespa'\\], which are not labels in column 'species'"
    ):
        sample_and_label(
            dataset,
            tmp_path,
            label_map={"vespa": "wasp"},
            layout="manifest",
            dataset_manifest=str(manifest),
            label_column="species",
        )


def test_labelling_refuses_a_sample_the_manifest_no_longer_lists(dataset, tmp_path):
    from tsne_atlas.sampling import label_images

    manifest = write(tmp_path / "m.csv", GOOD)
    sample_and_label(dataset, tmp_path, layout="manifest", dataset_manifest=str(manifest), label_column="species")
    write(manifest, GOOD.replace("bee/bee_002.png,apis,field,last\n", ""))
    with pytest.raises(AtlasError) as err:
        label_images(
            layout="manifest",
            root=str(dataset),
            label_column="species",
            missing_label="fail",
            label_map={},
            images=str(tmp_path / "images.csv"),
            manifest=str(tmp_path / "labels.csv"),
            dataset_manifest=str(manifest),
        )
    assert str(err.value) == (
        f"{tmp_path / 'images.csv'} lists 'bee/bee_002.png', which {manifest} no longer has; "
        "delete the results/sample folder and rerun"
    )
    assert not (tmp_path / "labels.csv").exists()  # nothing half-written


def test_label_indices_are_int64_into_the_sorted_classes_even_for_no_images():
    """SampleLabels.indices (files/manifest.py): an empty sample gives an empty int64 array, not NumPy's
    float64 default, so it can still index."""
    from tsne_atlas.files.manifest import SampleLabels

    labels = SampleLabels(["a", "b", "c"], ["zebra", "ant", "zebra"])
    indices = labels.indices()
    assert indices.tolist() == [1, 0, 1] and indices.dtype == "int64"
    assert SampleLabels([], []).indices().dtype == "int64"


def test_manifest_keeps_carriage_returns_and_names_itself_when_empty_or_leaving_the_root(tmp_path):
    """read_manifest (files/manifest.py) on files written here: a label holding a carriage return reads
    back as it is; an empty file and a path outside the dataset root are one line naming the manifest."""
    from tsne_atlas.files.manifest import write_manifest

    path = tmp_path / "manifest.csv"
    write_manifest(path, ["a.png", "b.png"], ["cat\rdog", "ü"], {"site": ["s\r1", "s2"]})
    read = read_manifest(path)
    assert read.labels == ["cat\rdog", "ü"] and read.metadata == {"site": ["s\r1", "s2"]}
    path.write_text("", encoding="utf-8")
    with pytest.raises(AtlasError) as error:
        read_manifest(path)
    assert str(error.value) == f"{path}: not a sample manifest (header None, expected ['path', 'label'] first)"
    write_manifest(path, ["../x.png"], ["cat"])
    with pytest.raises(AtlasError) as error:
        read_manifest(path)
    assert str(error.value).startswith(f"{path}: image path '../x.png' leaves the dataset root")


def test_image_list_keeps_a_carriage_return_in_a_path():
    """read_images (files/manifest.py) reads its CSV with newline="": a path holding a carriage return
    (legal on Linux) comes back as it is."""
    import tempfile
    from pathlib import Path

    from tsne_atlas.files.manifest import read_images, write_images

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "images.csv"
        write_images(path, ["a\rb.png", "c.png"], ["0" * 64, "1" * 64])
        assert read_images(path) == (["a\rb.png", "c.png"], ["0" * 64, "1" * 64])


SPLIT = "path,label,split\nant/ant_000.png,ant,train\nant/ant_001.png,ant,test\nbee/bee_000.png,bee,Test\nbee/bee_001.png,bee, test\nbee/bee_002.png,bee,test\n"


def test_a_split_column_parts_query_rows_from_reference_rows_as_written(dataset, tmp_path):
    manifest = write(tmp_path / "m.csv", SPLIT)
    query = read_manifest_file(manifest, dataset, split=("split", "test", True))
    reference = read_manifest_file(manifest, dataset, split=("split", "test", False))
    # Matched as written: "Test" and " test" are other splits, so they stay in the reference.
    assert query.paths == ["ant/ant_001.png", "bee/bee_002.png"]
    assert reference.paths == ["ant/ant_000.png", "bee/bee_000.png", "bee/bee_001.png"]
    assert reference.metadata["split"] == ["train", "Test", " test"]
    dataset_section = {"layout": "manifest", "root": str(dataset), "manifest": str(manifest), "label_column": "label"}
    config = {"dataset": {**dataset_section, "missing_label": "fail", "extensions": [".png"]}}
    config["query"] = {"layout": "split", "split_column": "split", "split_value": "test"}
    assert count_images(atlas_config.reference_dataset(config)) == 3
    assert count_images(atlas_config.query_dataset(config)) == 2
    config["query"]["layout"] = "none"
    assert count_images(atlas_config.reference_dataset(config)) == 5 and atlas_config.query_dataset(config) is None


@pytest.mark.parametrize(
    "split, expected",
    [
        (("fold", "test", True), "query.split_column 'fold' is not a column of"),
        (("split", "val", True), "no rows whose 'split' is 'val' (matched as written"),
        (("split", "x", False), None),
    ],
)
def test_a_split_that_names_no_column_or_no_rows_is_one_line(dataset, tmp_path, split, expected):
    manifest = write(tmp_path / "m.csv", SPLIT)
    if expected is None:  # every row outside a split of no rows: the whole manifest
        assert len(read_manifest_file(manifest, dataset, split=split).paths) == 5
        return
    with pytest.raises(AtlasError) as err:
        read_manifest_file(manifest, dataset, split=split)
    assert expected in str(err.value) and str(manifest) in str(err.value) and "\n" not in str(err.value)
