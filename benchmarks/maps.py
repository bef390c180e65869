"""Maps side by side: openTSNE, UMAP, PCA and PaCMAP on the same prepared input, in one run.

On 10,000 Animal-MNIST silhouettes (all of them; ResNet-101 penultimate features, randomly
initialised weights, extracted once through the workflow under benchmarks/work/maps-<N>/, not
timed), z-scored and PCA-reduced to 50 dimensions (``preparation.preprocess``), as every map job of
the workflow sees them:

1. **Methods**: openTSNE (perplexity 30, seed 0, one thread, Barnes-Hut theta 0.8: the workflow's
   defaults, ``tsne.embed``) on the sweep's P; UMAP (n_neighbors 15, min_dist 0.1, seed 0:
   umap-learn then runs on one thread, ``methods.umap.umap_embedding``) on the sweep's k-NN graph; PCA
   (``methods.pca.pca_embedding``); PaCMAP (n_neighbors 10, seed 0, its own faiss search on one thread
   and one numba thread, ``methods.pacmap.pacmap_embedding``). Each run is timed alone (its fit), ``--rounds`` times, the method
   order reversed every other round; the table gives the median. The per-sweep preparation each
   method needs (the k-NN graph, k = 3 x perplexity, Annoy on one thread; P for the perplexity) is
   timed once and reported apart: a sweep pays it once, whatever its number of runs.
2. **Sharing the graph**: UMAP given the sweep's graph vs UMAP searching its own neighbours
   (pynndescent's NN-descent), same seed and settings; plus the recall of each graph against the
   exact 14 nearest neighbours.
3. **numba**: a fresh Python process with an empty ``NUMBA_CACHE_DIR`` times ``import umap``, then
   its first UMAP fit (precomputed graph, as the workflow's job) and a second fit of the same data
   (compiled code already in memory): first minus second is what the JIT costs that fit. A second
   fresh process with the same, now warm, cache dir repeats it: what a second UMAP job pays.

Every in-process run (and the metrics) runs with BLAS limited to one thread, after an untimed
warm-up (UMAP on a subset, both neighbour paths, and a small t-SNE) so that no JIT compile is
charged to the first method measured. Quality (``metrics.embedding_metrics``, as the workflow
computes it): trustworthiness (k=10) and leave-one-out 5-NN label accuracy in 2-D against the
prepared input, on the workflow's fixed 5,000-point subsample (``metrics.max_images``).

    PYTHONPATH=scripts python benchmarks/maps.py
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import DEMO, REPO, WORK, command_line, machine, markdown_table, run_snakemake, write_config

METRICS_MAX_IMAGES = 5000  # the workflow's metrics.max_images
TRUST_K = 10
KNN_K = 5
PACMAP_NEIGHBOURS = 10  # the schema's default pacmap.n_neighbors

# One fresh process: import umap, then two UMAP fits of the same data on the precomputed graph.
JIT_PROBE = """
import json, sys, time
start = time.perf_counter()
import pynndescent
pynndescent_imported = time.perf_counter()
import umap
imported = time.perf_counter()
import numpy as np
from tsne_atlas.methods.umap import umap_embedding
data = np.load(sys.argv[1])
X, knn = data["X"], (data["indices"], data["distances"])
n_neighbors, min_dist, seed = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
fits = []
for _ in range(2):
    t = time.perf_counter()
    umap_embedding(X, n_neighbors, min_dist, seed, knn=knn)
    fits.append(time.perf_counter() - t)
timings = {"import_pynndescent_s": pynndescent_imported - start, "import_s": imported - start}
print(json.dumps({**timings, "first_fit_s": fits[0], "second_fit_s": fits[1]}))
"""


def features_file(workdir: Path, dataset: str, n_images: int, arch: str, cores: int) -> Path:
    """The ``arch`` features of ``n_images`` Animal-MNIST images, extracted by the workflow if absent."""
    path = workdir / "results" / "features" / f"{arch}.h5"
    if path.exists():
        return path
    from datasets import animal_mnist_full

    write_config(
        workdir,
        {
            "results": "results",
            "dataset": {"root": str(DEMO if dataset == "demo" else animal_mnist_full())},
            "sample": {"n_images": n_images, "seed": 0},
            "features": {arch: {"arch": arch, "weights": "none"}},
            "extraction": {"num_workers": 2, "threads": 2},
        },
    )
    print(f"extracting features in {workdir} (not timed)", file=sys.stderr)
    run_snakemake(workdir, "--until", "extract_features", cores=cores)
    return path


def label_indices(paths) -> np.ndarray:
    """Class index of each image: its top folder (the class-per-folder layout)."""
    return np.unique([str(p).split("/")[0] for p in paths], return_inverse=True)[1]


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def graph_recall(indices: np.ndarray, exact: np.ndarray) -> float:
    """Share of the exact k nearest neighbours (k = exact's columns) found among ``indices``' first k."""
    k = exact.shape[1]
    hits = sum(len(np.intersect1d(a[:k], b)) for a, b in zip(indices, exact))
    return hits / exact.size


def jit_probe(data: Path, cache: Path, n_neighbors: int, min_dist: float, seed: int) -> dict:
    """One fresh process with ``cache`` as NUMBA_CACHE_DIR: its import and fit times, and its wall time."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO / "scripts"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", JIT_PROBE, str(data), str(n_neighbors), str(min_dist), str(seed)]
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"the numba probe failed:\n{result.stderr[-3000:]}")
    timings = json.loads(result.stdout.strip().splitlines()[-1])
    files = [p for p in cache.rglob("*") if p.is_file()]
    return {
        **timings,
        "process_wall_s": wall,
        "cache_files": len(files),
        "cache_mib": sum(p.stat().st_size for p in files) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dataset", choices=["animal-mnist-full", "demo"], default="animal-mnist-full", help="demo: the bundled 1,000"
    )
    parser.add_argument("--n-images", type=int, default=10_000, help="Animal-MNIST images (at most 10,000)")
    parser.add_argument("--arch", default="resnet101", help="the network (random init; default resnet101)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per method (median reported)")
    parser.add_argument("--perplexity", type=float, default=30)
    parser.add_argument("--n-neighbors", type=int, default=15)
    parser.add_argument("--min-dist", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--jit-sizes", default="10000,2000", help="points of the numba probes, comma-separated ('' skips them)"
    )
    parser.add_argument(
        "--no-own-search",
        action="store_true",
        help="skip timing umap-learn's own NN-descent search and its recall (numba compiles it in every process)",
    )
    parser.add_argument("--cores", type=int, default=2, help="cores of the (untimed) feature extraction")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path, default=WORK / "maps.json")
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args()
    bench_start = time.perf_counter()

    workdir = args.workdir or WORK / f"maps-{args.n_images}"
    path = features_file(workdir, args.dataset, args.n_images, args.arch, args.cores)
    # As in the workflow: numba's cache in the work folder, not in site-packages.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(workdir / ".numba-cache"))

    from threadpoolctl import threadpool_limits

    from tsne_atlas.files.features import read_features
    from tsne_atlas.methods.pacmap import pacmap_embedding
    from tsne_atlas.methods.pca import pca_embedding
    from tsne_atlas.methods.tsne import embed
    from tsne_atlas.methods.umap import umap_embedding
    from tsne_atlas.metrics import embedding_metrics
    from tsne_atlas.preparation import affinities_from_neighbours, nearest_neighbours, neighbours_for, preprocess
    from tsne_atlas.subsample import fixed_subsample

    data = read_features(path, "penultimate")
    features, labels = data["features"], label_indices(data["paths"])
    weights_random = bool(data["attrs"].get("weights_random", True))
    n = len(features)
    k = neighbours_for(args.perplexity, n)
    limits = threadpool_limits(1)  # one thread everywhere (the workflow's map jobs run on one)

    # Untimed: openTSNE's k-NN index choice imports pynndescent (numba) when it is installed, and
    # umap-learn imports it too; the numba probes below time these imports in fresh processes.
    import pynndescent  # noqa: F401
    import umap

    print(f"preparing {n} x {features.shape[1]} features (timed)", file=sys.stderr)
    X, prep_s = timed(preprocess, features, standardize=True, pca_components=50)
    (indices, distances), graph_s = timed(nearest_neighbours, X, k)
    P, p_s = timed(affinities_from_neighbours, indices, distances, args.perplexity)
    # The graph the workflow's default perplexities (5, 30, 50) make, for reference (not used).
    k_default = neighbours_for(50, n)
    _, graph_default_s = timed(nearest_neighbours, X, k_default)
    keep = fixed_subsample(n, METRICS_MAX_IMAGES)

    print("warming up (not timed)", file=sys.stderr)
    warm = X[: min(n, 4200)]  # above umap-learn's 4,096: its own search then takes the NN-descent path
    umap_embedding(warm, args.n_neighbors, args.min_dist, args.seed)
    umap_embedding(warm, args.n_neighbors, args.min_dist, args.seed, knn=nearest_neighbours(warm, args.n_neighbors))
    small = X[:500]
    embed(small, 10, 0, init="pca", affinities=affinities_from_neighbours(*nearest_neighbours(small, 30), 10))
    pca_embedding(small)
    import numba

    numba.set_num_threads(1)  # as the workflow's PaCMAP job
    pacmap_embedding(small, PACMAP_NEIGHBOURS, args.seed, "pca")

    methods = {
        "tsne": lambda: embed(
            X, args.perplexity, args.seed, init="pca", affinities=P, negative_gradient="auto", bh_theta=0.8
        )[0],
        "umap-graph": lambda: umap_embedding(X, args.n_neighbors, args.min_dist, args.seed, knn=(indices, distances)),
        "umap-own": lambda: umap_embedding(X, args.n_neighbors, args.min_dist, args.seed),
        "pca": lambda: pca_embedding(X)[0],
        "pacmap": lambda: pacmap_embedding(X, PACMAP_NEIGHBOURS, args.seed, "pca"),
    }
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    coords: dict[str, np.ndarray] = {}
    repeatable: dict[str, bool] = {}
    for round_ in range(args.rounds):
        order = list(methods) if round_ % 2 == 0 else list(reversed(methods))
        for name in order:
            result, s = timed(methods[name])
            seconds[name].append(s)
            if name in coords:
                repeatable[name] = repeatable.get(name, True) and bool(np.array_equal(coords[name], result))
            else:
                coords[name] = result
            print(f"  round {round_ + 1} {name}: {s:.1f} s", file=sys.stderr)

    print("metrics and graph recall (not timed)", file=sys.stderr)
    quality = {
        name: embedding_metrics(X[keep], c[keep], labels[keep], trustworthiness_k=TRUST_K, knn_k=KNN_K)
        for name, c in coords.items()
    }
    # The exact 14 nearest others of each point vs the sweep's Annoy graph and umap-learn's own search
    # (the same call umap-learn makes, with the same settings: one thread, the seed).
    from sklearn.neighbors import NearestNeighbors
    from sklearn.utils import check_random_state
    from umap.umap_ import nearest_neighbors as umap_nearest_neighbors

    k_umap = args.n_neighbors - 1
    exact = NearestNeighbors(n_neighbors=k_umap).fit(X).kneighbors(return_distance=False)
    recall = {"umap-graph": graph_recall(indices, exact), "umap-own": None}
    own_search_s = None
    if not args.no_own_search:
        (own_indices, *_), own_search_s = timed(
            umap_nearest_neighbors,
            X,
            args.n_neighbors,
            "euclidean",
            {},
            False,
            check_random_state(args.seed),
            n_jobs=1,
        )
        own_others = np.array([[j for j in row if j != i][:k_umap] for i, row in enumerate(own_indices)])
        recall["umap-own"] = graph_recall(own_others, exact)
    limits.restore_original_limits()

    probes = []
    sizes = [int(s) for s in args.jit_sizes.split(",") if s.strip()]
    for size in sizes:
        size = min(size, n)
        print(f"numba probes at {size} points (fresh processes)", file=sys.stderr)
        rows = np.arange(n) if size == n else fixed_subsample(n, size)
        sub_indices, sub_distances = (
            (indices, distances) if size == n else nearest_neighbours(X[rows], args.n_neighbors - 1)
        )
        npz = workdir / f"umap-input-{size}.npz"
        np.savez(npz, X=X[rows], indices=sub_indices, distances=sub_distances)
        with tempfile.TemporaryDirectory(dir=workdir) as cache:
            for state in ("empty", "warm"):
                probe = jit_probe(npz, Path(cache), args.n_neighbors, args.min_dist, args.seed)
                probes.append({"n_points": size, "cache": state, **probe})
                print(f"  {state}: {probe}", file=sys.stderr)
        npz.unlink()

    median = {name: statistics.median(s) for name, s in seconds.items()}
    tsne_fit = median["tsne"]
    prep = {
        "tsne": ("graph + P", graph_s + p_s),
        "umap-graph": ("graph", graph_s),
        "umap-own": ("none (searches in its fit)", 0.0),
        "pca": ("none", 0.0),
        "pacmap": ("none (searches in its fit)", 0.0),
    }
    names = {
        "tsne": f"openTSNE, perplexity {args.perplexity:g}, BH theta 0.8",
        "umap-graph": f"UMAP, n_neighbors {args.n_neighbors}, min_dist {args.min_dist:g}, sweep's graph",
        "umap-own": f"UMAP, n_neighbors {args.n_neighbors}, min_dist {args.min_dist:g}, own NN-descent",
        "pca": "PCA, first 2 components",
        "pacmap": f"PaCMAP, n_neighbors {PACMAP_NEIGHBOURS}, own faiss search",
    }

    def fmt_rounds(values: list[float]) -> str:
        return " / ".join(f"{v:.1f}" for v in values)

    method_rows = [
        [
            names[name],
            f"{median[name]:.2f}" if median[name] < 1 else f"{median[name]:.1f}",
            fmt_rounds(seconds[name]),
            f"{median[name] / tsne_fit:.2f}",
            f"{prep[name][0]}: {prep[name][1]:.1f}" if prep[name][1] else prep[name][0],
            f"{quality[name]['trustworthiness']:.4f}",
            f"{quality[name]['knn_accuracy_2d']:.4f}",
        ]
        for name in ("tsne", "umap-graph", "pca", "pacmap")
    ]
    methods_table = markdown_table(
        [
            "method (seed 0, one thread)",
            "fit s (median)",
            "fit s per round",
            "× t-SNE fit",
            "per-sweep preparation, s",
            "trustworthiness",
            "5-NN accuracy 2-D",
        ],
        method_rows,
    )
    share_rows = [
        [
            names[name],
            f"{median[name]:.1f}",
            fmt_rounds(seconds[name]),
            f"{median[name] + prep[name][1]:.1f}",
            "not measured" if recall[name] is None else f"{recall[name]:.4f}",
            f"{quality[name]['trustworthiness']:.4f}",
            f"{quality[name]['knn_accuracy_2d']:.4f}",
            "yes" if repeatable.get(name) else ("n/a" if name not in repeatable else "no"),
        ]
        for name in ("umap-graph", "umap-own")
    ]
    share_table = markdown_table(
        [
            "UMAP",
            "fit s (median)",
            "fit s per round",
            "fit + graph s (one map)",
            "recall of the exact 14-NN",
            "trustworthiness",
            "5-NN accuracy 2-D",
            "same map every round",
        ],
        share_rows,
    )
    jit_rows = [
        [
            f"{p['n_points']:,}",
            f"{p['cache']}",
            f"{p['import_s']:.1f} ({p['import_pynndescent_s']:.1f})",
            f"{p['first_fit_s']:.1f}",
            f"{p['second_fit_s']:.1f}",
            f"{p['first_fit_s'] - p['second_fit_s']:.1f}",
            f"{p['process_wall_s']:.1f}",
            f"{p['process_wall_s'] - p['second_fit_s']:.1f}",
            f"{p['cache_files']} files, {p['cache_mib']:.1f} MiB",
        ]
        for p in probes
    ]
    jit_table = markdown_table(
        [
            "points",
            "NUMBA_CACHE_DIR at start",
            "`import umap` s (of which pynndescent)",
            "first fit s",
            "second fit s (same process)",
            "JIT in first fit s",
            "process wall s",
            "one job's share: wall − second fit, s",
            "cache after",
        ],
        jit_rows,
    )
    wall = time.perf_counter() - bench_start
    notes = (
        f"N = {n:,} images ({'random' if weights_random else 'trained'} {args.arch} weights), prepared input "
        f"{X.shape[0]:,} x {X.shape[1]} (z-scored, PCA 50: {prep_s:.1f} s); k-NN graph k = {k} (Annoy, one thread) "
        f"{graph_s:.1f} s (k = {k_default}, the default perplexities': {graph_default_s:.1f} s); P for perplexity {args.perplexity:g} {p_s:.1f} s; umap-learn's own NN-descent search "
        f"alone {'not measured (--no-own-search)' if own_search_s is None else f'{own_search_s:.1f} s'}. Quality on the fixed {len(keep):,}-point subsample against the prepared input; "
        f"5-NN accuracy in the prepared input itself: {quality['tsne']['knn_accuracy_features']:.4f}. "
        f"{args.rounds} round(s); benchmark wall time {wall:.0f} s."
    )
    text = (
        f"Machine: {machine()}, umap-learn {umap.__version__}\n\nCommand: `{command_line()}`\n\n"
        f"{notes}\n\n{methods_table}\n\n{share_table}\n\n{jit_table}\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    raw = {
        "command": command_line(),
        "machine": machine(),
        "umap_version": umap.__version__,
        "n_images": n,
        "weights_random": weights_random,
        "settings": {
            "perplexity": args.perplexity,
            "n_neighbors": args.n_neighbors,
            "min_dist": args.min_dist,
            "seed": args.seed,
            "graph_k": k,
            "rounds": args.rounds,
        },
        "preparation_s": {
            "preprocess": prep_s,
            "graph": graph_s,
            f"graph_k{k_default}": graph_default_s,
            "affinities": p_s,
            "umap_own_search": own_search_s,
        },
        "fit_s": seconds,
        "fit_median_s": median,
        "repeatable": repeatable,
        "quality": quality,
        "graph_recall_exact_14nn": recall,
        "numba_probes": probes,
        "wall_s": wall,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    main()
