"""The suspects' scores and tables computed a block of images at a time (suspects.BLOCK_ROWS, so that
1,000,000 images fit in a few GB) are the whole-graph computation's, bit for bit: compared here with a
frozen copy of the whole-array code the workflow ran before (``whole_*`` below, as it was), on planted
data, at block sizes from one row to more than N, array by array and as the CSV files' bytes."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from tsne_atlas import suspects as su
from tsne_atlas.files import suspects as sfile

# --- the whole-array code before the blocks (scripts/tsne_atlas/suspects.py as it was), frozen ---


def whole_label_disagreement(indices, distances, labels, k):
    labels = np.asarray(labels)
    indices, distances = np.asarray(indices), np.asarray(distances, dtype=np.float64)
    neighbour_labels = labels[indices[:, :k]]
    same = neighbour_labels == labels[:, None]
    weights = 1.0 / (distances[:, :k] + su.DISTANCE_EPS)
    counts = np.column_stack([(neighbour_labels == neighbour_labels[:, [j]]).sum(axis=1) for j in range(k)])
    majority = neighbour_labels[np.arange(len(labels)), counts.argmax(axis=1)]
    other_distance = np.where(same, np.inf, distances[:, :k]).min(axis=1)
    mean_distance = distances[:, :k].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        nearest_other = np.where(
            np.isinf(other_distance), np.inf, other_distance / np.maximum(mean_distance, su.DISTANCE_EPS)
        )
    return {
        "disagreement": (~same).sum(axis=1) / k,
        "majority": majority,
        "agreement_weighted": (weights * same).sum(axis=1) / weights.sum(axis=1),
        "nearest_other": nearest_other,
    }


def whole_graph_edges(indices):
    indices = np.asarray(indices, dtype=np.int64)
    n = len(indices)
    rows = np.repeat(np.arange(n, dtype=np.int64), indices.shape[1])
    cols = indices.ravel()
    low, high = np.minimum(rows, cols), np.maximum(rows, cols)
    keep = low != high
    keys = np.unique(low[keep] * n + high[keep])
    return np.column_stack(np.divmod(keys, n))


def whole_near_duplicate_pairs(X, indices, threshold):
    unit = su.unit_rows(X)
    edges = whole_graph_edges(indices)
    cosine = np.empty(len(edges))
    for start in range(0, len(edges), su.PAIR_CHUNK):
        chunk = edges[start : start + su.PAIR_CHUNK]
        cosine[start : start + su.PAIR_CHUNK] = np.einsum("ij,ij->i", unit[chunk[:, 0]], unit[chunk[:, 1]])
    cosine = np.clip(cosine, -1.0, 1.0)
    keep = cosine >= threshold
    edges, cosine = edges[keep], cosine[keep]
    order = np.lexsort((edges[:, 1], edges[:, 0], -cosine))
    return edges[order], cosine[order]


def whole_outlier_scores(distances, k):
    return np.asarray(distances, dtype=np.float64)[:, :k].mean(axis=1)


def whole_relative_outlier_scores(indices, distances, k):
    mean = whole_outlier_scores(distances, k)
    return mean / np.maximum(mean[np.asarray(indices)[:, :k]].mean(axis=1), su.DISTANCE_EPS)


def whole_wide_outlier_scores(indices, distances):
    return whole_relative_outlier_scores(indices, distances, np.asarray(indices).shape[1])


def whole_suspect_tables(X, indices, distances, labels, paths, hashes, neighbours, threshold, labelled):
    """The three tables as suspect_tables made them: every row, each scored over the whole graph."""
    k = neighbours
    classes, codes = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
    scores = whole_label_disagreement(indices, distances, codes, k)
    suspects = []
    for i in su.rank_suspects(scores["disagreement"], scores["agreement_weighted"], scores["nearest_other"]):
        if scores["disagreement"][i] == 0:
            continue
        suspects.append(
            {
                "rank": len(suspects) + 1,
                "path": paths[i],
                "label": labels[i],
                "disagreement": float(scores["disagreement"][i]),
                "majority_label": str(classes[scores["majority"][i]]),
                "agreement_weighted": float(scores["agreement_weighted"][i]),
                **su.neighbour_fields(i, indices, distances, labels, paths, k),
            }
        )
    exact = su.exact_duplicate_pairs(hashes)
    near, cosine = whole_near_duplicate_pairs(X, indices, threshold)
    listed = [("exact", i, j, 1.0) for i, j in exact]
    listed += [("near", int(i), int(j), float(c)) for (i, j), c in zip(near, cosine) if (i, j) not in set(exact)]
    duplicates = [
        {"kind": kind, "path_a": paths[i], "path_b": paths[j], "label_a": labels[i], "label_b": labels[j], "cosine": c}
        for kind, i, j, c in listed
    ]
    mean = whole_outlier_scores(distances, k)
    relative = whole_relative_outlier_scores(indices, distances, k)
    wide = whole_wide_outlier_scores(indices, distances)
    score = su.combined_outlier_scores(relative, wide)
    outliers = [
        {
            "rank": rank,
            "path": paths[i],
            "label": labels[i],
            "outlier_score": float(score[i]),
            "relative_distance": float(relative[i]),
            "wide_relative_distance": float(wide[i]),
            "mean_neighbour_distance": float(mean[i]),
            **su.neighbour_fields(i, indices, distances, labels, paths, k),
        }
        for rank, i in enumerate(su.rank_outliers(score), start=1)
    ]
    return (suspects if labelled else []), duplicates, outliers


# --- planted data ---


def planted(seed: int = 0, n: int = 400, width: int = 12):
    """Four overlapping classes in 6 dimensions with exact copies (one under another label), near copies,
    a zero row, far points and tied distances; (X, indices, distances, labels, paths, hashes)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    X = rng.normal(size=(n, 6)) + labels[:, None] * 1.5
    X[1] = X[0]  # an exact copy under its own label...
    X[3] = X[2]
    labels[3] = (labels[2] + 1) % 4  # ...and one under another label
    X[5] = X[4] + 1e-4  # near copies
    X[7] = X[6] * 1.0000001
    X[9] = 0.0  # a zero row: cosine 0 with everything
    X[10:13] += 25.0  # a small group far off
    X[13] = X[14]  # ties in distance
    X[15] = X[14]
    distances, indices = NearestNeighbors(n_neighbors=width + 1).fit(X).kneighbors(X)
    indices, distances = indices[:, 1:], distances[:, 1:]
    names = ["cat", "dog, big", 'say "hi"', "owl"]
    paths = [f"img/{i:04d}.png" for i in range(n)]
    hashes = [f"h{i}" for i in range(n)]
    hashes[1] = hashes[0]
    hashes[3] = hashes[2]
    return X, indices, distances, [names[c] for c in labels], paths, hashes


BLOCKS = [1, 7, 64, 399, 400, 5000]


def same_bytes(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("block_size", BLOCKS)
def test_blocked_scores_are_the_whole_graphs_bit_for_bit(block_size):
    X, indices, distances, labels, _, _ = planted()
    codes = np.unique(labels, return_inverse=True)[1]
    for k in (1, 5, indices.shape[1]):  # k below the graph's width reads a strided slice of each row
        whole = whole_label_disagreement(indices, distances, codes, k)
        blocked = su.label_disagreement(indices, distances, codes, k, block_size=block_size)
        assert set(blocked) == set(whole)
        for name in whole:
            assert same_bytes(blocked[name], whole[name]), (k, name)
        assert same_bytes(su.outlier_scores(distances, k, block_size), whole_outlier_scores(distances, k))
        assert same_bytes(
            su.relative_outlier_scores(indices, distances, k, block_size),
            whole_relative_outlier_scores(indices, distances, k),
        )
    assert same_bytes(
        su.wide_outlier_scores(indices, distances, block_size), whole_wide_outlier_scores(indices, distances)
    )
    for threshold in (-1.0, 0.5, 0.99, 1.0):
        pairs, cosine = su.near_duplicate_pairs(X, indices, threshold, block_size=block_size)
        whole_pairs, whole_cosine = whole_near_duplicate_pairs(X, indices, threshold)
        assert same_bytes(pairs, whole_pairs) and same_bytes(cosine, whole_cosine), threshold
    assert len(whole_near_duplicate_pairs(X, indices, -1.0)[0]) > len(X)  # every edge: many blocks' worth


@pytest.mark.parametrize("block_size", [1, 64, 5000])
@pytest.mark.parametrize("labelled", [True, False])
def test_blocked_tables_write_the_whole_graphs_files_byte_for_byte(tmp_path, block_size, labelled):
    """The CSV files of the first max_rows rows, as find_suspects writes them, from the blocked tables
    and from the whole-array ones; and the count the log gives is every suspect, not the listed ones."""
    X, indices, distances, labels, paths, hashes = planted(seed=1)
    max_rows = 50
    suspects, duplicates, outliers = whole_suspect_tables(
        X, indices, distances, labels, paths, hashes, 5, 0.99, labelled
    )
    tables = su.suspect_tables(
        X, indices, distances, labels, paths, hashes, 5, 0.99, labelled, max_rows=max_rows, block_size=block_size
    )
    assert len(outliers) > max_rows and len(tables.outliers) == max_rows
    assert len(suspects) > max_rows if labelled else suspects == tables.suspects == []
    assert tables.n_suspects == (len(suspects) if labelled else 0)
    assert any(row["kind"] == "exact" for row in duplicates) and any(row["kind"] == "near" for row in duplicates)
    for write, new, old in (
        (sfile.write_suspects, tables.suspects, suspects[:max_rows]),
        (sfile.write_duplicates, tables.duplicates, duplicates),
        (sfile.write_outliers, tables.outliers, outliers[:max_rows]),
    ):
        write(tmp_path / "new.csv", new)
        write(tmp_path / "old.csv", old)
        assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "old.csv").read_bytes(), write.__name__
    # Without a cap, every row, as before.
    uncapped = su.suspect_tables(
        X, indices, distances, labels, paths, hashes, 5, 0.99, labelled, max_rows=None, block_size=block_size
    )
    assert uncapped.suspects == suspects and uncapped.outliers == outliers


def test_the_find_suspects_stage_writes_the_whole_graphs_files(tmp_path):
    """The stage (default block size, a graph wider than suspects.neighbours) against the whole-array tables."""
    from tsne_atlas.files.manifest import write_images, write_manifest
    from tsne_atlas.files.map_inputs import write_input, write_neighbours

    X, indices, distances, labels, paths, hashes = planted(seed=2, n=300)
    write_input(tmp_path / "input.h5", X, {})
    write_neighbours(tmp_path / "k-12.npz", indices, distances)
    write_images(tmp_path / "images.csv", paths, hashes)
    write_manifest(tmp_path / "manifest.csv", paths, labels)
    out = {name: tmp_path / f"{name}.csv" for name in ("suspects", "duplicates", "outliers")}
    su.find_suspects(
        str(tmp_path / "input.h5"),
        str(tmp_path / "k-12.npz"),
        str(tmp_path / "images.csv"),
        str(tmp_path / "manifest.csv"),
        neighbours=10,
        near_duplicate_cosine=0.99,
        max_rows=40,
        **{name: str(path) for name, path in out.items()},
    )
    suspects, duplicates, outliers = whole_suspect_tables(X, indices, distances, labels, paths, hashes, 10, 0.99, True)
    for (name, path), write, rows in zip(
        out.items(),
        (sfile.write_suspects, sfile.write_duplicates, sfile.write_outliers),
        (suspects[:40], duplicates, outliers[:40]),
    ):
        write(tmp_path / "expected.csv", rows)
        assert path.read_bytes() == (tmp_path / "expected.csv").read_bytes(), name


def test_a_block_of_no_rows_is_refused():
    with pytest.raises(ValueError, match="block_size must be at least 1, got 0"):
        list(su.row_blocks(10, 0))


def test_find_suspects_refuses_in_one_line_before_reading_a_graph_too_large_for_the_job(tmp_path):
    """A graph whose header says 2,000,000,000 images x 150 neighbours (no data follows: nothing is read
    but the header) needs far more memory than any machine here has: find_suspects stops with one line
    naming itself, the need and the settings that lower it, before reading anything else."""
    import re
    import zipfile

    from tsne_atlas.files.map_inputs import graph_shape, write_input, write_neighbours
    from tsne_atlas.jobs import AtlasError
    from tsne_atlas.resources import suspects_need_bytes

    graph = tmp_path / "k-150.npz"
    with zipfile.ZipFile(graph, "w") as archive, archive.open("indices.npy", "w") as member:
        np.lib.format.write_array_header_1_0(
            member, {"descr": "<i8", "fortran_order": False, "shape": (2 * 10**9, 150)}
        )
    write_input(tmp_path / "input.h5", np.zeros((3, 50)), {})
    assert graph_shape(graph) == (2 * 10**9, 150)
    missing = {name: str(tmp_path / "missing" / name) for name in ("images", "manifest")}
    out = {name: str(tmp_path / f"{name}.csv") for name in ("suspects", "duplicates", "outliers")}
    with pytest.raises(AtlasError) as err:
        su.find_suspects(
            str(tmp_path / "input.h5"),
            str(graph),
            **missing,
            neighbours=10,
            near_duplicate_cosine=0.99,
            max_rows=10,
            **out,
        )
    need = suspects_need_bytes(2 * 10**9, 150, 50) / 2**30
    assert re.fullmatch(
        rf"find_suspects needs about {need:.1f} GiB for 2,000,000,000 images and a k-NN graph of 150 neighbours "
        rf"each \({re.escape(str(graph))}\), but only [0-9.]+ GiB is available here; lower graph.neighbours \(the "
        r"graph's width\) or sample.n_images",
        str(err.value),
    ), str(err.value)
    assert need > 4_000 and not any((tmp_path / f"{name}.csv").exists() for name in out)
    # The header of a real graph gives its shape; a file that is no graph is refused in one line.
    write_neighbours(tmp_path / "k-4.npz", np.zeros((7, 4), np.int64), np.ones((7, 4)))
    assert graph_shape(tmp_path / "k-4.npz") == (7, 4)
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(AtlasError, match=r"bad\.npz: not a complete neighbour graph .*; delete it and rerun$"):
        graph_shape(tmp_path / "bad.npz")
