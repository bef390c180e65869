"""Clusters per feature set (Leiden on the k-NN graph), their table and names, the labelled maps and the
comparison of clusters across feature sets."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors

from conftest import TINY_IDS, write_clusters
from tsne_atlas import cluster_compare, cluster_map
from tsne_atlas import clusters as cl
from tsne_atlas.figure_style import plt
from tsne_atlas.files.clusters import (
    cluster_of_paths,
    read_assignments,
    read_cluster_table,
    read_summary,
    write_cluster_table,
)
from tsne_atlas.files.compare import read_cluster_contingency
from tsne_atlas.jobs import AtlasError


def blobs(sizes=(60, 45, 30), spread=0.3, dims=8, seed=0):
    """Gaussian groups far apart (centres 10 apart), with their true group per point."""
    rng = np.random.default_rng(seed)
    centres = 10 * np.eye(dims)[: len(sizes)]
    X = np.vstack([c + spread * rng.standard_normal((n, dims)) for c, n in zip(centres, sizes)])
    return X, np.repeat(np.arange(len(sizes)), sizes)


def knn(X, k):
    distances, indices = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    return indices[:, 1:], distances[:, 1:]


def test_the_graph_is_undirected_without_self_loops_or_repeats():
    indices = np.array([[1, 2], [0, 2], [0, 2]])  # image 2 lists itself
    edges = cl.neighbour_edges(indices, 2)
    assert edges.tolist() == [[0, 1], [0, 2], [1, 2]]
    assert cl.neighbour_edges(indices, 1).tolist() == [[0, 1], [0, 2]]
    with pytest.raises(ValueError, match="neighbours must be in 1..2"):
        cl.neighbour_edges(indices, 3)


def test_clusters_are_numbered_by_size_then_first_image():
    assert cl.by_size(np.array([7, 3, 3, 7, 9, 3])).tolist() == [1, 0, 0, 1, 2, 0]
    assert cl.by_size(np.array([5, 2, 2, 5])).tolist() == [0, 1, 1, 0]  # equal sizes: first image first


def test_leiden_finds_separated_groups_and_is_repeatable():
    X, truth = blobs()
    indices, _ = knn(X, 15)
    found = cl.leiden_clusters(indices, 15, 1.0, random_state=0)
    assert adjusted_rand_score(truth, found) == 1.0
    assert np.bincount(found).tolist() == [60, 45, 30]  # 0 is the largest
    again = cl.leiden_clusters(indices, 15, 1.0, random_state=0)
    assert found.tobytes() == again.tobytes()
    # A higher resolution splits the groups into more clusters.
    assert len(set(cl.leiden_clusters(indices, 15, 8.0, random_state=0))) > 3


@pytest.mark.parametrize("edge_block", [1, 7, 1000, 10**9])
def test_the_graph_handed_to_leiden_in_blocks_is_the_one_made_at_once_and_so_are_its_clusters(edge_block):
    """igraph gets the edges a block at a time (memory at 1,000,000 images): the same edges in the same
    order as the whole list at once, as the stage made it before, and so the same clusters, byte for byte."""
    import igraph
    import leidenalg

    X = np.random.default_rng(1).uniform(size=(300, 5))
    indices, _ = knn(X, 10)
    edges = cl.neighbour_edges(indices, 10)
    whole = igraph.Graph(n=len(indices), edges=edges.tolist())  # the stage's graph before the blocks
    blocked = cl.neighbour_graph(indices, 10, edge_block)
    assert blocked.vcount() == whole.vcount() and blocked.get_edgelist() == whole.get_edgelist()
    for seed in (0, 3):
        partition = leidenalg.find_partition(
            whole, leidenalg.RBConfigurationVertexPartition, resolution_parameter=1.0, seed=seed, n_iterations=-1
        )
        expected = cl.by_size(np.asarray(partition.membership))
        assert cl.leiden_clusters(indices, 10, 1.0, seed, edge_block).tobytes() == expected.tobytes()


def test_the_seed_reaches_leiden_and_fixes_its_result():
    """On points without structure Leiden's result depends on its seed: the same seed gives the same
    clusters every time, and some other seed gives others (so the seed is what fixes them)."""
    X = np.random.default_rng(0).uniform(size=(300, 5))
    indices, _ = knn(X, 10)
    first = cl.leiden_clusters(indices, 10, 1.0, random_state=3)
    assert all(cl.leiden_clusters(indices, 10, 1.0, random_state=3).tobytes() == first.tobytes() for _ in range(3))
    others = [cl.leiden_clusters(indices, 10, 1.0, random_state=seed) for seed in range(3)]
    assert any(o.tobytes() != first.tobytes() for o in others)


def test_agreement_with_labels_or_none_without_labels():
    labels = ["a"] * 5 + ["b"] * 5
    same = cl.label_agreement(np.array([0] * 5 + [1] * 5), labels, labelled=True)
    assert same["adjusted_rand_index"] == 1.0 and same["normalized_mutual_info"] == pytest.approx(1.0)
    mixed = cl.label_agreement(np.array([0, 1] * 5), labels, labelled=True)
    assert mixed["adjusted_rand_index"] < 0.1
    none = cl.label_agreement(np.zeros(10, int), labels, labelled=False)
    assert none["adjusted_rand_index"] is None and none["agreement"] == cl.NO_LABELS_AGREEMENT
    assert none["normalized_mutual_info"] is None and same["agreement"] == "with the labels"


def test_cluster_rows_name_size_purity_prediction_and_the_most_central_images():
    X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [30.0]])
    clusters = np.array([0, 0, 0, 1, 1, 2])
    paths = [f"{i}.png" for i in range(6)]
    labels = ["cat", "cat", "dog", "dog", "cow", "owl"]
    predicted = ["tabby", "tabby", "tabby", "boxer", "ox", "kite"]
    rows = cl.cluster_rows(X, clusters, paths, labels, True, predicted, examples=1)
    assert [r["size"] for r in rows] == [3, 2, 1]
    assert [r["name"] for r in rows] == ["cat", "cow / dog", "owl"]  # a tie under half: both, alphabetical
    assert rows[0]["purity"] == pytest.approx(2 / 3) and rows[0]["predicted_class"] == "tabby"
    assert [r["majority_label"] for r in rows] == ["cat", "cow", "owl"]
    assert rows[0]["representative"] == "1.png" and rows[0]["examples"] == ["0.png"]  # nearest the mean 1.0
    # Without labels the network's majority prediction names a cluster; without predictions its number.
    unlabelled = cl.cluster_rows(X, clusters, paths, ["?"] * 6, False, predicted, examples=1)
    assert [r["name"] for r in unlabelled] == ["tabby", "boxer", "kite"]
    assert unlabelled[0]["purity"] is None and unlabelled[0]["majority_label"] is None
    bare = cl.cluster_rows(X, clusters, paths, ["?"] * 6, False, None, examples=0)
    assert [r["name"] for r in bare] == ["cluster 0", "cluster 1", "cluster 2"] and bare[2]["examples"] == []


def test_cluster_table_round_trips_and_a_foreign_file_is_refused(tmp_path):
    X, truth = blobs((5, 4))
    rows = cl.cluster_rows(X, truth, [f"a, b/{i}.png" for i in range(9)], ["x"] * 9, False, None, examples=2)
    write_cluster_table(tmp_path / "table.csv", rows)
    read = read_cluster_table(tmp_path / "table.csv")
    assert [r["examples"] for r in read] == [r["examples"] for r in rows]
    assert read[0]["purity"] is None and read[0]["size"] == 5
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(AtlasError, match="other.csv: not a table with columns cluster, name"):
        read_cluster_table(tmp_path / "other.csv")


def test_a_path_without_a_cluster_is_refused_in_one_line(tmp_path):
    assignments, _ = write_clusters(tmp_path, ["a.png", "b.png"], ["x", "y"])
    assert cluster_of_paths(assignments, ["b.png", "a.png"]) == ([1, 0], {0: "x", 1: "y"})
    with pytest.raises(AtlasError, match=r"has no cluster for 1 image\(s\), e.g. c.png; delete it and rerun"):
        cluster_of_paths(assignments, ["a.png", "c.png"])


# --- names on the map ---


def test_names_are_placed_apart_inside_the_axes_even_when_anchors_crowd():
    rng = np.random.default_rng(0)
    # Twelve clusters whose anchors lie close together: the names must move apart.
    coords = np.vstack([rng.normal([i * 0.3, 0], 0.05, (20, 2)) for i in range(12)] + [[[-20, -10]]])
    clusters = np.append(np.repeat(np.arange(12), 20), [12])
    names = {i: f"class number {i}" for i in range(13)}
    fig, ax = plt.subplots(figsize=(6, 5), layout="constrained")
    cluster_map.draw_cluster_points(ax, coords, clusters, 12.0)
    fig.canvas.draw()
    notes = cluster_map.name_clusters(ax, coords, clusters, names)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [note.get_window_extent(renderer) for note in notes]
    assert len(boxes) == 12  # cluster 12 (1 of 241 images) is under MIN_NAME_SHARE: no name
    assert all(not a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    inside = ax.get_window_extent(renderer)
    assert all(inside.x0 <= b.x0 and b.x1 <= inside.x1 and inside.y0 <= b.y0 and b.y1 <= inside.y1 for b in boxes)
    assert sorted(note.get_text() for note in notes) == sorted(f"class number {i}" for i in range(12))
    plt.close(fig)


def test_shared_names_get_their_numbers_and_small_clusters_none():
    assert cluster_map.name_texts({0: "cat", 1: "dog", 2: "cat"}, [0, 1, 2]) == {
        0: "cat (#0)",
        1: "dog",
        2: "cat (#2)",
    }
    sizes = np.array([500, 6, 2, 492])
    assert cluster_map.named_clusters(sizes) == [0, 3, 1]  # 2 images of 1,000 is 0.2%: below 0.5%, no name
    assert len(cluster_map.named_clusters(np.full(100, 10))) == cluster_map.MAX_NAMES


def test_density_grid_peaks_where_the_points_are():
    rng = np.random.default_rng(0)
    # The bigger group at (0, 10), the smaller at (20, 0): a transposed grid would put the peak at (10, 0).
    coords = np.vstack([rng.normal([0, 10], 1, (400, 2)), rng.normal([20, 0], 1, (100, 2))])
    x, y, density = cluster_map.density_grid(coords)
    assert density.max() == 1.0 and density.shape == (len(y), len(x))
    peak = np.unravel_index(density.argmax(), density.shape)
    assert abs(x[peak[1]]) < 2 and abs(y[peak[0]] - 10) < 2
    assert density[np.abs(y - 5).argmin(), np.abs(x - 10).argmin()] < 0.01  # empty between the groups


# --- clusters across feature sets ---


def test_contingency_shows_a_split_and_a_merge_on_the_diagonal():
    reference = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    other = np.array([1, 1, 2, 2, 0, 0, 0, 0])  # reference 0 split into 1 and 2; 1 and 2 merged into 0
    counts = cluster_compare.contingency(reference, other)
    assert counts.tolist() == [[0, 2, 2], [2, 0, 0], [2, 0, 0]]
    assert cluster_compare.diagonal_order(counts).tolist() == [1, 2, 0]


def test_compare_clusters_writes_the_table_and_one_panel_per_other_set(tmp_path):
    paths = [f"{i}.png" for i in range(8)]
    sets = {"ref": ["a"] * 4 + ["b"] * 2 + ["c"] * 2, "split": ["a", "a", "z", "z", "b", "b", "c", "c"]}
    files = {name: write_clusters(tmp_path / name, paths, labels, name) for name, labels in sets.items()}
    table, png, svg = tmp_path / "clusters.csv", tmp_path / "clusters.png", tmp_path / "clusters.svg"
    panels = cluster_compare.compare_clusters(
        [files[n][0] for n in ("split", "ref")],
        [files[n][1] for n in ("split", "ref")],
        ["ref", "split"],
        "ref",
        str(table),
        str(png),
        str(svg),
        dpi=60,
    )
    assert [p["id"] for p in panels] == ["split"]
    cells = read_cluster_contingency(table)
    a_cells = [c for c in cells if c["reference_name"] == "a"]
    assert sorted((c["name"], c["images"], c["share_of_reference"]) for c in a_cells) == [
        ("a", 2, 0.5),
        ("z", 2, 0.5),
    ]
    assert png.stat().st_size > 0 and b"<svg" in svg.read_bytes()[:500]
    # A set clustered on another sample is refused in one line naming its file.
    other = write_clusters(tmp_path / "other", [*paths[:-1], "9.png"], sets["split"], "split")
    refused = (
        "other/clusters.csv lists other images than the reference set's clusters.csv; delete it and rerun the workflow"
    )
    with pytest.raises(AtlasError, match=refused):
        cluster_compare.compare_clusters(
            [other[0], files["ref"][0]],
            [other[1], files["ref"][1]],
            ["ref", "split"],
            "ref",
            *map(str, (table, png, svg)),
            60,
        )


# --- the workflow ---


@pytest.mark.workflow
def test_the_run_clusters_every_feature_set_and_draws_them(finished_run):
    workdir, _ = finished_run
    results = Path(workdir) / "results"
    for features_id in TINY_IDS:
        folder = results / "clusters" / features_id
        rows = read_assignments(folder / "clusters.csv")
        table = read_cluster_table(folder / "table.csv")
        summary = read_summary(folder / "summary.json")
        assert len(rows) == summary["n_images"] == 40
        assert sum(r["size"] for r in table) == 40 and len(table) == summary["n_clusters"] > 1
        assert [r["cluster"] for r in table] == list(range(len(table)))
        assert {r["cluster"] for r in rows} == set(range(len(table)))
        assert -1 <= summary["adjusted_rand_index"] <= 1 and summary["features"] == features_id
        sweep = (results / "metrics" / features_id / "sweep.csv").read_text().splitlines()
        assert "cluster_ari" in sweep[0].split(",") and f"{summary['adjusted_rand_index']}" in sweep[1]
        assert (results / "overview" / f"{features_id}.clusters.png").stat().st_size > 0
        maps = sorted((results / "scatter" / features_id).rglob("*.clusters.png"))
        assert len(maps) == 4  # 2 perplexities x 2 seeds
    cells = read_cluster_contingency(results / "compare" / "clusters.csv")
    assert {c["features"] for c in cells} == set(TINY_IDS[1:])
    assert sum(c["images"] for c in cells) == 40
    log = (results / "logs" / "clusters" / f"{TINY_IDS[0]}.log").read_text()
    assert "images in" in log and "Leiden" in log and json.loads((folder / "summary.json").read_text())


# --- the stage on real files ---


def stage_inputs(tmp_path, X, labels, predicted_top=None, classes=None):
    """The files find_clusters reads, as the workflow writes them: the prepared input, its k-NN graph, the
    sample's image list and manifest, and a features file (with top-1 predictions when given)."""
    from tsne_atlas.files.features import TOP_INDEX, TOP_PROBABILITY, write_features
    from tsne_atlas.files.manifest import write_images, write_manifest
    from tsne_atlas.files.map_inputs import write_input, write_neighbours

    paths = [f"{label}/{i:03d}.png" for i, label in enumerate(labels)]
    write_input(tmp_path / "input.h5", X, {"n_images": len(X)})
    write_neighbours(tmp_path / "graph.npz", *knn(X, 20))
    write_images(tmp_path / "images.csv", paths, [f"{i:064x}" for i in range(len(paths))])
    write_manifest(tmp_path / "manifest.csv", paths, labels)
    batch = {"n": X.astype(np.float32)}
    if predicted_top is not None:
        batch[TOP_INDEX] = np.asarray(predicted_top, np.int32)[:, None]
        batch[TOP_PROBABILITY] = np.ones((len(X), 1), np.float32)
    write_features(
        tmp_path / "features.h5",
        [batch],
        len(X),
        paths,
        {"weights_random": predicted_top is None},
        {"n": "n"},
        classes,
        "none: random weights",
    )
    return paths


def run_stage(tmp_path, neighbours=15):
    return cl.find_clusters(
        str(tmp_path / "input.h5"),
        str(tmp_path / "graph.npz"),
        str(tmp_path / "images.csv"),
        str(tmp_path / "manifest.csv"),
        str(tmp_path / "features.h5"),
        neighbours=neighbours,
        resolution=1.0,
        seed=0,
        examples=2,
        features_id="set",
        node="n",
        assignments=str(tmp_path / "clusters.csv"),
        table=str(tmp_path / "table.csv"),
        summary=str(tmp_path / "summary.json"),
    )


def test_the_stage_writes_clusters_table_and_summary_byte_identically_on_rerun(tmp_path):
    X, truth = blobs((30, 25, 20))
    labels = [["cat", "dog", "owl"][t] for t in truth]
    labels[0] = "dog"  # one wrong label: purity below 1, agreement below 1
    paths = stage_inputs(tmp_path, X, labels, predicted_top=truth, classes=["tabby", "boxer", "kite"])
    summary = run_stage(tmp_path, neighbours=50)  # more than the graph's 20: all 20 are used
    assert summary["neighbours"] == 20 and summary["n_clusters"] == 3 and summary["weights_random"] is False
    assert 0.9 < summary["adjusted_rand_index"] < 1.0 and summary["predictions"] == "stored"
    assert read_summary(tmp_path / "summary.json") == summary
    rows = read_assignments(tmp_path / "clusters.csv")
    assert [r["path"] for r in rows] == paths and [r["cluster"] for r in rows] == truth.tolist()
    table = read_cluster_table(tmp_path / "table.csv")
    assert [(r["name"], r["size"], r["predicted_class"]) for r in table] == [
        ("cat", 30, "tabby"),
        ("dog", 25, "boxer"),
        ("owl", 20, "kite"),
    ]
    assert table[0]["purity"] == round(29 / 30, 4) and len(table[0]["examples"]) == 2
    written = {name: (tmp_path / name).read_bytes() for name in ("clusters.csv", "table.csv", "summary.json")}
    run_stage(tmp_path, neighbours=50)
    assert {name: (tmp_path / name).read_bytes() for name in written} == written


def test_the_stage_refuses_a_prepared_input_of_another_sample(tmp_path):
    X, truth = blobs((15, 15))
    stage_inputs(tmp_path, X, [str(t) for t in truth])
    from tsne_atlas.files.map_inputs import write_input

    write_input(tmp_path / "input.h5", X[:-1], {})
    with pytest.raises(AtlasError, match=r"input.h5 has 29 rows but .*images.csv 30; delete .*input.h5 and rerun"):
        run_stage(tmp_path)


def test_many_sets_wrap_into_rows_of_four_heatmaps():
    panel = {"shares": np.eye(2), "row_names": ["a (0)", "b (1)"], "column_names": ["x (0)", "y (1)"], "ari": 1.0}
    fig = cluster_compare.plot_contingency([{**panel, "id": f"set{i}"} for i in range(5)], "ref")
    heatmaps = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title().split(":")[0] for ax in heatmaps] == [f"set{i}" for i in range(5)]
    fig.canvas.draw()
    rows = sorted({round(ax.get_position().y0, 3) for ax in heatmaps})
    assert len(rows) == 2 and sum(ax.get_position().y0 > (rows[0] + rows[1]) / 2 for ax in heatmaps) == 4
    # Row names on the first heatmap of each row only.
    assert [any(t.get_text() for t in ax.get_yticklabels()) for ax in heatmaps] == [True, False, False, False, True]
    plt.close(fig)
