"""Killed runs resume to the same results, and two runs of one config give identical files (the second
is the run killed during extraction and resumed), UMAP and PCA maps made in two more processes too.

Both run the default t-SNE path: openTSNE on the sweep's shared input, k-NN graph and affinities.
"""

import csv
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import TINY, TINY_SET, snakemake_command, with_changes, with_set_changes, without_query

pytestmark = pytest.mark.workflow

# The default t-SNE settings (openTSNE, Barnes-Hut, shared affinities); small batches so that the
# extraction can be caught mid-way; one node, so one feature set id, named as the set; both perplexities
# (a graph for the larger, affinities for each) and one seed (a second seed adds jobs, not a path).
CONFIG = with_set_changes(
    with_changes(
        with_changes(with_changes(without_query(TINY), "extraction", batch_size=4), "sample", n_images=60),
        "tsne",
        seeds=[0],
    ),
    nodes=["penultimate"],
)
FEATURES = TINY_SET
VOLATILE = {"runtime_s", "compile_s"}  # wall-clock times: the only values allowed to differ between runs


def command(workdir: Path, *args: str, config: dict = CONFIG) -> list[str]:
    return snakemake_command(workdir, *args, config=config)


def run(workdir: Path, *args: str, config: dict = CONFIG) -> str:
    result = subprocess.run(command(workdir, *args, config=config), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout + result.stderr


def resume(workdir: Path, *targets: str, config: dict = CONFIG) -> str:
    """What a user does after a kill: release Snakemake's lock, rerun what was incomplete."""
    run(workdir, "--unlock", config=config)
    return run(workdir, "--rerun-incomplete", *targets, config=config)


def kill_when(workdir: Path, ready, timeout: float = 300, config: dict = CONFIG, targets: tuple = ()) -> None:
    """Start the workflow (or its ``targets``), SIGKILL its whole process group as soon as ``ready()`` is true."""
    process = subprocess.Popen(
        command(workdir, *targets, config=config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert process.poll() is None, "the workflow finished before it could be interrupted"
            assert time.monotonic() < deadline, "timed out waiting for the step to start"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# openTSNE's compiled gradient code: mapped into a run's process once run_tsne.embed() has imported
# openTSNE (a t-SNE job imports it there and nowhere else).
OPENTSNE_GRADIENT_CODE = ("openTSNE/_tsne.", "openTSNE/quad_tree.")
# CPU clock ticks (10 ms each) a run must have used since openTSNE was loaded before it is killed:
# more than the rest of the import takes (about 2 ticks here), so the optimisation is under way.
TICKS_INTO_THE_RUN = 3


def process_holding(path: Path) -> int | None:
    """The id of the process that has ``path`` open (a t-SNE job holds its log open while it runs)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if any(os.readlink(fd) == str(path) for fd in (entry / "fd").iterdir()):
                    return int(entry.name)
            except OSError:  # not ours, or gone
                continue
    return None


def stopped_state(pid: int) -> tuple[str, int] | None:
    """Once ``pid`` has stopped: (its /proc maps, CPU ticks used); None if it exited instead."""
    while True:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            return None
        if fields[0] in ("Z", "X"):
            return None
        if fields[0] in ("T", "t"):
            return maps, int(fields[11]) + int(fields[12])  # utime + stime


def stop_inside_the_optimisation(pid: int, meta_json: Path) -> bool:
    """Run the t-SNE job ``pid`` in short slices (SIGCONT ... SIGSTOP) until it is inside openTSNE's
    optimisation, and leave it stopped there: True. False if it finished (wrote its JSON, the last
    file a run writes) or exited first. Every check is made while the process is stopped, so what
    is seen is what a kill then interrupts.
    """
    loaded_at = None
    while True:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        state = stopped_state(pid)
        if state is None:
            return False
        if meta_json.exists():
            os.kill(pid, signal.SIGCONT)
            return False
        maps, ticks = state
        if all(code in maps for code in OPENTSNE_GRADIENT_CODE):
            loaded_at = ticks if loaded_at is None else loaded_at
            if ticks >= loaded_at + TICKS_INTO_THE_RUN:
                return True
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.002)


def kill_during_a_tsne_run(workdir: Path, timeout: float = 300) -> str:
    """Start the workflow, and SIGKILL its process group while a (perplexity, seed) run is inside
    openTSNE's optimisation; return that run's name."""
    logs, tsne = (
        workdir / "results" / "logs" / "embeddings" / FEATURES / "tsne",
        workdir / "results" / "embeddings" / FEATURES / "tsne",
    )
    process = subprocess.Popen(
        command(workdir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline, missed = time.monotonic() + timeout, set()
    try:
        while True:
            assert process.poll() is None, f"the workflow finished; t-SNE runs {sorted(missed)} ended uninterrupted"
            assert time.monotonic() < deadline, "timed out waiting for a t-SNE run"
            # Per-run logs only (logs/embeddings/<set>/tsne/): the input, graph and affinity logs belong to the shared steps.
            for log in sorted(logs.glob("perplexity-*_seed-*.log")) if logs.is_dir() else []:
                if (tsne / f"{log.stem}.json").exists():
                    missed.add(log.stem)
                pid = None if log.stem in missed else process_holding(log)
                if pid is not None:
                    if stop_inside_the_optimisation(pid, tsne / f"{log.stem}.json"):
                        return log.stem
                    missed.add(log.stem)
            time.sleep(0.01)
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
def reference_workdir(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("reference")
    run(workdir)
    return workdir


@pytest.fixture(scope="module")
def reference(reference_workdir) -> dict:
    return results(reference_workdir)


# The UMAP and PCA maps of the same feature set, made on the shared input and k-NN graph both runs have.
MAPS = {**CONFIG, "methods": ["tsne", "umap", "pca"]}
MAP_RUNS = ("umap/n_neighbors-15_min_dist-0.1_seed-0", "pca/components-2")


@pytest.fixture(scope="module")
def killed_during_extraction(tmp_path_factory) -> dict:
    """A second run of the config, killed while its features file is half-written, then resumed: its
    folder, what the kill left, and its results once resumed (before any test adds to them)."""
    workdir = tmp_path_factory.mktemp("killed-during-extraction")
    features = workdir / "results" / "features"
    kill_when(workdir, lambda: features.is_dir() and any(features.glob(f".tmp-*{TINY_SET}.h5")))
    left = {
        "temporary": [path.name for path in features.glob(f".tmp-*-{TINY_SET}.h5")],
        "final": (features / f"{TINY_SET}.h5").exists(),
    }
    resume(workdir)
    return {"workdir": workdir, "left": left, "results": results(workdir)}


def test_two_runs_of_one_config_give_identical_files(reference, reference_workdir, killed_during_extraction):
    """The second run is the one killed during its extraction and resumed: its extraction ran again from
    nothing, and every step after it ran once, in processes of their own (one full run fewer in the suite)."""
    tmp_path = killed_during_extraction["workdir"]
    again = killed_during_extraction["results"]
    assert sorted(again) == sorted(reference)
    # 2 runs x 8 files, 5 sweep-wide figures and tables, manifest, features and more.
    assert len(reference) > 21 and f"features/{TINY_SET}.h5" in reference
    # ...on the default path: the shared input, k-NN graph and affinities, then openTSNE.
    assert {
        f"embeddings/{FEATURES}/input.h5",
        f"embeddings/{FEATURES}/graph/k-30.npz",
        f"embeddings/{FEATURES}/affinities/perplexity-5.npz",
        f"embeddings/{FEATURES}/affinities/perplexity-10.npz",
    } <= set(reference)
    meta = reference[f"embeddings/{FEATURES}/tsne/perplexity-5_seed-0.json"]
    assert (meta["implementation"], meta["precomputed_affinities"], meta["negative_gradient"]) == (
        "opentsne",
        True,
        "bh",
    )
    different = [name for name in reference if again[name] != reference[name]]
    assert different == []
    # UMAP (seeded) and PCA maps of each run's identical input, each made by a job of its own process.
    targets = [f"results/embeddings/{FEATURES}/{name}.{suffix}" for name in MAP_RUNS for suffix in ("tsv", "json")]
    for workdir in (reference_workdir, tmp_path):
        log = run(workdir, *targets, config=MAPS)
        jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", log.split("Job stats:", 1)[1], flags=re.M))
        assert jobs == {"map": "2", "total": "2"}, log[-2000:]
    # A map byte for byte; its record but for wall-clock times.
    assert [
        target for target in targets if comparable(tmp_path / target) != comparable(reference_workdir / target)
    ] == []


def test_killed_during_extraction_resumes_to_the_same_results(reference, killed_during_extraction):
    # The half-written file keeps its temporary name, never the final one.
    assert killed_during_extraction["left"]["temporary"] and not killed_during_extraction["left"]["final"]
    assert killed_during_extraction["results"] == reference
    assert not list((killed_during_extraction["workdir"] / "results").rglob(".tmp-*"))  # the leftover is gone


def test_killed_during_tsne_resumes_to_the_same_results(reference, tmp_path):
    out = tmp_path / "results"
    killed = kill_during_a_tsne_run(tmp_path)
    # The kill hit a run mid-optimisation: its log exists, its results do not; the shared inputs
    # it was reading were complete.
    tsne = out / "embeddings" / FEATURES / "tsne"
    assert (out / "logs" / "embeddings" / FEATURES / "tsne" / f"{killed}.log").exists()
    assert not (tsne / f"{killed}.tsv").exists() and not (tsne / f"{killed}.json").exists()
    assert (tsne.parent / "input.h5").exists() and (tsne.parent / "graph" / "k-30.npz").exists()
    assert not (out / "metrics" / FEATURES / "sweep.csv").exists()
    resume(tmp_path)
    assert results(tmp_path) == reference
    assert not list(out.rglob(".tmp-*"))


# The same sample in three extraction jobs (extraction.shards): 15 batches of 4 images, 5 per shard.
SHARDED = with_changes(CONFIG, "extraction", shards=3)


def test_a_shard_killed_mid_run_is_redone_alone_and_the_merged_features_are_identical(reference, tmp_path):
    out = tmp_path / "results"
    features = out / "features" / f"{TINY_SET}.h5"
    shards = out / "features" / "shards" / TINY_SET
    names = [f"{index}-of-3.h5" for index in (1, 2, 3)]
    target = str(features.relative_to(tmp_path))
    # Shards run one at a time here (each takes both cores): kill one mid-way once another is done.
    kill_when(
        tmp_path,
        lambda: shards.is_dir() and any(shards.glob(".tmp-*")) and any((shards / name).exists() for name in names),
        config=SHARDED,
        targets=(target,),
    )
    done = {name for name in names if (shards / name).exists()}
    assert done and len(done) < 3 and not features.exists()
    logs = out / "logs" / "extract_features" / TINY_SET
    stamps = {name: (logs / name.replace(".h5", ".log")).stat().st_mtime_ns for name in done}
    output = resume(tmp_path, target, config=SHARDED)
    # Only the shards the kill left unfinished ran again (the finished ones' logs are untouched), then the merge.
    redone = {f"{index}-of-3.h5" for index in re.findall(r"shard=(\d+), shards=3", output)}
    assert redone == set(names) - done
    assert {name: (logs / name.replace(".h5", ".log")).stat().st_mtime_ns for name in done} == stamps
    assert output.count("(Rule: merge_features)") == 1
    assert features.read_bytes() == reference[f"features/{TINY_SET}.h5"]  # as one unkilled, unsharded job
    assert not shards.exists() or not list(shards.iterdir())  # merged: the shard files are gone, no leftovers
    assert "Nothing to be done" in run(tmp_path, "--dry-run", target, config=SHARDED)
    # The shards are gone but not forgotten: a setting they were extracted with reruns them and the merge.
    rebatched = run(
        tmp_path, target, "--dry-run", "--quiet", "rules", config=with_changes(SHARDED, "extraction", batch_size=5)
    )
    assert dict(re.findall(r"^(\w+)\s+(\d+)$", rebatched.split("Job stats:")[1], flags=re.M)) == {
        "extract_features_shard": "3",
        "merge_features": "1",
        "total": "4",
    }
