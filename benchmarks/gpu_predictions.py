"""Device check of the network's predictions: the project's extract_features on a CUDA GPU (fp32 and
precision auto) against the CPU in fp32, on the bundled demo images, with a checkpoint file and a
user-given class list (so predictions are stored). Prints one Markdown table: images/s, the smallest
feature cosine to the CPU, top-1 agreement with the CPU and the largest top-5 probability difference.

    PYTHONPATH=scripts python benchmarks/gpu_predictions.py [--n-images 300] [--arch resnet50]

The weights are a random initialisation saved to a file (no download), so the predicted classes mean
nothing; what is checked is that CUDA and CPU store the same predictions the same way.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

from tsne_atlas.config import feature_set_settings
from tsne_atlas.extraction import extract_features
from tsne_atlas.files.features import read_features, read_predictions
from tsne_atlas.files.manifest import write_images
from tsne_atlas.schema import SCHEMA_PATH, feature_set_defaults

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "resources" / "animal-mnist"


def run(images: Path, out: Path, settings: dict, device: str, precision: str, num_workers: int) -> float:
    start = time.perf_counter()
    extract_features(
        images=str(images),
        root=str(DEMO),
        feature_set="check",
        settings=settings,
        device=device,
        precision=precision,
        channels_last=True,
        batch_size=64,
        num_workers=num_workers,
        features=str(out),
        threads=None,
        progress=False,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-images", type=int, default=300)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke test of this script")
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader workers (default 4)")
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_predictions: no CUDA GPU visible; run it on a CUDA machine")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = sorted(p.relative_to(DEMO).as_posix() for p in DEMO.glob("*/*.png"))[:: max(1, 1000 // args.n_images)]
        paths = paths[: args.n_images]
        write_images(tmp / "images.csv", paths, [""] * len(paths))
        torch.manual_seed(0)
        model = torchvision.models.get_model(args.arch, weights=None)
        torch.save(model.state_dict(), tmp / "weights.pth")
        (tmp / "classes.txt").write_text("".join(f"class {i}\n" for i in range(1000)))
        given = {"arch": args.arch, "weights": str(tmp / "weights.pth"), "class_names": str(tmp / "classes.txt")}
        settings = feature_set_settings({"features": {"check": given}}, feature_set_defaults(SCHEMA_PATH))["check"]
        cases = [("cpu", "fp32"), (args.device, "fp32"), (args.device, "auto")]
        results = {}
        for device, precision in dict.fromkeys(cases):
            out = tmp / f"{device}-{precision}.h5"
            seconds = run(tmp / "images.csv", out, settings, device, precision, args.num_workers)
            predictions, reason = read_predictions(out)
            data = read_features(out)
            results[device, precision] = (seconds, data, predictions, reason)
        gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "none (smoke test)"
        lines = [
            f"GPU: {gpu}; torch {torch.__version__}, torchvision {torchvision.__version__}",
            f"{args.arch}, {len(paths)} demo images, checkpoint file + 1,000 class names\n",
            "| device | precision used | images/s | predictions | min feature cosine to CPU fp32 | top-1 = CPU | max top-5 prob diff |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        _, ref, ref_pred, _ = results["cpu", "fp32"]
        a = ref["features"] / np.linalg.norm(ref["features"], axis=1, keepdims=True)
        for (device, _), (seconds, data, pred, reason) in results.items():
            b = data["features"] / np.linalg.norm(data["features"], axis=1, keepdims=True)
            cosine = float((a * b).sum(axis=1).min())
            same_top1 = float(np.mean(pred.top_index[:, 0] == ref_pred.top_index[:, 0])) if pred else float("nan")
            prob_diff = float(np.abs(pred.top_probability - ref_pred.top_probability).max()) if pred else float("nan")
            lines.append(
                f"| {device} | {data['attrs']['precision']} | {len(paths) / seconds:.0f} | {reason} | {cosine:.6f} "
                f"| {same_top1:.3f} | {prob_diff:.2e} |"
            )
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
