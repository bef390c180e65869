"""Shared helpers of the benchmark scripts: machine description, Snakemake runs, tables."""

import csv
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
# Where the benchmarks keep their work folders and the datasets they make (both git-ignored);
# TSNE_ATLAS_BENCH_DIR moves both elsewhere (the smoke tests, tests/test_benchmarks.py, use a temporary folder).
BENCH_DIR = Path(os.environ.get("TSNE_ATLAS_BENCH_DIR") or REPO / "benchmarks")
WORK = BENCH_DIR / "work"
DATA_DIR = BENCH_DIR / "data"
# The bundled 1,000 demo images: the smallest dataset a benchmark can run on (no download).
DEMO = REPO / "resources" / "animal-mnist"


def machine() -> str:
    """One line: CPU model, cores, memory, Python and key library versions."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = []
    for module in ("torch", "openTSNE", "sklearn", "snakemake"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    return f"{cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB, Python {platform.python_version()}, " + ", ".join(
        versions
    )


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])


def write_config(workdir: Path, config: dict) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake_arguments(workdir: Path, cores: int = 2) -> list[str]:
    """Snakemake's arguments (no program name) for the workflow in ``workdir`` with its config.yaml."""
    return [
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        str(cores),
        "--quiet",
        "all",
    ]


def run_snakemake(workdir: Path, *args: str, cores: int = 2) -> float:
    """Run the workflow in ``workdir`` with its config.yaml; return the wall time in seconds."""
    cmd = [SNAKEMAKE, *snakemake_arguments(workdir, cores), *args]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed in {workdir}:\n{result.stderr[-3000:]}")
    return wall


def rule_benchmarks(results: Path) -> dict[str, dict]:
    """Snakemake's benchmark files per rule: job count, summed seconds, largest max_rss (MiB)."""
    per_rule: dict[str, dict] = {}
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rel = tsv.relative_to(results / "benchmarks")
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if rule == "embeddings":
            # embeddings/<set>/<method>/<run>.tsv: a map; embeddings/<set>/<input|neighbors-k|affinities-p>.tsv:
            # what the set's maps share (named as before the methods: "tsne input", ...).
            rule = rel.parts[2] if len(rel.parts) == 4 else "tsne " + rel.stem.split("-", 1)[0]
        elif rule == "extract_features" and len(rel.parts) == 3:
            # extract_features/<set>/<i>-of-<K>.tsv: one shard of a sharded set (extraction.shards).
            rule = "extract_features_shard"
        with open(tsv, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if not rows:
            continue
        entry = per_rule.setdefault(rule, {"jobs": 0, "s": 0.0, "max_rss_mib": 0.0})
        entry["jobs"] += 1
        entry["s"] += float(rows[0]["s"])
        rss = rows[0].get("max_rss", "NA")
        if rss not in ("NA", "", "-"):
            entry["max_rss_mib"] = max(entry["max_rss_mib"], float(rss))
    return per_rule


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_sample(path: str | os.PathLike, rows: list[tuple[str, str]]) -> None:
    """The image list extract_features reads (``sample/images.csv``) for (path, label) rows of a
    class-per-folder dataset; no content hashes (the benchmarks never look for duplicates)."""
    from tsne_atlas.files.manifest import write_images

    write_images(path, [path_ for path_, _ in rows], [""] * len(rows))


def read_sample(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(path, label) rows of an image list written by ``write_sample``; the label is the top folder."""
    from tsne_atlas.files.manifest import read_images

    return [(path_, path_.split("/")[0]) for path_ in read_images(path)[0]]
