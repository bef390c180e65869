"""What jobs ask a scheduler for (scripts/tsne_atlas/resources.py), and that the rules really declare it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tsne_atlas import resources as cr

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TINY = {
    "dataset": {"root": str(REPO / "resources" / "animal-mnist")},
    "sample": {"n_images": 40},
    "features": {"resnet18": {"arch": "resnet18", "weights": "none"}},
    "extraction": {"num_workers": 0},
    "tsne": {"perplexities": [5], "seeds": [0]},
}


def test_gpu_only_when_the_device_may_be_a_gpu():
    assert [cr.extraction_gpus(d, "torchvision") for d in ("auto", "cuda", "cuda:1", "cpu")] == [1, 1, 1, 0]
    assert [cr.extraction_gpus(d, "timm") for d in ("auto", "cpu")] == [1, 0]
    assert [cr.extraction_gpus(d, "precomputed") for d in ("auto", "cuda", "cpu")] == [0, 0, 0]


def test_sample_size_counts_the_dataset_only_for_all():
    assert cr.sample_size(500) == 500
    assert cr.sample_size("all", lambda: 1234) == 1234
    with pytest.raises(ValueError):
        cr.sample_size("all")


def test_memory_and_time_grow_with_the_sample_where_it_matters():
    # Extraction streams to disk: memory flat in N, but one process more per DataLoader worker.
    assert cr.extraction_mem_mb(2) == 6000 and cr.extraction_mem_mb(0) == 4000
    assert cr.extraction_runtime_min(500, "cpu") == 10 + 5 and cr.extraction_runtime_min(500, "auto") == 10 + 1
    assert cr.extraction_runtime_min(26000, "cpu") > cr.extraction_runtime_min(26000, "cuda") > 30
    # The sweep's input job: up to prepare.block_rows images the features as float64, a few times over (4096
    # dimensions assumed); above, one block of them, the D x D covariance and the N x 50 result: ~6.8 GB at 1,000,000.
    assert cr.prepare_mem_mb(500, 100_000, 50) == 1000 + 47 and cr.prepare_mem_mb(26000, 100_000, 50) == 1000 + 2438
    # 100,000 x 4,096 x 12 bytes (4,687.5 MiB) + 6 x 4,096² x 8 (768 MiB) + 1,000,000 x 50 x 8 (381.5 MiB).
    assert cr.prepare_mem_mb(1_000_000, 100_000, 50) == 1000 + 5837 < 8000
    assert cr.prepare_mem_mb(1_000_000, 50_000, 50) < cr.prepare_mem_mb(1_000_000, 100_000, 50)
    assert cr.prepare_mem_mb(100_001, 100_000, 50) < cr.prepare_mem_mb(100_000, 100_000, 50)
    # Without PCA the result is N x D float64 itself.
    assert cr.prepare_mem_mb(1_000_000, 100_000, 0) > 1_000_000 * 4096 * 8 / 2**20
    # Each run holds the 50-d input, the graph and P: ~20 KB per image, above the 538 MB measured at 100k.
    assert cr.maps_mem_mb(500) == 1000 + 10 and 538 < cr.maps_mem_mb(100_000) < 3000
    assert cr.maps_runtime_min(500) == 12 and cr.maps_runtime_min(26000) == 88
    # Trustworthiness: N x N matrices, ~32 bytes per pair, over at most metrics.max_images points.
    assert cr.metrics_mem_mb(500, 5000) == cr.maps_mem_mb(500) + 8
    assert 20_000 < cr.metrics_mem_mb(26000, 26000) - cr.maps_mem_mb(26000) < 21_000
    # Capped at 5,000 points: 100,000 images ask for ~0.8 GB more, not 300 GB.
    assert cr.metrics_mem_mb(100_000, 5000) - cr.maps_mem_mb(100_000) == cr.metrics_mem_mb(5000, 5000) - cr.maps_mem_mb(
        5000
    )
    assert cr.metrics_mem_mb(100_000, 5000) < 4000
    # Sampling checks every sampled file on one core: ~10 ms per large photo, 8.5 hours asked at 1,000,000.
    assert cr.sampling_runtime_min(500) == 11 and cr.sampling_runtime_min(1_000_000) == 10 + 500
    for size in (
        lambda n: cr.prepare_mem_mb(n, 100_000, 50),
        cr.maps_mem_mb,
        cr.maps_runtime_min,
        cr.metrics_runtime_min,
        cr.sampling_runtime_min,
    ):
        assert size(100) <= size(1000) < size(100_000)


def job_resources(tmp_path: Path, config: dict, *args: str) -> dict[str, dict[str, str]]:
    """Each rule's resources as Snakemake itself evaluates them, from a dry run's job listing."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [
            SNAKEMAKE,
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(tmp_path / "config.yaml"),
            "--cores",
            "2",
            "--dry-run",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    found = {}
    for rule, block in re.findall(
        r"^\s*(?:local)?rule (\w+):\n(.*?)(?=^\s*\S*\s*\n|^\[|\Z)", result.stdout, flags=re.M | re.S
    ):
        line = re.search(r"resources: (.*)", block)
        if line:
            found[rule] = dict(item.split("=", 1) for item in line.group(1).split(", "))
    return found


@pytest.mark.workflow  # Snakemake dry runs
def test_rules_declare_gpu_memory_and_time(tmp_path):
    resources = job_resources(tmp_path, TINY, "--resources", "gpu=1")
    assert resources["extract_features"]["gpu"] == "1"  # model.device auto: may use the GPU
    assert resources["extract_features"]["mem_mb"] == str(cr.extraction_mem_mb(0))
    assert resources["extract_features"]["runtime"] == str(cr.extraction_runtime_min(40, "auto"))
    assert resources["map"]["mem_mb"] == str(cr.maps_mem_mb(40))
    assert resources["prepare_input"]["mem_mb"] == str(cr.prepare_mem_mb(40, 100_000, 20))
    assert resources["embedding_metrics"]["mem_mb"] == str(cr.metrics_mem_mb(40, 5000))
    assert "gpu" not in resources["map"] and "gpu" not in resources["scatter"]  # only extraction uses a GPU
    assert resources["sample_images"]["runtime"] == str(cr.sampling_runtime_min(40))


@pytest.mark.workflow  # Snakemake dry runs
def test_cpu_extraction_asks_for_no_gpu_and_all_counts_the_images(tmp_path):
    config = {**TINY, "sample": {"n_images": "all"}, "extraction": {**TINY["extraction"], "device": "cpu"}}
    resources = job_resources(tmp_path, config)
    assert resources["extract_features"]["gpu"] == "0"
    assert resources["extract_features"]["runtime"] == str(cr.extraction_runtime_min(1000, "cpu"))  # 1,000 demo images
    assert resources["map"]["runtime"] == str(cr.maps_runtime_min(1000))


@pytest.mark.workflow  # Snakemake dry runs
def test_local_profile_gives_every_core_and_one_gpu(tmp_path):
    profile = yaml.safe_load((REPO / "profiles" / "local" / "config.yaml").read_text())
    assert profile == {"cores": "all", "resources": {"gpu": 1}}
    resources = job_resources(tmp_path, TINY, "--profile", str(REPO / "profiles" / "local"))
    assert resources["extract_features"]["gpu"] == "1"


@pytest.mark.workflow  # Snakemake dry runs
def test_each_shard_is_a_gpu_job_sized_from_its_slice_and_the_merge_a_small_cpu_job(tmp_path):
    # The 1,000 demo images in batches of 16 (63 batches), auto shards of 300 images: 4 shards of 15-16 batches.
    extraction = {**TINY["extraction"], "shards": "auto", "images_per_shard": 300}
    config = {**TINY, "sample": {"n_images": "all"}, "extraction": extraction}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    jobs = [
        (rule, dict(re.findall(r"(\w+)=([^,\n]+)", re.search(r"wildcards: (.*)", block).group(1))), block)
        for rule, block in re.findall(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", result.stdout, flags=re.M | re.S)
        if rule in ("extract_features", "extract_features_shard", "merge_features")
    ]
    shards = sorted(
        (int(w["shard"]), int(w["shards"]), block) for rule, w, block in jobs if rule == "extract_features_shard"
    )
    assert [(index, count) for index, count, _ in shards] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    slices = [(0, 240), (240, 496), (496, 752), (752, 1000)]  # 15, 16, 16 and 16 batches (the last one short)
    for (index, _, block), (start, stop) in zip(shards, slices):
        resources = dict(item.split("=", 1) for item in re.search(r"resources: (.*)", block).group(1).split(", "))
        assert resources["gpu"] == "1" and resources["mem_mb"] == str(cr.extraction_mem_mb(0))
        assert resources["runtime"] == str(cr.extraction_runtime_min(stop - start, "auto")), index
    [merge] = [block for rule, _, block in jobs if rule == "merge_features"]
    resources = dict(item.split("=", 1) for item in re.search(r"resources: (.*)", merge).group(1).split(", "))
    assert "gpu" not in resources and resources["mem_mb"] == str(cr.merge_mem_mb())
    assert resources["runtime"] == str(cr.merge_runtime_min(1000))
    assert "features/shards/resnet18/4-of-4.h5" in merge and not [job for job in jobs if job[0] == "extract_features"]
