"""The layer table of a finished comparison (tsne_atlas.layers_table, tools/layers_table.py), on
metrics.csv and cka.csv written by the workflow's own writers (files/compare.py)."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from tsne_atlas import layers_table as lt
from tsne_atlas.files.compare import read_cka_table, read_compare_table, write_cka_table, write_compare_table
from tsne_atlas.jobs import AtlasError

# Two networks of three layers (one node name with a dot, as timm's are), in depth order.
IDS = ["net.a", "net.blocks.1", "net.head", "rnd.a", "rnd.blocks.1", "rnd.head"]
FEATURES = {"net.a": 0.5, "net.blocks.1": 0.7, "net.head": 0.9, "rnd.a": 0.6, "rnd.blocks.1": 0.4, "rnd.head": 0.4}
# Per set, t-SNE's 2-D accuracy at perplexities 10 and 30.
TWO_D = {
    "net.a": (0.4, 0.5),
    "net.blocks.1": (0.6, 0.6),
    "net.head": (0.8, 1.0),
    "rnd.a": (0.5, 0.5),
    "rnd.blocks.1": (0.5, 0.5),
    "rnd.head": (0.5, 0.5),
}
CKA = np.array(
    [
        [1.0, 0.8, 0.3, 0.1, 0.1, 0.1],
        [0.8, 1.0, 0.6, 0.1, 0.1, 0.1],
        [0.3, 0.6, 1.0, 0.1, 0.1, 0.1],
        [0.1, 0.1, 0.1, 1.0, 0.5, 0.9],
        [0.1, 0.1, 0.1, 0.5, 1.0, 0.6],
        [0.1, 0.1, 0.1, 0.9, 0.6, 1.0],
    ]
)


def metrics_rows(ids=IDS):
    return [
        {
            "features": set_id,
            "method": "tsne",
            "perplexity": float(perplexity),
            "seed": 0,
            "knn_accuracy_2d": accuracy,
            "knn_accuracy_features": FEATURES[set_id],
            "trustworthiness": 0.9,
        }
        for set_id in ids
        for perplexity, accuracy in zip((10, 30), TWO_D[set_id])
    ]


def write_run(folder, rows=None, ids=IDS, cka=CKA):
    compare = folder / "compare"
    compare.mkdir(parents=True)
    write_compare_table(metrics_rows(ids) if rows is None else rows, ids, compare / "metrics.csv")
    write_cka_table(ids, cka, compare / "cka.csv")
    return compare


def test_the_table_gives_each_layer_in_depth_order_with_its_accuracies_and_cka_and_a_verdict_per_network(tmp_path):
    compare = write_run(tmp_path)
    text = lt.layers_table(compare / "metrics.csv", compare / "cka.csv")
    assert text.splitlines() == [
        "| network | layer | k-NN acc., features | k-NN acc., 2-D t-SNE | CKA to next deeper layer | CKA to deepest layer |",
        "|---|---|---|---|---|---|",
        "| net | a | 0.500 | 0.450 | 0.80 | 0.30 |",
        "| net | blocks.1 | 0.700 | 0.600 | 0.60 | 0.60 |",
        "| net | head | 0.900 | 0.900 | – | – |",
        "| rnd | a | 0.600 | 0.500 | 0.50 | 0.90 |",
        "| rnd | blocks.1 | 0.400 | 0.500 | 0.60 | 0.60 |",
        "| rnd | head | 0.400 | 0.500 | – | – |",
        "",
        "- **net**: separability rises with depth: features yes; 2-D t-SNE yes. "
        "CKA adjacent > distant: yes (adjacent 0.70, two or more apart 0.30).",
        "- **rnd**: separability rises with depth: features no (falls a → blocks.1); 2-D t-SNE no (deepest not "
        "above shallowest). CKA adjacent > distant: no (adjacent 0.55, two or more apart 0.90).",
        "",
        "2-D: the mean over each layer's runs (t-SNE: perplexity 10, 30; seed 0).",
    ]


def test_layers_follow_the_cka_tables_order_not_the_metrics_rows_order(tmp_path):
    """The depth order is the config's, as cka.csv has it; metrics.csv's row order does not matter."""
    rows = metrics_rows()[::-1]
    compare = write_run(tmp_path, rows=rows)
    table = lt.layers(read_compare_table(compare / "metrics.csv")[::-1], IDS)
    assert [(layer.network, layer.layer) for layer in table] == [lt.split_id(i) for i in IDS]
    assert [layer.knn_features for layer in table] == [FEATURES[i] for i in IDS]
    assert table[0].knn_2d == {"tsne": pytest.approx(0.45)}


def test_separability_rises_only_without_a_fall_and_with_the_deepest_above_the_shallowest():
    names = ["a", "b", "c"]
    assert lt.rises([0.1, 0.1, 0.2], names) == "yes"
    assert lt.rises([0.1, 0.3, 0.2], names) == "no (falls b → c)"
    assert lt.rises([0.3, 0.1, 0.2, 0.1], [*names, "d"]) == "no (falls a → b, c → d)"
    assert lt.rises([0.2, 0.2, 0.2], names) == "no (deepest not above shallowest)"
    assert lt.rises([0.2], ["a"]) == "n/a"
    assert lt.rises([0.2, None], ["a", "b"]) == "n/a"


def test_adjacent_and_distant_cka_are_means_over_pairs_one_apart_and_two_or_more_apart():
    cka = np.array([[1, 0.9, 0.5, 0.1], [0.9, 1, 0.7, 0.3], [0.5, 0.7, 1, 0.8], [0.1, 0.3, 0.8, 1]])
    adjacent, distant = lt.adjacent_vs_distant(cka)
    assert adjacent == pytest.approx((0.9 + 0.7 + 0.8) / 3)
    assert distant == pytest.approx((0.5 + 0.1 + 0.3) / 3)
    assert lt.adjacent_vs_distant(cka[:2, :2]) is None


def test_a_set_without_a_node_is_a_network_of_one_layer_and_unlabelled_images_show_dashes(tmp_path):
    ids = ["pixels", "net.a", "net.b"]
    rows = [
        {"features": i, "method": "pca", "components": 2, "knn_accuracy_2d": None, "knn_accuracy_features": None}
        for i in ids
    ]
    cka = np.array([[1.0, 0.2, 0.3], [0.2, 1.0, 0.7], [0.3, 0.7, 1.0]])
    compare = write_run(tmp_path, rows=rows, ids=ids, cka=cka)
    lines = lt.layers_table(compare / "metrics.csv", compare / "cka.csv").splitlines()
    assert lines[2:5] == [
        "| pixels | – | – | – | – | – |",
        "| net | a | – | – | 0.70 | 0.70 |",
        "| net | b | – | – | – | – |",
    ]
    assert lines[6] == (
        "- **pixels**: separability rises with depth: features n/a; 2-D PCA n/a. "
        "CKA adjacent > distant: n/a (fewer than three layers)."
    )
    assert lines[-1] == "2-D: the mean over each layer's runs (PCA: one run)."


def test_the_readers_give_back_what_the_writers_wrote(tmp_path):
    compare = write_run(tmp_path)
    ids, matrix = read_cka_table(compare / "cka.csv")
    assert ids == IDS
    np.testing.assert_array_equal(matrix, CKA)
    rows = read_compare_table(compare / "metrics.csv")
    assert len(rows) == 12 and rows[0]["features"] == "net.a" and rows[0]["knn_accuracy_2d"] == "0.4"
    assert rows[0]["kl_divergence"] is None  # written n/a


def test_bad_or_missing_tables_are_one_line_naming_the_file(tmp_path):
    compare = write_run(tmp_path)
    with pytest.raises(AtlasError, match=r"^\S+/compare/absent\.csv: no such file; is this a finished run"):
        read_compare_table(compare / "absent.csv")
    (compare / "cka.csv").write_text("features,a\nb,1.0\n")
    with pytest.raises(AtlasError, match=r"^\S+/cka\.csv: not a CKA matrix"):
        read_cka_table(compare / "cka.csv")
    (compare / "cka.csv").write_text("features,a\na,one\n")
    with pytest.raises(AtlasError, match=r"^\S+/cka\.csv: a CKA value is not a number"):
        read_cka_table(compare / "cka.csv")
    (compare / "metrics.csv").write_text("features,method\na,tsne\n")
    with pytest.raises(AtlasError, match=r"^\S+/metrics\.csv: columns \['features', 'method'\] are not those"):
        read_compare_table(compare / "metrics.csv")
    (compare / "metrics.csv").write_text("")
    with pytest.raises(AtlasError, match=r"^\S+/metrics\.csv: empty"):
        read_compare_table(compare / "metrics.csv")
    with pytest.raises(AtlasError, match=r"^compare/metrics\.csv has feature sets \['net\.a'\], compare/cka\.csv"):
        lt.layers(metrics_rows(["net.a"]), IDS)


def test_the_tool_prints_the_table_and_a_missing_run_is_one_line_on_stderr(tmp_path):
    write_run(tmp_path / "results")
    tool = [sys.executable, str(REPO / "tools" / "layers_table.py")]
    env = {"PYTHONPATH": str(REPO / "scripts")}
    done = subprocess.run([*tool, str(tmp_path / "results")], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    compare = tmp_path / "results" / "compare"
    assert done.stdout == lt.layers_table(compare / "metrics.csv", compare / "cka.csv")
    missing = subprocess.run([*tool, str(tmp_path / "none")], capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.startswith("tsne-atlas: ") and missing.stderr.count("\n") == 1
    usage = subprocess.run(tool, capture_output=True, text=True, env=env, timeout=60)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: tools/layers_table.py RESULTS")
