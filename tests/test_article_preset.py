"""The article preset, end to end on a small generated folder in Animals10's layout (Italian names)."""

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import REPO, snakemake

pytestmark = pytest.mark.workflow

ITALIAN = ["cane", "cavallo", "elefante", "farfalla", "gallina", "gatto", "mucca", "pecora", "ragno", "scoiattolo"]


def animals10_like(root: Path, per_class: int = 10) -> Path:
    """JPEG photos of varied sizes and aspect ratios under raw-img/<italian name>/."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(ITALIAN):
        folder = root / "raw-img" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            w, h = int(rng.integers(120, 300)), int(rng.integers(90, 240))
            pixels = np.clip(rng.normal(25 * k, 40, size=(h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"OIP-{k}{i:03d}.jpeg", quality=85)
    return root / "raw-img"


def test_article_preset_runs_end_to_end(tmp_path):
    preset = yaml.safe_load((REPO / "presets" / "article-animals10.yaml").read_text())
    assert preset["sample"] == {"n_images": 500, "seed": 10, "stratified": False}
    assert preset["features"] == {"resnet101": {"arch": "resnet101", "weights": "imagenet", "nodes": ["penultimate"]}}
    assert preset["extraction"] == {"precision": "fp32"} and preset["tsne"]["implementation"] == "sklearn"
    assert preset["mosaic"] == {"canvas_size": 1000, "thumb_size": 100, "border": 5, "background": "white"}
    # Same preset, on a 100-image stand-in with random weights (ImageNet weights cannot be had in CI).
    config = {
        **preset,
        "results": "results",
        "dataset": {**preset["dataset"], "root": str(animals10_like(tmp_path))},
        "sample": {**preset["sample"], "n_images": 100},
        "features": {"resnet101": {**preset["features"]["resnet101"], "weights": "none"}},
    }
    result = snakemake(tmp_path, config=config)
    assert result.returncode == 0, result.stderr[-4000:]
    out = tmp_path / "results"
    with open(out / "sample" / "manifest.csv", newline="") as handle:
        labels = {row["label"] for row in csv.DictReader(handle)}
    assert labels <= {"dog", "horse", "elephant", "butterfly", "chicken", "cat", "cow", "sheep", "spider", "squirrel"}
    assert len(labels) >= 8
    meta = yaml.safe_load((out / "embeddings" / "resnet101" / "tsne" / "perplexity-30_seed-0.json").read_text())
    assert meta["implementation"] == "sklearn" and meta["pca_components"] == 0 and meta["feature_dim"] == 2048
    with Image.open(out / "mosaic" / "resnet101" / "tsne" / "perplexity-30_seed-0.png") as mosaic:
        # The canvas' long side is 1000 px: the width of a wide map, the height (above the legend) of a tall
        # one, whose legend strip may be wider than its canvas but not than 1000 px.
        width, height = mosaic.size
        assert width == 1000 or (600 <= width < 1000 and height > 1000)
