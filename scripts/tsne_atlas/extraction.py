"""Stage extract_features: one feature set's features for every sampled image, into its features
file (layout: ``files.features``): a network (``sources``: built by its source's module) run over
the images once, streaming the outputs of all the set's nodes batch by batch, or a file of
precomputed features matched to the sample by path (``sources.precomputed``).
"""

import importlib.metadata
import logging
import os
import platform
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .config import PRECOMPUTED_NODE
from .files.feature_shards import shard_header, write_shard
from .files.features import TOP_INDEX, TOP_PROBABILITY, write_features
from .files.manifest import read_images
from .files.weights_record import read_record
from .images import load_rgb
from .jobs import AtlasError
from .shards import shard_rows
from .sources import RESOLVERS, build_network
from .sources.network import LOGITS, Network
from .sources.precomputed import iter_precomputed

LOGGER = logging.getLogger("tsne_atlas.extract_features")
TOP_K = 5
NO_PREDICTIONS_PRECOMPUTED = "none: precomputed features"
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


# Mutation testing (`make mutation`, docs/development.md) covers `top_classes` (the stored top-5) alone;
# the rest is left to the unit and workflow tests.
# pragma: no mutate start
def native_bf16(device: torch.device) -> bool:
    """True where bf16 runs in hardware: AVX512-BF16 or AMX on a CPU, Ampere or newer on a GPU.

    PyTorch's own checks also admit emulated bf16 (any AVX512 CPU, older GPUs), which is
    slower than fp32 there.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 where the hardware computes it natively, else fp32.

    bf16 keeps fp32's range, so deep activations cannot overflow; BENCHMARKS.md measures the
    features at cosine similarity > 0.9999 to fp32 for several times the speed. fp16 is never
    chosen automatically: activations of a randomly initialised ResNet-101 exceed its range
    (65,504) and become inf/NaN.
    """
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when a GPU is visible, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AtlasError(
            f"extraction.device is '{device}' but no CUDA GPU is visible; set extraction.device to 'auto' or 'cpu'"
        )
    return torch.device(device)


def use_deterministic_algorithms() -> None:
    """Ask PyTorch for reproducible kernels (same features for the same input on one device).

    cuBLAS needs its workspace pinned before CUDA starts; cuDNN must not pick kernels by timing.
    ``warn_only``: an architecture with an op that has no deterministic kernel still runs, with a warning.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


class ImageFiles(Dataset):
    """Images read by ``image_io.load_rgb`` (upright 8-bit RGB), transformed for the model."""

    def __init__(self, root: str | os.PathLike, paths: Sequence[str], transform):
        self.root = Path(root)
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(load_rgb(self.root / self.paths[index]))


def iter_feature_batches(
    module: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    precision: str,
    channels_last: bool,
    progress: bool = True,
    n_classes: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield ``{node: float32 rows}`` batch by batch (memory stays flat in N); one forward pass
    gives every node.

    Node outputs with spatial dimensions are averaged over them to one vector per image.
    ``channels_last``: feed NHWC batches (the module must be converted too), which
    oneDNN and cuDNN convolutions run faster.

    A module that also returns its logits (under ``sources.network.LOGITS``; ``n_classes`` wide) gives each
    image's top-k classes (k = min(5, n_classes)) too: ``TOP_INDEX`` (int32) and ``TOP_PROBABILITY``
    (float32, the softmax computed in float32) rows in the same batch.
    """
    dtype = PRECISIONS[precision]
    with torch.inference_mode():
        for batch in tqdm(loader, desc="extract", unit="batch", mininterval=5, disable=not progress, file=sys.stderr):
            batch = batch.to(device, non_blocking=True)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                outputs = module(batch)
            rows = {}
            logits = outputs.pop(LOGITS, None) if isinstance(outputs, dict) else None
            if logits is not None:
                rows.update(top_classes(logits, n_classes, precision))
            for node, out in outputs.items():
                if out.ndim > 2:
                    out = out.flatten(2).mean(dim=2)
                rows[node] = out.float().cpu().numpy()
                if not np.isfinite(rows[node]).all():
                    raise AtlasError(
                        f"extraction.precision '{precision}' gave inf/NaN features (activations beyond its range); "
                        f"use precision bf16, fp32 or auto"
                    )
            yield rows


# pragma: no mutate end
def top_classes(logits: torch.Tensor, n_classes: int | None, precision: str) -> dict[str, np.ndarray]:
    """``TOP_INDEX`` and ``TOP_PROBABILITY`` rows of a batch's logits (N x C): softmax in float32, top min(5, C)."""
    if logits.ndim != 2 or (n_classes is not None and logits.shape[1] != n_classes):
        raise AtlasError(
            f"the network's output has shape {tuple(logits.shape)}, not (batch, {n_classes}) logits of its "
            f"{n_classes} class names; remove the set's class_names or use a classifier with that many outputs"
        )
    probabilities = torch.softmax(logits.float(), dim=1)
    if not torch.isfinite(probabilities).all():
        raise AtlasError(
            f"extraction.precision '{precision}' gave inf/NaN logits (activations beyond its range); "
            f"use precision bf16, fp32 or auto"
        )
    top = torch.topk(probabilities, k=min(TOP_K, probabilities.shape[1]), dim=1)
    return {
        TOP_INDEX: top.indices.to(torch.int32).cpu().numpy(),
        TOP_PROBABILITY: top.values.cpu().numpy(),
    }


# pragma: no mutate start
def library_versions() -> dict[str, str]:
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "pillow": Image.__version__,
    }
    # timm's version from its installed metadata: importing timm for it cost a torchvision set's
    # extraction job ~0.7 s of CPU.
    try:
        versions["timm"] = importlib.metadata.version("timm")
    except importlib.metadata.PackageNotFoundError:
        pass
    return versions


def read_sample_paths(images: str) -> list[str]:
    """The sampled images' paths (``sample/images.csv``): extraction needs no labels."""
    paths, _ = read_images(images)
    if not paths:
        raise AtlasError(f"{images}: the sample lists no images; check dataset.root and sample.n_images")
    return paths


def set_network(settings: dict, resolved: str | None, key: str) -> Network:
    """The set's network, with the weights its fetch_weights record names (read from local files only);
    ``resolved`` None (a network source with weights to resolve) resolves them here, which may download."""
    record = None
    if settings["source"] in RESOLVERS:
        if resolved is None:
            record = RESOLVERS[settings["source"]](
                settings["arch"], str(settings["weights"]), int(settings["init_seed"]), key
            )
        else:
            record = read_record(resolved)
            if (record["arch"], record["weights"]) != (settings["arch"], str(settings["weights"])):
                raise AtlasError(
                    f"{resolved} was written for arch '{record['arch']}', weights '{record['weights']}', "
                    f"not '{settings['arch']}', '{settings['weights']}'; delete it and rerun"
                )
    return build_network(settings, record, key)


def extract_features(
    images: str,
    root: str,
    feature_set: str,
    settings: dict,
    device: str,
    precision: str,
    channels_last: bool,
    batch_size: int,
    num_workers: int,
    features: str,
    threads: int | None,
    resolved: str | None = None,
    config_hash: str = "",
    progress: bool = True,
    shard: Sequence[int] | None = None,
) -> dict:
    """Extract the features of feature set ``feature_set`` (its ``settings``, schema defaults filled in)
    for every sampled image (``images``) into ``features``; return the file's attributes.

    ``resolved``: the record fetch_weights wrote for the set's weights (the workflow always gives it
    to sets with weights, so this job reads only local files). ``num_workers`` and ``threads``
    change how fast the job runs, never its result.

    ``shard``: (index, count), 1-based: extract only that slice of the sample (``shards.shard_rows``:
    whole batches) into a shard file (``files.feature_shards``) for rule merge_features.
    """
    key = f"features.{feature_set}"
    paths = read_sample_paths(images)
    n_images = len(paths)
    header = None
    if shard is not None:
        index, count = (int(n) for n in shard)
        start, stop = shard_rows(n_images, batch_size, index, count)
        header = shard_header(images, index, count, start, stop)
        paths = paths[start:stop]
    attrs = {
        "feature_set": feature_set,
        "source": settings["source"],
        "dataset_root": str(root),
        "n_images": n_images,
        "versions": library_versions(),
        "config_hash": config_hash,
    }
    if settings["source"] == "precomputed":
        if header is not None:
            raise AtlasError(f"{key}: a precomputed set is imported in one job, not in shards")
        return import_precomputed(settings, key, paths, root, features, attrs)
    if threads:
        torch.set_num_threads(int(threads))
    use_deterministic_algorithms()
    torch_device = resolve_device(device)
    precision_used = resolve_precision(precision, torch_device)
    network = set_network(settings, resolved, key)
    module = network.module.to(torch_device).eval()
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    loader = DataLoader(
        ImageFiles(root, paths, network.transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=torch_device.type == "cuda",
    )
    model = settings["arch"] if settings["source"] in RESOLVERS else Path(settings["path"]).name
    LOGGER.info(
        "%s: extracting %s nodes %s for %s in one pass on %s (%s%s, batch %d, %d workers, %s); weights: %s; "
        "predictions: %s",
        key,
        model,
        ", ".join(f"{node} ({graph})" for node, graph in network.nodes.items()),
        f"{len(paths)} images"
        if header is None
        else f"shard {header['index']} of {header['count']}: rows {header['start']}-{header['stop'] - 1} of "
        f"{n_images} images",
        torch_device,
        precision_used,
        " from auto" if precision == "auto" else "",
        batch_size,
        num_workers,
        "channels-last" if channels_last else "NCHW",
        network.weights_source,
        network.predictions_reason,
    )
    attrs.update(
        {
            "model": model,
            "weights": str(settings["weights"]) if settings["source"] in RESOLVERS else "own network",
            "weights_source": network.weights_source,
            "weights_random": bool(network.weights_random),
            "preprocessing": " ".join(repr(network.transform).split()),
            "device": str(torch_device),
            "precision": precision_used,
            "precision_setting": precision,
            "channels_last": bool(channels_last),
            "batch_size": int(batch_size),
        }
    )
    classes = network.class_names
    batches = iter_feature_batches(
        module, loader, torch_device, precision_used, channels_last, progress, len(classes) if classes else None
    )
    if header is None:
        dims = write_features(
            features, batches, len(paths), paths, attrs, network.nodes, classes, network.predictions_reason
        )
    else:
        dims = write_shard(features, batches, paths, attrs, network.nodes, header, classes, network.predictions_reason)
    LOGGER.info("wrote %s: %d images, dimensions %s", features, len(paths), dims)
    return {**attrs, "predictions": network.predictions_reason, "feature_dims": dims, "nodes": list(network.nodes)}


def import_precomputed(settings: dict, key: str, paths: list[str], root: str, features: str, attrs) -> dict:
    """A precomputed set: the file's rows for the sampled images, in manifest order, as a features file."""
    blocks = iter_precomputed(settings["path"], paths, key, settings.get("paths_file"), root)
    name = Path(settings["path"]).name
    attrs.update(
        {
            "model": f"precomputed {name}",
            "weights": "precomputed",
            "weights_source": f"precomputed features {name}",
            "weights_random": False,
            "preprocessing": "none (precomputed)",
            "precision": "float32",
        }
    )
    dims = write_features(
        features,
        ({PRECOMPUTED_NODE: rows} for rows in blocks),
        len(paths),
        paths,
        attrs,
        {PRECOMPUTED_NODE: PRECOMPUTED_NODE},
        predictions=NO_PREDICTIONS_PRECOMPUTED,
    )
    LOGGER.info("%s: imported %s: %d images x %d dimensions", key, settings["path"], len(paths), dims[PRECOMPUTED_NODE])
    return {**attrs, "predictions": NO_PREDICTIONS_PRECOMPUTED, "feature_dims": dims, "nodes": [PRECOMPUTED_NODE]}


# pragma: no mutate end
