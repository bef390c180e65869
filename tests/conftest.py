"""Helpers shared by the tests: the tiny workflow config and real Snakemake runs of it, schema defaults,
synthetic image folders, and what Snakemake hands a rule's script."""

import copy
import fcntl
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import snakemake_forks

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
# umap-learn's compiled numba code, shared by every test and every workflow the tests run (each test's
# own results folder would compile it again, ~11 s); tests/test_maps.py runs one workflow without it.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"tsne-atlas-tests-numba-{os.getuid()}"))
# `make check` runs the unit tests in pytest-xdist workers (-n 2), one per core here. Each worker's torch and
# OpenMP then compute on its share of the cores: two threads per worker on 2 cores wait for each other at
# every barrier (a worker's torch tests took several times the CPU). xdist sets the count before this import.
XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
WORKER_THREADS = max(1, (os.cpu_count() or 1) // XDIST_WORKERS) if XDIST_WORKERS > 1 else None
if WORKER_THREADS:
    os.environ.setdefault("OMP_NUM_THREADS", str(WORKER_THREADS))


def tiny_config() -> dict:
    """tests/tiny-config.yaml, with the dataset's and the query set's paths made absolute (the tests run in
    temporary folders)."""
    config = yaml.safe_load((REPO / "tests" / "tiny-config.yaml").read_text())
    config["dataset"]["root"] = str(REPO / config["dataset"]["root"])
    for key in ("folder", "manifest"):
        config["query"][key] = str(REPO / config["query"][key])
    return config


TINY = tiny_config()


def snakemake_command(workdir: Path, *args: str, config: dict | None = None) -> list[str]:
    """The command line that runs this workflow's Snakefile in ``workdir`` with ``config`` (written to
    workdir/config.yaml, when given)."""
    if config is not None:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "2",
        *args,
    ]


def snakemake(workdir: Path, *args: str, config: dict | None = None) -> subprocess.CompletedProcess:
    """Run this workflow's Snakefile in ``workdir`` with ``config``, in a process forked from
    tests/snakemake_forks.py's server (Snakemake already imported: a dry run takes about a third of a new
    interpreter's time; the jobs of a real run are processes of their own, as always)."""
    return snakemake_forks.run(snakemake_command(workdir, *args, config=config))


def planned_jobs(workdir: Path, config: dict, targets: tuple[str, ...] = ()) -> dict[str, int]:
    """Jobs a dry run (of ``targets``; none: rule all) would execute, from Snakemake's own 'Job stats' table.
    The config goes to a file named after its content, so dry runs of several configs may run side by side
    in one workdir."""
    text = yaml.safe_dump(config)
    config_file = workdir / f"config-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    config_file.write_text(text)
    command = snakemake_command(workdir, *targets, "--dry-run", "--quiet", "rules")
    command[command.index("--configfile") + 1] = str(config_file)
    result = snakemake_forks.run(command)
    assert result.returncode == 0, result.stderr + result.stdout
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M))
    jobs.pop("total")
    return {rule: int(count) for rule, count in jobs.items()}


def with_changes(config: dict, section: str, **values) -> dict:
    return {**config, section: {**config.get(section, {}), **values}}


def without_query(config: dict) -> dict:
    """``config`` placing no query set: for full runs that test something else (each query job costs)."""
    return {**config, "query": {"layout": "none"}}


# The tiny config's one feature set, and the feature set ids (one per node) it gives.
TINY_SET = "resnet18"
TINY_IDS = ("resnet18.layer3", "resnet18.penultimate")


def with_set_changes(config: dict, feature_set: str = TINY_SET, **values) -> dict:
    """``config`` with keys of one feature set changed (the set is added when new)."""
    sets = dict(config.get("features", {}))
    sets[feature_set] = {**sets.get(feature_set, {}), **values}
    return {**config, "features": sets}


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """The tiny config run to the end once per test session: (workdir, Snakemake's result). Shared by
    pytest-xdist's workers: the first that needs it runs it (two minutes of CPU) while the others wait on a
    lock, then read its result; tests copy the folder before running jobs in it (dry runs need no copy)."""
    base = tmp_path_factory.getbasetemp()
    # The session's folder (a worker's base folder is in it), and the run as deep as a test's tmp_path:
    # a copy of it in tmp_path then links to the dataset with the same relative paths (the explorer's).
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    workdir = shared / "finished-tiny-run" / "run" if shared != base else base / "finished-tiny-run"
    record = shared / "finished-tiny-run.json"
    with open(shared / "finished-tiny-run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            workdir.mkdir(parents=True)
            result = snakemake(workdir, config=TINY)
            fields = {"args": result.args, "returncode": result.returncode}
            record.write_text(json.dumps({**fields, "stdout": result.stdout, "stderr": result.stderr}))
    result = subprocess.CompletedProcess(**json.loads(record.read_text()))
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, result


DEMO_ROOT = REPO / "resources" / "animal-mnist"


@pytest.fixture
def demo_root() -> Path:
    return DEMO_ROOT


def make_image_folder(root: Path, counts: dict[str, int], size=(20, 16), mode="RGB") -> Path:
    """A class-per-folder dataset of small synthetic images, distinct per class and index."""
    rng = np.random.default_rng(0)
    for class_index, (name, count) in enumerate(sorted(counts.items())):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            base = np.full((size[1], size[0], 3), 40 * class_index % 255, dtype=np.uint8)
            noise = rng.integers(0, 60, size=base.shape, dtype=np.uint8)
            Image.fromarray(base + noise).convert(mode).save(folder / f"{name}_{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "data", {"ant": 6, "bee": 5, "cat": 4})


SCHEMA = REPO / "schemas" / "config.schema.yaml"


@functools.cache
def schema_document() -> dict:
    """The schema, parsed once per test process (0.04 s of CPU a parse; extraction tests ask per call)."""
    return yaml.safe_load(SCHEMA.read_text())


def schema_defaults(section: str, *keys: str) -> dict:
    """The schema's defaults of ``section`` (all keys, or just ``keys``): the one home of defaults."""
    properties = schema_document()["properties"][section]["properties"]
    wanted = keys or tuple(properties)
    return copy.deepcopy({key: properties[key]["default"] for key in wanted})  # the cached document stays as read


# extraction.shards and images_per_shard decide which jobs the workflow makes, not how one extracts.
SHARDING_KEYS = ("shards", "images_per_shard")


def extraction_defaults() -> dict:
    """The schema's extraction defaults an extraction job is handed (extract_features' keyword arguments);
    in an xdist worker, the worker's share of the cores as ``threads`` (above)."""
    defaults = {k: v for k, v in schema_defaults("extraction").items() if k not in SHARDING_KEYS}
    if WORKER_THREADS:
        defaults["threads"] = min(defaults["threads"], WORKER_THREADS)
    return defaults


def rule_job(rule: str, input: dict, output: dict, params: dict, log: str, threads: int = 1):
    """What Snakemake's script directive hands a rule's script as ``snakemake``, with Snakemake's own
    named lists, so the rule adapter (tsne_atlas.jobs.run_rule) can be called without a workflow."""
    from types import SimpleNamespace

    from snakemake.iocontainers import Namedlist

    return SimpleNamespace(
        rule=rule,
        input=Namedlist(fromdict=input),
        output=Namedlist(fromdict=output),
        params=Namedlist(fromdict=params),
        log=Namedlist(toclone=[log]),
        threads=threads,
    )


# Kinds of test (pyproject.toml lists the markers): `make check` runs the unit tests alone.
SLOW_KINDS = ("workflow", "browser", "slurm", "tensorboard", "slow")


def pytest_collection_modifyitems(items):
    """A test that drives the browser is a browser test, one that uses the finished tiny run a workflow
    test; every test of none of the slow kinds is a unit test."""
    for item in items:
        if "driver" in item.fixturenames:
            item.add_marker(pytest.mark.browser)
        if "finished_run" in item.fixturenames:
            item.add_marker(pytest.mark.workflow)
        if not any(item.get_closest_marker(kind) for kind in SLOW_KINDS):
            item.add_marker(pytest.mark.unit)


def sample_and_label(root, tmp_path, label_map=None, layout="folders", dataset_manifest=None, **sampling):
    """The two sampling stages as the workflow runs them (sample_images, then label_images), with the
    demo's defaults; returns the sample as (path, label) rows in sample order."""
    from tsne_atlas.files.manifest import read_manifest
    from tsne_atlas.sampling import label_images, sample_images

    settings = {"extensions": [".png"], "n_images": "all", "seed": 0, "stratified": True}
    settings.update({"on_bad_image": "skip", "label_column": "label", "missing_label": "fail"})
    settings.update(sampling)
    images, manifest = str(tmp_path / "images.csv"), str(tmp_path / "manifest.csv")
    sample_images(
        layout=layout,
        root=str(root),
        images=images,
        skipped=str(tmp_path / "skipped.csv"),
        dataset_manifest=dataset_manifest,
        **settings,
    )
    label_images(
        layout=layout,
        root=str(root),
        label_column=settings["label_column"],
        missing_label=settings["missing_label"],
        label_map=label_map or {},
        images=images,
        manifest=manifest,
        dataset_manifest=dataset_manifest,
    )
    labels = read_manifest(manifest)
    return list(zip(labels.paths, labels.labels))


def write_embedding(tsv, meta_json, paths, labels, coords, meta, metadata=None) -> str:
    """A run record as the tsne rule writes it, plus the sample manifest beside it (``manifest.csv`` in
    the same folder) with ``labels`` and ``metadata``, as label_images writes it; returns its path."""
    from tsne_atlas.files.manifest import write_manifest
    from tsne_atlas.files.runs import write_run

    write_run(tsv, meta_json, list(paths), coords, meta)
    manifest = Path(tsv).parent / "manifest.csv"
    write_manifest(manifest, list(paths), list(labels), metadata)
    return str(manifest)


def write_clusters(folder, paths, labels, features_id="set", ari=0.5) -> tuple[str, str]:
    """clusters.csv and summary.json in ``folder`` as find_clusters writes them, one cluster per label
    (numbered in sorted label order, named by the label); returns their paths."""
    from tsne_atlas.files.clusters import write_assignments, write_summary

    names = sorted(set(labels))
    assignments, summary = Path(folder) / "clusters.csv", Path(folder) / "summary.json"
    rows = [
        {"path": p, "label": label, "cluster": names.index(label), "cluster_name": label}
        for p, label in zip(paths, labels)
    ]
    write_assignments(assignments, rows)
    write_summary(
        summary,
        {
            "features": features_id,
            "method": "leiden",
            "neighbours": 15,
            "resolution": 1.0,
            "seed": 0,
            "n_images": len(paths),
            "n_clusters": len(names),
            "predictions": "none: random weights",
            "weights_random": False,
            "adjusted_rand_index": ari,
            "normalized_mutual_info": ari,
            "agreement": "with the labels",
        },
    )
    return str(assignments), str(summary)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache and no hub: nothing may reach the network or a user's cache."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
