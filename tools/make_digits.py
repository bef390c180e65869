"""Write scikit-learn's 1,797 handwritten digits (``sklearn.datasets.load_digits``, bundled: no download)
as a class-per-folder image dataset with precomputed features, for trying ``source: precomputed``.

    PYTHONPATH=scripts python tools/make_digits.py [OUT]     (OUT defaults to data/digits)

writes

* ``OUT/images/<digit>/digit-<index:04d>.png``: each 8 × 8 digit as a 32 × 32 grayscale PNG (every pixel
  repeated 4 × 4), dark strokes on white like scikit-learn's ``gray_r`` figures: value v (0..16) is
  255 - round(v × 255 / 16);
* ``OUT/features.csv``: ``path,pixel_0_0,…,pixel_7_7``, one row per image in load_digits order, the path
  relative to ``OUT/images`` (use that as dataset.root) and the 64 raw pixel values (0..16) as integers.

The output is the same, byte for byte, on every run; a run finding the complete set in OUT writes nothing.
Every file is written under a temporary name and renamed when complete, so an interrupted run leaves no
half-written file under a final name (the next run writes the set again).
"""

import argparse
import csv
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

N_DIGITS = 1797
SIDE = 8
SCALE = 4
FEATURES = "features.csv"
IMAGES = "images"
PIXEL_COLUMNS = [f"pixel_{row}_{col}" for row in range(SIDE) for col in range(SIDE)]


def image_path(index: int, digit: int) -> str:
    """The image's path relative to OUT/images (a dataset-root-relative path, as in the sample manifest)."""
    return f"{digit}/digit-{index:04d}.png"


def digit_image(pixels: np.ndarray) -> Image.Image:
    """One digit (64 values 0..16) as a 32 × 32 grayscale image: dark strokes on white, nearest-neighbour."""
    gray = 255 - np.rint(np.asarray(pixels, dtype=np.float64).reshape(SIDE, SIDE) * 255 / 16)
    big = np.repeat(np.repeat(gray.astype(np.uint8), SCALE, axis=0), SCALE, axis=1)
    return Image.fromarray(big, mode="L")


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name beside ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def features_csv(paths: list[str], data: np.ndarray) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", *PIXEL_COLUMNS])
    for path, row in zip(paths, data):
        writer.writerow([path, *(int(v) for v in row)])
    return buffer.getvalue().encode("utf-8")


def is_complete(out: Path) -> bool:
    """Whether OUT holds the whole set: features.csv (written last) with a row per digit, each row's image there."""
    try:
        with open(out / FEATURES, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError):
        return False
    if len(rows) != N_DIGITS + 1 or rows[0] != ["path", *PIXEL_COLUMNS]:
        return False
    return all(row and (out / IMAGES / row[0]).is_file() for row in rows[1:])


def make_digits(out: str | os.PathLike) -> bool:
    """Write the digits dataset into ``out``; False when it was already complete there (nothing written)."""
    out = Path(out)
    if is_complete(out):
        return False
    from sklearn.datasets import load_digits

    # Leftovers of an interrupted run (each process writes under its own temporary names).
    for stale in out.rglob(".tmp-*"):
        stale.unlink()

    digits = load_digits()
    assert digits.data.shape == (N_DIGITS, SIDE * SIDE), digits.data.shape
    paths = [image_path(index, int(digit)) for index, digit in enumerate(digits.target)]
    for path, pixels in zip(paths, digits.data):
        buffer = io.BytesIO()
        digit_image(pixels).save(buffer, format="PNG")
        write_atomically(out / IMAGES / path, buffer.getvalue())
    # Last: a run interrupted before this line leaves no features file, so the next run writes the set again.
    write_atomically(out / FEATURES, features_csv(paths, digits.data))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="data/digits", help="output folder (default: data/digits)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if make_digits(out):
        print(
            f"tsne-atlas: wrote {N_DIGITS} digit images (32 × 32 PNG, folders 0-9) to {out / IMAGES} "
            f"and their 64 pixel features to {out / FEATURES}"
        )
    else:
        print(f"tsne-atlas: {out} already holds the {N_DIGITS} digit images and {FEATURES}; nothing written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
