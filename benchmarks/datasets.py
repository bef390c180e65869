"""Datasets for the benchmarks, made on demand under benchmarks/data/ (git-ignored; ``common.DATA_DIR``).

- ``animal-mnist-full``: all 10,000 Animal-MNIST silhouettes (PyPI ``animal-mnist==0.4``,
  MIT; the repository bundles only 1,000 of them). The wheel is fetched with
  ``pip download`` and checked against the checksum in resources/animal-mnist/README.md.
- ``synthetic-N``: N small class-per-folder PNGs (coloured shapes with noise, 10 classes),
  for scale runs beyond any bundled data. Deterministic for a given N and seed.

    PYTHONPATH=scripts python benchmarks/datasets.py animal-mnist-full
    PYTHONPATH=scripts python benchmarks/datasets.py synthetic --n-images 100000
"""

import argparse
import hashlib
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from common import DATA_DIR, REPO

# tools/ holds scripts, not a package: load the file by its path rather than editing the import path.
_spec = importlib.util.spec_from_file_location("make_demo_data", REPO / "tools" / "make_demo_data.py")
_make_demo_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_make_demo_data)
CLASSES = _make_demo_data.CLASSES
DATA_MEMBER = _make_demo_data.DATA_MEMBER
LABEL_MEMBER = _make_demo_data.LABEL_MEMBER
load_numpy_pickle = _make_demo_data.load_numpy_pickle

WHEEL = "animal_mnist-0.4-py3-none-any.whl"
WHEEL_SHA256 = "aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce"
SHAPES = ("ellipse", "rectangle", "triangle", "cross", "ring")


def download_wheel(dest: Path) -> Path:
    wheel = dest / WHEEL
    if not wheel.exists():
        dest.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "animal-mnist==0.4", "-d", str(dest)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 or not wheel.exists():
            raise SystemExit(
                f"pip download animal-mnist==0.4 into {dest} failed (no package index reachable?); "
                f"put {WHEEL} there by hand and rerun"
            )
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 {digest} is not the expected {WHEEL_SHA256}; delete it and retry")
    return wheel


def animal_mnist_full(data_dir: Path = DATA_DIR) -> Path:
    """All 10,000 silhouettes as <root>/<class>/<class>_<index>.png; returns the root."""
    root = data_dir / "animal-mnist-full"
    done = root / ".complete"
    if done.exists():
        return root
    with zipfile.ZipFile(download_wheel(data_dir)) as zf:
        images = load_numpy_pickle(zf.read(DATA_MEMBER))
        labels = load_numpy_pickle(zf.read(LABEL_MEMBER))
    for index, (image, label) in enumerate(zip(images, labels)):
        name = CLASSES[int(label)]
        target = root / name / f"{name}_{index:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8), mode="L").save(target)
    done.write_text(f"{len(images)} images\n")
    return root


def synthetic_image(class_index: int, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """A shape whose kind and hue depend on the class, with random position, scale and noise."""
    hue = class_index / 10
    colour = tuple(int(255 * c) for c in _hsv_to_rgb(hue, 0.7, 0.9))
    background = tuple(int(v) for v in rng.integers(0, 80, size=3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    half = int(size * rng.uniform(0.2, 0.4))
    cx, cy = (int(v) for v in rng.integers(half, size - half, size=2))
    box = (cx - half, cy - half, cx + half, cy + half)
    shape = SHAPES[class_index % len(SHAPES)]
    if shape == "ellipse":
        draw.ellipse(box, fill=colour)
    elif shape == "rectangle":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill=colour)
    elif shape == "cross":
        draw.rectangle((cx - half, cy - half // 3, cx + half, cy + half // 3), fill=colour)
        draw.rectangle((cx - half // 3, cy - half, cx + half // 3, cy + half), fill=colour)
    else:
        draw.ellipse(box, outline=colour, width=max(2, half // 3))
    noise = rng.normal(0, 12, size=(size, size, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8))


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    import colorsys

    return colorsys.hsv_to_rgb(h, s, v)


def synthetic(n_images: int, data_dir: Path = DATA_DIR, seed: int = 0, n_classes: int = 10) -> Path:
    """``n_images`` synthetic PNGs, classes of equal size; returns the root."""
    root = data_dir / f"synthetic-{n_images}"
    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(seed)
    for index in range(n_images):
        class_index = index % n_classes
        target = root / f"class{class_index}" / f"img_{index:06d}.png"
        if index < n_classes:
            target.parent.mkdir(parents=True, exist_ok=True)
        synthetic_image(class_index, rng).save(target, compress_level=1)
    done.write_text(f"{n_images} images\n")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["animal-mnist-full", "synthetic"])
    parser.add_argument("--n-images", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    if args.dataset == "animal-mnist-full":
        print(animal_mnist_full(args.data_dir))
    else:
        print(synthetic(args.n_images, args.data_dir))


if __name__ == "__main__":
    main()
