"""Sweep cost: 5 seeds x 4 perplexities through the workflow vs the article's method, one run.

- **workflow**: ``snakemake --cores C --until tsne`` on features already extracted: the whole
  wall time of the t-SNE part of the sweep, Snakemake's start, job starts and imports included
  (shared input + k-NN graph + one P per perplexity, then each run only optimises; openTSNE).
  ``prepare.standardize: false`` so both methods embed the same space (see BENCHMARKS.md).
- **article**: scikit-learn ``TSNE(perplexity=p, random_state=seed).fit_transform(features)`` per
  run, in sequence, in one already-started Python process, on the raw features (no PCA), as
  the article does. scikit-learn's gradient uses every core through OpenMP; the workflow uses
  them by running C jobs at once.
- **openTSNE per run** (``--per-run-opentsne``): what the workflow did before sharing: openTSNE
  with its own PCA, neighbours and P in every run, in sequence, in one process (same gradient
  method and Barnes-Hut theta as the workflow's defaults).

With ``--article-seeds K < 5`` only K seeds per perplexity of the article are run and the sweep
time is extrapolated (x 5 / K): its cost does not depend on the seed. The table says so.

Quality: trustworthiness (k=10, scikit-learn) of every embedding against the raw features,
on one fixed random subsample of at most 5,000 points shared by all methods.

    PYTHONPATH=scripts python benchmarks/sweep.py --n-images 500
    PYTHONPATH=scripts python benchmarks/sweep.py --dataset animal-mnist-full --n-images 10000 --article-seeds 1

``--arch``, ``--perplexities`` and ``--seeds`` make a smaller sweep (tests/test_benchmarks.py runs one).
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from common import DEMO, WORK, command_line, machine, markdown_table, rule_benchmarks, run_snakemake, write_config
from datasets import animal_mnist_full
from tsne_atlas.files.features import read_features
from tsne_atlas.files.runs import read_embedding, run_name
from tsne_atlas.methods.tsne import gradient_method
from tsne_atlas.preparation import preprocess
from tsne_atlas.subsample import fixed_subsample

PERPLEXITIES = [5, 15, 30, 50]
SEEDS = [0, 1, 2, 3, 4]
TRUST_K = 10
TRUST_MAX_IMAGES = 5000
BH_THETA = 0.8  # the workflow's default (config.yaml)


def wildcard_number(value: float) -> int | float:
    """A perplexity as the config and the run file names write it: 30, not 30.0."""
    return int(value) if float(value).is_integer() else value


def sweep_config(root: Path, n_images: int, threads: int, arch: str, perplexities: list, seeds: list) -> dict:
    return {
        "results": "results",
        "dataset": {"root": str(root)},
        "sample": {"n_images": n_images, "seed": 0},
        "features": {arch: {"arch": arch, "weights": "none"}},
        "extraction": {"num_workers": 2, "threads": 2},
        # The article's input space (no z-scoring), so quality is compared like with like; PCA to 50
        # dimensions is part of the project's method and stays.
        "tsne": {
            "implementation": "opentsne",
            "perplexities": perplexities,
            "seeds": seeds,
            "threads": threads,
        },
        "prepare": {"standardize": False, "pca_components": 50},
    }


def trustworthiness_of(features: np.ndarray, coords: np.ndarray, keep: np.ndarray) -> float:
    from sklearn.manifold import trustworthiness

    return float(trustworthiness(features[keep], coords[keep], n_neighbors=TRUST_K))


def article_runs(features: np.ndarray, perplexities: list, seeds: list[int], keep: np.ndarray) -> list[dict]:
    """The article's loop: scikit-learn TSNE per (perplexity, seed) on the raw features."""
    from sklearn.manifold import TSNE

    runs = []
    for perplexity in perplexities:
        for seed in seeds:
            start = time.perf_counter()
            coords = TSNE(perplexity=perplexity, random_state=seed).fit_transform(features)
            seconds = time.perf_counter() - start
            runs.append(
                {
                    "perplexity": perplexity,
                    "seed": seed,
                    "s": seconds,
                    "trust": trustworthiness_of(features, coords, keep),
                }
            )
            print(f"  article p={perplexity} seed={seed}: {seconds:.1f} s", file=sys.stderr)
    return runs


def per_run_opentsne(features: np.ndarray, perplexities: list, seeds: list[int], keep: np.ndarray) -> list[dict]:
    """openTSNE with everything recomputed per run (PCA 50, neighbours, P), as the workflow's input."""
    from openTSNE import TSNE

    runs = []
    for perplexity in perplexities:
        for seed in seeds:
            start = time.perf_counter()
            X = preprocess(features, False, 50)
            method = gradient_method("auto", len(X))
            coords = np.asarray(
                TSNE(
                    perplexity=perplexity, random_state=seed, n_jobs=1, negative_gradient_method=method, theta=BH_THETA
                ).fit(X)
            )
            seconds = time.perf_counter() - start
            runs.append(
                {
                    "perplexity": perplexity,
                    "seed": seed,
                    "s": seconds,
                    "trust": trustworthiness_of(features, coords, keep),
                }
            )
            print(f"  openTSNE per run p={perplexity} seed={seed}: {seconds:.1f} s", file=sys.stderr)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["demo", "animal-mnist-full"], default="demo")
    parser.add_argument("--n-images", type=int, default=500)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--arch", default="resnet101", help="the network (random init; default resnet101)")
    parser.add_argument("--perplexities", type=float, nargs="+", default=PERPLEXITIES)
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    parser.add_argument("--article-seeds", type=int, default=5, help="seeds per perplexity the article runs (1-5)")
    parser.add_argument("--per-run-opentsne", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args()

    root = DEMO if args.dataset == "demo" else animal_mnist_full()
    workdir = args.workdir or WORK / f"sweep-{args.dataset}-{args.n_images}"
    perplexities, seeds, arch = [wildcard_number(p) for p in args.perplexities], args.seeds, args.arch
    write_config(workdir, sweep_config(root, args.n_images, 1, arch, perplexities, seeds))
    results = workdir / "results"
    print(f"extracting features in {workdir} (not timed)", file=sys.stderr)
    run_snakemake(workdir, "--until", "extract_features", cores=args.cores)
    # Time the t-SNE part alone, from scratch.
    shutil.rmtree(results / "embeddings", ignore_errors=True)
    shutil.rmtree(results / "benchmarks" / "embeddings", ignore_errors=True)
    print("workflow sweep (timed)", file=sys.stderr)
    workflow_s = run_snakemake(workdir, "--until", "map", cores=args.cores)
    per_rule = rule_benchmarks(results)

    data = read_features(results / "features" / f"{arch}.h5")
    features = data["features"].astype(np.float64)
    keep = fixed_subsample(len(features), TRUST_MAX_IMAGES)
    ours = []
    for perplexity in perplexities:
        for seed in seeds:
            run = {"features": arch, "method": "tsne", "perplexity": perplexity, "seed": seed}
            tsv = results / "embeddings" / f"{run_name(run)}.tsv"
            _, coords = read_embedding(tsv)
            ours.append({"perplexity": perplexity, "seed": seed, "trust": trustworthiness_of(features, coords, keep)})

    n_runs = len(perplexities) * len(seeds)
    article_seeds = seeds[: max(1, min(args.article_seeds, len(seeds)))]
    print("article sweep (timed)", file=sys.stderr)
    article = article_runs(features, perplexities, article_seeds, keep)
    scale = len(seeds) / len(article_seeds)
    article_s = sum(r["s"] for r in article) * scale
    rows = []

    def add(method: str, measured: int, total_s: float, runs_quality: list[dict], note: str = "") -> None:
        trust = np.mean([r["trust"] for r in runs_quality])
        rows.append(
            [
                method,
                f"{measured} of {n_runs}{note}",
                f"{total_s:.1f}",
                f"{total_s / n_runs:.2f}",
                f"{article_s / total_s:.2f}",
                f"{trust:.4f}",
            ]
        )

    add(
        "article: scikit-learn TSNE per run, raw features",
        len(article),
        article_s,
        article,
        "" if scale == 1 else f" (sweep = measured x {scale:g})",
    )
    if args.per_run_opentsne:
        per_run = per_run_opentsne(features, perplexities, article_seeds, keep)
        add(
            "openTSNE, everything per run (one process)",
            len(per_run),
            sum(r["s"] for r in per_run) * scale,
            per_run,
            "" if scale == 1 else f" (sweep = measured x {scale:g})",
        )
    add(f"workflow: snakemake --cores {args.cores} --until tsne", n_runs, workflow_s, ours)

    # Matched quality: the same (perplexity, seed) in both methods.
    by_run = {(r["perplexity"], r["seed"]): r["trust"] for r in ours}
    deltas = [by_run[(r["perplexity"], r["seed"])] - r["trust"] for r in article]
    header = (
        f"N = {len(features)} images, {features.shape[1]}-d {arch} features (random init), "
        f"perplexities {perplexities} x seeds {seeds}\n\nMachine: {machine()}\n\nCommand: `{command_line()}`\n"
    )
    table = markdown_table(
        ["method", "runs measured", "sweep wall s", "s per run", "x faster than article", "trustworthiness (mean)"],
        rows,
    )
    jobs = markdown_table(
        ["workflow rule", "jobs", "summed job s", "max RSS MiB"],
        [
            [rule, e["jobs"], f"{e['s']:.1f}", f"{e['max_rss_mib']:.0f}"]
            for rule, e in per_rule.items()
            if rule in ("prepare_input", "knn_graph", "tsne_affinities", "map")
        ],
    )
    text = (
        f"{header}\n{table}\n\nTrustworthiness, workflow minus article, same (perplexity, seed): "
        f"mean {np.mean(deltas):+.4f}, range {min(deltas):+.4f} to {max(deltas):+.4f} "
        f"({len(deltas)} runs; k={TRUST_K}, {len(keep)} points).\n\n{jobs}\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    (workdir / "sweep-benchmark.json").write_text(
        json.dumps({"workflow_s": workflow_s, "article_s": article_s, "article": article, "ours": ours}, indent=1)
    )


if __name__ == "__main__":
    main()
