import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

DEMO_ROOT = REPO / "resources" / "animal-mnist"


@pytest.fixture
def demo_root() -> Path:
    return DEMO_ROOT


def make_image_folder(root: Path, counts: dict[str, int], size=(20, 16), mode="RGB") -> Path:
    """A class-per-folder dataset of small synthetic images, distinct per class and index."""
    rng = np.random.default_rng(0)
    for class_index, (name, count) in enumerate(sorted(counts.items())):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            base = np.full((size[1], size[0], 3), 40 * class_index % 255, dtype=np.uint8)
            noise = rng.integers(0, 60, size=base.shape, dtype=np.uint8)
            Image.fromarray(base + noise).convert(mode).save(folder / f"{name}_{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "data", {"ant": 6, "bee": 5, "cat": 4})
