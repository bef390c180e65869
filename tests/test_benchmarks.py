"""Every benchmark of benchmarks/ run end to end at a tiny size, as BENCHMARKS.md runs it (a script
with ``PYTHONPATH=scripts``), so that a benchmark broken by a change to the workflow fails here rather
than after an hour of measuring. Nothing about timing is asserted: each run must exit 0 and write the
report (Markdown and/or JSON) it promises, with its tables.

The runs go to a temporary folder (``TSNE_ATLAS_BENCH_DIR``: the benchmarks' work folders and made
datasets, and every ``--out``/``--json``), never into the repository. Benchmarks that build on another
one's results run after it, in the order BENCHMARKS.md gives (sweep, then tsne_methods and maps on its
features; overhead, then scale and seed_stability on its results; explorer, then stages on its
samples); the chains run two at a time, started together when the first test of this module needs them.

The GPU benchmarks run their CPU path (``--device cpu``); ``gpu.sh`` must stop with its one-line
message where there is no CUDA GPU, and run its tiny grid where there is one.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from conftest import DEMO_ROOT, REPO

BENCH = REPO / "benchmarks"
pytestmark = pytest.mark.workflow

# The tiny workflow config of overhead.py (then scale.py and seed_stability.py on its results): the
# whole workflow, every figure, on 24 demo images, one t-SNE run.
OVERHEAD_CONFIG = {
    "results": "results",
    "dataset": {"root": str(DEMO_ROOT)},
    "sample": {"n_images": 24, "seed": 0},
    "features": {"resnet18": {"arch": "resnet18", "weights": "none"}},
    "extraction": {"batch_size": 24, "num_workers": 0, "threads": 2},
    "tsne": {"perplexities": [5], "seeds": [0]},
    "prepare": {"pca_components": 10},
    "scatter": {"dpi": 50},
    "mosaic": {"canvas_size": 200, "thumb_size": 16},
}


def steps(tmp: Path) -> dict[str, list[tuple[str, list[str], list[str]]]]:
    """Chains of (script, its arguments, outputs that must exist), in run order."""
    out, work = tmp / "out", tmp / "work"
    sweep, overhead = work / "sweep", work / "overhead"

    def step(command: str, *outputs: Path) -> tuple[str, list[str], list[str]]:
        args = command.format(tmp=tmp, out=out, work=work, sweep=sweep, overhead=overhead).split()
        return args[0], args, [str(path) for path in outputs]

    return {
        "sweep": [
            step(
                "sweep.py --dataset demo --n-images 60 --arch resnet18 --perplexities 10 --seeds 0 --article-seeds 1 "
                "--per-run-opentsne --workdir {sweep} --out {out}/sweep.md",
                out / "sweep.md",
                sweep / "sweep-benchmark.json",
            ),
            step(
                "tsne_methods.py --results {sweep}/results --features resnet18 --perplexity 10 --blobs 200 "
                "--out {out}/tsne_methods.md",
                out / "tsne_methods.md",
            ),
            step(
                "maps.py --dataset demo --n-images 60 --arch resnet18 --workdir {sweep} --perplexity 10 --rounds 1 "
                "--jit-sizes , --no-own-search --json {out}/maps.json --out {out}/maps.md",
                out / "maps.md",
                out / "maps.json",
            ),
        ],
        "overhead": [
            step(
                "overhead.py --config {tmp}/overhead-config.yaml --workdir {overhead} --repeats 1 --out {out}/overhead.md",
                out / "overhead.md",
            ),
            step("scale.py --dataset demo --workdir {overhead} --out {out}/scale.md", out / "scale.md"),
            step(
                "seed_stability.py --results {overhead}/results --features resnet18 --perplexity 5 "
                "--out {out}/seed_stability.md",
                out / "seed_stability.md",
            ),
        ],
        "explorer": [
            step(
                "explorer.py --sizes 200 --repeats 1 --thumb-size 24 --backends canvas,points --json {out}/explorer.json "
                "--out {out}/explorer.md",
                out / "explorer.md",
                out / "explorer.json",
            ),
            step("stages.py --sizes 200 --umap-runs 1 --out {out}/stages.json", out / "stages.json"),
        ],
        "extraction": [
            step(
                "extraction.py --arch resnet18 --n-images 4 --warmup 2 --num-workers 0 --settings article "
                "--workdir {work}/extraction --out {out}/extraction.md",
                out / "extraction.md",
            ),
            step(
                "layers.py --n-images 8 --rounds 1 --nodes layer4,penultimate --batch-size 8 --workdir {work}/layers "
                "--out {out}/layers.md",
                out / "layers.md",
            ),
            step(
                "shards.py --sizes 100 --shards 2 --trend-shards , --dim 8 --rounds 1 --attrs-arch resnet18 "
                "--e2e-images 20 --e2e-dataset demo --e2e-arch resnet18 --e2e-shards 2 --tmpdir {tmp} "
                "--json {out}/shards.json --out {out}/shards.md",
                out / "shards.md",
                out / "shards.json",
            ),
        ],
        "gpu": [
            step(
                "gpu_extraction.py --device cpu --n-images 8 --arch resnet18 --batches 8 --precisions fp32 "
                "--layouts cl --num-workers 0 --project-variants 8:0 --workdir {work}/gpu --out {out}/gpu_extraction.md",
                out / "gpu_extraction.md",
            ),
            step(
                "gpu_predictions.py --device cpu --n-images 8 --arch resnet18 --num-workers 0 "
                "--out {out}/gpu_predictions.md",
                out / "gpu_predictions.md",
            ),
            step(
                "datasets.py synthetic --n-images 20 --data-dir {tmp}/data", tmp / "data" / "synthetic-20" / ".complete"
            ),
            step(
                "million.py --sizes 120 --methods pca --iterations tsne --out {out}/million.json --report {out}/million.md",
                out / "million.md",
                out / "million.json",
            ),
        ],
        "prepare": [
            step(
                "synthetic.py --n-images 300 --dim 16 --out {work}/prepare/features.h5",
                work / "prepare" / "features.h5",
            ),
            step(
                "prepare.py --features {work}/prepare/features.h5 --block-rows 120 --pca-components 5 "
                "--workdir {work}/prepare --json {out}/prepare.json --out {out}/prepare.md",
                out / "prepare.md",
                out / "prepare.json",
            ),
            step(
                "large_stages.py --sizes 160 --folder {work}/large-stages "
                "--out {out}/large_stages.json --md {out}/large_stages.md",
                out / "large_stages.json",
                out / "large_stages.md",
            ),
        ],
    }


def run_chain(tmp: Path, chain: list) -> dict[str, dict]:
    """Run a chain's steps in order; each step's exit status, output tail, wall and CPU seconds (its
    process and the processes it waited for). A step after a failed one is not started (its test then
    names the failure it waited on)."""
    env = {**os.environ, "PYTHONPATH": "scripts", "TSNE_ATLAS_BENCH_DIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    done = {}
    for name, args, outputs in chain:
        start = time.perf_counter()
        log = tmp / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        with open(log, "w") as handle:
            process = subprocess.Popen(
                [sys.executable, str(BENCH / args[0]), *args[1:]], stdout=handle, stderr=handle, cwd=REPO, env=env
            )
            watchdog = threading.Timer(600, process.kill)
            watchdog.start()
            _, status, usage = os.wait4(process.pid, 0)
            watchdog.cancel()
        returncode = process.returncode = os.waitstatus_to_exitcode(status)
        done[name] = {
            "rc": returncode,
            "tail": log.read_text()[-4000:],
            "outputs": outputs,
            "s": time.perf_counter() - start,
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }
        print(f"{name}: exit {returncode}, {done[name]['s']:.0f} s, CPU {done[name]['cpu_s']:.0f} s", file=sys.stderr)
        if returncode != 0:
            break
    return done


@pytest.fixture(scope="module")
def benchmark_runs(request, tmp_path_factory) -> tuple[Path, dict[str, Future]]:
    """Every chain a selected test of this module needs, started together, two at a time."""
    tmp = tmp_path_factory.mktemp("benchmarks")
    (tmp / "overhead-config.yaml").write_text(yaml.safe_dump(OVERHEAD_CONFIG))
    (tmp / "out").mkdir()
    chains = steps(tmp)
    wanted = {
        item.callspec.params["chain"]
        for item in request.session.items
        if item.module.__name__ == __name__ and hasattr(item, "callspec") and "chain" in item.callspec.params
    }
    pool = ThreadPoolExecutor(max_workers=2)
    # The longest chains first, so that no long chain starts last.
    order = ("extraction", "sweep", "overhead", "explorer", "gpu", "prepare")
    assert set(order) == set(chains), "list every chain in order"
    futures = {name: pool.submit(run_chain, tmp, chains[name]) for name in order if name in wanted}
    yield tmp, futures
    pool.shutdown(wait=True)


CASES = [
    (chain, name)
    for chain, chain_steps in steps(Path("/tmp")).items()
    for name, _, _ in chain_steps
    if name != "explorer.py"
]


def check_step(benchmark_runs, chain: str, name: str) -> dict:
    _, futures = benchmark_runs
    done = futures[chain].result(timeout=1800)
    failed = [step for step, run in done.items() if run["rc"] != 0]
    assert name in done, f"{name} did not start: {failed[0]} failed before it in its chain:\n{done[failed[0]]['tail']}"
    run = done[name]
    assert run["rc"] == 0, f"benchmarks/{name} exited {run['rc']}:\n{run['tail']}"
    for output in run["outputs"]:
        assert Path(output).is_file() and Path(output).stat().st_size > 0, f"benchmarks/{name} wrote no {output}"
        if output.endswith(".md"):
            assert "|---" in Path(output).read_text().replace(" ", ""), f"{output} holds no Markdown table"
        elif output.endswith(".json"):
            assert json.loads(Path(output).read_text()), f"{output} is empty"
    return run


@pytest.mark.parametrize(("chain", "name"), CASES, ids=[name for _, name in CASES])
def test_benchmark_runs_end_to_end_at_a_tiny_size(benchmark_runs, chain, name):
    check_step(benchmark_runs, chain, name)


@pytest.mark.browser
@pytest.mark.parametrize("chain", ["explorer"])
def test_explorer_benchmark_builds_and_browses_its_page(benchmark_runs, chain):
    """explorer.py at 200 images: the real stages, the canvas page and the points page in headless Chromium."""
    tmp, _ = benchmark_runs
    check_step(benchmark_runs, chain, "explorer.py")
    measured = json.loads((tmp / "out" / "explorer.json").read_text())
    page = measured[0]["pages"]["all"]
    assert Path(page["html"]).is_relative_to(tmp) and page["canvas"]["hover_s"] is not None
    points = measured[0]["pages"]["points"]
    assert Path(points["html"]).is_relative_to(tmp) and points["points"]["thumbs_in_view"] > 0


def test_gpu_script_stops_or_runs(tmp_path):
    """gpu.sh (the GPU table's entry point): where there is no CUDA GPU, it stops with one line and exit
    status 2; where there is one, it runs a tiny grid and writes its table."""
    out = tmp_path / "gpu.md"
    options = ["--n-images", "16", "--batches", "8", "--precisions", "fp32", "--layouts", "cl", "--num-workers", "0"]
    result = subprocess.run(
        ["bash", str(BENCH / "gpu.sh"), *options, "--project-variants", "8:0", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TSNE_ATLAS_BENCH_DIR": str(tmp_path)},
    )
    if shutil.which("nvidia-smi") is None:
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == (
            "benchmarks/gpu.sh: no nvidia-smi here; this benchmark needs an NVIDIA GPU with CUDA"
        ), result.stderr
    else:
        assert result.returncode == 0 and out.is_file(), result.stderr[-3000:]
