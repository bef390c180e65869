"""The comparison presets, run for real on small versions of themselves: the layer comparison on the
demo images, and scikit-learn's digits through the precomputed-features path."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import REPO, snakemake
from tsne_atlas.files.compare import read_cka_table, read_compare_table
from tsne_atlas.layers_table import adjacent_vs_distant, layers, layers_table

pytestmark = pytest.mark.workflow


def preset(name: str) -> dict:
    return yaml.safe_load((REPO / "presets" / f"{name}.yaml").read_text())


COMPARE_OUTPUTS = ["cka.csv", "cka.png", "metrics.csv", "metrics.png", "metrics.svg", "sheet.pdf", "sheet.png"]


def test_layer_preset_compares_four_depths_of_a_trained_network_and_a_random_baseline_end_to_end(tmp_path):
    """The preset on 200 images (the docs' table has 500): EfficientNet-Lite0 with its packaged ImageNet
    weights at four depths beside the same nodes with random weights. Known results that hold with a
    margin on any 200 of the demo's images (20 random subsamples of the 500: the trained penultimate
    layer's feature-space 5-NN accuracy is 0.22-0.38 above blocks.0's and 0.10-0.26 above the random
    penultimate layer's): separability grows from the shallowest layer to the deepest, training makes
    the deepest layer separate the classes better than random weights, and linear CKA of adjacent
    layers is above that of distant ones (Kornblith et al. 2019)."""
    config = preset("compare-layers")
    nodes = ["blocks.0", "blocks.2", "blocks.4", "penultimate"]
    trained, random = config["features"]["efficientnet-lite0"], config["features"]["efficientnet-lite0-random"]
    assert trained == {"source": "timm", "arch": "tf_efficientnet_lite0", "weights": "auto", "nodes": nodes}
    assert random == {**trained, "weights": "none"}
    assert config["compare"]["reference"] == "efficientnet-lite0.penultimate"
    ids = [f"{name}.{node}" for name in config["features"] for node in nodes]
    small = {
        **config,
        "results": "results",
        "dataset": {"root": str(REPO / config["dataset"]["root"])},
        "sample": {"n_images": 200},
        "extraction": {"batch_size": 50, "num_workers": 0},
    }
    # The comparison's outputs alone (the maps and metrics they need; no per-set mosaics, suspects or explorer).
    result = snakemake(tmp_path, *(f"results/compare/{name}" for name in COMPARE_OUTPUTS), config=small)
    assert result.returncode == 0, result.stderr[-4000:]
    out = tmp_path / "results"
    # One extraction per set: the four nodes of each came from one forward pass.
    assert sorted(p.name for p in (out / "features").iterdir()) == [
        "efficientnet-lite0-random.h5",
        "efficientnet-lite0.h5",
    ]
    assert sorted(p.name for p in (out / "compare").iterdir()) == sorted(COMPARE_OUTPUTS)
    cka_ids, cka = read_cka_table(out / "compare" / "cka.csv")
    assert cka_ids == ids
    np.testing.assert_allclose(np.diag(cka), 1.0)
    np.testing.assert_allclose(cka, cka.T)
    table = {layer.feature_set: layer for layer in layers(read_compare_table(out / "compare" / "metrics.csv"), ids)}
    accuracy = {set_id: table[set_id].knn_features for set_id in ids}
    # Separability grows with depth in the trained network, and training is what makes the deepest layer separate.
    assert accuracy["efficientnet-lite0.penultimate"] > accuracy["efficientnet-lite0.blocks.0"] + 0.1, accuracy
    assert accuracy["efficientnet-lite0.penultimate"] > accuracy["efficientnet-lite0-random.penultimate"] + 0.05, (
        accuracy
    )
    # Adjacent layers are more alike than distant ones (the trained network's 4 x 4 block of the matrix).
    adjacent, distant = adjacent_vs_distant(cka[:4, :4])
    assert adjacent > distant + 0.1, (adjacent, distant)
    # The docs' table from this run: the layers in depth order, the trained network's CKA verdict.
    printed = layers_table(out / "compare" / "metrics.csv", out / "compare" / "cka.csv").splitlines()
    assert [line.split(" | ")[:2] for line in printed[2:10]] == [
        [f"| {name}", node] for name in config["features"] for node in nodes
    ]
    assert "CKA adjacent > distant: yes" in printed[11], printed[11]
    with Image.open(out / "compare" / "sheet.png") as sheet:
        assert sheet.size[1] > sheet.size[0]  # eight rows of one perplexity each
    meta = json.loads((out / "embeddings" / ids[0] / "tsne" / "perplexity-30_seed-0.json").read_text())
    assert (meta["feature_set"], meta["node"], meta["feature_dim"], meta["weights_random"]) == (
        "efficientnet-lite0",
        "blocks.0",
        16,
        False,
    )
    meta = json.loads((out / "embeddings" / ids[-1] / "tsne" / "perplexity-30_seed-0.json").read_text())
    assert (meta["feature_dim"], meta["weights_random"]) == (1280, True)


def test_digits_preset_reproduces_the_ten_digit_clusters_from_precomputed_pixels(tmp_path):
    """scikit-learn's 1,797 digits, written as images and a CSV of their 64 pixels, through the workflow
    as a precomputed feature set: t-SNE (scikit-learn's, as its example) puts each digit in its own
    cluster, as the familiar figure shows."""
    data = tmp_path / "digits"
    made = subprocess.run(
        [sys.executable, str(REPO / "tools" / "make_digits.py"), str(data)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "scripts")},
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    config = preset("digits")
    assert config["features"] == {"pixels": {"source": "precomputed", "path": "data/digits/features.csv"}}
    config = {
        **config,
        "results": "results",
        "dataset": {"root": str(data / "images")},
        "features": {"pixels": {"source": "precomputed", "path": str(data / "features.csv")}},
    }
    result = snakemake(tmp_path, config=config)
    assert result.returncode == 0, result.stderr[-4000:]
    out = tmp_path / "results"
    metrics = json.loads((out / "metrics" / "pixels" / "tsne" / "perplexity-30_seed-0.json").read_text())
    # Ten clusters: nearly every digit's 5 nearest neighbours on the map are the same digit.
    assert metrics["n_images"] == 1797 and metrics["knn_accuracy_2d"] > 0.95
    meta = json.loads((out / "embeddings" / "pixels" / "tsne" / "perplexity-30_seed-0.json").read_text())
    assert meta["implementation"] == "sklearn" and meta["feature_dim"] == 64 and not meta["weights_random"]
    assert meta["model"] == "precomputed features.csv"
    assert not (out / "weights").exists()  # nothing to resolve for a file of features
