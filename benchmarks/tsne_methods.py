"""openTSNE's gradient settings, side by side in one run: Barnes-Hut theta and BH vs FFT.

On the sweep benchmark's 10,000 Animal-MNIST features (its shared input and perplexity-30 P:
run benchmarks/sweep.py --dataset animal-mnist-full --n-images 10000 first) and on 30,000
points in 20 Gaussian blobs (50-d), one openTSNE run per setting on one core, seed 0:
wall time and trustworthiness (k=10, fixed 5,000-point subsample, against the raw features
for Animal-MNIST and the blob coordinates for the blobs). These numbers set the defaults
``tsne.bh_theta`` and ``tsne.negative_gradient: auto``.

    PYTHONPATH=scripts python benchmarks/tsne_methods.py
"""

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import make_blobs
from sklearn.manifold import trustworthiness

from common import WORK, command_line, machine, markdown_table
from tsne_atlas.files.features import read_features
from tsne_atlas.files.map_inputs import read_affinities, read_input
from tsne_atlas.files.runs import wildcard_value
from tsne_atlas.preparation import affinities_from_neighbours, nearest_neighbours
from tsne_atlas.subsample import fixed_subsample

BLOB_PERPLEXITY = 30
SWEEP_RESULTS = WORK / "sweep-animal-mnist-full-10000" / "results"


def timed_run(X, P, reference, keep, method: str, theta: float) -> tuple[float, float]:
    from openTSNE import TSNE
    from openTSNE.affinity import PrecomputedAffinities

    start = time.perf_counter()
    Y = TSNE(random_state=0, n_jobs=1, negative_gradient_method=method, theta=theta).fit(
        X, affinities=PrecomputedAffinities(P.copy(), normalize=False)
    )
    seconds = time.perf_counter() - start
    return seconds, float(trustworthiness(reference[keep], np.asarray(Y)[keep], n_neighbors=10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=SWEEP_RESULTS, help="results of the 10k sweep benchmark")
    parser.add_argument("--features", default="resnet101", help="the sweep's feature set (default resnet101)")
    parser.add_argument("--perplexity", type=float, default=30, help="the sweep's P used (default 30)")
    parser.add_argument("--blobs", type=int, default=30_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    embeddings = args.results / "embeddings" / args.features
    X, _ = read_input(embeddings / "input.h5")
    P = read_affinities(embeddings / "affinities" / f"perplexity-{wildcard_value(args.perplexity)}.npz")
    raw = read_features(args.results / "features" / f"{args.features}.h5")["features"].astype(np.float64)
    name = f"Animal-MNIST {args.features}, N={len(X)}, perplexity {args.perplexity:g}"
    datasets = [(name, X, P, raw, [("bh", 0.5), ("bh", 0.8), ("bh", 1.0), ("fft", 0.5)])]
    blobs, _ = make_blobs(n_samples=args.blobs, n_features=50, centers=20, cluster_std=4, random_state=0)
    indices, distances = nearest_neighbours(blobs, 3 * BLOB_PERPLEXITY)
    datasets.append(
        (
            f"20 Gaussian blobs, 50-d, N={args.blobs}",
            blobs,
            affinities_from_neighbours(indices, distances, BLOB_PERPLEXITY),
            blobs,
            [("bh", 0.8), ("fft", 0.5)],
        )
    )
    rows = []
    for name, data, affinities, reference, settings in datasets:
        keep = fixed_subsample(len(data), 5000)
        for method, theta in settings:
            seconds, trust = timed_run(data, affinities, reference, keep, method, theta)
            rows.append([name, method, theta if method == "bh" else "–", f"{seconds:.1f}", f"{trust:.4f}"])
            print(rows[-1], flush=True)
    text = (
        f"Machine: {machine()}\n\nCommand: `{command_line()}`\n\n"
        + markdown_table(["data", "gradient", "theta", "s per run (1 core)", "trustworthiness"], rows)
        + "\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
