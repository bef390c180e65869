"""The tables of a placed query set (placement.csv, leaks.csv, classes.csv): real sample, manifest,
prepared-input and neighbour files written by the workflow's own writers, on gaussian data with planted
copies, unknown classes and a far image; the tie rule, the reruns' bytes and each bad input's one line."""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from tsne_atlas import placement as pl
from tsne_atlas.files.manifest import UNLABELLED, write_images, write_manifest
from tsne_atlas.files.map_inputs import write_input, write_neighbours
from tsne_atlas.files.placement import read_classes, read_leaks, read_placement
from tsne_atlas.jobs import AtlasError

CLASSES = ("cat", "dog", "fox")
DIM = 6
PER_CLASS = 40
# Blob centres about the origin, as in the prepared input (z-scored, PCA-reduced: centred), so that
# cosines of ordinary images are well below the near-copy thresholds.
CENTRES = np.random.default_rng(0).normal(0, 4, size=(len(CLASSES), DIM))
CENTRES -= CENTRES.mean(axis=0)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def reference_set() -> tuple[np.ndarray, list[str]]:
    """Three well separated gaussian blobs of PER_CLASS images each."""
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(c, 1.0, size=(PER_CLASS, DIM)) for c in CENTRES])
    return X, [name for name in CLASSES for _ in range(PER_CLASS)]


def fresh_queries(per_class: int = 5, seed: int = 2) -> tuple[np.ndarray, list[str]]:
    """New draws from the reference's blobs: in distribution."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(c, 1.0, size=(per_class, DIM)) for c in CENTRES])
    return X, [name for name in CLASSES for _ in range(per_class)]


class Sets:
    """A reference sample and a query set written as the workflow writes them, in ``folder``."""

    def __init__(self, folder, reference_X, reference_labels, query_X, query_labels, **options):
        self.folder = folder
        self.reference_paths = [f"ref/{i:03d}.png" for i in range(len(reference_X))]
        self.query_paths = [f"new/{i:03d}.png" for i in range(len(query_X))]
        self.reference_hashes = options.get("reference_hashes") or [digest(p) for p in self.reference_paths]
        self.query_hashes = options.get("query_hashes") or [digest("q" + p) for p in self.query_paths]
        self.files = {
            "reference_images": str(folder / "sample" / "images.csv"),
            "reference_manifest": str(folder / "sample" / "manifest.csv"),
            "query_images": str(folder / "query" / "sample" / "images.csv"),
            "query_manifest": str(folder / "query" / "sample" / "manifest.csv"),
            "prepared": str(folder / "input.h5"),
            "graph": str(folder / "k-10.npz"),
            "query_prepared": str(folder / "query" / "input.h5"),
            "query_neighbours": str(folder / "query" / "neighbours.npz"),
            "root": str(folder / "reference-images"),
            "query_root": str(folder / "query-images"),
        }
        for name in ("sample", "query/sample"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        write_images(self.files["reference_images"], self.reference_paths, self.reference_hashes)
        write_manifest(self.files["reference_manifest"], self.reference_paths, reference_labels)
        write_images(self.files["query_images"], self.query_paths, self.query_hashes)
        write_manifest(self.files["query_manifest"], self.query_paths, query_labels)
        write_input(self.files["prepared"], reference_X, {"pca_components": DIM})
        write_input(self.files["query_prepared"], query_X, {"pca_components": DIM})
        graph_width = options.get("graph_width", 10)
        distances, indices = NearestNeighbors(n_neighbors=graph_width + 1).fit(reference_X).kneighbors(reference_X)
        write_neighbours(self.files["graph"], indices[:, 1:], distances[:, 1:])  # self excluded
        width = options.get("query_width", 8)
        distances, indices = NearestNeighbors(n_neighbors=width).fit(reference_X).kneighbors(query_X)
        write_neighbours(self.files["query_neighbours"], indices, distances)

    def run(self, neighbours: int = 5, near_duplicate_cosine: float = 0.999, out: str = "out") -> dict:
        """placement_tables as the rule calls it (every argument by keyword); the three tables read back."""
        outputs = {name: str(self.folder / f"{out}-{name}.csv") for name in ("placement", "leaks", "classes")}
        pl.placement_tables(**self.files, neighbours=neighbours, near_duplicate_cosine=near_duplicate_cosine, **outputs)
        return {
            "placement": read_placement(outputs["placement"]),
            "leaks": read_leaks(outputs["leaks"]),
            "classes": read_classes(outputs["classes"]),
            "paths": outputs,
        }


def by_path(rows: list[dict]) -> dict[str, dict]:
    return {row["path"]: row for row in rows}


def test_in_distribution_images_land_in_their_class_score_about_one_and_a_far_image_scores_high(tmp_path):
    reference_X, reference_labels = reference_set()
    query_X, query_labels = fresh_queries()
    far = CENTRES.mean(axis=0) + 60.0  # far from every blob
    query_X = np.vstack([query_X, far])
    query_labels = [*query_labels, "cat"]
    tables = Sets(tmp_path, reference_X, reference_labels, query_X, query_labels).run(neighbours=5)
    rows = tables["placement"]
    assert [row["path"] for row in rows] == sorted(row["path"] for row in rows) and len(rows) == 16
    inside, outside = rows[:15], rows[15]
    assert all(row["agrees"] is True and row["majority_share"] == 1.0 and row["note"] == "" for row in inside)
    assert [row["majority_label"] for row in inside] == query_labels[:15]
    ood = np.array([row["ood_score"] for row in inside])
    assert 0.8 < np.median(ood) < 1.25 and ood.max() < 2.0, ood
    assert outside["ood_score"] > 10, outside
    # The neighbour columns: k paths and labels, nearest first; the nearest one's distance.
    distances, indices = NearestNeighbors(n_neighbors=5).fit(reference_X).kneighbors(query_X[:1])
    first = rows[0]
    assert (
        first["neighbours"] == [f"ref/{j:03d}.png" for j in indices[0]] and first["nearest"] == first["neighbours"][0]
    )
    assert first["neighbour_labels"] == ["cat"] * 5
    assert first["nearest_distance"] == pytest.approx(distances[0, 0], abs=1e-4)
    assert all(row["leak"] == "" for row in rows) and tables["leaks"] == []
    # classes.csv: one row per class, then all; the far cat lands among cats all the same.
    classes = tables["classes"]
    assert [row["label"] for row in classes] == ["cat", "dog", "fox", "all"]
    cat = classes[0]
    assert (cat["known"], cat["n"], cat["n_agree"], cat["share"], cat["n_leaks"]) == (True, 6, 6, 1.0, 0)
    assert cat["mean_ood_score"] == pytest.approx(
        np.mean([r["ood_score"] for r in rows if r["label"] == "cat"]), abs=1e-3
    )
    total = classes[-1]
    assert (total["known"], total["n"], total["n_agree"], total["share"]) == (None, 16, 16, 1.0)


def test_ood_score_uses_the_reference_graphs_own_scale_capped_at_its_width(tmp_path, caplog):
    reference_X, reference_labels = reference_set()
    query_X, query_labels = fresh_queries(per_class=2)
    sets = Sets(tmp_path, reference_X, reference_labels, query_X, query_labels, graph_width=3, query_width=6)
    with caplog.at_level("INFO", logger="tsne_atlas.placement"):
        rows = sets.run(neighbours=6)["placement"]
    # k = 6 asked for, the graph holds 3: both means over 3 neighbours.
    reference_distances = NearestNeighbors(n_neighbors=4).fit(reference_X).kneighbors(reference_X)[0][:, 1:]
    query_distances = NearestNeighbors(n_neighbors=3).fit(reference_X).kneighbors(query_X)[0]
    expected = query_distances.mean(axis=1) / np.median(reference_distances.mean(axis=1))
    assert [row["ood_score"] for row in rows] == pytest.approx(expected, abs=1e-4)
    assert f"the ood score uses 3 neighbours, all that {sets.files['graph']} holds per image" in caplog.text
    assert all(len(row["neighbours"]) == 6 for row in rows)  # the majority still uses all 6


def test_an_exact_copy_is_found_by_hash_even_when_it_is_not_a_neighbour(tmp_path):
    reference_X, reference_labels = reference_set()
    query_X, query_labels = fresh_queries(per_class=2)
    # Query image 0 (a cat, near the cats) carries the bytes of reference image 100 (a fox, far away):
    # not among its 8 nearest, found by the hash alone. Query image 5 is reference 3's exact copy twice
    # over (two reference files with the same bytes).
    reference_hashes = [digest(f"r{i}") for i in range(len(reference_X))]
    reference_hashes[7] = reference_hashes[3]
    query_hashes = [digest(f"q{i}") for i in range(len(query_X))]
    query_hashes[0], query_hashes[5] = reference_hashes[100], reference_hashes[3]
    sets = Sets(
        tmp_path,
        reference_X,
        reference_labels,
        query_X,
        query_labels,
        reference_hashes=reference_hashes,
        query_hashes=query_hashes,
    )
    tables = sets.run()
    assert [(r["kind"], r["query_path"], r["reference_path"]) for r in tables["leaks"]] == [
        ("exact", "new/000.png", "ref/100.png"),
        ("exact", "new/005.png", "ref/003.png"),
        ("exact", "new/005.png", "ref/007.png"),
    ]
    first = tables["leaks"][0]
    assert (first["query_label"], first["reference_label"]) == ("cat", "fox")
    unit = pl.unit_rows(np.vstack([query_X[0], reference_X[100]]))
    assert first["cosine"] == pytest.approx(unit[0] @ unit[1], abs=1e-4) and first["cosine"] < 0.9
    rows = by_path(tables["placement"])
    assert rows["new/000.png"]["leak"] == "exact" and "ref/100.png" not in rows["new/000.png"]["neighbours"]
    assert [row["leak"] for row in tables["placement"]].count("exact") == 2
    assert [row["n_leaks"] for row in tables["classes"]] == [1, 0, 1, 2]  # cat, dog, fox (query 5), all


def test_near_copies_by_cosine_threshold_exact_first_then_by_cosine(tmp_path):
    reference_X, reference_labels = reference_set()
    query_X, query_labels = fresh_queries(per_class=2)
    rng = np.random.default_rng(3)
    query_X[1] = reference_X[10] + rng.normal(0, 1e-3, DIM)  # a very near copy
    query_X[3] = reference_X[50] + rng.normal(0, 2e-2, DIM)  # a near copy, a little less so
    query_hashes = [digest(f"q{i}") for i in range(len(query_X))]
    reference_hashes = [digest(f"r{i}") for i in range(len(reference_X))]
    query_hashes[4] = reference_hashes[90]  # and an exact copy
    unit = pl.unit_rows(np.vstack([query_X[[1, 3]], reference_X[[10, 50]]]))
    cosines = [unit[0] @ unit[2], unit[1] @ unit[3]]
    assert 1.0 > cosines[0] > cosines[1] > 0.9999
    sets = Sets(
        tmp_path,
        reference_X,
        reference_labels,
        query_X,
        query_labels,
        reference_hashes=reference_hashes,
        query_hashes=query_hashes,
    )
    leaks = sets.run(near_duplicate_cosine=0.9999)["leaks"]
    assert [(r["kind"], r["query_path"], r["reference_path"]) for r in leaks] == [
        ("exact", "new/004.png", "ref/090.png"),
        ("near", "new/001.png", "ref/010.png"),
        ("near", "new/003.png", "ref/050.png"),
    ]
    assert [r["cosine"] for r in leaks[1:]] == pytest.approx(cosines, abs=1e-4)
    # A threshold between the two cosines keeps the nearer copy only; any pair of ordinary images stays out.
    tables = sets.run(near_duplicate_cosine=float(np.mean(cosines)), out="between")
    assert [(r["kind"], r["query_path"]) for r in tables["leaks"]] == [
        ("exact", "new/004.png"),
        ("near", "new/001.png"),
    ]
    assert [row["leak"] for row in tables["placement"]] == ["", "near", "", "", "exact", ""]
    with pytest.raises(AtlasError, match=r"^near-copy threshold 1.5 is not a cosine; use a value from -1 to 1$"):
        sets.run(near_duplicate_cosine=1.5)


def test_an_image_with_an_exact_and_a_near_copy_is_an_exact_leak_and_a_pair_is_listed_once(tmp_path):
    reference_X, reference_labels = reference_set()
    query_X, query_labels = fresh_queries(per_class=1)
    query_X[0] = reference_X[0]  # same features as reference 0 ...
    reference_hashes = [digest(f"r{i}") for i in range(len(reference_X))]
    query_hashes = [reference_hashes[0], digest("a"), digest("b")]  # ... and the same bytes
    reference_X[1] = reference_X[0] * 1.0000001  # reference 1 is reference 0's near copy
    sets = Sets(
        tmp_path,
        reference_X,
        reference_labels,
        query_X,
        query_labels,
        reference_hashes=reference_hashes,
        query_hashes=query_hashes,
    )
    tables = sets.run(near_duplicate_cosine=0.999)
    assert [(r["kind"], r["reference_path"]) for r in tables["leaks"]] == [
        ("exact", "ref/000.png"),
        ("near", "ref/001.png"),
    ]
    assert tables["leaks"][0]["cosine"] == 1.0
    assert tables["placement"][0]["leak"] == "exact" and tables["placement"][0]["nearest_distance"] == 0.0


def test_majority_label_ties_go_to_the_nearer_neighbour():
    codes, counts = pl.majority_labels(np.array([[1, 0, 1, 0], [0, 1, 1, 0], [2, 1, 1, 3], [3, 3, 3, 3]]))
    assert codes.tolist() == [1, 0, 1, 3] and counts.tolist() == [2, 2, 2, 4]


def test_majority_and_its_share_in_the_table(tmp_path):
    # Reference: 4 points on a line labelled a, b, b, a at 0, 1, 2, 3 (and far others); the query at
    # -0.4 has neighbours a (0.4), b (1.4), b (2.4), a (3.4): a tie of two, the nearer a wins.
    reference_X = np.zeros((8, 2))
    reference_X[:4, 0] = [0.0, 1.0, 2.0, 3.0]
    reference_X[4:] = [[50, 50], [51, 50], [50, 51], [51, 51]]
    reference_labels = ["a", "b", "b", "a", "c", "c", "c", "c"]
    query_X = np.array([[-0.4, 0.0], [1.4, 0.0], [50.2, 50.2]])
    sets = Sets(tmp_path, reference_X, reference_labels, query_X, ["b", "b", "a"], graph_width=3, query_width=4)
    rows = sets.run(neighbours=4)["placement"]
    assert [(r["majority_label"], r["majority_share"], r["agrees"]) for r in rows] == [
        ("a", 0.5, False),  # tie of a and b: the nearer a
        ("b", 0.5, True),  # 1.4: b (0.4), b (0.6), a (1.4), a (1.6)
        ("c", 1.0, False),
    ]
    assert rows[0]["neighbour_labels"] == ["a", "b", "b", "a"]


def test_the_three_files_as_written(tmp_path):
    """The cells as a spreadsheet shows them (the readers would hide a writer and reader wrong alike)."""
    reference_X = np.zeros((8, 2))
    reference_X[:4, 0] = [0.0, 1.0, 2.0, 3.0]
    reference_X[4:] = [[50, 50], [51, 50], [50, 51], [51, 51]]
    reference_labels = ["a", "b", "b", "a", "c", "c", "c", "c"]
    query_X = np.array([[-0.4, 0.0], [1.4, 0.0], [50.2, 50.2]])
    sets = Sets(tmp_path, reference_X, reference_labels, query_X, ["b", "b", "a"], graph_width=3, query_width=4)
    paths = sets.run(neighbours=4, near_duplicate_cosine=0.99999)["paths"]
    # The ood score by hand: k = 3 (the graph's width); query 0's mean distance (0.4 + 1.4 + 2.4) / 3
    # over the median of the reference images' own means (2, 4/3, 4/3, 2 on the line; the square's four
    # (1 + 1 + sqrt 2) / 3).
    square = (2 + np.sqrt(2)) / 3
    ood = 1.4 / np.median([2, 4 / 3, 4 / 3, 2, square, square, square, square])
    placement = Path(paths["placement"]).read_text(encoding="utf-8").splitlines()
    assert placement[0] == (
        "path,label,majority_label,majority_share,agrees,note,ood_score,leak,nearest,nearest_distance,"
        "neighbours,neighbour_labels"
    )
    assert placement[1] == (
        f"new/000.png,b,a,0.5000,no,,{ood:.4f},,ref/000.png,0.4000,"
        "ref/000.png | ref/001.png | ref/002.png | ref/003.png,a | b | b | a"
    )
    # On a line through the origin every point has cosine 1 with the others on its side: query 1 is a
    # near copy of references 1, 2, 3 (cosine 1), query 2 of the square's diagonal corners.
    leaks = Path(paths["leaks"]).read_text(encoding="utf-8").splitlines()
    assert leaks[0] == "kind,query_path,reference_path,cosine,query_label,reference_label"
    assert leaks[1] == "near,new/001.png,ref/001.png,1.0000,b,b"
    classes = [line.split(",") for line in Path(paths["classes"]).read_text(encoding="utf-8").splitlines()]
    assert classes[0] == ["label", "known", "n", "n_agree", "share", "mean_ood_score", "n_leaks"]
    assert [row[:5] + row[6:] for row in classes[1:]] == [
        ["a", "yes", "1", "0", "0.0000", "1"],
        ["b", "yes", "2", "1", "0.5000", "1"],
        ["all", "n/a", "3", "1", "0.3333", "2"],
    ]
    write_manifest(sets.files["reference_manifest"], sets.reference_paths, [UNLABELLED] * 8)
    paths = sets.run(neighbours=4, out="unlabelled")["paths"]
    row = Path(paths["placement"]).read_text(encoding="utf-8").splitlines()[1].split(",")
    assert row[2:6] == ["", "n/a", "n/a", "reference unlabelled"]


def test_unknown_classes_and_unlabelled_query_images_are_not_judged(tmp_path, caplog):
    reference_X, reference_labels = reference_set()
    query_X, query_labels = fresh_queries(per_class=2)
    query_labels = ["cat", "zebra", "dog", UNLABELLED, "zebra", "fox"]
    sets = Sets(tmp_path, reference_X, reference_labels, query_X, query_labels)
    with caplog.at_level("INFO", logger="tsne_atlas.placement"):
        tables = sets.run()
    rows = tables["placement"]
    assert [(r["agrees"], r["note"]) for r in rows] == [
        (True, ""),
        (None, "class not in the reference"),
        (True, ""),
        (None, "query image unlabelled"),
        (None, "class not in the reference"),
        (True, ""),
    ]
    assert rows[1]["majority_label"] == "cat"  # placed all the same: among the cats
    assert "1 query class(es) no reference image has (allowed; their agreement is n/a): zebra" in caplog.text
    classes = {row["label"]: row for row in tables["classes"]}
    assert list(classes) == ["cat", "dog", "fox", UNLABELLED, "zebra", "all"]
    assert (
        classes["zebra"]["known"],
        classes["zebra"]["n"],
        classes["zebra"]["n_agree"],
        classes["zebra"]["share"],
    ) == (
        False,
        2,
        None,
        None,
    )
    assert (classes[UNLABELLED]["known"], classes[UNLABELLED]["n_agree"]) == (None, None)
    assert classes["cat"]["known"] is True
    # The total: 6 images, 3 of them judged, all 3 agree.
    assert (classes["all"]["n"], classes["all"]["n_agree"], classes["all"]["share"]) == (6, 3, 1.0)
    assert (
        caplog.records[-1]
        .getMessage()
        .startswith(
            "6 query images placed by their 5 nearest of 120 reference images: 3 (100%) agree with their majority label"
        )
    )


def test_an_unlabelled_query_set_has_one_summary_row(tmp_path):
    reference_X, reference_labels = reference_set()
    query_X, _ = fresh_queries(per_class=2)
    sets = Sets(tmp_path, reference_X, reference_labels, query_X, [UNLABELLED] * 6)
    tables = sets.run()
    assert all(r["agrees"] is None and r["note"] == "query image unlabelled" for r in tables["placement"])
    assert [r["majority_label"] for r in tables["placement"]] == ["cat", "cat", "dog", "dog", "fox", "fox"]
    (row,) = tables["classes"]
    ood = np.mean([r["ood_score"] for r in tables["placement"]])
    assert row["label"] == UNLABELLED and row["n"] == 6 and row["n_agree"] is None and row["share"] is None
    assert row["mean_ood_score"] == pytest.approx(ood, abs=1e-3) and row["n_leaks"] == 0


def test_an_unlabelled_reference_gives_no_majority(tmp_path):
    reference_X, _ = reference_set()
    query_X, query_labels = fresh_queries(per_class=1)
    sets = Sets(tmp_path, reference_X, [UNLABELLED] * len(reference_X), query_X, query_labels)
    tables = sets.run()
    assert [(r["majority_label"], r["majority_share"], r["agrees"], r["note"]) for r in tables["placement"]] == [
        ("", None, None, "reference unlabelled")
    ] * 3
    assert [(r["label"], r["known"], r["n_agree"]) for r in tables["classes"]] == [
        ("cat", False, None),
        ("dog", False, None),
        ("fox", False, None),
        ("all", None, None),
    ]


def test_a_rerun_writes_the_same_bytes(tmp_path):
    reference_X, reference_labels = reference_set()
    query_X, query_labels = fresh_queries()
    query_X[2] = reference_X[4] + 1e-4
    sets = Sets(tmp_path, reference_X, reference_labels, query_X, query_labels)
    first, second = sets.run(out="first")["paths"], sets.run(out="second")["paths"]
    for name in ("placement", "leaks", "classes"):
        assert Path(first[name]).read_bytes() == Path(second[name]).read_bytes(), name
    assert b"near" in Path(first["leaks"]).read_bytes()


def test_query_in_reference_finds_the_same_file_by_real_path(tmp_path):
    reference, query = tmp_path / "reference", tmp_path / "query"
    (reference / "cat").mkdir(parents=True)
    query.mkdir()
    for name in ("cat/1.png", "cat/2.png"):
        (reference / name).write_bytes(b"png")
    (query / "copy.png").write_bytes(b"png")  # same bytes, another file: a leak, not the same file
    os.symlink(reference / "cat" / "2.png", query / "link.png")
    os.symlink(reference / "cat", query / "cats")
    found = pl.query_in_reference(
        str(reference), ["cat/1.png", "cat/2.png"], str(query), ["cats/1.png", "copy.png", "link.png"]
    )
    assert found == ["cats/1.png", "link.png"]
    assert pl.query_in_reference(str(reference), ["cat/1.png"], str(query), ["copy.png"]) == []


def test_a_query_set_holding_reference_files_is_refused_in_one_line(tmp_path):
    reference_X, reference_labels = reference_set()
    query_X, query_labels = fresh_queries(per_class=1)
    sets = Sets(tmp_path, reference_X, reference_labels, query_X, query_labels)
    # The query's root is a link to the reference's; two of its images are sampled reference images.
    (tmp_path / "reference-images").mkdir()
    os.symlink(tmp_path / "reference-images", tmp_path / "query-images")
    paths = ["new/000.png", "ref/002.png", "ref/007.png"]
    write_images(sets.files["query_images"], paths, sets.query_hashes)
    write_manifest(sets.files["query_manifest"], paths, query_labels)
    with pytest.raises(AtlasError) as err:
        sets.run()
    assert str(err.value) == (
        f"{sets.files['query_images']}: 2 query image(s) are files of the reference sample "
        f"({sets.files['reference_images']}), e.g. ref/002.png; take them out of the query set or the reference"
    )


def bad_input_sets(tmp_path) -> Sets:
    reference_X, reference_labels = reference_set()
    query_X, query_labels = fresh_queries(per_class=2)
    return Sets(tmp_path, reference_X, reference_labels, query_X, query_labels)


def test_neighbours_of_another_query_set_are_refused_in_one_line(tmp_path):
    sets = bad_input_sets(tmp_path)
    write_neighbours(sets.files["query_neighbours"], np.zeros((5, 8), dtype=np.int64), np.ones((5, 8)))
    with pytest.raises(AtlasError) as err:
        sets.run()
    where = sets.files["query_neighbours"]
    assert str(err.value) == f"{where} has 5 rows but {sets.files['query_prepared']} 6; delete {where} and rerun"


def test_neighbours_of_another_reference_are_refused_in_one_line(tmp_path):
    sets = bad_input_sets(tmp_path)
    indices = np.tile(np.arange(8), (6, 1))
    indices[3, 2] = 120  # the reference has rows 0..119
    write_neighbours(sets.files["query_neighbours"], indices, np.ones((6, 8)))
    with pytest.raises(AtlasError) as err:
        sets.run()
    where = sets.files["query_neighbours"]
    assert str(err.value) == (
        f"{where} points at reference row 120 but {sets.files['reference_images']} has 120 images "
        f"(found for another reference sample); delete {where} and rerun"
    )
    indices[3, 2] = -1
    write_neighbours(sets.files["query_neighbours"], indices, np.ones((6, 8)))
    with pytest.raises(AtlasError, match=r"points at reference row -1 but "):
        sets.run()


def test_a_query_manifest_of_other_images_is_refused_in_one_line(tmp_path):
    sets = bad_input_sets(tmp_path)
    write_manifest(sets.files["query_manifest"], sets.query_paths[::-1], ["cat"] * 6)
    with pytest.raises(AtlasError) as err:
        sets.run()
    assert str(err.value) == (
        f"{sets.files['query_manifest']} lists other images than {sets.files['query_images']} (6 vs 6 rows); "
        f"delete {tmp_path / 'query' / 'sample'} and rerun"
    )


def test_more_neighbours_than_the_file_holds_are_refused_in_one_line(tmp_path):
    sets = bad_input_sets(tmp_path)
    with pytest.raises(AtlasError) as err:
        sets.run(neighbours=9)
    where = sets.files["query_neighbours"]
    assert str(err.value) == (
        f"9 nearest reference images asked for, but {where} holds 8 per query image; ask for at most 8, "
        f"or delete {where} and rerun to find more"
    )
    with pytest.raises(AtlasError, match=r"^neighbours is 0: ask for at least 1 nearest reference image$"):
        sets.run(neighbours=0)
    sets.run(neighbours=8)  # all it holds: fine


def test_other_mismatched_files_are_refused_in_one_line(tmp_path):
    sets = bad_input_sets(tmp_path)
    f = sets.files
    write_input(f["query_prepared"], np.zeros((6, DIM + 1)), {})
    with pytest.raises(AtlasError) as err:
        sets.run()
    assert str(err.value) == (
        f"{f['query_prepared']} has (7,) columns but {f['prepared']} (6,) (prepared with another fit); "
        f"delete {f['query_prepared']} and rerun"
    )
    write_input(f["query_prepared"], np.zeros((5, DIM)), {})
    with pytest.raises(AtlasError, match=rf"^{f['query_prepared']} has 5 rows but {f['query_images']} 6; delete "):
        sets.run()
    write_images(f["query_images"], [], [])
    write_manifest(f["query_manifest"], [], [])
    with pytest.raises(AtlasError, match=r"lists no images: the query set is empty; give it images or remove it$"):
        sets.run()
    write_neighbours(f["graph"], np.zeros((3, 2), dtype=np.int64), np.ones((3, 2)))
    with pytest.raises(AtlasError, match=rf"^{f['graph']} has 3 rows but {f['reference_images']} 120; delete "):
        sets.run()
