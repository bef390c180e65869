import pytest

from tsne_atlas.files.manifest import read_manifest, write_manifest
from tsne_atlas.jobs import AtlasError
from tsne_atlas.sampling import (
    apply_label_map,
    list_images,
    sample_images,
    sample_manifest,
    stratified_quotas,
)


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


def test_list_images_missing_root_names_the_key(tmp_path):
    with pytest.raises(AtlasError, match="dataset.root"):
        list_images(tmp_path / "nope", [".png"])


def test_stratified_quotas_share_equally_and_refill_from_large_classes():
    assert stratified_quotas({"a": 10, "b": 10, "c": 10}, 9) == {"a": 3, "b": 3, "c": 3}
    quotas = stratified_quotas({"a": 1, "b": 10, "c": 10}, 9)
    assert quotas["a"] == 1 and sum(quotas.values()) == 9 and abs(quotas["b"] - quotas["c"]) <= 1
    assert stratified_quotas({"a": 2, "b": 3}, 100) == {"a": 2, "b": 3}


def test_sample_is_reproducible_and_seed_dependent():
    images = {c: [f"{c}/{i}.png" for i in range(50)] for c in "abcd"}
    first = sample_manifest(images, 20, random_state=1)
    assert first == sample_manifest(images, 20, random_state=1)
    assert first != sample_manifest(images, 20, random_state=2)
    assert len(first) == 20 and {label for _, label in first} == set("abcd")
    assert first == sorted(first, key=lambda r: (r[1], r[0]))


def test_unstratified_sample_draws_from_the_whole_pool():
    images = {"big": [f"big/{i}" for i in range(90)], "small": [f"small/{i}" for i in range(10)]}
    rows = sample_manifest(images, 50, random_state=0, stratified=False)
    assert len(rows) == 50 and len(set(rows)) == 50
    assert sum(label == "big" for _, label in rows) > 30


def test_too_few_images_is_one_clear_error():
    with pytest.raises(AtlasError, match=r"sample.n_images is 10 but the dataset has only 4 .*'all'"):
        sample_manifest({"a": ["a/1", "a/2"], "b": ["b/1", "b/2"]}, 10, random_state=0)
    assert len(sample_manifest({"a": ["a/1", "a/2"], "b": ["b/1"]}, "all", random_state=0)) == 3


def test_label_map_renames_and_merges_and_rejects_unknown_folders():
    images = {"cane": ["cane/1"], "gatto": ["gatto/1"], "ragno": ["ragno/1"]}
    mapped = apply_label_map(images, {"cane": "dog", "gatto": "cat"})
    assert mapped == {"dog": ["cane/1"], "cat": ["gatto/1"], "ragno": ["ragno/1"]}
    assert apply_label_map(images, {"cane": "pet", "gatto": "pet"})["pet"] == ["cane/1", "gatto/1"]
    with pytest.raises(AtlasError, match="label_map names folder"):
        apply_label_map(images, {"cavallo": "horse"})


def test_manifest_round_trip_and_bad_header(tmp_path):
    rows = [("a/x, with comma.png", "a"), ("b/y.png", "b")]
    write_manifest(tmp_path / "m.csv", rows)
    assert read_manifest(tmp_path / "m.csv") == rows
    (tmp_path / "bad.csv").write_text("file,class\n")
    with pytest.raises(AtlasError, match="not a sample manifest"):
        read_manifest(tmp_path / "bad.csv")


def test_sample_images_writes_the_manifest(image_folder, tmp_path):
    rows = sample_images(
        root=str(image_folder),
        extensions=[".png"],
        label_map={"ant": "formica"},
        n_images=9,
        random_state=0,
        stratified=True,
        on_bad_image="skip",
        manifest=str(tmp_path / "m.csv"),
        skipped=str(tmp_path / "skipped.csv"),
    )
    assert read_manifest(tmp_path / "m.csv") == rows
    assert [label for _, label in rows].count("formica") == 3
    assert not list(tmp_path.glob(".tmp-*"))


def test_atomic_path_removes_leftovers_of_a_killed_attempt(tmp_path):
    from tsne_atlas.jobs import atomic_path

    (tmp_path / ".tmp-999-out.txt").write_text("half")
    (tmp_path / ".tmp-999-other.txt").write_text("someone else's")
    with atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-999-other.txt", "out.txt"]
