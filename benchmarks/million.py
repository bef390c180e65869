"""A million images on one machine: the whole workflow at 250,000 and 1,000,000 images, every job's wall
time, CPU time and peak RSS, side by side with an earlier revision's code where that code can run.

Inputs, made once under ``$TSNE_ATLAS_BENCH_DIR`` (default ``benchmarks/``) for the largest size N;
a smaller run samples its images from them (``sample.n_images``):

- ``data/synthetic-<N>/``: ``datasets.synthetic(N)``, 48-px PNGs in 10 class folders (what sampling,
  image quality, thumbnails, mosaics and the explorer decode);
- ``million/features-<N>x<D>.h5``: a precomputed feature file (datasets ``features`` and ``paths``) of
  N x D float32 rows, 10 Gaussian class blobs (the image's class) plus noise, written in blocks.

Each run is a real ``snakemake --cores C all`` of a config with one ``precomputed`` feature set (what
the stages after extraction cost depends on N and D, not on where the features came from), the methods
asked for (``--methods``; one map per method: t-SNE perplexity 30, UMAP n_neighbors 15, seed 0), the
graph at k = 90 (perplexity 30's), and every other stage at its defaults. Snakemake's ``benchmark:``
file of each job gives its wall s, CPU s and max RSS; they are summed per rule (max RSS: the largest).

``--code REV`` runs the same config with the workflow of git revision ``REV`` (a worktree under
``million/code-<rev>/``, using this interpreter): today's code beside the new one. A job that fails (a
revision that needs more memory than the machine has) is reported as such, with what ran before it.

Where a map's optimisation at 1,000,000 takes too long for a run here, ``--iterations`` measures it
apart, on the run's own prepared input and graph: t-SNE (openTSNE, the workflow's FFT gradient, 2
threads) and UMAP (umap-learn, one thread as the workflow runs it) each twice with different numbers of
iterations; the difference gives the cost per iteration, the rest the fixed cost, and the whole run
(750 t-SNE iterations, UMAP's 200 epochs) is extrapolated from them, and said to be. ``--iterations
tsne`` (or ``umap``) measures that one alone.

    PYTHONPATH=scripts python benchmarks/million.py --sizes 250000 --methods tsne umap pca --code 998e128
    PYTHONPATH=scripts python benchmarks/million.py --sizes 1000000 --methods pca --iterations
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import BENCH_DIR, REPO, SNAKEMAKE, command_line, machine, markdown_table, write_config
from datasets import synthetic

N_CLASSES = 10
PERPLEXITY = 30
GRAPH_NEIGHBOURS = 90  # 3 x perplexity 30: what the t-SNE run reads
UMAP_NEIGHBOURS = 15
BLOCK_ROWS = 50_000
SET = "synthetic"
TSNE_ITERATIONS = 750  # openTSNE's default: 250 early exaggeration + 500
UMAP_EPOCHS = 200  # umap-learn's default above 10,000 points
BENCHMARK_FIELDS = ("s", "cpu_time", "max_rss")
# --iterations: each optimisation's two runs, at these numbers of iterations.
ITERATION_COUNTS = {"tsne": (30, 90), "umap": (5, 25)}


def class_of(path: str) -> int:
    return int(path.split("/")[0].removeprefix("class"))


def image_paths(root: Path) -> list[str]:
    """The dataset's PNGs as the workflow's paths (relative, class folder first), in a fixed order."""
    return sorted(p.relative_to(root).as_posix() for p in root.glob("class*/*.png"))


def write_precomputed(path: Path, paths: list[str], dim: int, seed: int = 0) -> Path:
    """N x dim float32 class blobs keyed by path, written BLOCK_ROWS rows at a time (never whole in memory)."""
    import h5py

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    centres = np.random.default_rng(seed).normal(scale=2.0, size=(N_CLASSES, dim)).astype(np.float32)
    classes = np.array([class_of(p) for p in paths])
    tmp = path.with_name(f".tmp-{path.name}")
    with h5py.File(tmp, "w") as out:
        features = out.create_dataset(
            "features", (len(paths), dim), dtype="float32", chunks=(min(1024, len(paths)), dim)
        )
        out.create_dataset("paths", data=np.array(paths, dtype=object), dtype=h5py.string_dtype())
        for first in range(0, len(paths), BLOCK_ROWS):
            rng = np.random.default_rng([seed, first])
            rows = classes[first : first + BLOCK_ROWS]
            features[first : first + len(rows)] = centres[rows] + rng.standard_normal(
                (len(rows), dim), dtype=np.float32
            )
    os.replace(tmp, path)
    return path


def run_config(root: Path, features: Path, n: int, methods: list[str], threads: int) -> dict:
    return {
        "results": "results",
        "dataset": {"root": str(root)},
        "sample": {"n_images": n, "seed": 0},
        "features": {SET: {"source": "precomputed", "path": str(features)}},
        "methods": methods,
        "graph": {"neighbours": GRAPH_NEIGHBOURS},
        "tsne": {"perplexities": [PERPLEXITY], "seeds": [0], "threads": threads},
        "umap": {"n_neighbors": [UMAP_NEIGHBOURS], "seeds": [0]},
        "pacmap": {"seeds": [0]},
    }


def code_tree(rev: str) -> Path:
    """A worktree of ``rev`` (made once) whose Snakefile runs that revision's code."""
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = BENCH_DIR / "million" / f"code-{sha}"
    if not (tree / "Snakefile").exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), sha], check=True)
    return tree


def run_workflow(code: Path, workdir: Path, cores: int) -> dict:
    """``snakemake all`` with ``code``'s Snakefile in ``workdir``; wall s, whether it finished, its last lines."""
    cmd = [SNAKEMAKE, "-s", str(code / "Snakefile"), "all", "--directory", str(workdir)]
    cmd += ["--configfile", str(workdir / "config.yaml"), "--cores", str(cores), "--keep-going"]
    env = {**os.environ, "PYTHONPATH": str(code / "scripts")}
    start = time.perf_counter()
    with open(workdir / "snakemake.log", "w") as log:
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir).returncode == 0
    tail = (workdir / "snakemake.log").read_text().splitlines()[-15:]
    return {"wall_s": time.perf_counter() - start, "finished": done, "tail": tail}


# Benchmark files whose folder or name is not their rule's name (rules/*.smk's ``benchmark:`` lines).
RULE_OF_FILE = {
    "clusters": "find_clusters",
    "metrics": "embedding_metrics",
    "projector/config": "projector_config",
    "projector": "projector_export",
    "quality": "image_quality",
    "explorer/thumbnails": "explorer_thumbnails",
    "suspects/find": "find_suspects",
    "suspects/figures": "suspects_figures",
}
SHARED_OF_FILE = {"input": "prepare_input", "graph": "knn_graph", "affinities": "tsne_affinities"}


def rule_of(rel: Path) -> str:
    """The rule (a map: ``map <method>``) whose job wrote the benchmark file ``rel`` (under benchmarks/)."""
    parts = rel.with_suffix("").parts
    if parts[0] == "extract_features" and len(parts) == 3:
        return "extract_features_shard"
    if parts[0] == "compare":
        return f"compare_{parts[1]}"
    if parts[0] == "embeddings":
        return f"map {parts[2]}" if len(parts) == 4 else SHARED_OF_FILE[parts[2].split("-", 1)[0]]
    for key in (f"{parts[0]}/{parts[-1]}", parts[0]):
        if key in RULE_OF_FILE:
            return RULE_OF_FILE[key]
    return parts[0]


def job_benchmarks(results: Path) -> dict[str, dict]:
    """Per rule: jobs, summed wall and CPU s, largest max RSS (MiB), from Snakemake's benchmark files."""
    rules: dict[str, dict] = {}
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = rule_of(tsv.relative_to(results / "benchmarks"))
        with open(tsv, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if not rows:
            continue
        entry = rules.setdefault(rule, {"jobs": 0, "s": 0.0, "cpu_s": 0.0, "max_rss_mib": 0.0})
        entry["jobs"] += 1
        entry["s"] += float(rows[0]["s"])
        for field, key in (("cpu_time", "cpu_s"), ("max_rss", "max_rss_mib")):
            value = rows[0].get(field, "NA")
            if value not in ("NA", "", "-"):
                entry[key] = entry[key] + float(value) if key == "cpu_s" else max(entry[key], float(value))
    return rules


def failed_rules(log: Path) -> list[str]:
    """Rules whose job failed, from Snakemake's log."""
    failed = []
    for line in log.read_text().splitlines():
        if line.startswith("Error in rule "):
            failed.append(line.removeprefix("Error in rule ").rstrip(":"))
    return sorted(set(failed))


# --- map optimisations apart (--iterations) -----------------------------------------------------

CHILD = """
import json, sys, time
import numpy as np
from tsne_atlas.files.map_inputs import read_input, read_neighbours
def hwm():
    with open("/proc/self/status") as s:
        return next(int(l.split()[1]) / 1024 for l in s if l.startswith("VmHWM:"))
method, prepared, graph, iterations = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
X, _ = read_input(prepared)
indices, distances = read_neighbours(graph)
if method == "umap":  # numba compiles umap-learn's functions on first use: not part of the optimisation's cost
    from tsne_atlas.methods.umap import compile_umap
    compile_umap()
t0, c0 = time.perf_counter(), time.process_time()
if method == "tsne":
    from openTSNE import TSNE
    from openTSNE.affinity import PrecomputedAffinities
    from tsne_atlas.preparation import affinities_from_neighbours
    P = affinities_from_neighbours(indices, distances, 30.0, 2)
    tsne = TSNE(perplexity=30.0, initialization="pca", random_state=0, n_jobs=2, negative_gradient_method="fft",
                early_exaggeration_iter=iterations // 3, n_iter=iterations - iterations // 3, verbose=False)
    tsne.fit(X, affinities=PrecomputedAffinities(P, normalize=False))
else:
    import umap
    from tsne_atlas.methods.umap import umap_knn
    knn = umap_knn(indices, distances, 15)
    umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=0, n_jobs=1, n_epochs=iterations,
              precomputed_knn=(*knn, None)).fit_transform(X)
print(json.dumps({"s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "peak_rss_mib": hwm()}))
"""


def optimisation(method: str, prepared: Path, graph: Path, counts: tuple[int, int]) -> dict:
    """Two runs of ``method`` with ``counts`` iterations: per-iteration and fixed cost, the whole run extrapolated."""
    runs = []
    for count in counts:
        cmd = [sys.executable, "-c", CHILD, method, str(prepared), str(graph), str(count)]
        env = {**os.environ, "NUMBA_NUM_THREADS": "2", "PYTHONPATH": str(REPO / "scripts")}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode:
            raise SystemExit(f"{method} with {count} iterations failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(method, count, runs[-1], file=sys.stderr)
    (few, many), (a, b) = counts, runs
    per = (b["s"] - a["s"]) / (many - few)
    fixed = a["s"] - per * few
    whole = TSNE_ITERATIONS if method == "tsne" else UMAP_EPOCHS
    return {
        "counts": counts,
        "runs": runs,
        "per_iteration_s": per,
        "fixed_s": fixed,
        "whole_iterations": whole,
        "whole_s_est": fixed + per * whole,
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
    }


# --- report -------------------------------------------------------------------------------------


def fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def report(everything: list[dict]) -> str:
    lines = [f"Machine: {machine()}", f"Command: {command_line()}", ""]
    for size in everything:
        codes = size["runs"]
        rules = sorted({rule for run in codes.values() for rule in run["rules"]})
        header = ["rule"] + [f"{name}: {col}" for name in codes for col in ("jobs", "wall s", "CPU s", "peak MiB")]
        rows = []
        for rule in rules:
            row = [f"`{rule}`"]
            for run in codes.values():
                entry = run["rules"].get(rule)
                if entry is None:
                    mark = "failed" if rule in run["failed"] else "–"
                    row += [mark, "", "", ""]
                else:
                    row += [entry["jobs"], fmt(entry["s"], 1), fmt(entry["cpu_s"], 1), fmt(entry["max_rss_mib"])]
            rows.append(row)
        lines.append(f"### {size['n']:,} images x {size['dim']:,} dimensions, methods {', '.join(size['methods'])}")
        lines.append("")
        lines.append(markdown_table(header, rows))
        lines.append("")
        for name, run in codes.items():
            state = "finished" if run["finished"] else f"stopped; failed: {', '.join(run['failed']) or 'see its log'}"
            lines.append(f"- {name}: whole run {fmt(run['wall_s'])} s wall, {state}")
        for method, it in size.get("iterations", {}).items():
            few, many = it["counts"]
            lines.append(
                f"- {method} apart: {few} and {many} iterations took {fmt(it['runs'][0]['s'], 1)} and "
                f"{fmt(it['runs'][1]['s'], 1)} s, peak {fmt(it['peak_rss_mib'])} MiB: {it['per_iteration_s']:.3f} s per "
                f"iteration + {fmt(it['fixed_s'], 1)} s fixed; {it['whole_iterations']} iterations **~{fmt(it['whole_s_est'])} "
                "s (extrapolated)**"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000])
    parser.add_argument("--dim", type=int, default=512, help="feature width of the precomputed set")
    parser.add_argument("--methods", nargs="+", default=["tsne", "umap", "pca"])
    parser.add_argument("--code", action="append", default=[], help="also run git revision REV's workflow")
    parser.add_argument(
        "--iterations",
        nargs="*",
        choices=sorted(ITERATION_COUNTS),
        help="t-SNE's and UMAP's optimisations (or those named) measured apart",
    )
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="keep earlier results (default: every run from scratch)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "million" / "million.json")
    parser.add_argument("--report", type=Path, help="also write the Markdown report here")
    args = parser.parse_args()

    everything = []
    # One dataset and feature file for every size: the largest; a smaller run samples its images from it.
    largest = max(args.sizes)
    print(f"images: {largest}", file=sys.stderr)
    root = synthetic(largest)
    paths = image_paths(root)
    print(f"features: {largest} x {args.dim}", file=sys.stderr)
    features = write_precomputed(BENCH_DIR / "million" / f"features-{largest}x{args.dim}.h5", paths, args.dim)
    for n in args.sizes:
        size = {"n": n, "dim": args.dim, "methods": args.methods, "runs": {}}
        trees = {"this code": REPO, **{f"code {rev}": code_tree(rev) for rev in args.code}}
        for name, code in trees.items():
            workdir = BENCH_DIR / "million" / f"run-{n}x{args.dim}-{code.name if code != REPO else 'this'}"
            if not args.reuse:
                for stale in (workdir / "results", workdir / ".snakemake"):
                    shutil.rmtree(stale, ignore_errors=True)
            write_config(workdir, run_config(root, features, n, args.methods, args.cores))
            print(f"{n}: workflow, {name} ({workdir})", file=sys.stderr)
            run = run_workflow(code, workdir, args.cores)
            run["rules"] = job_benchmarks(workdir / "results")
            run["failed"] = failed_rules(workdir / "snakemake.log")
            size["runs"][name] = run
            if name == "this code" and args.iterations is not None:
                prepared = workdir / "results" / "embeddings" / SET / "input.h5"
                graph = workdir / "results" / "embeddings" / SET / "graph" / f"k-{GRAPH_NEIGHBOURS}.npz"
                size["iterations"] = {
                    method: optimisation(method, prepared, graph, counts)
                    for method, counts in ITERATION_COUNTS.items()
                    if method in (args.iterations or ITERATION_COUNTS)
                }
        everything.append(size)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(everything, indent=1))
    text = report(everything)
    if args.report:
        args.report.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
