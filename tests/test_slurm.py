"""The workflow on a real Slurm: Debian's slurmctld, slurmd and munge started on this machine as a
single-node cluster (tools/local_cluster.py), jobs sent by Snakemake's SLURM executor plugin
from .venv-slurm (`make slurm-env`), through profiles/slurm-test.

The cluster is up only while this module's tests use it (a module-scoped fixture) and is torn down
(leftover jobs cancelled, exactly its three daemons ended) even when a test fails. Every Snakemake
call runs under a hard timeout. The test cluster has no GPU and Slurm rejects a job that asks for
one, so profiles/slurm-test runs the extraction as a CPU job; a separate test shows that the real
profiles/slurm does ask Slurm for a GPU.
"""

import csv
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

import local_cluster
from conftest import TINY, TINY_SET, snakemake, with_changes, with_set_changes, without_query
from tsne_atlas import resources
from tsne_atlas.files.features import read_features

# The tiny config of the local workflow tests at one node (one feature set id: the local tests run two, and
# the comparison), one perplexity and one seed, with its query set, extracted on one thread, so that the two
# extraction shards below run side by side on the test node's two CPUs.
CONFIG = with_set_changes(
    with_changes(with_changes(TINY, "tsne", perplexities=[5], seeds=[0]), "extraction", threads=1),
    nodes=["penultimate"],
)
SETS = (TINY_SET,)
# On the cluster the set's extraction is split in two shards (extraction.shards), each its own cluster job,
# joined by a merge job; the local run extracts it in one job. The features must come out the same.
CLUSTER_CONFIG = with_changes(CONFIG, "extraction", shards=2)

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]

MAIN_SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SLURM_PYTHON = REPO / ".venv-slurm" / "bin" / "python"
RUN_TIMEOUT_S = 600  # the cluster run takes ~2 min here; a hung status loop must not hang CI
# Rules whose jobs run on the submitting host: fetch_weights (localrules) and the target rule.
LOCAL_RULES = {"fetch_weights", "all"}
# The cluster run: the reference's 23 rule jobs (one feature set id, one run, two shards) and the query set's 9.
RULE_JOBS = 32
# Outputs that legitimately differ between two runs: logs carry timestamps, benchmarks measure time,
# and t-SNE records its run time (runtime_s) in its JSON, the metrics JSON and the sweep table.
TIMED_FOLDERS = {"logs", "benchmarks"}
TIMED_FIELD = "runtime_s"


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def slurm_snakemake(
    cluster, workdir: Path, config: dict, *args: str, profile: str = "slurm-test", timeout: float = RUN_TIMEOUT_S
) -> subprocess.CompletedProcess:
    """Snakemake from .venv-slurm with a cluster profile, talking to the test cluster."""
    cmd = [
        str(SLURM_PYTHON),
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(write_config(workdir, config)),
        "--profile",
        str(REPO / "profiles" / profile),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=cluster.env(), timeout=timeout)


def submitted_jobs(output: str) -> list[str]:
    """Slurm job ids, as the plugin reports each sbatch."""
    return re.findall(r"has been submitted with SLURM jobid (\d+)", output)


def job_info(cluster, job_id: str) -> dict[str, str]:
    result = cluster.run("scontrol", "--oneliner", "show", "job", job_id)
    assert result.returncode == 0, result.stderr
    return dict(re.findall(r"(\w+(?:/\w+)?)=(\S*)", result.stdout))


def job_stats(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    jobs = {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}
    jobs.pop("total")
    return jobs


@pytest.fixture(scope="module")
def cluster():
    if not SLURM_PYTHON.exists():
        pytest.fail(f"{SLURM_PYTHON} is missing: run `make slurm-env` (make test does)")
    root = Path(tempfile.mkdtemp(prefix="tsne-atlas-slurm-"))
    try:
        try:
            started = local_cluster.start(root)
        except local_cluster.ClusterError as err:
            pytest.fail(f"the test cluster did not start: {err}")
        try:
            yield started
        finally:
            local_cluster.stop(started)
            assert not [name for name, pid in started.pids.items() if local_cluster._alive(pid)]
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def local_run_started(tmp_path_factory):
    """The same config run locally, started in the background: it runs while the cluster run waits on
    Slurm (test_outputs_are_those_of_a_local_run compares the two)."""
    workdir = tmp_path_factory.mktemp("local-run")
    cmd = [
        MAIN_SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(write_config(workdir, CONFIG)),
        "--cores",
        "2",  # as the cluster's jobs get: threads, and so results, are the same
    ]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield workdir, process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.fixture(scope="module")
def cluster_run(cluster, local_run_started, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm-run")
    began = time.monotonic()
    result = slurm_snakemake(cluster, workdir, CLUSTER_CONFIG)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    print(f"cluster run: {time.monotonic() - began:.0f} s")
    return workdir, output


@pytest.fixture(scope="module")
def local_run(local_run_started):
    workdir, process = local_run_started
    _, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    assert process.returncode == 0, stderr[-4000:]
    return workdir


def test_plugin_only_in_the_slurm_venv_because_an_unanswered_controller_costs_every_call(tmp_path):
    """Once Slurm's client tools are installed, a Snakemake that has the SLURM plugin runs `scontrol
    show config` whenever it starts (even for a local dry run) and waits ~9 s if no controller
    answers. The main venv must not have the plugin, so local runs and the other tests never wait."""
    local_cluster.ensure_packages()
    assert importlib.util.find_spec("snakemake_executor_plugin_slurm") is None  # this is .venv's python
    conf = tmp_path / "slurm.conf"
    conf.write_text(local_cluster.slurm_conf(tmp_path, 1, 1000, local_cluster.free_port(), local_cluster.free_port()))
    env = {**local_cluster.os.environ, "SLURM_CONF": str(conf)}  # a controller that never answers
    write_config(tmp_path, TINY)
    common = [
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--cores",
        "2",
        "--dry-run",
        "--quiet",
    ]
    for cmd in ([MAIN_SNAKEMAKE], [str(SLURM_PYTHON), "-m", "snakemake"]):
        result = subprocess.run(cmd + common, capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
    # The wait itself (about 9 s when measured) is not asserted: a timing would flake on a busy machine.


def test_test_profile_is_the_slurm_profile_but_for_the_test_cluster():
    real = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    test = yaml.safe_load((REPO / "profiles" / "slurm-test" / "config.yaml").read_text())
    # The differences profiles/slurm-test/config.yaml lists in its header, and nothing else. Allowed:
    # in set-resources, only the test profile's extra `gpu: 0` for extract_features (every other
    # resource, cpus_per_gpu included, must be the real one's, and neither may add a resource the
    # other lacks); cores, jobs and latency-wait, to these values; three status/log keys of the
    # plugin, in the test profile only.
    extraction = (
        "extract_features",
        "extract_features_shard",
        "extract_query_features",
        "extract_query_features_shard",
    )
    for rule in extraction:
        assert test["set-resources"][rule].pop("gpu") == 0  # no GPU on the test cluster
    assert test.pop("cores") == 2 and real.pop("cores") == 4
    assert (test.pop("jobs"), test.pop("latency-wait")) == (10, 5) and (real.pop("jobs"), real.pop("latency-wait")) == (
        50,
        60,
    )
    assert test.pop("slurm-status-command") == "squeue"
    assert test.pop("slurm-init-seconds-before-status-checks") == 1
    assert test.pop("slurm-keep-successful-logs") is True
    assert test == real  # set-resources, default-resources, groups and the rest, key for key
    assert real["executor"] == "slurm" and real["default-resources"] == {"mem_mb": 2000, "runtime": 15}
    assert real["set-resources"] == {rule: {"cpus_per_gpu": 4} for rule in extraction}


def test_jobs_ran_on_slurm_grouped_into_eight_cluster_jobs(cluster, cluster_run):
    workdir, output = cluster_run
    ids = submitted_jobs(output)
    jobs = {job_id: job_info(cluster, job_id) for job_id in ids}
    assert {info["JobState"] for info in jobs.values()} == {"COMPLETED"}
    # Slurm keeps the start of a long comment: the summary group's ends in '...'.
    summary = "rule_summary_explorer_explorer_thumbnails_find_suspects_image_quality_projector_"
    comments = sorted(info["Comment"] for info in jobs.values())
    assert comments[6].startswith(summary)
    expected = [
        # The set's two extraction shards, each its own job, and one merge job; the query set's extraction
        # (10 images: one batch, so one job); the shared t-SNE inputs, clusters, and the query's preparation
        # and tables; the sample with the query's; the run with its placement and query figures.
        *["rule_features_extract_features_shard"] * 2,
        "rule_features_extract_query_features",
        "rule_merge_merge_features",
        "rule_sample_label_images_label_query_sample_images_sample_query",
        "rule_shared_find_clusters_knn_graph_placement_tables_prepare_input_prepare_query_query_neighbours_tsne_affinities",
        "rule_sweep_embedding_metrics_grid_mosaic_map_mosaic_place_query_query_figures_scatter",
    ]
    assert len(comments) == len(expected) + 1
    for comment, wanted in zip(comments[:6] + comments[7:], expected):
        assert comment == wanted or (comment.endswith("...") and wanted.startswith(comment[:-3])), (comment, wanted)
    # RULE_JOBS rule jobs ran on the cluster (the query set's among them: its sampling, labelling, extraction and
    # thumbnails, its preparation, neighbours, tables, placement and figures), in 8 cluster jobs; each left
    # its Slurm log.
    cluster_side = {rule: n for rule, n in job_stats(output).items() if rule not in LOCAL_RULES}
    assert cluster_side["extract_features_shard"] == 2 and cluster_side["merge_features"] == 1
    assert (cluster_side["place_query"], cluster_side["placement_tables"]) == (1, 1)
    assert sum(cluster_side.values()) == RULE_JOBS and len(ids) == 8
    for job_id, info in jobs.items():
        group = info["Comment"].split("_")[1]
        folder = f"group_{group}_*"
        log = next((workdir / ".snakemake" / "slurm_logs").glob(f"{folder}/{job_id}.log"))
        assert "Finished jobid" in log.read_text()
    # The slurmd of the test cluster launched exactly these batch jobs.
    launched = re.findall(r"Launching batch job (\d+)", (cluster.root / "log" / "slurmd.log").read_text())
    assert set(ids) <= set(launched)
    # A group job asks for what its jobs need side by side, within the profile's cores (2 here).
    sweep = next(info for info in jobs.values() if "sweep" in info["Comment"])
    # Its widest layer: a job at the profile's default 2,000 MB (mosaic, grid_mosaic, query_figures) beside
    # another such job or beside one resources.py sizes (scatter, embedding_metrics and the map ask the same at
    # 40 images): which two share a layer depends on the order in which the group's jobs became ready.
    sized = resources.scatter_mem_mb(40)
    assert sized == resources.run_metrics_mem_mb(40, 5000) < 2000
    mem = int(re.search(r"\bmem=(\d+)M", sweep["TRES"]).group(1))
    assert sweep["NumCPUs"] == "2" and mem in (2000 + 2000, 2000 + sized), sweep["TRES"]


def test_extraction_ran_as_a_cpu_job(cluster, cluster_run):
    workdir, output = cluster_run
    extractions = [i for i in submitted_jobs(output) if "_extract_" in job_info(cluster, i)["Comment"]]
    assert len(extractions) == 3  # two shards and the query set's
    for job_id in extractions:
        assert "gres/gpu" not in job_info(cluster, job_id)["TRES"]  # profiles/slurm-test sets gpu: 0
    for feature_set in SETS:
        path = workdir / "results" / "features" / f"{feature_set}.h5"
        assert read_features(path, "penultimate", with_features=False)["attrs"]["device"] == "cpu"


def test_weights_were_resolved_on_the_submitting_host(cluster, cluster_run):
    workdir, output = cluster_run
    # A local rule: it ran in this process (extraction, which needs its record, can only follow it) and in
    # no cluster job.
    assert output.count("(Rule: fetch_weights)") == len(SETS)
    assert all("fetch_weights" not in job_info(cluster, i)["Comment"] for i in submitted_jobs(output))
    for feature_set in SETS:
        assert json.loads((workdir / "results" / "weights" / f"{feature_set}.json").read_text())["kind"] == "none"


def comparable(path: Path, relative: Path):
    """A file's content, less its run time where it records one (see TIMED_FIELD)."""
    # A run's record, and the query's placement on it (query/maps/), hold their run time.
    if (
        relative.parts[0] in ("embeddings", "metrics") or relative.parts[:2] == ("query", "maps")
    ) and path.suffix == ".json":
        data = json.loads(path.read_text())
        assert TIMED_FIELD in data, relative
        data.pop(TIMED_FIELD)
        return data
    if relative.name == "sweep.csv" or relative == Path("compare/metrics.csv"):
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert rows and all(TIMED_FIELD in row for row in rows)
        return [{k: v for k, v in row.items() if k != TIMED_FIELD} for row in rows]
    return path.read_bytes()


def output_files(out: Path) -> list[Path]:
    """Every result file, less logs and benchmarks (a sharded extraction logs each shard and the merge)."""
    return sorted(
        p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.relative_to(out).parts[0] not in TIMED_FOLDERS
    )


def test_outputs_are_those_of_a_local_run(cluster_run, local_run):
    """The cluster extracted in shards, the local run in one job per set: the same files, byte for byte
    (the shard files were temporary: merged, then removed)."""
    cluster_out, local_out = cluster_run[0] / "results", local_run / "results"
    compared = output_files(cluster_out)
    assert compared == output_files(local_out)
    assert len(compared) >= 40  # manifest, weights record, features, the run's 7 files, sweep figures, the query's, ...
    for feature_set in SETS:
        assert (cluster_out / "logs" / "merge_features" / f"{feature_set}.log").exists()
        assert not list((cluster_out / "features" / "shards" / feature_set).glob("*.h5"))
    for relative in compared:
        assert comparable(cluster_out / relative, relative) == comparable(local_out / relative, relative), relative
    # The query set's placement too: deterministic, the same on the cluster as here.
    assert len([p for p in compared if p.parts[:2] == ("query", "maps")]) == 2
    # Byte for byte, among others: the features, every PNG, SVG and PDF, and the explorer page.
    for feature_set in SETS:
        features = Path("features") / f"{feature_set}.h5"
        assert (cluster_out / features).read_bytes() == (local_out / features).read_bytes()


def test_a_failing_job_makes_snakemake_fail(cluster, tmp_path):
    # A valid config with an impossible graph node (no query set: its extraction would fail alike, in parallel).
    config = with_set_changes(without_query(TINY), nodes=["fc7"])
    # Sampling locally first (the cluster run above shows it on Slurm): one cluster job to wait for.
    sampled = snakemake(tmp_path, "--until", "label_images", config=config)
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    result = slurm_snakemake(cluster, tmp_path, config)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    ids = submitted_jobs(output)
    # The features job failed; nothing after it ran.
    assert len(ids) == 1 and [job_info(cluster, i)["JobState"] for i in ids] == ["FAILED"]
    assert "Error in rule extract_features" in output
    log = (tmp_path / "results" / "logs" / "extract_features" / f"{TINY_SET}.log").read_text()
    assert f"features.{TINY_SET}.nodes: 'fc7' is not a node of this model" in log
    assert not (tmp_path / "results" / "features" / f"{TINY_SET}.h5").exists()


def test_slurm_profile_asks_slurm_for_a_gpu_for_extraction(cluster, tmp_path):
    """profiles/slurm as a user gets it: the extraction group job asks for a GPU, which this cluster
    has not, so Slurm refuses it at submission and Snakemake fails. Snakemake 9.27 shows only
    "Error in group features" for a group job it could not submit (it drops the plugin's message);
    --verbose shows the sbatch call. Sampling and labelling run locally first: as a cluster job they
    would be accepted and polled with sacct, which this cluster (no slurmdbd) cannot answer."""
    config = without_query(TINY)  # the query set's sampling would be a cluster job polled with sacct too
    sampled = snakemake(tmp_path, "--until", "label_images", config=config)
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    result = slurm_snakemake(
        cluster,
        tmp_path,
        config,
        "--verbose",
        "--slurm-init-seconds-before-status-checks",
        "1",
        profile="slurm",
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Error in group features" in output
    call = re.search(r"sbatch call: (sbatch .*--comment rule_features_extract_features.*)", output).group(1)
    assert "--gpus=1" in call and "--cpus-per-gpu=4" in call
    assert f'--wrap="{SLURM_PYTHON} -m snakemake ' in call  # jobs run Snakemake from .venv-slurm too
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    assert cluster.run("squeue", "--noheader", "--states=all", "--name", run_id).stdout.strip() == ""  # none accepted
    direct = cluster.run("sbatch", "--gpus=1", "--wrap", "true")  # the same request without Snakemake
    assert direct.returncode != 0 and "Invalid generic resource" in direct.stderr


def test_envs_note_pins_the_plugin_as_requirements_slurm_does():
    pins = [
        line for line in (REPO / "requirements-slurm.txt").read_text().splitlines() if line and not line.startswith("#")
    ]
    noted = re.findall(r"^- (\S+==\S+)$", (REPO / "envs" / "README.md").read_text(), flags=re.M)
    assert noted == pins and any(p.startswith("snakemake-executor-plugin-slurm==") for p in pins)
