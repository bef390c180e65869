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

import h5py
import numpy as np
import torch
import torchvision

# benchmarks/extraction.py, found because Python puts this script's folder first on the path.
from extraction import EXTENSIONS, command_line, cpu_description, loop_start_marker, set_settings
from tsne_atlas import extraction as project
from tsne_atlas.files.manifest import write_manifest
from tsne_atlas.sampling import list_images, sample_manifest

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
            manifest=args.manifest,
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
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(f"job {tag} ({nodes}) failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {**json.loads(out.read_text()), "process_s": wall, "features": str(workdir / f"{tag}.h5")}


def run_layout(args, workdir: Path, layout: str, nodes: list[str], round_: int) -> list[dict]:
    """The jobs of one layout in one round: one job of every node, or one job per node."""
    if layout == ONE_PASS:
        return [job(args, workdir, nodes, f"r{round_}-all")]
    return [job(args, workdir, [node], f"r{round_}-{node}") for node in nodes]


def max_difference(one_pass: dict, singles: list[dict]) -> float:
    """Largest |difference| between a node's features from the one pass and from its own job."""
    worst = 0.0
    with h5py.File(one_pass["features"], "r") as together:
        for single in singles:
            (node,) = single["nodes"]
            with h5py.File(single["features"], "r") as alone:
                worst = max(worst, float(np.abs(together["features"][node][:] - alone["features"][node][:]).max()))
    return worst


def measure(args: argparse.Namespace, workdir: Path) -> dict:
    nodes = args.node_list
    rows = sample_manifest(list_images(args.root, EXTENSIONS), args.n_images, random_state=0)
    write_manifest(workdir / "manifest.csv", rows)
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


def render(measured: dict, args: argparse.Namespace) -> str:
    nodes, rounds = args.node_list, measured["rounds"]
    k = len(nodes)

    def layout_totals(layout: str, key: str) -> list[float]:
        return [sum(j[key] for j in r[layout]) for r in rounds]

    def single(node: str, key: str) -> list[float]:
        return [next(j[key] for j in r[K_PASSES] if j["nodes"] == [node]) for r in rounds]

    one_extract, one_process = layout_totals(ONE_PASS, "extract_s"), layout_totals(ONE_PASS, "process_s")
    k_extract, k_process = layout_totals(K_PASSES, "extract_s"), layout_totals(K_PASSES, "process_s")
    # Ratios per round (both layouts of a round ran back to back), then their median.
    ratio_extract = statistics.median(a / b for a, b in zip(k_extract, one_extract, strict=True))
    ratio_process = statistics.median(a / b for a, b in zip(k_process, one_process, strict=True))
    full = nodes[-1]
    dims = rounds[0][ONE_PASS][0]["feature_dims"]
    rss_one = max(j["peak_rss_mib"] for r in rounds for j in r[ONE_PASS])
    rss_k = max(j["peak_rss_mib"] for r in rounds for j in r[K_PASSES])
    med = statistics.median
    load = measured["load_before"], measured["load_after"]
    lines = [
        f"Measured {datetime.date.today().isoformat()} on {cpu_description()}, SHARED with other processes "
        f"(load average {load[0][0]:.1f} before, {load[1][0]:.1f} after; the numbers carry that noise); "
        f"torch {torch.__version__}, torchvision {torchvision.__version__}  ",
        f"N = {measured['n_images']} demo images (`{os.path.relpath(args.root, REPO)}`, stratified sample, "
        f"random_state 0), {args.arch} random init (seed 0), CPU fp32 NCHW, batch {args.batch_size}, "
        f"{args.num_workers} DataLoader workers, {measured['threads']} torch threads; nodes "
        f"{', '.join(f'{n} ({dims[n]}-d)' for n in nodes)}; {len(rounds)} round(s), layouts interleaved, "
        f"order alternating; median (min–max) over rounds  ",
        f"Command: `{command_line()}`",
        "",
        "| layout | jobs | extract_features s | of which setup s | × one pass | process s | × one pass "
        "| peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| one pass: one set, nodes [{', '.join(nodes)}] | 1 | {spread(one_extract)} "
        f"| {med(layout_totals(ONE_PASS, 'setup_s')):.1f} | 1.00 | {spread(one_process)} | 1.00 | {rss_one:.0f} |",
        f"| k passes: {k} sets of one node | {k} | {spread(k_extract)} | {med(layout_totals(K_PASSES, 'setup_s')):.1f} "
        f"| **{ratio_extract:.2f}** | {spread(k_process)} | **{ratio_process:.2f}** | {rss_k:.0f} |",
    ]
    for node in nodes:
        e, p = single(node, "extract_s"), single(node, "process_s")
        note = " (a full pass)" if node == full else ""
        lines.append(
            f"| &nbsp;&nbsp;of which `{node}` alone{note} | 1 | {spread(e)} | {med(single(node, 'setup_s')):.1f} "
            f"| {med(e) / med(one_extract):.2f} | {spread(p)} | {med(p) / med(one_process):.2f} | |"
        )
    e_full, p_full = med(single(full, "extract_s")), med(single(full, "process_s"))
    lines += [
        f"| {k} × a full pass (computed: {k} × `{full}` alone) | {k} | {k * e_full:.1f} | "
        f"| {k * e_full / med(one_extract):.2f} | {k * p_full:.1f} | {k * p_full / med(one_process):.2f} | |",
        "",
        "extract_features s: the call inside each job (network build and graph tracing, reading and decoding "
        "the images, the forward passes, writing HDF5), summed over the layout's jobs (median of the sums); setup s: "
        "the part of it before the first batch (network build, graph tracing, DataLoader). process s: each job's "
        "whole process (interpreter start, imports of torch and the workflow's package, then the call), summed; "
        "Snakemake adds its own per-job overhead on top. × one pass: median over rounds of the per-round ratio "
        "(k-pass rows), or ratio of medians (per-job rows). peak RSS: the largest ru_maxrss of the layout's "
        "job processes. Each node's features from the one pass equal those of its own job: largest |difference| "
        f"{max(r['max_diff'] for r in rounds):.1e}.",
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
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
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
