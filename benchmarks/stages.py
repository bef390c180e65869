"""Stages at 10,000 and 100,000 images that the other benchmarks do not time (docs/scaling.md, "How the
*here* numbers were measured"): the sweep's prepared input (z-scoring + PCA of 2,048-d features),
its k-NN graph (k = 150), the suspects lists, the clusters, the projector export, one UMAP map and one
scatter plot (with its cluster map).
Each is the workflow's own stage function in a fresh child process, one run each: its wall time and
peak RSS (VmHWM).

Inputs: the Explorer benchmark's samples and thumbnails (``benchmarks/work/explorer-<N>/``: synthetic
48-px PNG paths in 10 classes, 96-px JPEG atlases; make them first with ``benchmarks/explorer.py``),
distinct fake content hashes, and a features file of N x 2,048 float32 made of 10 Gaussian class blobs
plus noise (``files.features.write_features``): what these stages cost depends on N and the width, not
on the values.

    PYTHONPATH=scripts python benchmarks/explorer.py          # once: benchmarks/work/explorer-<N>/
    PYTHONPATH=scripts python benchmarks/stages.py --sizes 10000 100000
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import REPO, WORK

CHILD = """
import json, sys, time, importlib
def hwm(field="VmHWM"):
    with open("/proc/self/status") as s:
        for line in s:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
module, function, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
fn = getattr(importlib.import_module(module), function)
imported = hwm("VmRSS")
t = time.perf_counter()
out = fn(**kwargs)
s = time.perf_counter() - t
extra = {k: out[k] for k in ("runtime_s", "compile_s") if isinstance(out, dict) and k in out}
print(json.dumps({"s": s, "rss_after_imports_mib": imported, "peak_rss_mib": hwm(), **extra}))
"""


def child(module: str, function: str, **kwargs) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", CHILD, module, function, json.dumps(kwargs)]
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"{function} failed:\n{result.stderr[-3000:]}")
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "process_wall_s": time.perf_counter() - start}


def blob_batches(labels: np.ndarray, centers: np.ndarray, rows_per_batch: int = 1000):
    """Feature rows of 10 Gaussian class blobs plus noise, by batch, seeded per batch."""
    for first in range(0, len(labels), rows_per_batch):
        rng = np.random.default_rng([2, first])
        rows = labels[first : first + rows_per_batch]
        yield {"penultimate": centers[rows] + rng.standard_normal((len(rows), centers.shape[1]), dtype=np.float32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--umap-runs", type=int, choices=[1, 2], default=2, help="UMAP jobs: 2 = cache empty, then warm"
    )
    parser.add_argument("--out", type=Path, default=WORK / "stages.json")
    args = parser.parse_args()
    from tsne_atlas.files.features import write_features
    from tsne_atlas.files.manifest import read_images, write_images

    out = {}
    for n in args.sizes:
        src = WORK / f"explorer-{n}"
        if not (src / "images.csv").exists():
            raise SystemExit(f"{src}/images.csv is missing: run PYTHONPATH=scripts python benchmarks/explorer.py first")
        with tempfile.TemporaryDirectory(prefix=f"stages-{n}-") as tmp:
            tmp = Path(tmp)
            paths, _ = read_images(src / "images.csv")
            images = tmp / "images.csv"
            write_images(images, paths, [hashlib.sha256(p.encode()).hexdigest() for p in paths])
            labels = np.array([int(p.split("/")[0].removeprefix("class")) for p in paths])
            centers = np.random.default_rng(1).standard_normal((10, 2048)).astype(np.float32)

            features = tmp / "features.h5"
            write_features(
                features,
                blob_batches(labels, centers),
                n,
                paths,
                {"feature_set": "synthetic", "weights_random": True},
                {"penultimate": "flatten"},
            )
            prepared, graph = tmp / "input.h5", tmp / "k-150.npz"
            res = {}
            res["prepare_input"] = child(
                "tsne_atlas.preparation",
                "prepare_input",
                features=str(features),
                node="penultimate",
                standardize=True,
                pca_components=50,
                prepared=str(prepared),
            )
            print(n, "prepare_input", res["prepare_input"], file=sys.stderr)
            res["knn_graph"] = child(
                "tsne_atlas.preparation", "knn_graph", prepared=str(prepared), k=150, graph=str(graph)
            )
            print(n, "knn_graph", res["knn_graph"], file=sys.stderr)
            res["find_suspects"] = child(
                "tsne_atlas.suspects",
                "find_suspects",
                prepared=str(prepared),
                graph=str(graph),
                images=str(images),
                manifest=str(src / "manifest.csv"),
                neighbours=10,
                near_duplicate_cosine=0.99,
                max_rows=1000,
                suspects=str(tmp / "suspects.csv"),
                duplicates=str(tmp / "duplicates.csv"),
                outliers=str(tmp / "outliers.csv"),
            )
            print(n, "find_suspects", res["find_suspects"], file=sys.stderr)
            res["find_clusters"] = child(
                "tsne_atlas.clusters",
                "find_clusters",
                prepared=str(prepared),
                graph=str(graph),
                images=str(images),
                manifest=str(src / "manifest.csv"),
                features=str(features),
                neighbours=15,
                resolution=1.0,
                seed=0,
                examples=4,
                features_id="synthetic",
                node="penultimate",
                assignments=str(tmp / "clusters.csv"),
                table=str(tmp / "clusters-table.csv"),
                summary=str(tmp / "clusters.json"),
            )
            print(n, "find_clusters", res["find_clusters"], file=sys.stderr)
            res["projector_export"] = child(
                "tsne_atlas.projector",
                "projector_export",
                prepared=str(prepared),
                images=str(images),
                manifest=str(src / "manifest.csv"),
                features=str(features),
                thumbnails=str(src / "results" / "explorer"),
                features_id="synthetic",
                tensors=str(tmp / "p" / "tensors.tsv"),
                metadata=str(tmp / "p" / "metadata.tsv"),
                sprite=str(tmp / "p" / "sprite.jpg"),
                record=str(tmp / "p" / "embedding.json"),
            )
            res["projector_export"]["output_mib"] = {p.name: p.stat().st_size / 2**20 for p in (tmp / "p").iterdir()}
            print(n, "projector_export", res["projector_export"], file=sys.stderr)
            os.environ.setdefault("NUMBA_CACHE_DIR", str(WORK / ".numba-cache-stages"))  # unless one is set
            for attempt in ("first (cache empty or stale)", "second (cache warm)")[: args.umap_runs]:
                res[f"map (umap) {attempt}"] = child(
                    "tsne_atlas.maps",
                    "run_map",
                    features=str(features),
                    prepared=str(prepared),
                    embedding=str(tmp / "umap.tsv"),
                    meta=str(tmp / "umap.json"),
                    method="umap",
                    features_id="synthetic",
                    node="penultimate",
                    settings={"n_neighbors": 15, "min_dist": 0.1, "seed": 0},
                    options={},
                    threads=1,
                    graph=str(graph),
                )
                print(n, "umap", attempt, res[f"map (umap) {attempt}"], file=sys.stderr)
            res["scatter"] = child(
                "tsne_atlas.scatter",
                "scatter",
                embedding=str(tmp / "umap.tsv"),
                meta=str(tmp / "umap.json"),
                manifest=str(src / "manifest.csv"),
                features=str(features),
                clusters=str(tmp / "clusters.csv"),
                clusters_summary=str(tmp / "clusters.json"),
                point_size=12,
                width_in=8,
                dpi=150,
                density_contours=False,
                png=str(tmp / "s" / "run.png"),
                svg=str(tmp / "s" / "run.svg"),
                predicted=str(tmp / "s" / "run.predicted.png"),
                cluster_map=str(tmp / "s" / "run.clusters.png"),
            )
            res["scatter"]["output_mib"] = {p.name: p.stat().st_size / 2**20 for p in (tmp / "s").iterdir()}
            print(n, "scatter", res["scatter"], file=sys.stderr)
            res["file_mib"] = {p.name: p.stat().st_size / 2**20 for p in (features, prepared, graph)}
            out[n] = res
    text = json.dumps(out, indent=2)
    print(text)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
