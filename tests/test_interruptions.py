"""Killed runs resume to the same results, and two runs of one config give identical files."""

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from test_workflow import REPO, SNAKEMAKE, TINY, with_changes

# Slow enough to be caught mid-step: small batches, sklearn's t-SNE.
CONFIG = with_changes(with_changes(TINY, "model", batch_size=4), "tsne", implementation="sklearn")
CONFIG = with_changes(CONFIG, "sample", n_images=60)
VOLATILE = {"runtime_s"}  # wall-clock times: the only values allowed to differ between runs


def command(workdir: Path, *args: str) -> list[str]:
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    return [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
            str(workdir / "config.yaml"), "--cores", "2", *args]


def run(workdir: Path, *args: str) -> None:
    result = subprocess.run(command(workdir, *args), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]


def resume(workdir: Path) -> None:
    """What a user does after a kill: release Snakemake's lock, rerun what was incomplete."""
    run(workdir, "--unlock")
    run(workdir, "--rerun-incomplete")


def kill_when(workdir: Path, ready, timeout: float = 300) -> None:
    """Start the workflow, SIGKILL its whole process group as soon as ``ready()`` is true."""
    process = subprocess.Popen(command(workdir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert process.poll() is None, "the workflow finished before it could be interrupted"
            assert time.monotonic() < deadline, "timed out waiting for the step to start"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def comparable(path: Path):
    """A file's content, with wall-clock fields left out of JSON and CSV."""
    if path.suffix == ".json":
        return {k: v for k, v in json.loads(path.read_text()).items() if k not in VOLATILE}
    if path.suffix == ".csv":
        with open(path, newline="") as handle:
            return [{k: v for k, v in row.items() if k not in VOLATILE} for row in csv.DictReader(handle)]
    return path.read_bytes()


def results(workdir: Path) -> dict:
    out = workdir / "results"
    return {
        p.relative_to(out).as_posix(): comparable(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.relative_to(out).parts[0] not in ("logs", "benchmarks")
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    run(workdir)
    return results(workdir)


def test_two_runs_of_one_config_give_identical_files(reference, tmp_path):
    run(tmp_path)
    again = results(tmp_path)
    assert sorted(again) == sorted(reference)
    # 4 runs x 8 files, 5 sweep-wide figures and tables, manifest, features and more.
    assert len(reference) > 37 and "features/features.h5" in reference
    different = [name for name in reference if again[name] != reference[name]]
    assert different == []


def test_killed_during_extraction_resumes_to_the_same_results(reference, tmp_path):
    features = tmp_path / "results" / "features"
    kill_when(tmp_path, lambda: features.is_dir() and any(features.glob(".tmp-*features.h5")))
    # The half-written file never takes the final name.
    assert not (features / "features.h5").exists()
    resume(tmp_path)
    assert results(tmp_path) == reference


def test_killed_during_tsne_resumes_to_the_same_results(reference, tmp_path):
    logs = tmp_path / "results" / "logs" / "tsne"
    kill_when(tmp_path, lambda: logs.is_dir() and any(logs.glob("*.log")))
    assert not (tmp_path / "results" / "metrics" / "sweep.csv").exists()
    resume(tmp_path)
    assert results(tmp_path) == reference
