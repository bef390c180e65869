"""Sharded extraction: what joining K extraction shards costs (time, memory, disk), and what sharding
costs a whole extraction on one machine.

1. **Merge** (``files.feature_shards.merge_shards``, what rule merge_features runs) at ``--sizes``
   images (10,000 and 100,000) of ResNet-101's penultimate width (``--dim``: 2048 float32 per image),
   in batches of the default ``extraction.batch_size`` (16, read from the config schema): K shard
   files (``--shards``, 4, at every size; ``--trend-shards``, 2 and 16, at the first size only)
   written with the real writer (``write_shard``), with the attributes and nodes a real extraction
   records (taken from a small real ``extract_features`` run, not timed: ResNet-101, random init, 32
   Animal-MNIST images, on the CPU). The rows are random float32, seeded per batch: a merge copies
   them and never looks at their values, so its cost does not depend on them. The image paths are
   made-up names of the Animal-MNIST kind (no image is opened).
   Each merge runs in a fresh child process; the table gives the merge's own wall time (median of
   ``--rounds`` rounds at 10,000 images or fewer, ``--large-rounds`` above) and the child's peak RSS
   (its ``VmHWM``; ``ru_maxrss`` would include the forking parent's RSS, which Linux carries across
   ``exec``) beside its RSS after imports. Every round merges twice: *warm*, the shards in the
   page cache (read once just before), and *cold*, their pages dropped first (``sync``, then
   ``posix_fadvise(DONTNEED)``), as a merge node reads shards that other nodes wrote. Neither waits
   for the merged file to reach the disk (the job does not either); the ``fsync`` of it after a cold
   merge is timed apart. The reference for "cheap" is a plain ``shutil.copyfile`` of the merged file,
   warm and cold, the same number of rounds: merge / copy is the ratio of the medians. Disk: the shard
   files' total, the merged file, and their sum, the peak while merging (the shards are Snakemake
   temp files, removed once the merge job has ended). Last, the merged file is compared byte for byte
   with the file ``files.features.write_features`` writes in one pass from the same batches (what one
   extraction job writes).
2. **End to end** (``--e2e-images``, 10,000; 0 skips it): the workflow's extraction alone
   (``snakemake --until extract_features``, or ``--until merge_features``) of Animal-MNIST
   silhouettes (benchmarks/datasets.py) with a fast network (``--e2e-arch``, MobileNetV3-small, random
   init: on a CPU without AMX ResNet-18 runs ~40 images/s, 4 minutes per extraction of 10,000),
   ``extraction.shards`` 1 against ``--e2e-shards`` (4), ``--e2e-rounds`` rounds in alternating
   order, each from a results folder emptied of features (the sample is kept). Job times and peak RSS
   come from Snakemake's benchmark files. With ``--cores`` 2 and the default 2 threads per extraction
   job, the shards run one after another: this measures what sharding costs on one machine (K network
   builds, process starts and DataLoader starts, and the merge), not what K GPUs side by side save.
   Every round's two features files are compared byte for byte: they must be identical.

Large files go to a temporary folder (``--tmpdir``; default the system's), removed at the end.

    PYTHONPATH=scripts python benchmarks/shards.py
"""

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import DEMO, REPO, WORK, command_line, machine, markdown_table, rule_benchmarks, run_snakemake, write_config

SET = "resnet101"  # the feature set of the merge measurements (its attributes come from a real extraction)
MIB = 2**20

# One fresh process: import the merge, then join the shards (argv[1]: JSON [shards, images, merged]).
MERGE_PROBE = """
import json, sys, time

def status_mib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024

from tsne_atlas.files.feature_shards import merge_shards

imported = status_mib("VmRSS")
shards, images, merged = json.loads(sys.argv[1])
start = time.perf_counter()
merge_shards(shards, images, merged)
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forked parent (torch loaded) across exec.
peak = status_mib("VmHWM")
print(json.dumps({"merge_s": seconds, "rss_after_imports_mib": imported, "peak_rss_mib": peak}))
"""


def schema_extraction_defaults() -> dict:
    from tsne_atlas.schema import SCHEMA_PATH, load_schema

    spec = load_schema(str(SCHEMA_PATH))["properties"]["extraction"]["properties"]
    return {key: value["default"] for key, value in spec.items() if "default" in value}


def real_extraction_attrs(tmp: Path, batch_size: int, arch: str) -> tuple[dict, dict[str, str], str]:
    """The attributes (in the order written), graph nodes and ``predictions`` of a real extraction's
    features file (``arch``, ResNet-101 by default): a small one (32 bundled Animal-MNIST images, CPU,
    random init), not timed."""
    from tsne_atlas.extraction import extract_features
    from tsne_atlas.files.feature_shards import WRITTEN_ATTRS
    from tsne_atlas.files.features import read_features
    from tsne_atlas.files.manifest import write_images
    from tsne_atlas.schema import SCHEMA_PATH, feature_set_defaults

    root = DEMO
    paths = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.png"))[:32]
    images = tmp / "attrs" / "images.csv"
    images.parent.mkdir(parents=True)
    write_images(images, paths, [""] * len(paths))
    defaults = schema_extraction_defaults()
    settings = {**feature_set_defaults(SCHEMA_PATH), "arch": arch, "weights": "none"}
    features = tmp / "attrs" / f"{SET}.h5"
    extract_features(
        images=str(images),
        root=str(root),
        feature_set=SET,
        settings=settings,
        device=defaults["device"],
        precision=defaults["precision"],
        channels_last=defaults["channels_last"],
        batch_size=batch_size,
        num_workers=0,
        features=str(features),
        threads=2,
        config_hash="benchmark",
        progress=False,
    )
    # The file's attributes as read_features gives them (JSON-valued ones as lists and dicts), plus
    # each node's graph_node; what the reader adds (node, graph_node) is not a file attribute.
    nodes = settings["nodes"]
    read = {node: read_features(features, node, with_features=False)["attrs"] for node in nodes}
    written = {key: value for key, value in read[nodes[0]].items() if key not in ("node", "graph_node")}
    graph_nodes = {node: attrs["graph_node"] for node, attrs in read.items()}
    shutil.rmtree(tmp / "attrs")
    # As extraction passes them: without what write_features adds.
    attrs = {key: value for key, value in written.items() if key not in WRITTEN_ATTRS}
    return attrs, graph_nodes, written["predictions"]


def random_batches(start: int, stop: int, batch_size: int, dim: int, node: str, seed: int = 0):
    """Rows start..stop-1 in batches, each batch's random float32 rows seeded by its first row (so a
    shard's batches are the one-pass run's)."""
    for first in range(start, stop, batch_size):
        rng = np.random.default_rng([seed, first])
        yield {node: rng.standard_normal((min(batch_size, stop - first), dim), dtype=np.float32)}


def made_up_paths(n: int) -> list[str]:
    """Sorted relative paths of the Animal-MNIST kind (``bear/bear_00000.png``), 10 class folders."""
    classes = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
    per_class = -(-n // len(classes))
    return sorted(f"{c}/{c}_{i:06d}.png" for i in range(n) for c in [classes[i // per_class]])


def drop_cache(paths) -> None:
    """Write back dirty pages, then drop the files' pages from the page cache (no root needed)."""
    os.sync()
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm_cache(paths) -> None:
    """Write back dirty pages, then read the files once so that they are in the page cache."""
    os.sync()
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(16 * MIB):
                pass


def timed_fsync(path: Path) -> float:
    start = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def merge_probe(shards: list[Path], images: Path, merged: Path) -> dict:
    """One merge in a fresh process: its merge_shards time, RSS after imports, peak RSS, process wall."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}
    cmd = [sys.executable, "-c", MERGE_PROBE, json.dumps([[str(p) for p in shards], str(images), str(merged)])]
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"the merge failed:\n{result.stderr[-3000:]}")
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "process_wall_s": wall}


def measure_merges(args, tmp: Path, n: int, shard_counts: list[int], attrs: dict, graph_nodes, predictions) -> list:
    from tsne_atlas.files.feature_shards import shard_header, write_shard
    from tsne_atlas.files.features import write_features
    from tsne_atlas.files.manifest import write_images
    from tsne_atlas.shards import shard_rows

    node = next(iter(graph_nodes))
    folder = tmp / f"merge-{n}"
    images = folder / "sample" / "images.csv"
    images.parent.mkdir(parents=True)
    paths = made_up_paths(n)
    write_images(images, paths, [""] * n)
    attrs = {**attrs, "n_images": n}
    print(f"{n:,} images: writing the one-pass file (write_features)", file=sys.stderr)
    one_pass = folder / "one-pass" / f"{SET}.h5"
    start = time.perf_counter()
    write_features(
        one_pass, random_batches(0, n, args.batch_size, args.dim, node), n, paths, attrs, graph_nodes, None, predictions
    )
    one_pass_s = time.perf_counter() - start
    rounds = args.rounds if n <= 10_000 else args.large_rounds
    rows = []
    for count in shard_counts:
        print(f"{n:,} images, {count} shards: writing them (write_shard)", file=sys.stderr)
        shards = []
        for index in range(1, count + 1):
            first, stop = shard_rows(n, args.batch_size, index, count)
            path = folder / "features" / "shards" / SET / f"{index}-of-{count}.h5"
            write_shard(
                path,
                random_batches(first, stop, args.batch_size, args.dim, node),
                paths[first:stop],
                attrs,
                graph_nodes,
                shard_header(images, index, count, first, stop),
                None,
                predictions,
            )
            shards.append(path)
        merged = folder / "features" / f"{SET}.h5"
        copy = folder / "copy" / f"{SET}.h5"
        copy.parent.mkdir(exist_ok=True)
        merges: dict[str, list[dict]] = {"warm": [], "cold": []}
        copies: dict[str, list[float]] = {"warm": [], "cold": []}
        fsyncs: dict[str, list[float]] = {"merge": [], "copy": []}
        for round_ in range(rounds):
            states = ("warm", "cold") if round_ % 2 == 0 else ("cold", "warm")
            for state in states:
                merged.unlink(missing_ok=True)
                (drop_cache if state == "cold" else warm_cache)(shards)
                probe = merge_probe(shards, images, merged)
                merges[state].append(probe)
                if state == "cold":
                    fsyncs["merge"].append(timed_fsync(merged))
                print(f"  round {round_ + 1} merge {state}: {probe['merge_s']:.2f} s", file=sys.stderr)
            for state in states:
                copy.unlink(missing_ok=True)
                (drop_cache if state == "cold" else warm_cache)([merged])
                start = time.perf_counter()
                shutil.copyfile(merged, copy)
                copies[state].append(time.perf_counter() - start)
                if state == "cold":
                    fsyncs["copy"].append(timed_fsync(copy))
                print(f"  round {round_ + 1} copy {state}: {copies[state][-1]:.2f} s", file=sys.stderr)
        identical = filecmp.cmp(merged, one_pass, shallow=False)
        print(f"  merged file byte-identical to the one-pass file: {identical}", file=sys.stderr)
        shard_bytes = sum(p.stat().st_size for p in shards)
        merged_bytes = merged.stat().st_size
        rows.append(
            {
                "n_images": n,
                "shards": count,
                "dim": args.dim,
                "batch_size": args.batch_size,
                "rounds": rounds,
                "merge_s": {s: [m["merge_s"] for m in merges[s]] for s in merges},
                "merge_process_wall_s": {s: [m["process_wall_s"] for m in merges[s]] for s in merges},
                "rss_after_imports_mib": max(m["rss_after_imports_mib"] for s in merges for m in merges[s]),
                "peak_rss_mib": max(m["peak_rss_mib"] for s in merges for m in merges[s]),
                "copy_s": copies,
                "fsync_s": fsyncs,
                "shard_bytes": shard_bytes,
                "merged_bytes": merged_bytes,
                "copy_bytes": copy.stat().st_size,
                "one_pass_bytes": one_pass.stat().st_size,
                "one_pass_write_s": one_pass_s,
                "peak_disk_bytes": shard_bytes + merged_bytes,
                "byte_identical_to_one_pass": identical,
            }
        )
        for path in [*shards, merged, copy]:
            path.unlink()
    shutil.rmtree(folder)
    return rows


def clear_features(results: Path) -> None:
    """Remove what an extraction made (features, shards, their benchmark files), keep the sample."""
    for name in ("features", "benchmarks/extract_features", "benchmarks/merge_features"):
        shutil.rmtree(results / name, ignore_errors=True)


def benchmark_rows(results: Path) -> dict:
    """Each extraction job's seconds and peak RSS (MiB) from its Snakemake benchmark file."""
    import csv

    jobs = {}
    for tsv in sorted((results / "benchmarks").glob("*_features/**/*.tsv")):
        with open(tsv, newline="") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        rss = row.get("max_rss", "NA")
        jobs[str(tsv.relative_to(results / "benchmarks"))] = {
            "s": float(row["s"]),
            "max_rss_mib": float(rss) if rss not in ("NA", "", "-") else None,
        }
    return jobs


def end_to_end(args) -> dict:
    from datasets import animal_mnist_full

    root = DEMO if args.e2e_dataset == "demo" else animal_mnist_full()
    base = args.e2e_workdir or WORK / f"shards-e2e-{args.e2e_images}"
    counts = [1, args.e2e_shards]
    workdirs = {}
    for count in counts:
        workdir = base / f"shards-{count}"
        write_config(
            workdir,
            {
                "results": "results",
                "dataset": {"root": str(root)},
                "sample": {"n_images": args.e2e_images, "seed": 0},
                "features": {args.e2e_arch: {"arch": args.e2e_arch, "weights": "none"}},
                "extraction": {"num_workers": 2, "threads": 2, "shards": count},
                # Only extraction runs here; a perplexity small samples allow, so that the config check passes.
                "tsne": {"perplexities": [5]},
            },
        )
        workdirs[count] = workdir
    runs = []
    for round_ in range(args.e2e_rounds):
        order = counts if round_ % 2 == 0 else list(reversed(counts))
        for count in order:
            results = workdirs[count] / "results"
            clear_features(results)
            until = "extract_features" if count == 1 else "merge_features"
            print(f"end to end, round {round_ + 1}: extraction.shards {count} (--until {until})", file=sys.stderr)
            load = os.getloadavg()[0]
            wall = run_snakemake(workdirs[count], "--until", until, cores=args.cores)
            per_rule = rule_benchmarks(results)
            runs.append(
                {
                    "round": round_ + 1,
                    "shards": count,
                    "wall_s": wall,
                    "load_before": load,
                    "jobs": benchmark_rows(results),
                    "per_rule": per_rule,
                }
            )
            print(f"  wall {wall:.1f} s; {per_rule}", file=sys.stderr)
        files = [workdirs[count] / "results" / "features" / f"{args.e2e_arch}.h5" for count in counts]
        identical = filecmp.cmp(files[0], files[1], shallow=False)
        runs[-1]["identical_to_one_job"] = identical
        runs[-2]["identical_to_one_job"] = identical
        print(f"  features files byte-identical: {identical}", file=sys.stderr)
    features_bytes = (workdirs[1] / "results" / "features" / f"{args.e2e_arch}.h5").stat().st_size
    return {"runs": runs, "features_bytes": features_bytes, "workdirs": {k: str(v) for k, v in workdirs.items()}}


def fmt_s(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def merge_tables(rows: list[dict]) -> tuple[str, str]:
    time_rows, disk_rows = [], []
    for r in rows:
        n = r["n_images"]
        warm, cold = statistics.median(r["merge_s"]["warm"]), statistics.median(r["merge_s"]["cold"])
        copy_warm, copy_cold = statistics.median(r["copy_s"]["warm"]), statistics.median(r["copy_s"]["cold"])
        time_rows.append(
            [
                f"{n:,}",
                r["shards"],
                f"{fmt_s(warm)} / {fmt_s(cold)}",
                " / ".join(fmt_s(s) for s in r["merge_s"]["cold"]),
                f"{n / cold:,.0f}",
                f"{r['merged_bytes'] / MIB / cold:,.0f}",
                fmt_s(statistics.median(r["fsync_s"]["merge"])),
                fmt_s(statistics.median(r["merge_process_wall_s"]["cold"])),
                f"{fmt_s(copy_warm)} / {fmt_s(copy_cold)}",
                f"{warm / copy_warm:.1f} / {cold / copy_cold:.1f}",
                f"{r['rss_after_imports_mib']:.0f} / {r['peak_rss_mib']:.0f}",
                "yes" if r["byte_identical_to_one_pass"] else "**NO**",
            ]
        )
        disk_rows.append(
            [
                f"{n:,}",
                r["shards"],
                f"{r['shard_bytes'] / MIB:,.1f}",
                f"{r['merged_bytes'] / MIB:,.1f}",
                f"{r['one_pass_bytes'] / MIB:,.1f}",
                f"{r['peak_disk_bytes'] / MIB:,.1f}",
                f"{r['peak_disk_bytes'] / r['merged_bytes']:.2f}",
            ]
        )
    times = markdown_table(
        [
            "images",
            "shards K",
            "merge s, warm / cold (median)",
            "merge s per round, cold",
            "images/s, cold",
            "MiB/s written, cold",
            "fsync of the merged file s",
            "merge process wall s, cold",
            "copy s, warm / cold (median)",
            "merge / copy, warm / cold",
            "RSS after imports / peak MiB",
            "byte-identical to the one-pass file",
        ],
        time_rows,
    )
    disk = markdown_table(
        [
            "images",
            "shards K",
            "shard files MiB (total)",
            "merged file MiB",
            "one-pass file MiB",
            "peak while merging MiB (shards + merged)",
            "× the features file",
        ],
        disk_rows,
    )
    return times, disk


def e2e_table(e2e: dict) -> str:
    rows = []
    for run in e2e["runs"]:
        per_rule = run["per_rule"]
        count = run["shards"]
        if count == 1:
            extract = per_rule.get("extract_features", {})
            extract_s, each = extract.get("s", float("nan")), ""
            rss = extract.get("max_rss_mib", float("nan"))
            merge_s = 0.0
        else:
            shard = per_rule.get("extract_features_shard", {})
            extract_s = shard.get("s", float("nan"))
            each = " / ".join(f"{job['s']:.1f}" for name, job in sorted(run["jobs"].items()) if name.count("/") == 2)
            rss = shard.get("max_rss_mib", float("nan"))
            merge = per_rule.get("merge_features", {})
            merge_s = merge.get("s", float("nan"))
            merge_rss = merge.get("max_rss_mib")
            # Snakemake samples a job's memory every so often: a job shorter than that has none.
            rss = f"{rss:.0f} (merge {f'{merge_rss:.0f}' if merge_rss else 'not sampled'})"
        rows.append(
            [
                run["round"],
                count,
                f"{extract_s:.1f}",
                each or "–",
                f"{merge_s:.1f}" if count > 1 else "–",
                f"{extract_s + merge_s:.1f}",
                f"{run['wall_s']:.1f}",
                rss if isinstance(rss, str) else f"{rss:.0f}",
                f"{run['load_before']:.1f}",
                "yes" if run["identical_to_one_job"] else "**NO**",
            ]
        )
    return markdown_table(
        [
            "round",
            "extraction.shards",
            "extraction job s (summed)",
            "per shard s",
            "merge_features s",
            "extraction + merge job s",
            "snakemake wall s",
            "peak RSS MiB",
            "load average before",
            "features file identical to shards 1's (byte compare)",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="images of the merge measurements, comma-separated")
    parser.add_argument("--shards", type=int, default=4, help="shards K at every size")
    parser.add_argument("--trend-shards", default="2,16", help="more K at the first size only ('' for none)")
    parser.add_argument("--dim", type=int, default=2048, help="floats per image (ResNet-101 penultimate: 2048)")
    parser.add_argument("--batch-size", type=int, help="rows per batch (default: extraction.batch_size's default)")
    parser.add_argument("--rounds", type=int, default=5, help="merge rounds at 10,000 images or fewer (median)")
    parser.add_argument("--large-rounds", type=int, default=2, help="merge rounds above 10,000 images")
    parser.add_argument("--e2e-images", type=int, default=10_000, help="Animal-MNIST images end to end (0 skips)")
    parser.add_argument(
        "--e2e-dataset",
        choices=["animal-mnist-full", "demo"],
        default="animal-mnist-full",
        help="demo: the bundled 1,000",
    )
    parser.add_argument("--e2e-arch", default="mobilenet_v3_small")
    parser.add_argument(
        "--attrs-arch", default="resnet101", help="network of the small extraction the attributes come from"
    )
    parser.add_argument("--e2e-shards", type=int, default=4)
    parser.add_argument("--e2e-rounds", type=int, default=1, help="rounds of shards 1 and K, alternating order")
    parser.add_argument("--e2e-workdir", type=Path)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--tmpdir", type=Path, help="where the shard and merged files go (removed at the end)")
    parser.add_argument("--json", type=Path, default=WORK / "shards.json")
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args()
    bench_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    if args.batch_size is None:
        args.batch_size = int(schema_extraction_defaults()["batch_size"])

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    trend = [int(k) for k in args.trend_shards.split(",") if k.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tsne-atlas-shards-", dir=args.tmpdir) as tmp:
        if sizes:
            print("a small real extraction for the files' attributes (not timed)", file=sys.stderr)
            attrs, graph_nodes, predictions = real_extraction_attrs(Path(tmp), args.batch_size, args.attrs_arch)
        for position, n in enumerate(sizes):
            counts = sorted({args.shards, *(trend if position == 0 else [])})
            rows += measure_merges(args, Path(tmp), n, counts, attrs, graph_nodes, predictions)
    e2e = end_to_end(args) if args.e2e_images else None
    wall = time.perf_counter() - bench_start
    load_end = os.getloadavg()[0]

    parts = [f"Machine: {machine()}", f"Command: `{command_line()}`"]
    if rows:
        times, disk = merge_tables(rows)
        parts += [
            f"Merge: {args.dim} float32 per image, batch {args.batch_size}, one node ({next(iter(graph_nodes))}), "
            f"no predictions ({predictions}); random rows; attributes of a real {args.attrs_arch} extraction "
            f"(device {attrs['device']}, precision {attrs['precision']}). Rounds: {args.rounds} at 10,000 images or "
            f"fewer, {args.large_rounds} above; warm: shards in the page cache, cold: dropped first. "
            f"One-pass write_features of the same batches (random generation included): "
            + ", ".join(f"{r['n_images']:,}: {r['one_pass_write_s']:.1f} s" for r in rows if r["shards"] == args.shards)
            + ".",
            times,
            disk,
        ]
    if e2e:
        parts += [
            f"End to end: {args.e2e_images:,} Animal-MNIST images, {args.e2e_arch} (random init), "
            f"`snakemake --cores {args.cores}`, extraction.num_workers 2, threads 2; features file "
            f"{e2e['features_bytes'] / MIB:.1f} MiB.",
            e2e_table(e2e),
        ]
    parts.append(
        f"Benchmark wall time {wall:.0f} s; 1-minute load average {load_start:.1f} at the start, {load_end:.1f} at the end."
    )
    text = "\n\n".join(parts) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    raw = {
        "command": command_line(),
        "machine": machine(),
        "merge": rows,
        "end_to_end": e2e,
        "wall_s": wall,
        "load_average": [load_start, load_end],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    main()
