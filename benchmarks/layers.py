#!/usr/bin/env python3
"""Layers: one forward pass for k nodes against k passes, one per node, as the workflow would run them.

A feature set with nodes ``[layer2, layer3, layer4, penultimate]`` is ONE extract_features job that
takes every node from one forward pass. The alternative job layout is k feature sets of one node
each: k extract_features jobs, each its own process, each building and tracing its network and
reading and decoding every image again. Both layouts run here on the same sample of the bundled
demo images (a stratified sample drawn with the workflow's own sampler, ``random_state`` 0), ResNet-18
randomly initialised (seed 0), CPU, fp32 NCHW, batch 16, ``num_workers`` 0, 2 torch threads.

Every job runs in a fresh Python process (``--job``), as Snakemake runs a script job, with no warm-up:
a job is cold in the workflow too. Per job two times are taken: ``extract_features s``, the call
itself (network build and graph tracing, reading and decoding, the forward passes, writing HDF5),
timed inside the job; and ``process s``, the job's whole process as the parent sees it (also the
interpreter start and the imports of torch and the workflow's package). A layout's time is the sum
over its jobs. The layouts run interleaved, ``--rounds`` times, the order alternating each round
(one-pass first in odd rounds, k-pass first in even ones); the table gives the median over rounds
and the spread (min-max). Peak RSS: the largest ru_maxrss of the layout's job processes.

torchvision's create_feature_extractor truncates the graph after the last node asked for, so a
job for ``layer2`` alone runs only the network up to layer2: k separate passes cost less than k full
passes. The table shows each single-node job and, for comparison, k times the full pass.

Usage:      PYTHONPATH=scripts .venv/bin/python benchmarks/layers.py --out benchmarks/layers.md
Smoke run:  PYTHONPATH=scripts .venv/bin/python benchmarks/layers.py --n-images 16 --rounds 1
"""

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

from common import write_sample

# benchmarks/extraction.py, found because Python puts this script's folder first on the path.
from extraction import EXTENSIONS, command_line, cpu_description, loop_start_marker, set_settings
from tsne_atlas import extraction as project
from tsne_atlas.collection import list_images
from tsne_atlas.files.features import read_features
from tsne_atlas.sampling import sample_manifest

REPO = Path(__file__).resolve().parent.parent
ONE_PASS = "one pass"
K_PASSES = "k passes"


# --------------------------------------------------------------------------------------------
# One extract_features job (child process)
# --------------------------------------------------------------------------------------------


def run_job(args: argparse.Namespace) -> dict:
    """One cold extract_features call for the set of ``args.nodes``; returns its time and peak RSS."""
    nodes = args.nodes.split(",")
    marks: dict = {}
    start = time.perf_counter()
    with loop_start_marker(marks):
        attrs = project.extract_features(
            images=args.manifest,
            root=args.root,
            feature_set="layers",
            settings=set_settings(args.arch, None, nodes),
            device="cpu",
            precision="fp32",
            channels_last=False,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            features=args.features,
            threads=args.threads,
            progress=False,
        )
    return {
        "nodes": nodes,
        "extract_s": time.perf_counter() - start,
        "setup_s": marks["loop_start"] - start,
        "feature_dims": attrs["feature_dims"],
        "threads": torch.get_num_threads(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# --------------------------------------------------------------------------------------------
# The two layouts, interleaved (parent)
# --------------------------------------------------------------------------------------------


def job(args: argparse.Namespace, workdir: Path, nodes: list[str], tag: str) -> dict:
    """Run one job in a fresh process; its result plus the process's wall time."""
    out = workdir / f"{tag}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--job",
        "--nodes",
        ",".join(nodes),
        "--manifest",
        str(workdir / "manifest.csv"),
        "--root",
        str(args.root),
        "--arch",
        args.arch,
        "--batch-size",
        str(args.batch_size),
        "--num-workers",
        str(args.num_workers),
        "--threads",
        str(args.threads),
        "--features",
        str(workdir / f"{tag}.h5"),
        "--json",
        str(out),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(f"job {tag} ({nodes}) failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {**json.loads(out.read_text()), "process_s": wall, "cpu_s": cpu, "features": str(workdir / f"{tag}.h5")}


def run_layout(args, workdir: Path, layout: str, nodes: list[str], round_: int) -> list[dict]:
    """The jobs of one layout in one round: one job of every node, or one job per node."""
    if layout == ONE_PASS:
        return [job(args, workdir, nodes, f"r{round_}-all")]
    return [job(args, workdir, [node], f"r{round_}-{node}") for node in nodes]


def max_difference(one_pass: dict, singles: list[dict]) -> float:
    """Largest |difference| between a node's features from the one pass and from its own job."""
    worst = 0.0
    for single in singles:
        (node,) = single["nodes"]
        together = read_features(one_pass["features"], node)["features"]
        alone = read_features(single["features"], node)["features"]
        worst = max(worst, float(np.abs(together - alone).max()))
    return worst


def measure(args: argparse.Namespace, workdir: Path) -> dict:
    nodes = args.node_list
    rows = sample_manifest(list_images(args.root, EXTENSIONS), args.n_images, seed=0)
    write_sample(workdir / "manifest.csv", rows)
    rounds = []
    load_before = os.getloadavg()
    for round_ in range(1, args.rounds + 1):
        order = [ONE_PASS, K_PASSES] if round_ % 2 else [K_PASSES, ONE_PASS]
        results = {}
        for layout in order:
            results[layout] = run_layout(args, workdir, layout, nodes, round_)
            total = sum(j["extract_s"] for j in results[layout])
            print(f"round {round_}: {layout}: {total:.1f} s", file=sys.stderr, flush=True)
        results["max_diff"] = max_difference(results[ONE_PASS][0], results[K_PASSES])
        rounds.append(results)
    return {
        "rounds": rounds,
        "n_images": len(rows),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "threads": rounds[0][ONE_PASS][0]["threads"],
    }


# --------------------------------------------------------------------------------------------
# Report (parent)
# --------------------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    """Median, with min-max over the rounds when there are several."""
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.1f}"
    return f"{median:.1f} ({min(values):.1f}–{max(values):.1f})"


# Timed quantities of a job: (key, column title, compared with the one pass).
METRICS = (
    ("extract_s", "extract_features s", True),
    ("process_s", "process s", True),
    ("cpu_s", "process CPU s", True),
    ("setup_s", "setup s (in extract_features s)", False),
)


def render(measured: dict, args: argparse.Namespace) -> str:
    nodes, rounds = args.node_list, measured["rounds"]
    k, full, med = len(nodes), args.node_list[-1], statistics.median

    def totals(layout: str, key: str) -> list[float]:
        """Per round: the layout's jobs summed."""
        return [sum(j[key] for j in r[layout]) for r in rounds]

    def single(node: str, key: str) -> list[float]:
        return [next(j[key] for j in r[K_PASSES] if j["nodes"] == [node]) for r in rounds]

    def row(label: str, jobs: int, values: dict[str, list[float]], ratios: dict[str, float], rss: str) -> str:
        cells = [label, str(jobs)]
        for key, _, compared in METRICS:
            cells.append(spread(values[key]) if values.get(key) else "")
            if compared:
                cells.append(f"{ratios[key]:.2f}" if key in ratios else "")
        return "| " + " | ".join([*cells, rss]) + " |"

    one = {key: totals(ONE_PASS, key) for key, _, _ in METRICS}
    several = {key: totals(K_PASSES, key) for key, _, _ in METRICS}

    def round_ratio(values: list[float], reference: list[float]) -> float:
        """Against the one pass of the same round (run back to back with it), then the median over rounds."""
        return med(a / b for a, b in zip(values, reference, strict=True))

    ratios = {key: round_ratio(several[key], one[key]) for key, _, compared in METRICS if compared}
    dims = rounds[0][ONE_PASS][0]["feature_dims"]
    rss_one = max(j["peak_rss_mib"] for r in rounds for j in r[ONE_PASS])
    rss_k = max(j["peak_rss_mib"] for r in rounds for j in r[K_PASSES])
    load = measured["load_before"], measured["load_after"]
    header = ["layout", "jobs"]
    for _, title, compared in METRICS:
        header += [title, "× one pass"] if compared else [title]
    lines = [
        f"Measured {datetime.date.today().isoformat()} on {cpu_description()}, SHARED with other processes "
        f"(load average {load[0][0]:.1f} before, {load[1][0]:.1f} after; wall and CPU times both carry that "
        f"noise); torch {torch.__version__}, torchvision {torchvision.__version__}  ",
        f"N = {measured['n_images']} demo images (`{os.path.relpath(args.root, REPO)}`, stratified sample, "
        f"random_state 0), {args.arch} random init (seed 0), CPU fp32 NCHW, batch {args.batch_size}, "
        f"{args.num_workers} DataLoader workers, {measured['threads']} torch threads; nodes "
        f"{', '.join(f'{n} ({dims[n]}-d)' for n in nodes)}; {len(rounds)} round(s), layouts interleaved, "
        f"order alternating; median (min–max) over rounds  ",
        f"Command: `{command_line()}`",
        "",
        "| " + " | ".join([*header, "peak RSS MiB"]) + " |",
        "| --- | " + " | ".join(["---:"] * len(header)) + " |",
        row(
            f"one pass: one set, nodes [{', '.join(nodes)}]",
            1,
            one,
            dict.fromkeys(ratios, 1.0),
            f"{rss_one:.0f}",
        ),
        row(f"k passes: {k} sets of one node", k, several, ratios, f"{rss_k:.0f}"),
    ]
    for node in nodes:
        values = {key: single(node, key) for key, _, _ in METRICS}
        lines.append(
            row(
                f"&nbsp;&nbsp;of which `{node}` alone" + (" (a full pass)" if node == full else ""),
                1,
                values,
                {key: round_ratio(values[key], one[key]) for key in ratios},
                "",
            )
        )
    computed = {key: [k * value for value in single(full, key)] for key in ratios}
    fastest_one, fastest_k = min(one["extract_s"]), min(several["extract_s"])
    lines += [
        row(
            f"{k} × a full pass (computed: {k} × `{full}` alone)",
            k,
            computed,
            {key: round_ratio(computed[key], one[key]) for key in ratios},
            "",
        ),
        "",
        f"Fastest round of each layout (least disturbed by the other processes): one pass {fastest_one:.1f} s, "
        f"k passes {fastest_k:.1f} s of extract_features, {fastest_k / fastest_one:.2f}×.",
        "",
        "extract_features s: the call inside each job (network build and graph tracing, reading and decoding "
        "the images, the forward passes, writing HDF5); setup s: the part of it before the first batch "
        "(network build, graph tracing, DataLoader). process s: each job's whole process as started by the "
        "parent (interpreter start, imports of torch and the workflow's package, then the call); Snakemake adds "
        "its own per-job overhead on top. process CPU s: user + system CPU time of those processes (2 threads: "
        "up to 2 CPU s per wall second). Layout rows sum the layout's jobs per round. × one pass: the median over "
        "rounds of the ratio to the one pass of the same round. peak RSS: the largest "
        "ru_maxrss of the layout's job processes. Each node's features from the one pass equal those of its own "
        f"job: largest |difference| {max(r['max_diff'] for r in rounds):.1e}.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default=str(REPO / "resources" / "animal-mnist"), help="class-per-folder images")
    parser.add_argument("--n-images", type=int, default=200, help="stratified sample size (default 200)")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--nodes", default="layer2,layer3,layer4,penultimate", help="comma list, the deepest last")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported (default 5)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (default 0)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each job (default 2)")
    parser.add_argument("--out", default=None, help="also write the Markdown report here")
    parser.add_argument("--workdir", default=None, help="keep the manifest and features files here (default: temp)")
    parser.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--features", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.root = str(Path(args.root).resolve())
    args.node_list = [n.strip() for n in args.nodes.split(",") if n.strip()]
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.job:
        Path(args.json).write_text(json.dumps(run_job(args)))
        return
    if args.workdir:
        workdir = Path(args.workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        report = render(measure(args, workdir), args)
    else:
        with tempfile.TemporaryDirectory(prefix="tsne-atlas-layers-") as tmp:
            report = render(measure(args, Path(tmp)), args)
    print(report, end="")
    if args.out:
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
