"""The prepared input (rule prepare_input: z-scoring + PCA 50) made whole, as up to ``prepare.block_rows``
images, and in row blocks, as above it: each the workflow's own ``preparation.prepare_input`` in a fresh
child process (wall s, CPU s of user + system, peak RSS = VmHWM), then how far the two results lie apart
(the largest absolute difference over the whole result's standard deviation, and whether every
component points the same way).

Inputs: features files made by ``benchmarks/synthetic.py`` (N x D float32 class blobs). "today" runs
with ``block_rows`` = N (the whole matrix, today's code byte for byte), "blocked" with ``--block-rows``
(it must be below N). A way that this machine has too little memory for is refused by the job's own
check (one line) and reported as such.

    PYTHONPATH=scripts python benchmarks/synthetic.py --n-images 250000 --dim 2048 --out F.h5
    PYTHONPATH=scripts python benchmarks/prepare.py --features F.h5 --block-rows 100000
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import REPO, WORK, command_line, machine

CHILD = """
import json, sys, time
from tsne_atlas.preparation import prepare_input
from tsne_atlas.jobs import AtlasError
def status(field):
    with open("/proc/self/status") as s:
        for line in s:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
kwargs = json.loads(sys.argv[1])
imported = status("VmRSS")
t = time.perf_counter()
try:
    prepare_input(**kwargs)
except AtlasError as err:
    print(json.dumps({"refused": str(err)}))
    sys.exit(0)
print(json.dumps({"s": time.perf_counter() - t, "rss_after_imports_mib": imported, "peak_rss_mib": status("VmHWM")}))
"""


def run_child(threads: int, **kwargs) -> dict:
    """``prepare_input(**kwargs)`` in a fresh process: its result line, wall and CPU seconds (user + system)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "scripts"),
        "OMP_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
    }
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(kwargs)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"prepare_input failed:\n{text[-3000:]}")
    return {
        **json.loads(text.strip().splitlines()[-1]),
        "process_wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def drop_cached(path: Path) -> None:
    """Ask the kernel to drop the file's pages from the page cache (``posix_fadvise``, no root needed), so
    that the next run reads it from the disk, as a job reading features another node wrote does."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def agreement(today: Path, blocked: Path) -> dict:
    """How far the blocked result lies from today's: the largest absolute difference over today's standard
    deviation, and whether each component (column) and every clearly non-zero value has the same sign."""
    from tsne_atlas.files.map_inputs import read_input

    A, _ = read_input(today)
    B, _ = read_input(blocked)
    spread = float(A.std())
    clear = np.abs(A) > 1e-6 * spread
    return {
        "max_abs_diff_over_std": float(np.abs(A - B).max() / spread),
        "columns_same_direction": int((np.einsum("ij,ij->j", A, B) > 0).sum()),
        "columns": int(A.shape[1]),
        "values_same_sign": bool((np.sign(A[clear]) == np.sign(B[clear])).all()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=Path, nargs="+", required=True, help="files of benchmarks/synthetic.py")
    parser.add_argument("--block-rows", type=int, default=100_000, help="the blocked way's prepare.block_rows")
    parser.add_argument("--ways", nargs="+", choices=["today", "blocked"], default=["today", "blocked"])
    parser.add_argument("--pca-components", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads of each run")
    parser.add_argument("--cold", action="store_true", help="drop the features file's cached pages before each run")
    parser.add_argument("--workdir", type=Path, default=WORK / "prepare", help="the prepared inputs (kept)")
    parser.add_argument("--json", type=Path, default=WORK / "prepare.json")
    parser.add_argument("--out", type=Path, default=WORK / "prepare.md")
    args = parser.parse_args()
    from tsne_atlas.files.features import features_shape
    from tsne_atlas.resources import prepare_blocked

    results = []
    for features in args.features:
        n, dim = features_shape(features, None)
        runs = {}
        for way in args.ways:
            block_rows = n if way == "today" else args.block_rows
            if way == "blocked" and not prepare_blocked(n, dim, block_rows):
                raise SystemExit(
                    f"{features}: {n:,} x {dim:,} is not prepared in blocks of {block_rows:,}; lower --block-rows"
                )
            prepared = args.workdir / f"{features.stem}-{way}.h5"
            if args.cold:
                drop_cached(features)
            prepared.parent.mkdir(parents=True, exist_ok=True)
            run = run_child(
                args.threads,
                features=str(features),
                node="penultimate",
                standardize=True,
                pca_components=args.pca_components,
                prepared=str(prepared),
                block_rows=block_rows,
            )
            runs[way] = {**run, "block_rows": block_rows, "prepared": str(prepared), "cold": args.cold}
            print(features.name, way, runs[way], file=sys.stderr)
        done = [way for way in ("today", "blocked") if way in runs and "refused" not in runs[way]]
        compared = agreement(*(Path(runs[way]["prepared"]) for way in done)) if len(done) == 2 else None
        results.append({"features": str(features), "n_images": n, "dim": dim, "runs": runs, "agreement": compared})

    lines = [
        "| features | way | block rows | wall s (in the function) | CPU s | peak RSS MiB | after imports MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        for way, run in result["runs"].items():
            size = f"{result['n_images']:,} × {result['dim']:,}"
            if "refused" in run:
                lines.append(f"| {size} | {way} | {run['block_rows']:,} | refused: {run['refused']} | | | |")
                continue
            lines.append(
                f"| {size} | {way} | {run['block_rows']:,} | {run['process_wall_s']:.1f} ({run['s']:.1f}) | "
                f"{run['cpu_s']:.1f} | {run['peak_rss_mib']:,.0f} | {run['rss_after_imports_mib']:,.0f} |"
            )
    lines.append("")
    for result in results:
        if result["agreement"]:
            a = result["agreement"]
            lines.append(
                f"- {result['n_images']:,} × {result['dim']:,}: blocked vs today, max |difference| / std = "
                f"{a['max_abs_diff_over_std']:.2e}; {a['columns_same_direction']} of {a['columns']} components "
                f"point the same way; every clearly non-zero value the same sign: {a['values_same_sign']}"
            )
    text = (
        f"Machine: {machine()}; {args.threads} BLAS thread(s) per run; features file "
        f"{'dropped from the page cache before each run' if args.cold else 'as the page cache held it'}."
        f"\n\n`{command_line()}`\n\n" + "\n".join(lines) + "\n"
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
