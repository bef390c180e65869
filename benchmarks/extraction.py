#!/usr/bin/env python3
"""CPU feature-extraction throughput: the article's loop beside the project's ``extract_features``.

Every setting reads the SAME image files (the first ``--n-images`` of ``--root`` sorted by path),
decodes and preprocesses them in DataLoader workers, and runs the same network (``--arch``,
random initialisation seeded with ``torch.manual_seed(0)``, or ``--weights`` state dict). Each
setting runs in a fresh subprocess (``--one SETTING``) so that import costs, oneDNN caches and
peak RSS are its own; the parent compares the features every setting wrote to the project's
fp32 NCHW features and prints one Markdown table.

Settings:
    article        the article's loop: ImageFolder-style dataset (PIL ``.convert("RGB")``),
                   DataLoader batch 64, fp32, ``model.fc = Identity``, eval mode but no
                   ``inference_mode``/``no_grad``, features grown with ``np.concatenate``
    fp32-nchw-b16  extract_features(precision="fp32", channels_last=False, batch_size=16)  (reference)
    fp32-cl-b16    extract_features(precision="fp32", channels_last=True,  batch_size=16)
    bf16-cl-b16    extract_features(precision="bf16", channels_last=True,  batch_size=16)
    bf16-cl-b32    extract_features(precision="bf16", channels_last=True,  batch_size=32)
    fp16-cl-b16    extract_features(precision="fp16", channels_last=True,  batch_size=16)
    auto           extract_features with the config defaults (precision auto, channels-last, batch 16)

Timing: one untimed warm-up pass per setting on the first ``--warmup`` images (oneDNN creates
its kernels then), then ``--repeats`` timed passes, the best reported. "images/s" is N divided by
the wall clock of the pass from the first DataLoader iteration to the features being in memory
(article) or written to HDF5 (project): DataLoader worker start, reading, decoding,
preprocessing and the network all included. "setup s" is what comes before it in the same call
(model construction and, for the project, graph tracing by create_feature_extractor);
"images/s incl. setup" counts it too.

Full run (the lead's):  PYTHONPATH=scripts .venv/bin/python benchmarks/extraction.py --out benchmarks/extraction.md
Smoke run:              PYTHONPATH=scripts .venv/bin/python benchmarks/extraction.py --arch resnet18 --n-images 32 --warmup 8
"""

import argparse
import contextlib
import json
import logging
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from common import read_sample, write_sample
from tsne_atlas import extraction as project
from tsne_atlas.collection import list_images
from tsne_atlas.config import feature_set_settings
from tsne_atlas.files.features import read_features
from tsne_atlas.schema import SCHEMA_PATH, feature_set_defaults
from tsne_atlas.sources.torchvision import torchvision_preprocessing

REPO = Path(__file__).resolve().parent.parent
EXTENSIONS = [".png", ".jpg", ".jpeg"]
REFERENCE = "fp32-nchw-b16"
# The feature set every project run extracts (its name only labels the file and messages).
FEATURE_SET = "bench"


@dataclass(frozen=True)
class Setting:
    """One measured configuration."""

    name: str
    method: str  # "article" or "project"
    precision: str  # fp32 | bf16 | fp16 | auto
    channels_last: bool
    batch_size: int


SETTINGS = {
    s.name: s
    for s in (
        Setting("article", "article", "fp32", False, 64),
        Setting("fp32-nchw-b16", "project", "fp32", False, 16),
        Setting("fp32-cl-b16", "project", "fp32", True, 16),
        Setting("bf16-cl-b16", "project", "bf16", True, 16),
        Setting("bf16-cl-b32", "project", "bf16", True, 32),
        Setting("fp16-cl-b16", "project", "fp16", True, 16),
        Setting("auto", "project", "auto", True, 16),
    )
}


# --------------------------------------------------------------------------------------------
# Image selection and machine description (parent)
# --------------------------------------------------------------------------------------------


def first_images(root: Path, n_images: int) -> list[tuple[str, str]]:
    """The first ``n_images`` (relative path, class folder) pairs of ``root``, sorted by path."""
    rows = sorted((path, label) for label, paths in list_images(root, EXTENSIONS).items() for path in paths)
    if len(rows) < n_images:
        raise SystemExit(f"{root} holds {len(rows)} images, fewer than --n-images {n_images}")
    return rows[:n_images]


def cpu_description() -> str:
    """CPU model, cores usable by this process, and the bf16/fp16 instruction sets present."""
    model, flags = None, set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model is None:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    model = model or platform.processor() or "unknown CPU"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    isa = [f for f in ("avx512_bf16", "amx_bf16", "avx512_fp16", "amx_fp16") if f in flags]
    return f"{model}, {usable} usable cores (of {os.cpu_count()}), ISA: {' '.join(isa) or 'no bf16/fp16 extensions'}"


def command_line() -> str:
    """The command as typed from the repo root (interpreter path relative when it lies inside)."""
    exe = os.path.relpath(sys.executable)
    exe = sys.executable if exe.startswith("..") else exe
    return shlex.join([exe, *sys.argv])


# --------------------------------------------------------------------------------------------
# The article's loop (child)
# --------------------------------------------------------------------------------------------


class ArticleImages(Dataset):
    """torchvision.datasets.ImageFolder as the article uses it: PIL open, ``.convert("RGB")``, transform."""

    def __init__(self, root: Path, rows: list[tuple[str, str]], transform):
        classes = sorted({label for _, label in rows})
        self.samples = [(root / path, classes.index(label)) for path, label in rows]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        with open(path, "rb") as handle:  # torchvision's pil_loader
            image = Image.open(handle).convert("RGB")
        return self.transform(image), target


def article_model(arch: str, weights: str | None) -> torch.nn.Module:
    """``arch`` seeded like the project's (manual_seed(0), weights=None), classifier head replaced by Identity."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None)
    if weights:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    if hasattr(model, "fc"):
        model.fc = torch.nn.Identity()
    elif isinstance(getattr(model, "classifier", None), torch.nn.Sequential):
        model.classifier[-1] = torch.nn.Identity()
    else:
        raise SystemExit(f"article method: {arch} has neither .fc nor a Sequential .classifier to replace")
    return model.eval()


def run_article(root: Path, rows, arch: str, weights: str | None, batch_size: int, num_workers: int):
    """One pass of the article's loop. Returns (features, setup seconds, loop seconds)."""
    start = time.perf_counter()
    model = article_model(arch, weights)
    loader = DataLoader(
        ArticleImages(root, rows, torchvision_preprocessing(arch)), batch_size=batch_size, num_workers=num_workers
    )
    loop_start = time.perf_counter()
    feats = None
    for x, _ in loader:
        out = model(x)
        feats = out.detach().numpy() if feats is None else np.concatenate([feats, out.detach().numpy()])
    end = time.perf_counter()
    return feats, loop_start - start, end - loop_start


# --------------------------------------------------------------------------------------------
# The project's extractor (child)
# --------------------------------------------------------------------------------------------


def set_settings(arch: str, weights: str | None, nodes=("penultimate",)) -> dict:
    """A torchvision feature set of ``arch`` and ``nodes`` (random init seeded 0 unless ``weights``),
    the schema's defaults filled in, as the workflow hands it to extract_features."""
    given = {"source": "torchvision", "arch": arch, "weights": weights or "none", "nodes": list(nodes), "init_seed": 0}
    return feature_set_settings({"features": {FEATURE_SET: given}}, feature_set_defaults(SCHEMA_PATH))[FEATURE_SET]


@contextlib.contextmanager
def loop_start_marker(marks: dict):
    """Record when extract_features starts iterating (its setup is done) without changing what it does.

    ``extract_features`` looks ``iter_feature_batches`` up in its module at call time; the stand-in
    notes the time and returns the original generator unchanged.
    """
    original = project.iter_feature_batches

    def marked(*args, **kwargs):
        marks["loop_start"] = time.perf_counter()
        return original(*args, **kwargs)

    project.iter_feature_batches = marked
    try:
        yield
    finally:
        project.iter_feature_batches = original


def run_project(
    manifest: Path,
    root: Path,
    output: Path,
    arch: str,
    weights: str | None,
    setting: Setting,
    num_workers: int,
    threads: int,
):
    """One extract_features call. Returns (features, setup seconds, loop seconds, HDF5 attributes)."""
    marks: dict = {}
    start = time.perf_counter()
    with loop_start_marker(marks):
        attrs = project.extract_features(
            images=str(manifest),
            resolved=None,
            root=str(root),
            feature_set=FEATURE_SET,
            settings=set_settings(arch, weights),
            device="auto",
            precision=setting.precision,
            channels_last=setting.channels_last,
            batch_size=setting.batch_size,
            num_workers=num_workers,
            features=str(output),
            threads=threads,
            progress=False,
        )
    end = time.perf_counter()
    feats = read_features(output, "penultimate")["features"]
    return feats, marks["loop_start"] - start, end - marks["loop_start"], attrs


# --------------------------------------------------------------------------------------------
# One setting in this process (child)
# --------------------------------------------------------------------------------------------


def peak_rss_mib(who: int) -> float:
    """ru_maxrss (KiB on Linux) in MiB."""
    return resource.getrusage(who).ru_maxrss / 1024


def measure_one(args: argparse.Namespace) -> dict:
    """Warm up, time ``args.repeats`` passes of one setting, save its features; return the result."""
    setting = SETTINGS[args.one]
    workdir = Path(args.workdir)
    root = Path(args.root)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    rows = read_sample(workdir / "manifest.csv")
    passes = []
    attrs = {}
    if setting.method == "article":
        run_article(
            root, read_sample(workdir / "warmup.csv"), args.arch, args.weights, setting.batch_size, args.num_workers
        )
        for _ in range(args.repeats):
            feats, setup, loop = run_article(root, rows, args.arch, args.weights, setting.batch_size, args.num_workers)
            passes.append((loop, setup))
        precision_used = "fp32"
    else:
        common = dict(
            root=root,
            arch=args.arch,
            weights=args.weights,
            setting=setting,
            num_workers=args.num_workers,
            threads=threads,
        )
        run_project(workdir / "warmup.csv", output=workdir / f"warmup-{setting.name}.h5", **common)
        for _ in range(args.repeats):
            feats, setup, loop, attrs = run_project(
                workdir / "manifest.csv", output=workdir / f"{setting.name}.h5", **common
            )
            passes.append((loop, setup))
        precision_used = attrs["precision"]
    np.save(workdir / f"{setting.name}.npy", np.asarray(feats, dtype=np.float32))
    loop, setup = min(passes)
    return {
        **asdict(setting),
        "precision_used": precision_used,
        "n_images": len(rows),
        "feature_dim": int(feats.shape[1]),
        "loop_s": loop,
        "setup_s": setup,
        "images_per_s": len(rows) / loop,
        "images_per_s_with_setup": len(rows) / (loop + setup),
        "all_loop_s": [p[0] for p in passes],
        "threads": threads,
        "peak_rss_mib": peak_rss_mib(resource.RUSAGE_SELF),
        "peak_rss_workers_mib": peak_rss_mib(resource.RUSAGE_CHILDREN),
    }


# --------------------------------------------------------------------------------------------
# Comparison and report (parent)
# --------------------------------------------------------------------------------------------


def feature_errors(reference: np.ndarray, other: np.ndarray) -> dict:
    """Row-wise agreement of ``other`` with ``reference``: cosine (min, mean), max ||a-b||/||a||, non-finite rows.

    Rows where both vectors are zero count as cosine 1; a zero row against a non-zero one as 0.
    """
    a = reference.astype(np.float64)
    b = other.astype(np.float64)
    finite = np.isfinite(b).all(axis=1)
    b = np.where(np.isfinite(b), b, 0.0)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    denominator = np.where(na * nb > 0, na * nb, 1.0)
    cosine = np.where(both_zero, 1.0, (a * b).sum(axis=1) / denominator)
    cosine = np.where(finite, cosine, np.nan)
    diff = np.linalg.norm(a - b, axis=1)
    relative = np.where(na > 0, diff / np.where(na > 0, na, 1.0), np.where(diff > 0, np.inf, 0.0))
    relative = np.where(finite, relative, np.inf)
    return {
        "min_cosine": float(np.nanmin(cosine)) if finite.any() else float("nan"),
        "mean_cosine": float(np.nanmean(cosine)) if finite.any() else float("nan"),
        "max_rel_l2": float(relative.max()),
        "nonfinite_rows": int((~finite).sum()),
    }


def run_child(name: str, args: argparse.Namespace, workdir: Path) -> dict:
    """Measure one setting in a fresh interpreter; return its JSON result (or an ``error`` entry)."""
    out = workdir / f"{name}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one",
        name,
        "--workdir",
        str(workdir),
        "--root",
        str(args.root),
        "--arch",
        args.arch,
        "--repeats",
        str(args.repeats),
        "--num-workers",
        str(args.num_workers),
        "--json",
        str(out),
    ]
    if args.weights:
        command += ["--weights", args.weights]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"{name}: FAILED (exit {done.returncode}): {tail[0]}", file=sys.stderr)
        return {**asdict(SETTINGS[name]), "error": f"exit {done.returncode}: {tail[0]}"}
    result = json.loads(out.read_text())
    print(
        f"{name}: {result['images_per_s']:.2f} images/s (loop {result['loop_s']:.1f} s, "
        f"setup {result['setup_s']:.1f} s, RSS {result['peak_rss_mib']:.0f} MiB)",
        file=sys.stderr,
        flush=True,
    )
    return result


def fmt(value, spec: str) -> str:
    """Format a number, or an en dash for a missing one."""
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, spec)


def render(results: list[dict], args: argparse.Namespace) -> str:
    """The Markdown report: header, table, notes."""
    article = next((r for r in results if r["name"] == "article" and "error" not in r), None)
    lines = [
        f"Machine: {cpu_description()}; torch {torch.__version__}, torchvision {torchvision.__version__}; "
        f"mkldnn bf16 supported: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}; "
        f"mkldnn fp16 supported: {torch.ops.mkldnn._is_mkldnn_fp16_supported()}  ",
        f"N = {args.n_images} images (first of `{args.root}` sorted by path), arch {args.arch}, weights "
        f"{args.weights or 'random init (torch.manual_seed(0))'}, DataLoader workers {args.num_workers}, torch threads "
        f"{next((r['threads'] for r in results if 'threads' in r), '?')}, warm-up {args.warmup} images, "
        f"best of {args.repeats} timed pass(es)  ",
        f"Command: `{command_line()}`",
        "",
        "| method | precision | layout | batch | images/s | × article | min cosine vs fp32 | mean cosine "
        "| max rel L2 | peak RSS MiB | setup s | images/s incl. setup |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        method = "article loop" if r["method"] == "article" else f"extract_features ({r['name']})"
        layout = "channels-last" if r["channels_last"] else "NCHW"
        if "error" in r:
            lines.append(
                f"| {method} | {r['precision']} | {layout} | {r['batch_size']} | failed: {r['error']} | | | | | | | |"
            )
            continue
        precision = r["precision_used"] + (" (auto)" if r["precision"] == "auto" else "")
        ratio = r["images_per_s"] / article["images_per_s"] if article else None
        errors = r.get("errors", {})
        cosine_min = errors.get("min_cosine")
        if errors.get("nonfinite_rows"):
            cosine_min = None
        lines.append(
            f"| {method} | {precision} | {layout} | {r['batch_size']} | {fmt(r['images_per_s'], '.2f')} "
            f"| {fmt(ratio, '.2f')} | "
            + (f"{errors['nonfinite_rows']} rows inf/NaN" if errors.get("nonfinite_rows") else fmt(cosine_min, ".6f"))
            + f" | {fmt(errors.get('mean_cosine'), '.6f')} | {fmt(errors.get('max_rel_l2'), '.2e')} "
            f"| {fmt(r['peak_rss_mib'], '.0f')} | {fmt(r['setup_s'], '.1f')} "
            f"| {fmt(r['images_per_s_with_setup'], '.2f')} |"
        )
    lines += [
        "",
        f"images/s: N / wall clock from the first DataLoader iteration to the features in memory (article) or "
        f"in the HDF5 file (extract_features), reading, decoding and preprocessing in {args.num_workers} workers "
        f"included. setup s: model construction (+ graph tracing for extract_features) before it. Cosine and "
        f"relative L2 (||a-b||/||a||, per image) are against `{REFERENCE}` (fp32 NCHW). peak RSS: the measuring "
        f"process (ru_maxrss), DataLoader workers not included.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default=str(REPO / "resources" / "animal-mnist"), help="class-per-folder images")
    parser.add_argument("--n-images", type=int, default=192, help="first N images of --root by path (default 192)")
    parser.add_argument("--arch", default="resnet101")
    parser.add_argument("--weights", default=None, help="state-dict file (default: random init, seed 0)")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes per setting; the best is reported")
    parser.add_argument("--warmup", type=int, default=16, help="images of the untimed warm-up pass")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma list of: {', '.join(SETTINGS)}")
    parser.add_argument("--out", default=None, help="also write the Markdown report here")
    parser.add_argument("--workdir", default=None, help="keep manifests, HDF5 and .npy files here (default: temp)")
    parser.add_argument("--one", choices=sorted(SETTINGS), help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.root = str(Path(args.root))
    if args.weights:
        args.weights = str(Path(args.weights).resolve())
    return args


def run_all(args: argparse.Namespace, workdir: Path) -> str:
    """Write the manifests, measure every setting in its own process, compare features; return the report."""
    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise SystemExit(f"--settings: unknown {unknown}; choose from {list(SETTINGS)}")
    if REFERENCE not in names:
        names.append(REFERENCE)  # every error is measured against it
    rows = first_images(Path(args.root), args.n_images)
    write_sample(workdir / "manifest.csv", rows)
    write_sample(workdir / "warmup.csv", rows[: max(1, min(args.warmup, len(rows)))])
    results = [run_child(name, args, workdir) for name in names]
    reference = np.load(workdir / f"{REFERENCE}.npy") if (workdir / f"{REFERENCE}.npy").is_file() else None
    for result in results:
        if "error" not in result and reference is not None:
            result["errors"] = feature_errors(reference, np.load(workdir / f"{result['name']}.npy"))
    (workdir / "results.json").write_text(json.dumps(results, indent=1))
    return render(results, args)


def report_in_workdir(args: argparse.Namespace, run, prefix: str) -> None:
    """``run(args, workdir)`` in ``--workdir`` (kept) or a temporary folder; print its report, and
    write it to ``--out`` when given."""
    if args.workdir:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        report = run(args, workdir.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            report = run(args, Path(tmp))
    print(report, end="")
    if args.out:
        Path(args.out).write_text(report)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.one:
        Path(args.json).write_text(json.dumps(measure_one(args)))
        return
    report_in_workdir(args, run_all, prefix="tsne-atlas-bench-")


if __name__ == "__main__":
    main()
