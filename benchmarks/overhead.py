"""Workflow overhead: the demo config cold end to end, then no-op reruns, in one run.

- cold: ``snakemake --cores C`` in a fresh folder with the repository's config.yaml (the demo:
  500 images, ResNet-101, 3 perplexities x 3 seeds, every figure), after install; per-rule job
  seconds from Snakemake's own benchmark files show what dominates.
- no-op: the same command again with nothing stale (``--repeats`` times; best and median), and
  a ``--dry-run``. ``--profile`` adds cProfile's top functions of one no-op run.

``--config`` runs another config instead (its ``dataset.root`` taken relative to the repository, as
the demo's).

    PYTHONPATH=scripts python benchmarks/overhead.py
"""

import argparse
import cProfile
import io
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from common import (
    REPO,
    SNAKEMAKE,
    WORK,
    command_line,
    machine,
    markdown_table,
    rule_benchmarks,
    run_snakemake,
    snakemake_arguments,
    write_config,
)


def profile_noop(workdir: Path, cores: int, top: int = 15) -> str:
    """cProfile of one no-op run inside this process (Snakemake's API entry point)."""
    from snakemake.cli import main as snakemake_main

    argv = snakemake_arguments(workdir, cores)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        snakemake_main(argv)
    except SystemExit:
        pass
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=WORK / "overhead")
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml", help="the config (default: the demo's)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    config = yaml.safe_load(args.config.read_text())
    config["dataset"]["root"] = str(REPO / config["dataset"]["root"])
    if args.workdir.exists():
        subprocess.run(["rm", "-rf", str(args.workdir)], check=True)
    write_config(args.workdir, config)
    print("cold run (timed)", file=sys.stderr)
    cold = run_snakemake(args.workdir, cores=args.cores)
    per_rule = rule_benchmarks(args.workdir / "results")
    noop = [run_snakemake(args.workdir, cores=args.cores) for _ in range(args.repeats)]
    start = time.perf_counter()
    subprocess.run(
        [
            SNAKEMAKE,
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(args.workdir),
            "--configfile",
            str(args.workdir / "config.yaml"),
            "--cores",
            str(args.cores),
            "--dry-run",
            "--quiet",
            "all",
        ],
        check=True,
        capture_output=True,
    )
    dry = time.perf_counter() - start

    config_name = "demo config" if args.config.resolve() == REPO / "config.yaml" else f"config {args.config.name}"
    summary = markdown_table(
        ["measure", "seconds", "goal"],
        [
            [f"{config_name} cold, end to end (snakemake --cores {args.cores})", f"{cold:.1f}", "≤ 120"],
            [f"no-op rerun, best of {len(noop)}", f"{min(noop):.2f}", "≤ 3"],
            [f"no-op rerun, median of {len(noop)}", f"{statistics.median(noop):.2f}", "≤ 3"],
            ["dry run", f"{dry:.2f}", ""],
        ],
    )
    total = sum(e["s"] for e in per_rule.values())
    rules = markdown_table(
        ["rule", "jobs", "summed job s", "share", "max RSS MiB"],
        [
            [rule, e["jobs"], f"{e['s']:.1f}", f"{e['s'] / total:.0%}", f"{e['max_rss_mib']:.0f}"]
            for rule, e in sorted(per_rule.items(), key=lambda item: -item[1]["s"])
        ],
    )
    text = (
        f"Machine: {machine()}\n\nCommand: `{command_line()}`\n\n{summary}\n\n"
        f"Cold run, per rule (jobs run {args.cores} at a time, so the sum exceeds the wall time):\n\n{rules}\n"
    )
    if args.profile:
        text += "\nProfile of one no-op run (cumulative):\n\n```\n" + profile_noop(args.workdir, args.cores) + "```\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
