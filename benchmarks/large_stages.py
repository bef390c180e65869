"""Every stage after the prepared input at 250,000 and 1,000,000 images, as the workflow runs it: each
stage's own function in a fresh Python process (one thread, as the rules run them), its wall time, CPU
time (user + sys) and peak RSS (VmHWM), and the size of what it wrote.

    TSNE_ATLAS_BENCH_DIR=/work/bench PYTHONPATH=scripts python benchmarks/large_stages.py \\
        --sizes 250000 1000000 --images /work/bench/data/synthetic-1000000

What is real and what is made up: the images are real files (``--images``, a class-per-folder set such
as ``benchmarks/datasets.py synthetic``'s 48-px PNGs; without it that dataset is made at the largest
size) and ``sample_images`` and ``label_images`` really sample, check, hash and label N of them. The
prepared input (N x 50 float64), the features file (predictions and provenance only: 16 columns, as no
stage here reads more) and the maps (3 perplexities x 3 seeds, t-SNE's default sweep) are made here from
the labels: Gaussian class blobs, with a few planted near copies, mislabelled-looking and far-off
images so that the suspects, duplicates and outliers have something to list. What these stages cost
depends on N, the graph's width and the image files, not on the values (the number of clusters and of
listed pairs does). The map optimisations (t-SNE, UMAP) and the explorer page are not measured here;
``explorer_thumbnails`` runs because ``projector_export`` reads its thumbnails.

``--baseline COMMIT`` also measures ``--baseline-stages`` with the ``scripts/`` of that commit (``git
archive``) on the same inputs: today's code beside this one, where today's can run.

Importable: ``make_inputs(n, folder, images_root)`` and ``measure_stage(name, inputs)`` (what
benchmarks/million.py calls), ``STAGES`` (their order).
"""

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import BENCH_DIR, DATA_DIR, REPO, command_line, machine, markdown_table
from datasets import synthetic
from stages import CHILD  # a stage's function in a fresh process: its time and peak RSS

# The stages in workflow order; each reads what the ones before it wrote.
STAGES = (
    "sample_images",
    "label_images",
    "knn_graph k=90",
    "knn_graph k=150",
    "tsne_affinities perplexity=30",
    "tsne_affinities perplexity=50",
    "find_suspects",
    "find_clusters",
    "embedding_metrics",
    "image_quality",
    "scatter",
    "mosaic",
    "grid_mosaic",
    "sweep_overview",
    "suspects_figures",
    "explorer_thumbnails",
    "projector_export",
)
PERPLEXITIES = (5, 30, 50)
SEEDS = (0, 1, 2)
DIM = 50
FEATURE_DIM = 16
N_CLASSES = 10


@dataclass
class Inputs:
    """The files of one size: what the stages read and write, all under ``folder``."""

    n: int
    folder: Path
    root: Path  # the image folder sample_images samples from

    def __post_init__(self):
        self.folder = Path(self.folder)
        self.root = Path(self.root)

    def path(self, *parts: str) -> str:
        target = self.folder.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return str(target)

    @property
    def images(self) -> str:
        return self.path("sample", "images.csv")

    @property
    def manifest(self) -> str:
        return self.path("sample", "manifest.csv")

    @property
    def prepared(self) -> str:
        return self.path("embeddings", "input.h5")

    @property
    def features(self) -> str:
        return self.path("features.h5")

    def graph(self, k: int) -> str:
        return self.path("embeddings", "graph", f"k-{k}.npz")

    def run(self, perplexity: int, seed: int) -> tuple[str, str]:
        stem = self.path("embeddings", "tsne", f"perplexity-{perplexity}_seed-{seed}")
        return stem + ".tsv", stem + ".json"

    def metrics(self, perplexity: int, seed: int) -> str:
        return self.path("metrics", f"perplexity-{perplexity}_seed-{seed}.json")

    @property
    def thumbnails(self) -> str:
        return self.path("explorer", ".keep").removesuffix("/.keep")


def stage_call(name: str, inputs: Inputs) -> tuple[str, str, dict]:
    """(module, function, keyword arguments) of stage ``name`` on ``inputs``, with the default config's settings."""
    out = inputs.path
    run_tsv, run_json = inputs.run(30, 0)
    if name == "sample_images":
        return (
            "tsne_atlas.sampling",
            "sample_images",
            {
                "layout": "folders",
                "root": str(inputs.root),
                "extensions": [".png", ".jpg", ".jpeg"],
                "label_column": "label",
                "missing_label": "fail",
                "n_images": inputs.n,
                "seed": 0,
                "stratified": True,
                "on_bad_image": "skip",
                "images": inputs.images,
                "skipped": out("sample", "skipped.csv"),
            },
        )
    if name == "label_images":
        return (
            "tsne_atlas.sampling",
            "label_images",
            {
                "layout": "folders",
                "root": str(inputs.root),
                "label_column": "label",
                "missing_label": "fail",
                "label_map": {},
                "images": inputs.images,
                "manifest": inputs.manifest,
            },
        )
    if name.startswith("knn_graph"):
        k = int(name.split("=")[1])
        return "tsne_atlas.preparation", "knn_graph", {"prepared": inputs.prepared, "k": k, "graph": inputs.graph(k)}
    if name.startswith("tsne_affinities"):
        perplexity = int(name.split("=")[1])
        return (
            "tsne_atlas.preparation",
            "tsne_affinities",
            {
                "graph": inputs.graph(3 * perplexity),
                "perplexity": float(perplexity),
                "affinities": out("embeddings", "affinities", f"perplexity-{perplexity}.npz"),
                "threads": 1,
            },
        )
    graph = inputs.graph(3 * max(PERPLEXITIES))
    sample = {"images": inputs.images, "manifest": inputs.manifest}
    if name == "find_suspects":
        return (
            "tsne_atlas.suspects",
            "find_suspects",
            {
                "prepared": inputs.prepared,
                "graph": graph,
                **sample,
                "neighbours": 10,
                "near_duplicate_cosine": 0.99,
                "max_rows": 1000,
                **{table: out("suspects", f"{table}.csv") for table in ("suspects", "duplicates", "outliers")},
            },
        )
    clusters = {"clusters": out("clusters", "clusters.csv"), "clusters_summary": out("clusters", "summary.json")}
    if name == "find_clusters":
        return (
            "tsne_atlas.clusters",
            "find_clusters",
            {
                "prepared": inputs.prepared,
                "graph": graph,
                **sample,
                "features": inputs.features,
                "neighbours": 15,
                "resolution": 1.0,
                "seed": 0,
                "examples": 4,
                "features_id": "synthetic",
                "node": "penultimate",
                "assignments": clusters["clusters"],
                "table": out("clusters", "table.csv"),
                "summary": clusters["clusters_summary"],
            },
        )
    run = {"embedding": run_tsv, "meta": run_json, "manifest": inputs.manifest}
    if name == "embedding_metrics":
        return (
            "tsne_atlas.metrics",
            "embedding_metrics_for_run",
            {
                "prepared": inputs.prepared,
                **run,
                "trustworthiness_k": 10,
                "knn_k": 5,
                "max_images": 5000,
                "metrics": inputs.metrics(30, 0),
            },
        )
    if name == "image_quality":
        from tsne_atlas.quality import CHECKS

        return (
            "tsne_atlas.quality_figure",
            "image_quality",
            {
                **sample,
                "root": str(inputs.root),
                "thresholds": {
                    "blurry_below": 0.25,
                    "dark_below": 0.32,
                    "light_above": 0.95,
                    "low_information_below": 3.0,
                    "odd_aspect_ratio_below": 0.35,
                    "grayscale_below": 0.005,
                    "small_below": 64,
                },
                "max_share": 0.5,
                "thumb_size": 96,
                "max_images": 12,
                "quality": out("quality", "quality.csv"),
                "figures": [out("quality", f"{check.name}.png") for check in CHECKS],
            },
        )
    if name == "scatter":
        return (
            "tsne_atlas.scatter",
            "scatter",
            {
                **run,
                "features": inputs.features,
                **clusters,
                "point_size": 12,
                "width_in": 8,
                "dpi": 150,
                "density_contours": False,
                "png": out("scatter", "run.png"),
                "svg": out("scatter", "run.svg"),
                "predicted": out("scatter", "run.predicted.png"),
                "cluster_map": out("scatter", "run.clusters.png"),
            },
        )
    if name == "mosaic":
        return (
            "tsne_atlas.mosaic",
            "mosaic",
            {
                **run,
                "root": str(inputs.root),
                "canvas_size": 2000,
                "thumb_size": 64,
                "border": 3,
                "background": "white",
                "max_images": 10000,
                "png": out("mosaic", "run.png"),
            },
        )
    if name == "grid_mosaic":
        return (
            "tsne_atlas.grid_mosaic",
            "grid_mosaic",
            {
                **run,
                "root": str(inputs.root),
                "thumb_size": 48,
                "border": 2,
                "background": "white",
                "max_images": 2500,
                "png": out("grid_mosaic", "run.png"),
            },
        )
    if name == "sweep_overview":
        runs = [(p, s) for p in PERPLEXITIES for s in SEEDS]
        return (
            "tsne_atlas.overview",
            "sweep_overview",
            {
                "embeddings": [inputs.run(p, s)[0] for p, s in runs],
                "metas": [inputs.run(p, s)[1] for p, s in runs],
                "metrics": [inputs.metrics(p, s) for p, s in runs],
                "manifest": inputs.manifest,
                "clusters": clusters["clusters"],
                "panel_in": 2.6,
                "dpi": 150,
                "png": out("overview", "sheet.png"),
                "pdf": out("overview", "sheet.pdf"),
                "clusters_png": out("overview", "sheet.clusters.png"),
            },
        )
    if name == "suspects_figures":
        return (
            "tsne_atlas.suspects_figure",
            "suspects_figures",
            {
                **{table: out("suspects", f"{table}.csv") for table in ("suspects", "duplicates", "outliers")},
                "manifest": inputs.manifest,
                "features": inputs.features,
                "features_id": "synthetic",
                "node": "penultimate",
                "root": str(inputs.root),
                "thumb_size": 96,
                "near_duplicate_cosine": 0.99,
                **{f"{table}_png": out("suspects", f"{table}.png") for table in ("suspects", "duplicates", "outliers")},
            },
        )
    if name == "explorer_thumbnails":
        return (
            "tsne_atlas.thumbnails",
            "explorer_thumbnails",
            {
                "images": inputs.images,
                "root": str(inputs.root),
                "thumbnails": inputs.thumbnails,
                "thumb_size": 96,
                "max_images": 100_000,
                "threads": 2,
            },
        )
    if name == "projector_export":
        return (
            "tsne_atlas.projector",
            "projector_export",
            {
                "prepared": inputs.prepared,
                **sample,
                "features": inputs.features,
                "thumbnails": inputs.thumbnails,
                "features_id": "synthetic",
                **{key: out("projector", f"{key}.{ext}") for key, ext in (("tensors", "tsv"), ("metadata", "tsv"))},
                "sprite": out("projector", "sprite.jpg"),
                "record": out("projector", "embedding.json"),
            },
        )
    raise ValueError(f"no stage {name!r}; stages: {', '.join(STAGES)}")


# What each stage writes, whose size the report gives (relative to the inputs' folder).
OUTPUTS = {
    "sample_images": ["sample/images.csv"],
    "knn_graph k=90": ["embeddings/graph/k-90.npz"],
    "knn_graph k=150": ["embeddings/graph/k-150.npz"],
    "tsne_affinities perplexity=30": ["embeddings/affinities/perplexity-30.npz"],
    "tsne_affinities perplexity=50": ["embeddings/affinities/perplexity-50.npz"],
    "find_suspects": ["suspects/suspects.csv", "suspects/duplicates.csv", "suspects/outliers.csv"],
    "find_clusters": ["clusters/clusters.csv", "clusters/table.csv", "clusters/summary.json"],
    "image_quality": ["quality/quality.csv"],
    "scatter": ["scatter/run.png", "scatter/run.svg", "scatter/run.clusters.png", "scatter/run.predicted.png"],
    "sweep_overview": ["overview/sheet.png", "overview/sheet.pdf", "overview/sheet.clusters.png"],
    "projector_export": ["projector/tensors.tsv", "projector/sprite.jpg"],
}


def measure(module: str, function: str, kwargs: dict, scripts: Path = REPO / "scripts") -> dict:
    """``module.function(**kwargs)`` in a fresh Python process with ``scripts`` on its path, one thread:
    wall seconds (process start and imports included) and of the function alone, CPU seconds (user +
    sys of the process, from the resource usage of the waited-for child), peak RSS (VmHWM, MiB)."""
    import resource

    env = {**os.environ, "PYTHONPATH": str(scripts), "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, module, function, json.dumps(kwargs)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{module}.{function} failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    child = json.loads(result.stdout.strip().splitlines()[-1])
    child["function_s"] = child.pop("s")
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), **{key: round(value, 2) for key, value in child.items()}}


def measure_stage(name: str, inputs: Inputs, scripts: Path = REPO / "scripts") -> dict:
    """Stage ``name`` on ``inputs`` (its inputs must exist: the stages before it in STAGES, and
    ``make_inputs``'s files): wall, CPU and peak RSS, and the MiB of what it wrote."""
    module, function, kwargs = stage_call(name, inputs)
    result = measure(module, function, kwargs, scripts)
    sizes = {
        p: (inputs.folder / p).stat().st_size / 2**20 for p in OUTPUTS.get(name, []) if (inputs.folder / p).exists()
    }
    if sizes:
        result["output_mib"] = {p: round(size, 2) for p, size in sizes.items()}
    return result


def measure_baseline(name: str, inputs: Inputs, scripts: Path) -> dict:
    """``measure_stage`` with another ``scripts`` folder, after this code's run of the stage: whether each
    file of OUTPUTS[name] came out the same, byte for byte; this code's files are put back afterwards."""
    import filecmp
    import shutil

    kept = {}
    with tempfile.TemporaryDirectory(prefix="large-stages-kept-", dir=inputs.folder) as keep:
        for relative in OUTPUTS.get(name, []):
            if (inputs.folder / relative).exists():
                kept[relative] = Path(keep) / relative.replace("/", "--")
                shutil.copy2(inputs.folder / relative, kept[relative])
        result = measure_stage(name, inputs, scripts)
        result["same_outputs"] = {
            relative: filecmp.cmp(inputs.folder / relative, copy, shallow=False) for relative, copy in kept.items()
        }
        for relative, copy in kept.items():
            shutil.copy2(copy, inputs.folder / relative)
    return result


def labels_of(inputs: Inputs) -> np.ndarray:
    """Each sampled image's class index (its folder ``class<c>``), in sample order."""
    from tsne_atlas.files.manifest import read_manifest

    labels = read_manifest(inputs.manifest).labels
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[label] for label in labels], dtype=np.int64)


def make_inputs(inputs: Inputs, seed: int = 0) -> None:
    """The made-up files of ``inputs`` (after label_images): the prepared input, the features file and
    the maps with their metrics (the module's docstring). Deterministic for a sample and seed."""
    from tsne_atlas.files.features import write_features
    from tsne_atlas.files.manifest import read_images
    from tsne_atlas.files.map_inputs import write_input
    from tsne_atlas.files.metrics import write_run_metrics
    from tsne_atlas.files.runs import write_run

    paths, _ = read_images(inputs.images)
    labels = labels_of(inputs)
    n = len(paths)
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(N_CLASSES, DIM))
    spread = rng.uniform(0.7, 1.5, size=N_CLASSES)
    X = np.empty((n, DIM))
    for first in range(0, n, 100_000):
        rows = slice(first, min(first + 100_000, n))
        X[rows] = centres[labels[rows]] + rng.normal(size=(rows.stop - first, DIM)) * spread[labels[rows], None]
    # 2 % look mislabelled (they sit in another class's blob), 0.1 % are near copies of another image,
    # 0.05 % sit far from every blob.
    odd = rng.choice(n, size=max(1, n // 50), replace=False)
    X[odd] = centres[(labels[odd] + 1) % N_CLASSES] + rng.normal(size=(len(odd), DIM))
    copies = rng.choice(n, size=(max(1, n // 1000), 2), replace=False)
    X[copies[:, 1]] = X[copies[:, 0]] + rng.normal(0, 1e-3, size=(len(copies), DIM))
    far = rng.choice(n, size=max(1, n // 2000), replace=False)
    X[far] += rng.normal(0, 8, size=(len(far), DIM))
    write_input(
        inputs.prepared,
        X,
        {
            "standardize": True,
            "pca_components": DIM,
            "feature_dim": FEATURE_DIM,
            "n_images": n,
            "features_file": inputs.features,
            "node": "penultimate",
        },
    )
    del X

    classes = [f"class{c}" for c in range(N_CLASSES)] + [f"other{c}" for c in range(10)]

    def batches():
        for first in range(0, n, 10_000):
            rows = labels[first : first + 10_000]
            batch_rng = np.random.default_rng([seed, first])
            top = np.stack([rows] + [batch_rng.integers(0, len(classes), len(rows)) for _ in range(4)], axis=1)
            wrong = batch_rng.random(len(rows)) < 0.1
            top[wrong, 0] = batch_rng.integers(N_CLASSES, len(classes), int(wrong.sum()))
            probability = np.sort(batch_rng.dirichlet(np.ones(5), len(rows)).astype(np.float32), axis=1)[:, ::-1]
            yield {
                "penultimate": batch_rng.normal(size=(len(rows), FEATURE_DIM)).astype(np.float32),
                "@top_index": top.astype(np.int32),
                "@top_probability": np.ascontiguousarray(probability),
            }

    write_features(
        inputs.features,
        batches(),
        n,
        paths,
        {"feature_set": "synthetic", "model": "synthetic", "weights_random": True},
        {"penultimate": "flatten"},
        classes=classes,
    )

    angle = 2 * np.pi * np.arange(N_CLASSES) / N_CLASSES
    centres_2d = 12 * np.column_stack([np.cos(angle), np.sin(angle)])
    for perplexity in PERPLEXITIES:
        for run_seed in SEEDS:
            run_rng = np.random.default_rng([seed, perplexity, run_seed])
            coords = centres_2d[labels] + run_rng.normal(size=(n, 2)) * (1 + perplexity / 50)
            tsv, meta_json = inputs.run(perplexity, run_seed)
            meta = {
                "features": "synthetic",
                "method": "tsne",
                "perplexity": perplexity,
                "seed": run_seed,
                "kl_divergence": 3.0,
                "runtime_s": 0.0,
                "standardize": True,
                "pca_components": DIM,
                "n_images": n,
                "feature_dim": FEATURE_DIM,
                "features_file": inputs.features,
                "model": "synthetic",
                "weights_random": True,
            }
            write_run(tsv, meta_json, paths, coords, meta)
            write_run_metrics(
                inputs.metrics(perplexity, run_seed),
                {
                    "features": "synthetic",
                    "method": "tsne",
                    "perplexity": perplexity,
                    "seed": run_seed,
                    "trustworthiness": 0.9,
                    "knn_accuracy_2d": 0.9,
                    "knn_accuracy_features": 0.9,
                    "trustworthiness_k": 10,
                    "knn_k": 5,
                    "kl_divergence": 3.0,
                    "n_images": n,
                    "n_metric_images": min(n, 5000),
                    "runtime_s": 0.0,
                    "weights_random": True,
                },
            )


def baseline_scripts(commit: str, folder: Path) -> Path:
    """The ``scripts/`` folder of ``commit``, extracted under ``folder``."""
    archive = subprocess.run(["git", "archive", commit, "scripts"], cwd=REPO, capture_output=True, check=True).stdout
    with tempfile.NamedTemporaryFile(suffix=".tar") as handle:
        handle.write(archive)
        handle.flush()
        with tarfile.open(handle.name) as tar:
            tar.extractall(folder, filter="data")
    return folder / "scripts"


def report(results: dict, sizes: list[int]) -> str:
    """A Markdown table: per stage and size, wall s, CPU s and peak RSS MiB."""
    names = list(dict.fromkeys(name for size in sizes for name in results.get(str(size), {})))
    rows = []
    for name in names:
        row = [name]
        for size in sizes:
            got = results.get(str(size), {}).get(name)
            row.append(
                f"{got['wall_s']:.1f} s, CPU {got['cpu_s']:.1f} s, {got['peak_rss_mib']:,.0f} MiB" if got else "–"
            )
        rows.append(row)
    return markdown_table(["stage", *[f"{size:,}" for size in sizes]], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--images", type=Path, help="class-per-folder images (default: synthetic-<largest size>)")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), help=f"a subset of: {', '.join(STAGES)}")
    parser.add_argument("--folder", type=Path, default=BENCH_DIR / "large-stages", help="where the inputs are made")
    parser.add_argument("--baseline", help="a commit whose scripts/ to measure too (e.g. main)")
    parser.add_argument("--baseline-stages", nargs="+", default=["find_suspects", "scatter", "sweep_overview"])
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "work" / "large_stages.json")
    parser.add_argument("--md", type=Path, help="also write the table as Markdown")
    args = parser.parse_args()
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        raise SystemExit(f"--stages: no stage {unknown}; stages: {', '.join(STAGES)}")
    if args.images is None:
        args.images = synthetic(max(args.sizes), DATA_DIR)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["machine"] = machine()
    results["command"] = command_line()
    with tempfile.TemporaryDirectory(prefix="large-stages-") as tmp:
        old = baseline_scripts(args.baseline, Path(tmp)) if args.baseline else None
        for n in args.sizes:
            inputs = Inputs(n, args.folder / f"n-{n}", args.images)
            done = results.setdefault(str(n), {})
            for name in [s for s in STAGES if s in args.stages]:
                done[name] = measure_stage(name, inputs)
                print(n, name, done[name], file=sys.stderr, flush=True)
                if name == "label_images":
                    make_inputs(inputs)
                if old is not None and name in args.baseline_stages:
                    done[f"{name} ({args.baseline})"] = measure_baseline(name, inputs, old)
                    print(n, name, args.baseline, done[f"{name} ({args.baseline})"], file=sys.stderr, flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(results, indent=2) + "\n")
    table = report(results, args.sizes)
    print(table)
    if args.md:
        args.md.write_text(f"{results['machine']}\n\n`{results['command']}`\n\n{table}\n")


if __name__ == "__main__":
    main()
