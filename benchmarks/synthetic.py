"""A synthetic features file of any size: N x D float32 rows of class blobs plus noise, written in
batches through the workflow's own writer (``files.features.write_features``: ``features/<node>``
``penultimate``, ``paths``), never held whole, so 1,000,000 x 2,048 (7.6 GiB) is made in a few hundred
MB of memory.

Each row is its class's centre plus unit Gaussian noise (both standard normal per dimension, so the
classes are well apart), then every column scaled by its own factor (e^U(-1, 1)) and shifted by its own
offset (U(0, 2)), as a network's features differ in scale and mean per dimension (what z-scoring undoes);
one column in 64 is constant 0 (a random-initialised network's dead units). Deterministic for given
sizes and seed: the rows come in fixed batches of ``BATCH_ROWS``, each from its own seeded generator.

Rows belong to ``paths`` (default ``class<c>/img_<i:06d>.png`` with c = i mod n_classes:
``benchmarks/datasets.py synthetic``'s own names, so such a file matches its images); a row's class is
``classes[i]``, or when only ``paths`` is given the ``<c>`` of its ``class<c>/`` folder.

    PYTHONPATH=scripts python benchmarks/synthetic.py --n-images 1000000 --dim 2048 \\
        --out /work/bench/prepare/features-1000000x2048.h5
"""

import argparse
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common import WORK

BATCH_ROWS = 4096
NODE = "penultimate"
DEAD_COLUMN_EVERY = 64


def synthetic_paths(n_images: int, n_classes: int = 10) -> list[str]:
    """``benchmarks/datasets.py synthetic``'s image names: image i in folder ``class<i mod n_classes>``."""
    return [f"class{i % n_classes}/img_{i:06d}.png" for i in range(n_images)]


def classes_of(paths: Sequence[str]) -> np.ndarray:
    """Each path's class: the ``<c>`` of its ``class<c>/`` folder."""
    pattern = re.compile(r"class(\d+)/")
    classes = np.empty(len(paths), dtype=np.int64)
    for i, path in enumerate(paths):
        found = pattern.match(path)
        if not found:
            raise ValueError(f"path {path!r} is not in a class<c>/ folder: give classes")
        classes[i] = int(found.group(1))
    return classes


def blob_rows(classes: np.ndarray, dim: int, n_classes: int, seed: int):
    """The rows, ``BATCH_ROWS`` at a time, as ``write_features`` batches."""
    rng = np.random.default_rng([seed, dim, n_classes])
    centres = rng.standard_normal((n_classes, dim), dtype=np.float32)
    scale = np.exp(rng.uniform(-1, 1, dim)).astype(np.float32)
    offset = rng.uniform(0, 2, dim).astype(np.float32)
    scale[::DEAD_COLUMN_EVERY] = 0
    offset[::DEAD_COLUMN_EVERY] = 0
    for first in range(0, len(classes), BATCH_ROWS):
        batch = classes[first : first + BATCH_ROWS]
        rows = np.random.default_rng([seed, dim, n_classes, first]).standard_normal((len(batch), dim), dtype=np.float32)
        rows += centres[batch]
        rows *= scale
        rows += offset
        yield {NODE: rows}


def write_blob_features(
    path: str | Path,
    n_images: int,
    dim: int,
    n_classes: int = 10,
    seed: int = 0,
    paths: Sequence[str] | None = None,
    classes: Sequence[int] | None = None,
) -> Path:
    """Write ``n_images`` x ``dim`` float32 class blobs to the features file ``path`` (node ``penultimate``),
    row i for ``paths[i]`` of class ``classes[i]`` (see the module's docstring for the defaults); returns it."""
    from tsne_atlas.files.features import write_features

    paths = synthetic_paths(n_images, n_classes) if paths is None else list(paths)
    classes = classes_of(paths) if classes is None else np.asarray(classes, dtype=np.int64)
    if len(paths) != n_images or len(classes) != n_images:
        raise ValueError(f"{n_images} images but {len(paths)} paths and {len(classes)} classes")
    if len(classes) and not 0 <= classes.min() <= classes.max() < n_classes:
        raise ValueError(f"classes must lie in 0..{n_classes - 1}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_features(
        path,
        blob_rows(classes, dim, n_classes, seed),
        n_images,
        paths,
        {"feature_set": "synthetic", "source": "synthetic", "model": f"blobs-{n_classes}-seed-{seed}"},
        {NODE: "blobs"},
        predictions="none: synthetic features",
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-images", type=int, required=True)
    parser.add_argument("--dim", type=int, required=True)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="default: <bench dir>/work/features-<N>x<D>.h5")
    args = parser.parse_args()
    out = args.out or WORK / f"features-{args.n_images}x{args.dim}.h5"
    start, cpu = time.perf_counter(), time.process_time()
    write_blob_features(out, args.n_images, args.dim, args.classes, args.seed)
    print(
        f"{out}: {args.n_images:,} x {args.dim:,} float32, {out.stat().st_size / 2**30:.2f} GiB, "
        f"{time.perf_counter() - start:.1f} s wall, {time.process_time() - cpu:.1f} s CPU",
        file=sys.stderr,
    )
    print(out)


if __name__ == "__main__":
    main()
