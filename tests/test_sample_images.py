import logging

import pytest

from conftest import make_image_folder, sample_and_label
from tsne_atlas.collection import list_images
from tsne_atlas.files.manifest import read_images, read_manifest, write_manifest
from tsne_atlas.images import image_problem
from tsne_atlas.jobs import AtlasError
from tsne_atlas.sampling import file_sha256, sample_images, sample_manifest, stratified_quotas


def test_list_images_skips_hidden_and_other_extensions(image_folder):
    (image_folder / "ant" / ".DS_Store").write_bytes(b"x")
    (image_folder / "ant" / "._ant_000.png").write_bytes(b"x")
    (image_folder / "ant" / "notes.txt").write_text("x")
    (image_folder / "ant" / "UPPER.PNG").write_bytes((image_folder / "ant" / "ant_000.png").read_bytes())
    (image_folder / ".hidden_class").mkdir()
    (image_folder / "README.md").write_text("files at the root are not classes")
    images = list_images(image_folder, [".png"])
    assert sorted(images) == ["ant", "bee", "cat"]
    assert len(images["ant"]) == 7 and "ant/UPPER.PNG" in images["ant"]
    assert all(not p.split("/")[-1].startswith(".") for paths in images.values() for p in paths)


def test_list_images_skips_hidden_sub_folders_but_walks_the_others(image_folder):
    png = (image_folder / "ant" / "ant_000.png").read_bytes()
    for sub in (".thumbnails", "more"):
        (image_folder / "ant" / sub).mkdir()
        (image_folder / "ant" / sub / "x.png").write_bytes(png)
    images = list_images(image_folder, [".png"])
    assert "ant/more/x.png" in images["ant"] and "ant/.thumbnails/x.png" not in images["ant"]
    assert len(images["ant"]) == 7


def test_list_images_missing_root_names_the_key(tmp_path):
    with pytest.raises(AtlasError, match="dataset.root"):
        list_images(tmp_path / "nope", [".png"])


def test_stratified_quotas_share_equally_and_refill_from_large_classes():
    assert stratified_quotas({"a": 10, "b": 10, "c": 10}, 9) == {"a": 3, "b": 3, "c": 3}
    quotas = stratified_quotas({"a": 1, "b": 10, "c": 10}, 9)
    assert quotas["a"] == 1 and sum(quotas.values()) == 9 and abs(quotas["b"] - quotas["c"]) <= 1
    assert stratified_quotas({"a": 2, "b": 3}, 100) == {"a": 2, "b": 3}


def test_stratified_quotas_give_the_remainder_to_the_first_names():
    """The docstring's tie rule: what does not divide evenly goes one each to classes in sorted-name order."""
    assert stratified_quotas({"c": 10, "a": 10, "b": 10}, 10) == {"c": 3, "a": 4, "b": 3}
    assert stratified_quotas({"a": 10, "b": 10, "c": 10}, 11) == {"a": 4, "b": 4, "c": 3}
    # An empty class (all its files turned out bad) takes no share of the remainder.
    assert stratified_quotas({"a": 5, "b": 5, "c": 5, "d": 0}, 5) == {"a": 2, "b": 2, "c": 1, "d": 0}


def test_stratified_quotas_never_exceed_a_class_when_refilling():
    """A class part-filled in one round is capped at what it has left in the next (b: 5 of 6, then 1 more)."""
    sizes = {"a": 1, "b": 6, "c": 20}
    quotas = stratified_quotas(sizes, 15)
    assert quotas == {"a": 1, "b": 6, "c": 8}
    assert all(quotas[name] <= size for name, size in sizes.items())


def test_sample_is_reproducible_and_seed_dependent():
    images = {c: [f"{c}/{i}.png" for i in range(50)] for c in "abcd"}
    first = sample_manifest(images, 20, seed=1)
    assert first == sample_manifest(images, 20, seed=1)
    assert first != sample_manifest(images, 20, seed=2)
    assert len(first) == 20 and {label for _, label in first} == set("abcd")
    assert first == sorted(first, key=lambda r: (r[1], r[0]))


def test_sample_is_stratified_by_default():
    images = {"big": [f"big/{i}" for i in range(40)], "small": [f"small/{i}" for i in range(10)]}
    rows = sample_manifest(images, 20, seed=0)
    assert rows == sample_manifest(images, 20, seed=0, stratified=True)
    assert [label for _, label in rows].count("small") == 10


def test_rows_are_sorted_by_label_then_path():
    """Labels need not follow folder names (label_map), and the lists handed in need not be sorted."""
    images = {"x": ["zebra/2", "zebra/1"], "y": ["ant/1"]}
    expected = [("zebra/1", "x"), ("zebra/2", "x"), ("ant/1", "y")]
    assert sample_manifest(images, "all", seed=0) == expected
    assert sample_manifest(images, 3, seed=0) == expected
    assert sample_manifest(images, 3, seed=0, stratified=False) == expected


def test_a_class_short_of_usable_images_is_made_up_by_the_others():
    """Stratified: 'a' has 2 usable of 5, so 'b' gives 4 instead of 3; every bad pick is listed with its label."""
    images = {"a": [f"a/{i}" for i in range(5)], "b": [f"b/{i}" for i in range(10)]}
    bad = {"a/0", "a/1", "a/2"}
    skipped = []
    rows = sample_manifest(images, 6, seed=0, check=lambda p: "bad" if p in bad else None, skipped=skipped)
    assert len(rows) == 6 and not bad & {path for path, _ in rows}
    assert [label for _, label in rows].count("a") == 2 and [label for _, label in rows].count("b") == 4
    assert sorted(skipped) == [(path, "a", "bad") for path in sorted(bad)]
    for n_images in ("all", 12):
        skipped = []
        rows = sample_manifest(images, n_images, 0, check=lambda p: "bad" if p in bad else None, skipped=skipped)
        assert len(rows) == 12 and sorted(skipped) == [(path, "a", "bad") for path in sorted(bad)]


def test_unstratified_sample_draws_from_the_whole_pool():
    images = {"big": [f"big/{i}" for i in range(90)], "small": [f"small/{i}" for i in range(10)]}
    rows = sample_manifest(images, 50, seed=0, stratified=False)
    assert len(rows) == 50 and len(set(rows)) == 50
    assert sum(label == "big" for _, label in rows) > 30


def test_too_few_images_is_one_clear_error():
    with pytest.raises(AtlasError) as err:
        sample_manifest({"a": ["a/1", "a/2"], "b": ["b/1", "b/2"]}, 10, seed=0)
    # Nothing was skipped, so the message says nothing about skipped files.
    assert str(err.value) == (
        "sample.n_images is 10 but the dataset has only 4 usable images; lower sample.n_images or set it to 'all'"
    )
    assert len(sample_manifest({"a": ["a/1", "a/2"], "b": ["b/1"]}, "all", seed=0)) == 3


def test_label_map_renames_and_merges_after_sampling_and_rejects_unknown_folders(image_folder, tmp_path):
    plain = sample_and_label(image_folder, tmp_path, n_images=9)
    mapped = sample_and_label(image_folder, tmp_path, label_map={"ant": "formica"}, n_images=9)
    # The same images (the sample depends on the folders, not on what they are called).
    assert [p for p, _ in mapped] == [p for p, _ in plain]
    assert [label for _, label in mapped].count("formica") == 3
    merged = sample_and_label(image_folder, tmp_path, label_map={"ant": "pet", "bee": "pet"}, n_images=9)
    assert [p for p, _ in merged] == [p for p, _ in plain]
    assert {label for _, label in merged} == {"pet", "cat"}
    with pytest.raises(AtlasError, match="label_map names \\['cavallo'\\], which are not folders"):
        sample_and_label(image_folder, tmp_path, label_map={"cavallo": "horse"})


def test_manifest_round_trip_and_bad_header(tmp_path):
    paths, labels = ["a/x, with comma.png", "b/y.png"], ["a", 'b "quoted"']
    metadata = {"note": ["<b>bold</b>", "line\nbreak"]}
    write_manifest(tmp_path / "m.csv", paths, labels, metadata)
    read = read_manifest(tmp_path / "m.csv")
    assert (read.paths, read.labels, read.metadata) == (paths, labels, metadata)
    (tmp_path / "bad.csv").write_text("file,class\n")
    with pytest.raises(AtlasError, match="not a sample manifest"):
        read_manifest(tmp_path / "bad.csv")


def test_sample_images_writes_paths_and_content_hashes_only(image_folder, tmp_path):
    paths = sample_images(
        layout="folders",
        root=str(image_folder),
        extensions=[".png"],
        label_column="label",
        missing_label="fail",
        n_images=9,
        seed=0,
        stratified=True,
        on_bad_image="skip",
        images=str(tmp_path / "images.csv"),
        skipped=str(tmp_path / "skipped.csv"),
    )
    assert read_images(tmp_path / "images.csv") == (paths, [file_sha256(image_folder / p) for p in paths])
    assert paths == sorted(paths) and len(paths) == 9
    assert (tmp_path / "images.csv").read_text().splitlines()[0] == "path,sha256"
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize("stratified", [True, False])
def test_sample_images_passes_stratified_on(tmp_path, stratified):
    root = make_image_folder(tmp_path / "data", {"big": 30, "small": 3})
    rows = sample_and_label(root, tmp_path, n_images=6, stratified=stratified)
    assert rows == sorted(sample_manifest(list_images(root, [".png"]), 6, 0, stratified=stratified))
    assert ([label for _, label in rows].count("small") == 3) is stratified


def test_sample_images_without_any_image_names_root_and_extensions(image_folder, tmp_path):
    with pytest.raises(AtlasError) as err:
        sample_and_label(image_folder, tmp_path, extensions=[".jpg"])
    assert str(err.value) == (
        f"dataset.root '{image_folder}' holds no images with extensions ['.jpg'] in its class folders; "
        "check dataset.root, dataset.layout and dataset.extensions"
    )


def test_sample_images_logs_the_counts_and_each_skipped_file(image_folder, tmp_path, caplog):
    """The job's log says how many images of each class were taken and why each skipped file was skipped."""
    (image_folder / "bee" / "broken.png").write_bytes(b"not a png")
    caplog.set_level(logging.INFO, logger="tsne_atlas.sampling")
    sample_and_label(image_folder, tmp_path, label_map={"ant": "formica"})
    assert caplog.messages == [
        f"sampled 15 of 16 images from {image_folder}: {{'ant': 6, 'bee': 5, 'cat': 4}}",
        f"skipped 1 unusable file(s), listed with reasons in {tmp_path / 'skipped.csv'}",
        f"skipped bee/broken.png: {image_problem(image_folder / 'bee' / 'broken.png')}",
        "labelled 15 images: {'bee': 5, 'cat': 4, 'formica': 6}; metadata columns: none",
    ]


def test_atomic_path_removes_leftovers_of_a_killed_attempt(tmp_path):
    from tsne_atlas.jobs import atomic_path

    (tmp_path / ".tmp-999-out.txt").write_text("half")
    (tmp_path / ".tmp-999-other.txt").write_text("someone else's")
    with atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-999-other.txt", "out.txt"]
