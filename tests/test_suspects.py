"""Which images look wrong: label disagreement, duplicates and outliers on planted synthetic cases,
their CSV files, and their figure."""

import numpy as np
import pytest
from matplotlib import pyplot as plt
from PIL import Image
from sklearn.neighbors import NearestNeighbors

from tsne_atlas import suspects as su
from tsne_atlas import suspects_figure as sf
from tsne_atlas.files import suspects as sfile
from tsne_atlas.jobs import AtlasError


def knn_graph(X: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances) of X's k-NN graph, self excluded, nearest first (as openTSNE builds it)."""
    distances, indices = NearestNeighbors(n_neighbors=n_neighbors + 1).fit(X).kneighbors(X)
    return indices[:, 1:], distances[:, 1:]


def blobs(seed: int = 0, per_class: int = 40, dim: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated gaussian blobs, z-scored like the prepared input; labels 0, 1, 2."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 8, size=(3, dim))
    X = np.concatenate([rng.normal(c, 1.0, size=(per_class, dim)) for c in centres])
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, np.repeat([0, 1, 2], per_class)


def test_planted_wrong_labels_rank_first():
    X, labels = blobs()
    wrong = [5, 47, 100]
    noisy = labels.copy()
    noisy[wrong] = [1, 2, 0]
    indices, distances = knn_graph(X, 15)
    scores = su.label_disagreement(indices, distances, noisy, k=10)
    order = su.rank_suspects(scores["disagreement"], scores["agreement_weighted"], scores["nearest_other"])
    assert sorted(order[:3]) == wrong
    assert np.all(scores["disagreement"][wrong] == 1.0)
    assert np.all(scores["agreement_weighted"][wrong] == 0.0)
    assert list(scores["majority"][wrong]) == list(labels[wrong])  # the true class
    # Images with a right label are not suspect at all, apart from the wrong images' own neighbours.
    assert scores["disagreement"][order[3]] <= 0.2
    assert sorted(order) == list(range(len(X)))


def test_disagreement_majority_and_weights_by_hand():
    # Image 0 (label 0) with neighbours labelled 1, 0, 1, 0 at distances 0, 1, 2, 3 (k = 4 of K = 5).
    indices = np.array([[1, 2, 3, 4, 5]] + [[0, 1, 2, 3, 4]] * 5)
    distances = np.array([[0.0, 1.0, 2.0, 3.0, 9.0]] + [[1.0] * 5] * 5)
    labels = np.array([0, 1, 0, 1, 0, 1])
    scores = su.label_disagreement(indices, distances, labels, k=4)
    assert scores["disagreement"][0] == 0.5
    assert scores["majority"][0] == 1  # two each: label 1 has the nearer first occurrence
    # An exact duplicate in another class outweighs everything else.
    assert scores["agreement_weighted"][0] == pytest.approx(0.0, abs=1e-8)
    distances[0, 0] = 1.0  # weights 1, 1, 1/2, 1/3 over labels 1, 0, 1, 0
    agreement = su.label_disagreement(indices, distances, labels, k=4)["agreement_weighted"][0]
    assert agreement == pytest.approx((1 + 1 / 3) / (1 + 1 + 1 / 2 + 1 / 3))


def test_rank_suspects_by_weighted_disagreement_then_nearest_other_label_then_index():
    disagreement = np.array([0.5, 1.0, 0.5, 0.5, 0.0, 0.6])
    agreement = np.array([0.3, 0.9, 0.1, 0.3, 1.0, 2e-10])
    nearest_other = np.array([0.9, 0.8, 0.7, 0.9, np.inf, 0.0])
    # 5: weighted disagreement 1.0000 (to 4 decimals) ties with none; 2 (0.9), then 0 and 3 (0.7,
    # same nearest-other ratio: by index), 1 (0.1), 4.
    assert list(su.rank_suspects(disagreement, agreement, nearest_other)) == [5, 2, 0, 3, 1, 4]
    # Among images no neighbour agrees with, an identical copy under another label comes first.
    tie = su.rank_suspects(np.array([1.0, 0.6]), np.array([0.0, 3e-10]), np.array([0.8, 0.0]))
    assert list(tie) == [1, 0]


def test_scores_of_an_identical_copy_under_another_label():
    # Image 0 (label 0) has an identical copy (image 1, label 1) and three neighbours of its own label.
    indices = np.array([[1, 2, 3, 4]] + [[0, 2, 3, 4]] * 4)
    distances = np.array([[0.0, 5.0, 5.0, 5.0]] + [[5.0] * 4] * 4)
    scores = su.label_disagreement(indices, distances, np.array([0, 1, 0, 0, 0]), k=4)
    assert scores["disagreement"][0] == 0.25 and scores["nearest_other"][0] == 0.0
    assert scores["agreement_weighted"][0] == pytest.approx(0.0, abs=1e-8)
    # Image 1's neighbours all carry another label, the nearest at the mean distance; image 2's all share it.
    assert scores["nearest_other"][1] == pytest.approx(1.0) and np.isinf(scores["nearest_other"][2])


def test_k_beyond_the_graph_is_a_one_line_user_error():
    indices, distances = np.zeros((4, 3), dtype=int), np.ones((4, 3))
    for call in (
        lambda: su.label_disagreement(indices, distances, np.zeros(4, dtype=int), k=4),
        lambda: su.outlier_scores(distances, k=4),
    ):
        with pytest.raises(
            AtlasError, match=r"^k=4 nearest neighbours asked for, but the neighbour graph holds 3"
        ) as err:
            call()
        assert "\n" not in str(err.value)


def test_exact_duplicates_from_hashes():
    hashes = ["c", "a", "b", "a", "c", "a", "", ""]
    assert su.exact_duplicate_pairs(hashes) == [(0, 4), (1, 3), (1, 5), (3, 5)]
    assert su.exact_duplicate_pairs(["x", "y"]) == []


def test_a_near_copy_is_found_and_a_random_pair_is_not():
    # One centred gaussian cloud: random pairs point in unrelated directions (cosine about 0 +- 0.2).
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 20))
    copy = X[7] + rng.normal(0, 1e-3, size=X.shape[1])
    X = np.vstack([X, copy])  # image 120 is a near copy of image 7
    indices, _ = knn_graph(X, 10)
    pairs, cosine = su.near_duplicate_pairs(X, indices, threshold=0.98)
    assert [tuple(p) for p in pairs] == [(7, 120)]
    assert cosine[0] > 0.9999
    # A low threshold lists many pairs: sorted by cosine descending, each undirected edge once, i < j.
    pairs, cosine = su.near_duplicate_pairs(X, indices, threshold=-1.0)
    assert np.all(pairs[:, 0] < pairs[:, 1])
    assert len({tuple(p) for p in pairs}) == len(pairs)
    assert np.all(np.diff(cosine) <= 0)
    assert tuple(pairs[0]) == (7, 120)


@pytest.mark.parametrize("block_size", [1, 2, 3])
def test_near_duplicates_count_an_edge_found_from_both_ends_once(block_size):
    """Edge 0-1 is found from both ends, in other blocks when a block holds one or two rows."""
    indices = np.array([[1, 2], [0, 2], [1, 0]])
    X = np.array([[1.0, 0.0], [1.0, 0.1], [1.0, 0.2]])
    pairs, cosine = su.near_duplicate_pairs(X, indices, threshold=-1.0, block_size=block_size)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (0, 2), (1, 2)] and len(cosine) == 3


def test_near_duplicates_give_zero_rows_cosine_zero_and_sort_ties_by_pair():
    X = np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 1.0]])
    indices = np.array([[2, 1], [0, 2], [0, 1], [4, 1], [3, 1]])
    pairs, cosine = su.near_duplicate_pairs(X, indices, threshold=0.0)
    assert [tuple(p) for p in pairs] == [(0, 2), (3, 4), (0, 1), (1, 2), (1, 3), (1, 4)]
    assert cosine.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(AtlasError, match="not a cosine"):
        su.near_duplicate_pairs(X, indices, threshold=1.5)


def test_a_far_outlier_ranks_first():
    X, _ = blobs(seed=2)
    X = np.vstack([X[:60], X[60:61] + 40.0, X[61:]])  # image 60 moved far from every blob
    _, distances = knn_graph(X, 8)
    scores = su.outlier_scores(distances, k=5)
    assert scores.shape == (len(X),)
    assert su.rank_outliers(scores)[0] == 60
    assert scores[60] > 3 * np.sort(scores)[-2]
    assert list(su.rank_outliers(np.array([1.0, 3.0, 1.0, 3.0]))) == [1, 3, 0, 2]
    assert su.rank_outliers(su.relative_outlier_scores(*knn_graph(X, 8), k=5))[0] == 60


def test_relative_outlier_score_ranks_the_odd_image_not_the_spread_class():
    """A spread-out cluster (10 x the scale) holds no outlier; a point just off a tight cluster is one."""
    rng = np.random.default_rng(4)
    tight = rng.normal(0, 1, size=(50, 5))
    spread = rng.normal(100, 10, size=(50, 5))
    odd = np.full((1, 5), 6.0)  # about 13 from the tight cluster's centre
    X = np.vstack([tight, spread, odd])
    indices, distances = knn_graph(X, 8)
    plain = su.rank_outliers(su.outlier_scores(distances, k=5))
    relative = su.relative_outlier_scores(indices, distances, k=5)
    assert 50 <= plain[0] < 100  # the plain mean distance puts the spread cluster first...
    assert su.rank_outliers(relative)[0] == 100  # ...the relative one the odd image
    assert np.median(relative[50:100]) == pytest.approx(1.0, abs=0.2)


def odd_images_among_classes(seed: int = 0):
    """Five gaussian classes of 80 points in 10 dimensions, spreads 1, 1, 1, 1.5 and 3 (the last
    widely spread), a group of ten similar odd points (spread 0.3) 13 from class 0's centre and one
    isolated odd point 13 from class 1's: (X, rows of the spread class, rows of the group, row of the
    isolated point, median distance of a real point to its nearest real neighbour)."""
    rng = np.random.default_rng(seed)
    dim, spreads = 10, [1.0, 1.0, 1.0, 1.5, 3.0]
    centres = rng.normal(0, 10, size=(len(spreads), dim))
    real = np.vstack([rng.normal(c, s, size=(80, dim)) for c, s in zip(centres, spreads)])

    def away(centre):
        direction = rng.normal(size=dim)
        return centre + 13.0 * direction / np.linalg.norm(direction)

    group = away(centres[0]) + rng.normal(0, 0.3, size=(10, dim))
    X = np.vstack([real, group, away(centres[1])])
    nearest_real = knn_graph(real, 1)[1][:, 0]
    return X, np.arange(320, 400), np.arange(400, 410), 410, float(np.median(nearest_real))


def test_the_outlier_score_ranks_an_isolated_odd_image_and_a_group_of_ten_first_and_no_spread_class():
    """Both kinds of odd image, each about 4 times farther from every real point than real points are
    from their nearest neighbour, are the top 11 of the outlier score (a graph of K = 60, as t-SNE's
    perplexity 20 builds it; k = 10). The k-neighbour ratio alone ranks the isolated point first but no
    member of the group in its top 20: the group's members are each other's nearest neighbours. The
    whole spread-out class, which the plain mean distance puts first, does not flood the top either.
    It does, and the group drops out of the top 20, when a global distance (the mean distance to all K
    neighbours over its median) and the k-neighbour ratio are combined by their geometric mean."""
    X, spread, group, isolated, nearest_real = odd_images_among_classes()
    indices, distances = knn_graph(X, 60)
    planted = {*group.tolist(), isolated}
    far = np.linalg.norm(X[sorted(planted)][:, None] - X[None, :320], axis=2).min(axis=1)
    assert far.min() > 3.5 * nearest_real  # the setting the test claims: several times farther

    relative = su.relative_outlier_scores(indices, distances, k=10)
    wide = su.wide_outlier_scores(indices, distances)
    score = su.combined_outlier_scores(relative, wide)
    assert set(su.rank_outliers(score)[:11].tolist()) == planted
    assert np.sum(np.isin(su.rank_outliers(score)[:20], spread)) <= 5

    local_top = su.rank_outliers(relative)[:20]
    assert local_top[0] == isolated and not set(local_top.tolist()) & set(group.tolist())
    assert np.sum(np.isin(su.rank_outliers(su.outlier_scores(distances, k=10))[:20], spread)) >= 15
    width = distances.mean(axis=1)
    geometric_top = su.rank_outliers(np.sqrt(width / np.median(width) * relative))[:20]
    assert np.sum(np.isin(geometric_top, spread)) >= 15 and not set(geometric_top.tolist()) & set(group.tolist())


def test_the_wide_part_reads_every_column_of_the_graph_and_the_score_is_the_larger_part():
    # Mean distances over all three columns: 4 for image 0, 2 for the others.
    indices = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [2, 1, 0]])
    distances = np.array([[1.0, 2.0, 9.0], [1.0, 2.0, 3.0], [2.0, 1.0, 3.0], [3.0, 3.0, 0.0]])
    wide = su.wide_outlier_scores(indices, distances)
    np.testing.assert_allclose(wide, [4 / 2, 2 / (8 / 3), 2 / (8 / 3), 2 / (8 / 3)], rtol=1e-12)
    relative = su.relative_outlier_scores(indices, distances, k=1)  # first column over the first neighbour's
    np.testing.assert_allclose(relative, [1 / 1, 1 / 1, 2 / 1, 3 / 2], rtol=1e-12)
    # Image 0 is odd over the whole graph only, images 2 and 3 at k only: the score takes either.
    np.testing.assert_allclose(su.combined_outlier_scores(relative, wide), [2.0, 1.0, 2.0, 1.5], rtol=1e-12)
    rows = su.outlier_rows(indices, distances, list("abcd"), ["p0", "p1", "p2", "p3"], k=1, max_rows=None)
    assert [row["path"] for row in rows] == ["p0", "p2", "p3", "p1"]  # 2.0 and 2.0 tie: by index
    assert [(row["outlier_score"], row["relative_distance"]) for row in rows[:2]] == [(2.0, 1.0), (2.0, 2.0)]
    assert rows[0]["wide_relative_distance"] == pytest.approx(2.0) and rows[0]["mean_neighbour_distance"] == 1.0


def planted_tables(labelled: bool = True) -> tuple[su.SuspectTables, list[str]]:
    X, classes = blobs(seed=3, per_class=20)
    names = ['cat, "tabby"', "dog\nbig", "<b>html</b>"]
    labels = [names[c] for c in classes]
    labels[4] = names[1]  # a wrong label
    paths = [f"images/{i:03d}, x.png" for i in range(len(X))]
    hashes = [f"h{i}" for i in range(len(X))]
    hashes[30] = hashes[31]  # an exact duplicate pair (same file content)
    X[31] = X[30]  # features of the same content are the same
    indices, distances = knn_graph(X, 8)
    return su.suspect_tables(
        X,
        indices,
        distances,
        labels,
        paths,
        hashes,
        neighbours=5,
        near_duplicate_cosine=0.98,
        labelled=labelled,
        max_rows=None,
    ), paths


def test_suspect_tables_rank_the_planted_cases():
    tables, paths = planted_tables()
    assert tables.suspects_reason is None
    top = tables.suspects[0]
    assert (top["rank"], top["path"], top["label"], top["disagreement"]) == (1, paths[4], "dog\nbig", 1.0)
    assert top["majority_label"] == 'cat, "tabby"'
    assert len(top["neighbours"]) == len(top["neighbour_labels"]) == len(top["neighbour_distances"]) == 5
    assert all(row["disagreement"] > 0 for row in tables.suspects)
    assert [row["rank"] for row in tables.suspects] == list(range(1, len(tables.suspects) + 1))
    exact = [row for row in tables.duplicates if row["kind"] == "exact"]
    assert [(r["path_a"], r["path_b"], r["cosine"]) for r in exact] == [(paths[30], paths[31], 1.0)]
    assert tables.duplicates[0]["kind"] == "exact"
    # The exact pair has cosine 1 in X too, yet is not listed again as near.
    assert all({r["path_a"], r["path_b"]} != {paths[30], paths[31]} for r in tables.duplicates if r["kind"] == "near")
    assert len(tables.outliers) == len(paths)
    score = [row["outlier_score"] for row in tables.outliers]
    assert score == sorted(score, reverse=True)
    assert all(
        row["outlier_score"] == max(row["relative_distance"], row["wide_relative_distance"]) for row in tables.outliers
    )
    assert all(row["mean_neighbour_distance"] > 0 for row in tables.outliers)


def test_unlabelled_data_get_no_suspects_but_duplicates_and_outliers():
    tables, paths = planted_tables(labelled=False)
    assert tables.suspects == []
    assert tables.suspects_reason.startswith("no labels: ")
    assert tables.duplicates and len(tables.outliers) == len(paths)


def test_suspect_tables_are_deterministic():
    first, _ = planted_tables()
    second, _ = planted_tables()
    assert first == second


def test_csv_files_round_trip_user_text(tmp_path):
    tables, _ = planted_tables()
    tricky = 'a, "quoted"\nlabel <b>html</b>'
    tables.suspects[0]["label"] = tricky
    tables.duplicates[0]["label_b"] = tricky
    tables.outliers[0]["neighbour_labels"][0] = tricky
    for write, read, rows, name in (
        (sfile.write_suspects, sfile.read_suspects, tables.suspects, "suspects.csv"),
        (sfile.write_duplicates, sfile.read_duplicates, tables.duplicates, "duplicates.csv"),
        (sfile.write_outliers, sfile.read_outliers, tables.outliers, "outliers.csv"),
    ):
        write(tmp_path / name, rows)
        back = read(tmp_path / name)
        assert len(back) == len(rows)
        for original, got in zip(rows, back):
            assert set(got) == set(original)
            for key, value in original.items():
                if isinstance(value, float):
                    assert got[key] == round(value, 4), key
                elif key == "neighbour_distances":
                    assert got[key] == [round(v, 4) for v in value]
                else:
                    assert got[key] == value, key
    assert sfile.read_suspects(tmp_path / "suspects.csv")[0]["label"] == tricky
    assert sfile.read_duplicates(tmp_path / "duplicates.csv")[0]["label_b"] == tricky
    text = (tmp_path / "duplicates.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "kind,path_a,path_b,label_a,label_b,cosine"
    assert ",1.0000\n" in text.replace("\r\n", "\n")
    assert " | " in (tmp_path / "outliers.csv").read_text(encoding="utf-8")
    assert not list(tmp_path.glob(".tmp-*"))


def test_reading_a_foreign_table_names_the_file(tmp_path):
    (tmp_path / "suspects.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(AtlasError, match=r"suspects\.csv: not a table with columns rank, path"):
        sfile.read_suspects(tmp_path / "suspects.csv")


def tiny_images(root, count: int) -> list[str]:
    """``count`` small PNGs of different colours and shapes (some wide, some tall) under ``root``."""
    paths = []
    for i in range(count):
        size = (40, 24) if i % 3 == 0 else (24, 40) if i % 3 == 1 else (32, 32)
        name = f"img {i}, $x$.png"
        Image.new("RGB", size, ((37 * i) % 256, (91 * i) % 256, (151 * i) % 256)).save(root / name)
        paths.append(name)
    return paths


def test_figure_draws_rows_with_user_text_literally(tmp_path):
    paths = tiny_images(tmp_path, 8)
    long_label = "a_very_long_label_" * 6
    # "$\\q{$" is broken mathtext: drawing it as math would raise, so the test fails without parse_math=False.
    rows = [
        (paths[0], "$x$", "#1  disagreement 1.00", [(p, "$\\q{$", "distance 0.12") for p in paths[1:8]]),
        (paths[1], long_label, "#2  disagreement 0.80\nmajority: $x$", [(paths[2], "<b>html</b>", "cosine 0.991")]),
    ]
    png = tmp_path / "out" / "suspects.png"
    sf.draw_neighbour_rows(rows, tmp_path, png, title="$x$ suspects of a_b", thumb_size=48, note="RANDOM WEIGHTS")
    with Image.open(png) as image:
        width, height = image.size
    # Caption column plus 1 + 6 cells (the 7th neighbour is dropped) of about 60 px; two rows of about 90.
    assert 500 < width < 800 and 200 < height < 400
    first = png.read_bytes()
    sf.draw_neighbour_rows(rows, tmp_path, png, title="$x$ suspects of a_b", thumb_size=48, note="RANDOM WEIGHTS")
    assert png.read_bytes() == first  # byte-reproducible
    assert not list(png.parent.glob(".tmp-*"))


def test_figure_of_no_rows_says_why(tmp_path):
    figure = sf.draw_empty("suspects", su.NO_LABELS_REASON, None)
    assert [text.get_text() for text in figure.texts] == [
        "suspects",
        "no labels: label disagreement needs labelled images",
    ]
    plt.close(figure)
    png = tmp_path / "empty.png"
    sf.draw_neighbour_rows([], tmp_path, png, title="suspects", thumb_size=96, empty=su.NO_LABELS_REASON)
    with Image.open(png) as image:
        assert image.size == (700, 180)
    # The reason is drawn: another one gives other pixels.
    other = tmp_path / "other.png"
    sf.draw_neighbour_rows([], tmp_path, other, title="suspects", thumb_size=96, empty="nothing to show")
    with Image.open(png) as image, Image.open(other) as drawn:
        assert not np.array_equal(np.asarray(image), np.asarray(drawn))


def test_shorten_cuts_user_text_with_an_ellipsis():
    assert sf.shorten("dog\nbig", 20) == "dog big"
    assert sf.shorten("abcdefghij", 5) == "abcd…"
    assert sf.shorten("dir/sub/name.png", 9, keep_end=True) == "…name.png"


def test_figure_rows_from_the_tables(tmp_path):
    tables, _ = planted_tables()
    suspect = sf.suspect_figure_rows(tables.suspects)
    assert suspect[0][0] == tables.suspects[0]["path"]
    assert suspect[0][2].startswith("#1  disagreement 1.00")
    assert len(suspect[0][3]) == 5 and suspect[0][3][0][2].startswith("distance ")
    outlier = sf.outlier_figure_rows(tables.outliers)
    assert len(outlier) == sf.MAX_ROWS and outlier[0][2].startswith("#1  outlier score ")
    duplicate = sf.duplicate_figure_rows(
        [
            {"kind": "exact", "path_a": "a", "path_b": "b", "label_a": "x", "label_b": "y", "cosine": 1.0},
            {"kind": "exact", "path_a": "a", "path_b": "c", "label_a": "x", "label_b": "z", "cosine": 1.0},
            {"kind": "near", "path_a": "d", "path_b": "e", "label_a": "x", "label_b": "x", "cosine": 0.9912},
        ]
    )
    assert duplicate == [
        ("a", "x", "exact duplicate", [("b", "y", "same file"), ("c", "z", "same file")]),
        ("d", "x", "near-duplicate", [("e", "x", "cosine 0.991")]),
    ]


def test_find_suspects_stage_writes_three_tables_and_uses_the_neighbours_there_are(tmp_path, caplog):
    from tsne_atlas.files.manifest import write_images, write_manifest
    from tsne_atlas.files.map_inputs import write_input, write_neighbours
    from tsne_atlas.files.suspects import read_duplicates, read_outliers, read_suspects

    X, labels = blobs()
    paths = [f"img/{i:03d}.png" for i in range(len(X))]
    names = ["abc"[k] for k in labels]
    names[7] = "c"  # one wrong label
    hashes = [f"h{i}" for i in range(len(X))]
    hashes[9] = hashes[8]  # one identical file
    indices, distances = knn_graph(X, 6)
    write_input(tmp_path / "input.h5", X, {})
    write_neighbours(tmp_path / "k-6.npz", indices, distances)
    write_images(tmp_path / "images.csv", paths, hashes)
    write_manifest(tmp_path / "manifest.csv", paths, names)
    caplog.set_level("WARNING", logger="tsne_atlas.suspects")
    out = {name: str(tmp_path / f"{name}.csv") for name in ("suspects", "duplicates", "outliers")}
    inputs = {"prepared": str(tmp_path / "input.h5"), "graph": str(tmp_path / "k-6.npz")}
    su.find_suspects(
        **inputs,
        images=str(tmp_path / "images.csv"),
        manifest=str(tmp_path / "manifest.csv"),
        neighbours=10,
        near_duplicate_cosine=0.999,
        max_rows=5,
        **out,
    )
    assert "suspects.neighbours is 10 but" in caplog.text and "holds 6 neighbours per image; using 6" in caplog.text
    suspects = read_suspects(out["suspects"])
    assert suspects[0]["path"] == "img/007.png" and len(suspects[0]["neighbours"]) == 6 and len(suspects) <= 5
    assert ("exact", "img/008.png", "img/009.png") in {
        (r["kind"], r["path_a"], r["path_b"]) for r in read_duplicates(out["duplicates"])
    }
    assert len(read_outliers(out["outliers"])) == 5  # max_rows


# --- edge cases the mutation run (docs/development.md, "Mutation testing") found untested ---


def test_a_graph_that_does_not_fit_the_points_is_a_programming_error():
    indices, distances = np.zeros((4, 3), dtype=np.int64), np.ones((4, 3))
    su.check_graph(indices, distances, 4)  # fits
    for bad_indices, bad_distances, n_points in (
        (indices[:, 0], distances[:, 0], 4),  # not N x K
        (indices, distances[:, :2], 4),  # shapes differ
        (indices, distances, 5),  # other N
    ):
        with pytest.raises(ValueError, match=r"^neighbour graph of shape .* does not fit \d points$"):
            su.check_graph(bad_indices, bad_distances, n_points)
    with pytest.raises(ValueError, match=r"^neighbour graph of 4 rows does not fit X of 5 rows$"):
        su.near_duplicate_pairs(np.ones((5, 2)), indices, threshold=0.5)


def test_k_from_one_to_the_graphs_width_is_accepted():
    su.check_k(1, 3)
    su.check_k(3, 3)
    for k in (0, 4):
        with pytest.raises(AtlasError, match=rf"^k={k} nearest neighbours asked for, .* use a k from 1 to 3 "):
            su.check_k(k, 3)


def test_near_duplicate_thresholds_of_exactly_minus_one_and_one_are_cosines():
    X = np.array([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0]])
    indices = np.array([[1, 2], [0, 2], [0, 1]])
    pairs, cosine = su.near_duplicate_pairs(X, indices, threshold=1.0)
    assert [tuple(p) for p in pairs] == [(0, 1)] and cosine.tolist() == [1.0]
    pairs, cosine = su.near_duplicate_pairs(X, indices, threshold=-1.0)
    assert [tuple(p) for p in pairs] == [(0, 1), (0, 2), (1, 2)] and cosine.tolist() == [1.0, -1.0, -1.0]
    for threshold in (-1.001, 1.001):
        with pytest.raises(AtlasError, match=rf"^near-duplicate threshold {threshold} is not a cosine"):
            su.near_duplicate_pairs(X, indices, threshold=threshold)


def test_near_duplicates_on_a_graph_of_more_edges_than_one_chunk():
    """The cosine of every edge, computed PAIR_CHUNK edges at a time: the same as all at once."""
    rng = np.random.default_rng(13)
    n, k = 7_000, 12
    X = rng.normal(size=(n, 4))
    indices = (np.arange(n)[:, None] + np.arange(1, k + 1)[None, :]) % n  # a ring: n * k distinct edges
    assert n * k > su.PAIR_CHUNK
    pairs, cosine = su.near_duplicate_pairs(X, indices, threshold=-1.0)
    assert len(pairs) == n * k
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    np.testing.assert_allclose(cosine, np.sum(unit[pairs[:, 0]] * unit[pairs[:, 1]], axis=1), atol=1e-12)


def test_find_suspects_stage_logs_what_it_found_and_refuses_a_sample_of_other_length(tmp_path, caplog):
    from tsne_atlas.files.manifest import write_images, write_manifest
    from tsne_atlas.files.map_inputs import write_input, write_neighbours

    X, labels = blobs()
    X[11] = X[10] + 1e-3  # near copies: cosine above 0.999, below 1
    X[13] = X[12] + 1e-3
    paths = [f"img/{i:03d}.png" for i in range(len(X))]
    names = ["abc"[k] for k in labels]
    names[7] = "c"
    hashes = [f"h{i}" for i in range(len(X))]
    hashes[9] = hashes[8]
    write_input(tmp_path / "input.h5", X, {})
    write_neighbours(tmp_path / "k-6.npz", *knn_graph(X, 6))
    write_images(tmp_path / "images.csv", paths, hashes)
    write_manifest(tmp_path / "manifest.csv", paths, names)
    out = {name: str(tmp_path / f"{name}.csv") for name in ("suspects", "duplicates", "outliers")}
    stage = {
        "prepared": str(tmp_path / "input.h5"),
        "graph": str(tmp_path / "k-6.npz"),
        "images": str(tmp_path / "images.csv"),
        "manifest": str(tmp_path / "manifest.csv"),
        "near_duplicate_cosine": 0.999,
        "max_rows": 5,
        **out,
    }
    with caplog.at_level("INFO", logger="tsne_atlas.suspects"):
        tables = su.find_suspects(neighbours=6, **stage)  # k = the graph's width: used as it is, no warning
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert ("near", "img/010.png", "img/011.png") in {(r["kind"], r["path_a"], r["path_b"]) for r in tables.duplicates}
    assert tables.suspects and tables.suspects_reason is None
    near = sum(row["kind"] == "near" for row in tables.duplicates)
    assert near >= 2  # other than the one exact pair, so the two counts cannot be swapped unnoticed
    assert len(tables.suspects) == 5 < tables.n_suspects  # max_rows lists the first; the log counts them all
    assert caplog.records[0].getMessage() == (
        f"120 images: {tables.n_suspects} with a label some of their 6 neighbours do not share; 1 exact and "
        f"{near} near-duplicate pairs (cosine >= 0.999); outliers by relative distance to 6 "
        "and to all 6 neighbours"
    )
    caplog.clear()
    with caplog.at_level("INFO", logger="tsne_atlas.suspects"):
        su.find_suspects(neighbours=9, **stage)
    assert caplog.records[0].getMessage() == (
        f"suspects.neighbours is 9 but {tmp_path / 'k-6.npz'} holds 6 neighbours per image; using 6"
    )
    write_manifest(tmp_path / "manifest.csv", paths, ["unlabelled"] * len(paths))
    caplog.clear()
    with caplog.at_level("INFO", logger="tsne_atlas.suspects"):
        tables = su.find_suspects(neighbours=6, **stage)
    assert tables.suspects == [] and tables.suspects_reason == su.NO_LABELS_REASON
    assert caplog.records[0].getMessage().startswith(f"120 images: {su.NO_LABELS_REASON}; 1 exact and ")
    write_manifest(tmp_path / "manifest.csv", paths[::-1], names[::-1])
    with pytest.raises(
        AtlasError, match=rf"^{tmp_path / 'manifest.csv'} lists other images than {tmp_path / 'images.csv'} "
    ):
        su.find_suspects(neighbours=6, **stage)
    write_images(tmp_path / "images.csv", paths[:-1], hashes[:-1])
    with pytest.raises(AtlasError) as err:
        su.find_suspects(neighbours=6, **stage)
    assert str(err.value) == (
        f"{tmp_path / 'input.h5'} has 120 rows but {tmp_path / 'images.csv'} 119; delete {tmp_path / 'input.h5'} "
        "and rerun"
    )


def test_suspect_rows_put_an_identical_copy_under_another_label_first_among_equals():
    """Two images no neighbour agrees with: the one at distance 0 from another label's image ranks first
    (``nearest_other``), though it comes later in the sample; images whose neighbours all agree are left out."""
    labels = ["a", "a", "b", "b", "b", "b"]
    paths = [f"{label}/{i}.png" for i, label in enumerate(labels)]
    indices = np.array([[2, 3], [4, 5], [3, 4], [2, 4], [5, 2], [4, 3]])
    distances = np.array([[1.0, 1.0], [0.0, 2.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    rows = su.suspect_rows(indices, distances, labels, paths, k=2, max_rows=None)
    assert [row["path"] for row in rows] == ["a/1.png", "a/0.png"]
    assert [row["rank"] for row in rows] == [1, 2] and rows[0]["majority_label"] == "b"


def test_suspect_tables_take_labels_by_default_use_k_of_a_wider_graph_and_check_row_counts():
    X, labels = blobs(per_class=10)
    labels = ["abc"[k] for k in labels]
    labels[3] = "b"
    paths = [f"img/{i:02d}.png" for i in range(len(X))]
    hashes = [f"h{i}" for i in range(len(X))]
    indices, distances = knn_graph(X, 8)
    tables = su.suspect_tables(
        X, indices, distances, labels, paths, hashes, neighbours=4, near_duplicate_cosine=0.99, max_rows=None
    )
    assert tables.suspects_reason is None and tables.suspects[0]["path"] == "img/03.png"
    for row in [*tables.suspects, *tables.outliers]:
        assert len(row["neighbours"]) == len(row["neighbour_labels"]) == len(row["neighbour_distances"]) == 4
    with pytest.raises(ValueError, match=r"^30 labels, 30 paths, 29 hashes for 30 rows of X$"):
        su.suspect_tables(
            X, indices, distances, labels, paths, hashes[:-1], neighbours=4, near_duplicate_cosine=0.99, max_rows=None
        )


def test_rank_suspects_without_nearest_other_ranks_by_weighted_then_plain_disagreement_then_index():
    disagreement = np.array([0.5, 1.0, 0.5, 0.75])
    agreement = np.array([0.3, 0.3, 0.1, 0.3])
    assert list(su.rank_suspects(disagreement, agreement)) == [2, 1, 3, 0]
    # Weighted disagreement is compared to 4 decimals: 0.99999 and 1.0 tie, and nearest_other decides.
    assert list(su.rank_suspects(np.array([1.0, 1.0]), np.array([1e-5, 0.0]), np.array([0.0, 0.5]))) == [0, 1]


def test_majority_is_the_most_common_label_not_the_nearest_and_self_edges_are_no_pairs():
    # Neighbours labelled 2, 1, 1 / 0, 0, 9 / 1, 3, 1: each row's majority sits at other columns.
    labels = np.array([9, 2, 1, 1, 0, 0, 3])
    indices = np.array([[1, 2, 3], [4, 5, 0], [3, 6, 2]] + [[0, 1, 2]] * 4)
    distances = np.array([[1.0, 2.0, 3.0]] * 7)
    scores = su.label_disagreement(indices, distances, labels, k=3)
    assert scores["majority"][:3].tolist() == [1, 0, 1]
    pairs, _ = su.near_duplicate_pairs(np.ones((2, 2)), np.array([[0, 1], [1, 0]]), threshold=-1.0)
    assert pairs.tolist() == [[0, 1]]  # a self edge is dropped


def test_suspect_tables_keep_empty_lists_and_carriage_returns_and_an_empty_file_is_one_line(tmp_path):
    """files/suspects.py's CSV round trip on the edge cases: an image without neighbours (empty lists), a
    label holding a carriage return, and an empty file (mutation testing of parse_cell and read_table)."""
    row = {
        "rank": 1,
        "path": "a.png",
        "label": "cat\rdog",
        "outlier_score": 2.5,
        "relative_distance": 1.23456,
        "wide_relative_distance": 2.5,
        "mean_neighbour_distance": 0.5,
        "neighbours": [],
        "neighbour_labels": [],
        "neighbour_distances": [],
    }
    sfile.write_outliers(tmp_path / "outliers.csv", [row])
    assert sfile.read_outliers(tmp_path / "outliers.csv") == [{**row, "relative_distance": 1.2346}]
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(AtlasError) as error:
        sfile.read_duplicates(tmp_path / "empty.csv")
    expected = f"{tmp_path / 'empty.csv'}: not a table with columns kind, path_a, path_b, label_a, label_b, cosine; delete it and rerun"
    assert str(error.value) == expected
