"""What jobs ask a scheduler for (scripts/tsne_atlas/resources.py), and that the rules really declare it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tsne_atlas import resources as cr
from tsne_atlas.methods import MAP_METHODS

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


# Peak RSS (MiB) and wall time (s) measured at 1,000,000 images (BENCHMARKS.md, "Stages at 1,000,000 images";
# 2-core VM): what each job's request must cover with room to spare, for the default config (graph of 150
# neighbours, perplexities up to 50, 50 PCA columns, 15 cluster neighbours, 9 maps).
MEASURED_AT_A_MILLION = {
    "knn_graph k=90": (lambda n: cr.knn_mem_mb(n, 90), lambda n: cr.knn_runtime_min(n, 90), 2712, 815),
    "knn_graph k=150": (lambda n: cr.knn_mem_mb(n, 150), lambda n: cr.knn_runtime_min(n, 150), 3628, 1149),
    "tsne_affinities perplexity 30": (
        lambda n: cr.affinities_mem_mb(n, 90),
        lambda n: cr.affinities_runtime_min(n, 90),
        4016,
        49,
    ),
    "tsne_affinities perplexity 50": (
        lambda n: cr.affinities_mem_mb(n, 150),
        lambda n: cr.affinities_runtime_min(n, 150),
        6589,
        74,
    ),
    "find_suspects": (lambda n: cr.suspects_mem_mb(n, 150, 50), lambda n: cr.suspects_runtime_min(n, 150), 3753, 61),
    "find_clusters": (lambda n: cr.clusters_mem_mb(n, 15, 50), lambda n: cr.clusters_runtime_min(n, 15), 4092, 568),
    "embedding_metrics": (lambda n: cr.run_metrics_mem_mb(n, 5000), cr.metrics_runtime_min, 1496, 21),
    # The map jobs of the whole workflow at 1,000,000 (BENCHMARKS.md, "The whole workflow at 250,000 and
    # 1,000,000 images"), from their methods' declarations.
    **{
        f"map {method}": (
            lambda n, m=method: cr.map_mem_mb(n, MAP_METHODS[m].run_bytes_per_image),
            lambda n, m=method: cr.map_runtime_min(n, MAP_METHODS[m].run_seconds_per_image),
            peak,
            seconds,
        )
        for method, peak, seconds in (("tsne", 4354, 1150), ("umap", 4282, 1348), ("pca", 1784, 36))
    },
}


@pytest.mark.parametrize("stage", sorted(MEASURED_AT_A_MILLION))
def test_requests_at_a_million_images_cover_what_the_stages_measured(stage):
    """Each request at 1,000,000 images is at least 1.5 x the measured peak RSS (mem_mb is in MB, 10^6
    bytes; the peaks in MiB) and 2 x the measured time; the need jobs.check_memory compares is at least
    the measured peak, so a job that fits is never refused."""
    mem_mb, runtime_min, peak_mib, seconds = MEASURED_AT_A_MILLION[stage]
    assert mem_mb(10**6) * 10**6 >= 1.5 * peak_mib * 2**20, stage
    assert runtime_min(10**6) * 60 >= 2 * seconds, stage
    need = {
        "knn_graph k=90": cr.knn_need_bytes(10**6, 90),
        "knn_graph k=150": cr.knn_need_bytes(10**6, 150),
        "tsne_affinities perplexity 30": cr.affinities_need_bytes(10**6, 90),
        "tsne_affinities perplexity 50": cr.affinities_need_bytes(10**6, 150),
        "find_suspects": cr.suspects_need_bytes(10**6, 150, 50),
        "find_clusters": cr.clusters_need_bytes(10**6, 15, 50),
    }.get(stage)
    assert need is None or peak_mib * 2**20 <= need <= 1.3 * peak_mib * 2**20, stage
    # The requests grow with the sample: 250,000 images ask for less, but never less than the base.
    assert cr.BASE_MEM_MB < mem_mb(1000) <= mem_mb(250_000) < mem_mb(10**6)


def dry_run_listing(workdir: Path, config: dict) -> str:
    """Snakemake's dry-run job listing of ``config`` (written to workdir/config.yaml) in ``workdir``."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


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
    assert resources["map"]["mem_mb"] == str(cr.map_mem_mb(40, MAP_METHODS["tsne"].run_bytes_per_image))
    assert resources["prepare_input"]["mem_mb"] == str(cr.prepare_mem_mb(40, 100_000, 20))
    assert resources["embedding_metrics"]["mem_mb"] == str(cr.run_metrics_mem_mb(40, 5000))
    assert "gpu" not in resources["map"] and "gpu" not in resources["scatter"]  # only extraction uses a GPU
    assert resources["sample_images"]["runtime"] == str(cr.sampling_runtime_min(40))
    # The stages after the prepared input, sized by what they hold (the tiny config: 40 images, perplexity 5,
    # so a graph of 15 neighbours; 50 PCA columns at most).
    assert resources["knn_graph"]["mem_mb"] == str(cr.knn_mem_mb(40, 15))
    assert resources["knn_graph"]["runtime"] == str(cr.knn_runtime_min(40, 15))
    assert resources["tsne_affinities"]["mem_mb"] == str(cr.affinities_mem_mb(40, 15))
    assert resources["find_suspects"]["mem_mb"] == str(cr.suspects_mem_mb(40, 15, 50))
    assert resources["find_clusters"]["mem_mb"] == str(cr.clusters_mem_mb(40, 15, 50))
    assert resources["image_quality"]["mem_mb"] == str(cr.quality_mem_mb(40))
    assert resources["scatter"]["mem_mb"] == str(cr.scatter_mem_mb(40))
    assert resources["sweep_overview"]["mem_mb"] == str(cr.overview_mem_mb(40, 1))


@pytest.mark.workflow  # Snakemake dry runs
def test_cpu_extraction_asks_for_no_gpu_and_all_counts_the_images(tmp_path):
    config = {**TINY, "sample": {"n_images": "all"}, "extraction": {**TINY["extraction"], "device": "cpu"}}
    resources = job_resources(tmp_path, config)
    assert resources["extract_features"]["gpu"] == "0"
    assert resources["extract_features"]["runtime"] == str(cr.extraction_runtime_min(1000, "cpu"))  # 1,000 demo images
    assert resources["map"]["runtime"] == str(cr.map_runtime_min(1000, MAP_METHODS["tsne"].run_seconds_per_image))


@pytest.mark.workflow  # a Snakemake dry run
def test_each_map_job_asks_for_what_its_method_measured(tmp_path):
    """t-SNE, UMAP and PCA maps of one sweep: each job's memory and time from its own method's declaration
    (PCA holds a fraction of what t-SNE's P and UMAP's graph need)."""
    # All 1,000 demo images: at 40 the interpreter's share makes every request the same.
    config = {**TINY, "sample": {"n_images": "all"}, "methods": ["tsne", "umap", "pca"]}
    asked = {}
    for block in re.split(r"^\s*rule map:\n", dry_run_listing(tmp_path, config), flags=re.M)[1:]:
        method = re.search(r"wildcards: .*\bmethod=(\w+)", block).group(1)
        fields = dict(item.split("=", 1) for item in re.search(r"resources: (.*)", block).group(1).split(", "))
        asked.setdefault(method, set()).add((fields["mem_mb"], fields["runtime"]))
    assert sorted(asked) == ["pca", "tsne", "umap"]
    for method, requests in asked.items():
        declared = MAP_METHODS[method]
        wanted = (
            str(cr.map_mem_mb(1000, declared.run_bytes_per_image)),
            str(cr.map_runtime_min(1000, declared.run_seconds_per_image)),
        )
        assert requests == {wanted}, method
    assert asked["pca"] != asked["tsne"]


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
    listing = dry_run_listing(tmp_path, config)
    jobs = [
        (rule, dict(re.findall(r"(\w+)=([^,\n]+)", re.search(r"wildcards: (.*)", block).group(1))), block)
        for rule, block in re.findall(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", listing, flags=re.M | re.S)
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
