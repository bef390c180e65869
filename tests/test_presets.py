"""The comparison presets, run for real on small versions of themselves: the layer comparison on the
demo images, and scikit-learn's digits through the precomputed-features path."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import REPO, snakemake

pytestmark = pytest.mark.workflow


def preset(name: str) -> dict:
    return yaml.safe_load((REPO / "presets" / f"{name}.yaml").read_text())


def test_layer_preset_compares_four_layers_and_a_random_baseline_end_to_end(tmp_path):
    config = preset("compare-layers")
    assert config["features"]["resnet18"]["nodes"] == ["layer2", "layer3", "layer4", "penultimate"]
    assert config["features"]["resnet18-random"]["weights"] == "none"
    ids = ["resnet18.layer2", "resnet18.layer3", "resnet18.layer4", "resnet18.penultimate", "resnet18-random"]
    # The preset on 40 images at one perplexity; weights 'none' stands for 'auto', which would try a download.
    small = {
        **config,
        "results": "results",
        "dataset": {"root": str(REPO / config["dataset"]["root"])},
        "sample": {"n_images": 40},
        "features": {**config["features"], "resnet18": {**config["features"]["resnet18"], "weights": "none"}},
        "extraction": {"batch_size": 20, "num_workers": 0},
        "tsne": {**config["tsne"], "perplexities": [5]},
        "scatter": {"dpi": 60},
        "mosaic": {"canvas_size": 300, "thumb_size": 24},
    }
    result = snakemake(tmp_path, config=small)
    assert result.returncode == 0, result.stderr[-4000:]
    out = tmp_path / "results"
    # One extraction per set: the four layers of resnet18 came from one forward pass.
    assert sorted(p.name for p in (out / "features").iterdir()) == ["resnet18-random.h5", "resnet18.h5"]
    for features_id in ids:
        assert (out / "scatter" / features_id / "tsne" / "perplexity-5_seed-0.png").exists(), features_id
    with open(out / "compare" / "cka.csv", newline="") as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["features", *ids]
    cka = np.array([[float(v) for v in row[1:]] for row in table[1:]])
    np.testing.assert_allclose(np.diag(cka), 1.0)
    np.testing.assert_allclose(cka, cka.T)
    # A ResNet's penultimate layer is layer4 averaged over space: what the extraction takes of layer4.
    assert cka[2, 3] == pytest.approx(1.0, abs=1e-6)
    # Other weights give other features: the random baseline is not the network's own layers.
    assert cka[3, 4] < 0.99
    with Image.open(out / "compare" / "sheet.png") as sheet:
        assert sheet.size[1] > sheet.size[0]  # five rows of one perplexity each
    meta = json.loads((out / "embeddings" / "resnet18.layer2" / "tsne" / "perplexity-5_seed-0.json").read_text())
    assert (meta["feature_set"], meta["node"], meta["graph_node"], meta["feature_dim"]) == (
        "resnet18",
        "layer2",
        "layer2",
        128,
    )


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
