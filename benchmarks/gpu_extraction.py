#!/usr/bin/env python3
"""GPU feature-extraction throughput from JPEG files: precision × layout × batch, the article's loop,
and the project's ``extract_features``. Normally started by ``benchmarks/gpu.sh``.

Every row reads the same JPEG files through a DataLoader (``--num-workers`` workers, pinned memory)
and runs the same network (``--arch``, random init seeded with ``torch.manual_seed(0)``, or a
``--weights`` state dict, head replaced by Identity = the penultimate features):

* grid rows: ``torch.inference_mode()`` + autocast (fp32 = no autocast; cuDNN's default TF32 for
  convolutions applies) × NCHW / channels-last × ``--batches``; outputs stay on the GPU until the end.
* ``article``: batch 64, fp32, no inference_mode/no_grad, ``np.concatenate`` of
  ``out.detach().cpu().numpy()`` per batch.
* ``extract_features``: the project's function (device cuda, precision auto), run in a fresh
  subprocess per variant (it sets process-wide deterministic-algorithm flags and cuBLAS's workspace
  variable, which must come before CUDA starts), for each ``batch:workers`` of ``--project-variants``.

Each row gets an untimed warm-up (forward passes on decoded batches), then ONE timed pass over the N
files: images/s = N / wall clock from creating the DataLoader iterator to the features on the host,
decoding included. "model-only images/s" runs the same forward passes on already decoded, pinned
host tensors (copy to the GPU included), to show what the network alone would allow; "loader only"
iterates the DataLoader and does nothing else. Cosine is per image against the fp32 NCHW row of
the first batch size. Peak GPU memory: torch.cuda.max_memory_allocated during the timed pass.

``--budget-s`` (default 420) stops starting new grid rows once spent; skipped rows are listed.
CPU smoke test: ``PYTHONPATH=scripts python benchmarks/gpu_extraction.py --device cpu --n-images 16 --arch resnet18
--batches 8 --num-workers 2 --project-variants 8:2``.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image, ImageDraw, ImageFilter
from torch.utils.data import DataLoader

from common import write_sample

# benchmarks/extraction.py, found because Python puts this script's folder first on the path.
from extraction import (
    FEATURE_SET,
    ArticleImages,
    article_model,
    feature_errors,
    first_images,
    loop_start_marker,
    report_in_workdir,
    set_settings,
)
from tsne_atlas import extraction as project
from tsne_atlas.sources.torchvision import torchvision_preprocessing

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Row:
    """One line of the table."""

    method: str
    precision: str
    layout: str
    batch: int
    workers: int
    images_per_s: float | None = None
    model_only_per_s: float | None = None
    peak_mib: float | None = None
    features: np.ndarray | None = field(default=None, repr=False)
    note: str = ""
    errors: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Test images
# --------------------------------------------------------------------------------------------


def synthetic_jpeg(args: tuple[Path, int, int, int]) -> None:
    """One photo-like JPEG: smooth colour field, a few shapes, mild noise, quality 90."""
    path, index, width, height = args
    rng = np.random.default_rng(index)
    field_ = rng.integers(0, 256, size=(4 + index % 5, 5 + index % 7, 3), dtype=np.uint8)
    image = Image.fromarray(field_, "RGB").resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        x1, y1 = x0 + int(rng.integers(20, 200)), y0 + int(rng.integers(20, 150))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    noisy = np.asarray(image, dtype=np.int16) + rng.normal(0, 6, (height, width, 3)).astype(np.int16)
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").save(path, quality=90)


def make_jpegs(folder: Path, n_images: int, width: int = 500, height: int = 375, classes: int = 10) -> Path:
    """``n_images`` synthetic JPEGs in ``folder/class_K/`` (kept and reused if already there)."""
    jobs = []
    for index in range(n_images):
        path = folder / f"class_{index % classes}" / f"img_{index:05d}.jpg"
        if not path.is_file():
            jobs.append((path, index, width, height))
    for k in range(classes):
        (folder / f"class_{k}").mkdir(parents=True, exist_ok=True)
    if jobs:
        start = time.perf_counter()
        with Pool(min(16, os.cpu_count() or 1)) as pool:
            pool.map(synthetic_jpeg, jobs, chunksize=16)
        print(
            f"wrote {len(jobs)} JPEGs ({width}x{height}) to {folder} in {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )
    return folder


# --------------------------------------------------------------------------------------------
# Measurements in this process
# --------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def make_loader(dataset, batch: int, workers: int, device: torch.device) -> DataLoader:
    return DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda")


def loader_only(dataset, workers: int, device: torch.device) -> tuple[float, torch.Tensor]:
    """Images/s of decoding alone (batch 64), and every decoded image as one (pinned) host tensor."""
    start = time.perf_counter()
    batches = list(make_loader(dataset, 64, workers, device))
    seconds = time.perf_counter() - start
    decoded = torch.cat(batches)
    return len(dataset) / seconds, decoded.pin_memory() if device.type == "cuda" else decoded


def forward(model, x: torch.Tensor, device: torch.device, precision: str, channels_last: bool) -> torch.Tensor:
    """Copy a host batch to the device and run the model under inference_mode + autocast."""
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = DTYPES[precision]
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        return model(x)


def model_only(model, decoded: torch.Tensor, batch: int, device, precision: str, channels_last: bool) -> float:
    """Images/s of the forward passes over already decoded host tensors (after two warm-up batches)."""
    with torch.inference_mode():
        for _ in range(2):
            forward(model, decoded[:batch], device, precision, channels_last)
        sync(device)
        start = time.perf_counter()
        for i in range(0, len(decoded), batch):
            forward(model, decoded[i : i + batch], device, precision, channels_last)
        sync(device)
    return len(decoded) / (time.perf_counter() - start)


def grid_row(model, dataset, decoded, device, precision: str, channels_last: bool, batch: int, workers: int) -> Row:
    """One precision × layout × batch row: model-only speed, then the timed pass from the files."""
    row = Row("inference_mode loop", precision, "channels-last" if channels_last else "NCHW", batch, workers)
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    try:
        row.model_only_per_s = model_only(model, decoded, batch, device, precision, channels_last)
        reset_peak(device)
        start = time.perf_counter()
        outs = []
        with torch.inference_mode():
            for x in make_loader(dataset, batch, workers, device):
                outs.append(forward(model, x, device, precision, channels_last))
            row.features = torch.cat(outs).float().cpu().numpy()
        sync(device)
        row.images_per_s = len(dataset) / (time.perf_counter() - start)
        row.peak_mib = peak_mib(device)
    except torch.OutOfMemoryError:
        row.note = "out of memory: skipped"
    finally:
        outs = None
        reset_peak(device)
    return row


def article_row(model, root: Path, rows, arch: str, decoded, device, workers: int) -> Row:
    """The article's loop on the device: batch 64, fp32, autograd on, np.concatenate per batch."""
    row = Row("article loop", "fp32", "NCHW", 64, workers)
    model.to(memory_format=torch.contiguous_format)
    dataset = ArticleImages(root, rows, torchvision_preprocessing(arch))
    for _ in range(2):  # warm-up, autograd on as in the timed loop
        model(decoded[:64].to(device)).detach().cpu()
    reset_peak(device)
    start = time.perf_counter()
    feats = None
    for x, _ in make_loader(dataset, 64, workers, device):
        out = model(x.to(device))
        feats = out.detach().cpu().numpy() if feats is None else np.concatenate([feats, out.detach().cpu().numpy()])
    row.images_per_s = len(rows) / (time.perf_counter() - start)
    row.peak_mib = peak_mib(device)
    row.features = feats
    return row


# --------------------------------------------------------------------------------------------
# The project's extract_features, in a child process
# --------------------------------------------------------------------------------------------


def project_child(args: argparse.Namespace) -> None:
    """Warm up, then time one extract_features call; write JSON and the features (.npy)."""
    workdir = Path(args.workdir)
    device = torch.device(args.device)
    # A one-node set (penultimate, random init seeded 0 unless --weights), weights resolved here,
    # channels-last, torch's own thread count, no config hash.
    common = dict(
        resolved=None,
        root=args.root,
        feature_set=FEATURE_SET,
        settings=set_settings(args.arch, args.weights),
        device=args.device,
        precision="auto",
        channels_last=True,
        batch_size=args.batch,
        num_workers=args.workers,
        threads=None,
        progress=False,
    )
    project.extract_features(
        images=str(workdir / "warmup.csv"), features=str(workdir / f"warmup-{args.tag}.h5"), **common
    )
    reset_peak(device)
    marks: dict = {}
    start = time.perf_counter()
    with loop_start_marker(marks):
        attrs = project.extract_features(
            images=str(workdir / "manifest.csv"), features=str(workdir / f"{args.tag}.h5"), **common
        )
    end = time.perf_counter()
    from tsne_atlas.files.features import read_features

    np.save(workdir / f"{args.tag}.npy", read_features(workdir / f"{args.tag}.h5", "penultimate")["features"])
    n = attrs["n_images"]
    result = {
        "images_per_s": n / (end - marks["loop_start"]),
        "setup_s": marks["loop_start"] - start,
        "precision": attrs["precision"],
        "channels_last": attrs["channels_last"],
        "peak_mib": peak_mib(device),
    }
    (workdir / f"{args.tag}.json").write_text(json.dumps(result))


def project_row(args: argparse.Namespace, workdir: Path, batch: int, workers: int) -> Row:
    """Run project_child for one batch:workers variant and read its result back."""
    tag = f"project-b{batch}-w{workers}"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--project-child",
        "--tag",
        tag,
        "--workdir",
        str(workdir),
        "--root",
        str(args.root),
        "--arch",
        args.arch,
        "--device",
        args.device,
        "--batch",
        str(batch),
        "--workers",
        str(workers),
    ]
    if args.weights:
        command += ["--weights", args.weights]
    done = subprocess.run(command, capture_output=True, text=True)
    row = Row("extract_features (auto)", "auto", "?", batch, workers)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        row.note = f"failed (exit {done.returncode}): {tail[0]}"
        return row
    result = json.loads((workdir / f"{tag}.json").read_text())
    row.precision = f"{result['precision']} (auto)"
    row.layout = "channels-last" if result["channels_last"] else "NCHW"
    row.images_per_s, row.peak_mib = result["images_per_s"], result["peak_mib"]
    row.features = np.load(workdir / f"{tag}.npy")
    row.note = f"setup {result['setup_s']:.1f} s not counted; deterministic algorithms on"
    return row


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def machine_line(device: torch.device) -> str:
    """GPU (or CPU) name, driver, torch/cuDNN versions, TF32 flags, CPU cores."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        try:
            driver = (
                subprocess.run(
                    ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    timeout=20,
                )
                .stdout.strip()
                .splitlines()[0]
            )
        except (OSError, IndexError, subprocess.SubprocessError):
            driver = "?"
        gpu = (
            f"{props.name} ({props.total_memory / 2**30:.0f} GiB), driver {driver}, CUDA {torch.version.cuda}, "
            f"cuDNN {torch.backends.cudnn.version()}, TF32 conv {torch.backends.cudnn.allow_tf32} / matmul "
            f"{torch.backends.cuda.matmul.allow_tf32}, cudnn.benchmark {torch.backends.cudnn.benchmark}"
        )
    else:
        gpu = "CPU only (smoke test)"
    return (
        f"Machine: {gpu}; {len(os.sched_getaffinity(0))} CPU cores; torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}"
    )


def render(rows: list[Row], args, n_images: int, loader_rate: float, skipped: list[str], device) -> str:
    article = next((r for r in rows if r.method == "article loop" and r.images_per_s), None)
    exe = os.path.relpath(sys.executable)
    lines = [
        machine_line(device) + "  ",
        f"N = {n_images} files from `{args.root}`"
        + (" (synthetic 500x375 JPEG, quality 90)" if args.synthetic else "")
        + f", arch {args.arch}, weights {args.weights or 'random init (torch.manual_seed(0))'}; "
        f"DataLoader loading only (batch 64, {args.num_workers} workers): {loader_rate:.0f} images/s  ",
        f"Command: `{shlex.join([sys.executable if exe.startswith('..') else exe, *sys.argv])}`",
        "",
        "| method | precision | layout | batch | workers | images/s | × article | model-only images/s "
        "| min cosine vs fp32 | mean cosine | peak GPU MiB | note |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        ratio = r.images_per_s / article.images_per_s if article and r.images_per_s else None
        bad = r.errors.get("nonfinite_rows")
        cosine = f"{bad} rows inf/NaN" if bad else fmt(r.errors.get("min_cosine"), ".6f")
        lines.append(
            f"| {r.method} | {r.precision} | {r.layout} | {r.batch} | {r.workers} | {fmt(r.images_per_s, '.0f')} "
            f"| {fmt(ratio, '.2f')} | {fmt(r.model_only_per_s, '.0f')} | {cosine} "
            f"| {fmt(None if bad else r.errors.get('mean_cosine'), '.6f')} | {fmt(r.peak_mib, '.0f')} | {r.note} |"
        )
    lines += [
        "",
        "images/s: N / wall clock of one pass from the files (decoding and preprocessing in the DataLoader workers, "
        "pinned copies, forward, features on the host). model-only: the same forward passes on decoded tensors. "
        "fp32 rows use cuDNN's default TF32 convolutions. Peak GPU MiB includes the model's weights.",
    ]
    if skipped:
        lines.append(f"Skipped (time budget of {args.budget_s:.0f} s spent): {', '.join(skipped)}.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def grid_order(precisions, layouts, batches) -> list[tuple[str, bool, int]]:
    """Reference (fp32 NCHW, first batch) first, then the most informative rows, then the rest."""
    every = [(p, lay == "cl", b) for p in precisions for lay in layouts for b in batches]
    first = [(p, cl, b) for (p, cl, b) in every if b == batches[0] and ((p == "fp32" and not cl) or cl)]
    return first + [c for c in every if c not in first]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="class-per-folder images (default: synthetic JPEGs)")
    parser.add_argument("--jpeg-dir", default=None, help="where synthetic JPEGs go (default: <workdir>/jpegs)")
    parser.add_argument("--n-images", type=int, default=2000)
    parser.add_argument("--arch", default="resnet101")
    parser.add_argument("--weights", default=None, help="state-dict file (default: random init, seed 0)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke test")
    parser.add_argument("--num-workers", type=int, default=8)
    parser.add_argument("--batches", default="32,64,128,256")
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--layouts", default="nchw,cl")
    parser.add_argument(
        "--project-variants",
        default="16:2,16:8,128:8",
        help="batch:workers pairs for extract_features (16:2 = the config defaults)",
    )
    parser.add_argument("--budget-s", type=float, default=420.0, help="start no new grid row after this")
    parser.add_argument("--workdir", default=None, help="keep manifests and features here (default: temp)")
    parser.add_argument("--out", default=None, help="also write the Markdown report here")
    parser.add_argument("--project-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.weights:
        args.weights = str(Path(args.weights).resolve())
    return args


def run(args: argparse.Namespace, workdir: Path) -> str:
    """Images, manifests, every row, the comparison; returns the report."""
    started = time.perf_counter()
    device = torch.device(args.device)
    args.synthetic = args.root is None
    if args.synthetic:
        args.root = str(make_jpegs(Path(args.jpeg_dir or workdir / "jpegs"), args.n_images))
    root = Path(args.root)
    rows = first_images(root, args.n_images)
    batches = [int(b) for b in args.batches.split(",")]
    write_sample(workdir / "manifest.csv", rows)
    write_sample(workdir / "warmup.csv", rows[: min(len(rows), max(64, 2 * max(batches)))])

    model = article_model(args.arch, args.weights).to(device)
    dataset = project.ImageFiles(root, [p for p, _ in rows], torchvision_preprocessing(args.arch))
    loader_rate, decoded = loader_only(dataset, args.num_workers, device)
    print(f"loader only: {loader_rate:.0f} images/s", file=sys.stderr, flush=True)

    table: list[Row] = []
    skipped = []
    for i, (precision, channels_last, batch) in enumerate(
        grid_order(args.precisions.split(","), args.layouts.split(","), batches)
    ):
        if i > 0 and time.perf_counter() - started > args.budget_s:
            skipped.append(f"{precision}/{'cl' if channels_last else 'nchw'}/b{batch}")
            continue
        table.append(grid_row(model, dataset, decoded, device, precision, channels_last, batch, args.num_workers))
        r = table[-1]
        print(
            f"{precision} {r.layout} b{batch}: {fmt(r.images_per_s, '.0f')} images/s "
            f"(model only {fmt(r.model_only_per_s, '.0f')}) {r.note}",
            file=sys.stderr,
            flush=True,
        )
        if i == 0:  # the article and the project right after the reference, so the budget never drops them
            table.append(article_row(model, root, rows, args.arch, decoded, device, args.num_workers))
            print(f"article: {table[-1].images_per_s:.0f} images/s", file=sys.stderr, flush=True)
            del model  # the project's children need the memory more than we do
            if device.type == "cuda":
                torch.cuda.empty_cache()
            for variant in args.project_variants.split(","):
                if variant:
                    b, w = (int(v) for v in variant.split(":"))
                    table.append(project_row(args, workdir, b, w))
                    print(
                        f"extract_features b{b} w{w}: {fmt(table[-1].images_per_s, '.0f')} images/s {table[-1].note}",
                        file=sys.stderr,
                        flush=True,
                    )
            model = article_model(args.arch, args.weights).to(device)

    reference = table[0].features
    for r in table:
        if r.features is not None and reference is not None:
            r.errors = feature_errors(reference, r.features)
    return render(sorted(table, key=row_order), args, len(rows), loader_rate, skipped, device)


def row_order(row: Row) -> tuple:
    """Article, then extract_features, then the grid by precision, layout, batch."""
    kind = {"article loop": 0, "extract_features (auto)": 1}.get(row.method, 2)
    precision = list(DTYPES).index(row.precision) if row.precision in DTYPES else 0
    return kind, precision, row.layout != "NCHW", row.batch, row.workers


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            "gpu_extraction.py: torch sees no CUDA GPU; run it on a CUDA machine "
            "(or pass --device cpu for a smoke test)"
        )
    if args.project_child:
        project_child(args)
        return
    report_in_workdir(args, run, prefix="tsne-atlas-gpu-bench-")


if __name__ == "__main__":
    main()
