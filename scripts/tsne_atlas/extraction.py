"""Stage extract_features: run a torchvision classifier over the sampled images and stream
one feature vector per image into the features file (layout: ``files.features``).
"""

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
from torchvision.models import get_model, get_model_weights
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names
from tqdm import tqdm

from .files.features import write_features
from .files.manifest import read_manifest
from .files.weights_record import read_record
from .images import load_rgb
from .jobs import AtlasError
from .weights import check_arch, resolve_weights

LOGGER = logging.getLogger("tsne_atlas.extract_features")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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
        raise AtlasError(f"model.device is '{device}' but no CUDA GPU is visible; set model.device to 'auto' or 'cpu'")
    return torch.device(device)


def load_state_dict_file(path: str | os.PathLike) -> dict:
    """Load a state dict with ``weights_only=True`` (no arbitrary code from the file)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AtlasError(f"model.weights file '{path}' does not exist; give the path of a saved state dict") from None
    except Exception as err:
        raise AtlasError(
            f"model.weights file '{path}' could not be loaded as a state dict ({type(err).__name__}); "
            f"save it with torch.save(model.state_dict(), path)"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # common checkpoint wrapper
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AtlasError(
            f"model.weights file '{path}' is not a state dict (a mapping of names to tensors); "
            f"save it with torch.save(model.state_dict(), path)"
        )
    return state


def model_from_record(
    record: dict, init_seed: int = 0, repeat_warning: bool = True
) -> tuple[torch.nn.Module, str, bool]:
    """Build ``record['arch']`` with the weights a fetch_weights record names, from local files only.

    A record's warning (``auto`` fell back to random weights) is logged again here, so it is in
    this job's log too, unless ``repeat_warning`` is false.
    Returns (model in eval mode, weights_source text, weights_random flag).
    """
    arch = record["arch"]
    check_arch(arch)
    torch.manual_seed(init_seed)
    model = get_model(arch, weights=None)
    if record.get("warning") and repeat_warning:
        LOGGER.warning("%s", record["warning"])
    if record["kind"] in ("imagenet", "file"):
        path = record["path"]
        if not Path(path).is_file():
            raise AtlasError(
                f"weights file {path} (model.weights '{record['weights']}', resolved by fetch_weights on "
                f"the submitting host) is not visible on {platform.node()}; put the torch hub cache on a "
                f"filesystem every node sees (set $TORCH_HOME) or set model.weights to a file there"
            )
        state = load_state_dict_file(path)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).strip().splitlines()
            raise AtlasError(
                f"model.weights file '{record['weights'] if record['kind'] == 'file' else path}' does not fit "
                f"model.arch '{arch}' ({first[1].strip() if len(first) > 1 else first[0]}); "
                f"use the arch the weights were saved from"
            ) from None
    model.eval()
    return model, record["weights_source"], bool(record["weights_random"])


def load_model(arch: str, weights: str, init_seed: int = 0) -> tuple[torch.nn.Module, str, bool]:
    """Build ``arch`` and load its weights.

    ``weights``: ``auto`` (ImageNet if it can be had, else random init with a warning),
    ``imagenet`` (ImageNet or a one-line error), ``none`` (random init) or a path to a
    state-dict file. Random initialisation is seeded with ``init_seed``.
    Returns (model in eval mode, weights_source text, weights_random flag).

    Resolves the weights here (fetch_weights.resolve_weights, which may download); the workflow
    resolves them once on the submitting host instead and passes the record to extract_features.
    """
    return model_from_record(resolve_weights(arch, weights, init_seed), init_seed, repeat_warning=False)


def preprocessing_for(arch: str):
    """The preprocessing of the arch's default torchvision weights (resize, crop, normalise).

    Used for every weights choice, so a random or custom model sees the same input an
    ImageNet one would.
    """
    return get_model_weights(arch).DEFAULT.transforms()


def penultimate_node(model: torch.nn.Module) -> str:
    """The graph node feeding the classifier's last layer (``flatten`` for ResNets).

    That is the node before the last ``Linear``; for fully convolutional classifiers
    (SqueezeNet) the node before the last convolution.
    """
    _, eval_nodes = get_graph_node_names(model)
    modules = dict(model.named_modules())
    for layer_type in (torch.nn.Linear, torch.nn.Conv2d):
        positions = [i for i, name in enumerate(eval_nodes) if isinstance(modules.get(name), layer_type)]
        if positions and positions[-1] > 0:
            return eval_nodes[positions[-1] - 1]
    return eval_nodes[-2]


def resolve_node(model: torch.nn.Module, node: str) -> str:
    if node == "auto":
        return penultimate_node(model)
    _, eval_nodes = get_graph_node_names(model)
    # A module name (e.g. 'layer3') stands for the last node inside it, as in create_feature_extractor.
    if node not in eval_nodes and not any(name.startswith(node + ".") for name in eval_nodes):
        tail = ", ".join(eval_nodes[-12:])
        raise AtlasError(
            f"model.node '{node}' is not a node of this model; use 'auto' (penultimate) or one of "
            f"its {len(eval_nodes)} nodes, the last being: {tail}"
        )
    return node


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
    extractor: torch.nn.Module,
    node: str,
    loader: DataLoader,
    device: torch.device,
    precision: str,
    channels_last: bool,
    progress: bool = True,
) -> Iterator[np.ndarray]:
    """Yield float32 feature arrays batch by batch (memory stays flat in N).

    Node outputs with spatial dimensions are averaged over them to one vector per image.
    ``channels_last``: feed NHWC batches (the extractor must be converted too), which
    oneDNN and cuDNN convolutions run faster.
    """
    dtype = PRECISIONS[precision]
    with torch.inference_mode():
        for batch in tqdm(loader, desc="extract", unit="batch", mininterval=5, disable=not progress, file=sys.stderr):
            batch = batch.to(device, non_blocking=True)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                out = extractor(batch)[node]
            if out.ndim > 2:
                out = out.flatten(2).mean(dim=2)
            features = out.float().cpu().numpy()
            if not np.isfinite(features).all():
                raise AtlasError(
                    f"model.precision '{precision}' gave inf/NaN features (activations beyond its range); "
                    f"use precision bf16, fp32 or auto"
                )
            yield features


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "pillow": Image.__version__,
    }


def extract_features(
    manifest: str,
    resolved: str | None,
    root: str,
    arch: str,
    weights: str,
    node: str,
    device: str,
    precision: str,
    channels_last: bool,
    batch_size: int,
    num_workers: int,
    init_seed: int,
    features: str,
    threads: int | None,
    config_hash: str = "",
    progress: bool = True,
) -> dict:
    """Extract features for every manifest row into ``features``; return its attributes.

    ``resolved``: the record fetch_weights wrote for ``weights`` (the workflow always gives it, so
    this job reads only local files); None resolves the weights here. ``num_workers`` and
    ``threads`` change how fast the job runs, never its result.
    """
    if threads:
        torch.set_num_threads(int(threads))
    use_deterministic_algorithms()
    rows = read_manifest(manifest)
    if not rows:
        raise AtlasError(f"{manifest}: the manifest lists no images; check dataset.root and sample.n_images")
    paths = [path for path, _ in rows]
    classes = sorted({label for _, label in rows})
    class_index = {label: i for i, label in enumerate(classes)}
    labels = np.array([class_index[label] for _, label in rows], dtype=np.int64)

    torch_device = resolve_device(device)
    precision_used = resolve_precision(precision, torch_device)
    if resolved is None:
        model, weights_source, weights_random = load_model(arch, weights, init_seed)
    else:
        record = read_record(resolved)
        if (record["arch"], record["weights"]) != (arch, str(weights)):
            raise AtlasError(
                f"{resolved} was written for model.arch '{record['arch']}', model.weights '{record['weights']}', "
                f"not '{arch}', '{weights}'; delete it and rerun"
            )
        model, weights_source, weights_random = model_from_record(record, init_seed)
    node = resolve_node(model, node)
    extractor = create_feature_extractor(model, return_nodes=[node]).to(torch_device).eval()
    if channels_last:
        extractor = extractor.to(memory_format=torch.channels_last)
    transform = preprocessing_for(arch)
    loader = DataLoader(
        ImageFiles(root, paths, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=torch_device.type == "cuda",
    )
    LOGGER.info(
        "extracting %s node '%s' for %d images on %s (%s%s, batch %d, %d workers, %s); weights: %s",
        arch,
        node,
        len(paths),
        torch_device,
        precision_used,
        " from auto" if precision == "auto" else "",
        batch_size,
        num_workers,
        "channels-last" if channels_last else "NCHW",
        weights_source,
    )
    attrs = {
        "model": arch,
        "node": node,
        "weights": str(weights),
        "weights_source": weights_source,
        "weights_random": bool(weights_random),
        "preprocessing": " ".join(repr(transform).split()),
        "device": str(torch_device),
        "precision": precision_used,
        "precision_setting": precision,
        "channels_last": bool(channels_last),
        "batch_size": int(batch_size),
        "dataset_root": str(root),
        "n_images": len(paths),
        "versions": library_versions(),
        "config_hash": config_hash,
    }
    batches = iter_feature_batches(extractor, node, loader, torch_device, precision_used, channels_last, progress)
    attrs["feature_dim"] = write_features(features, batches, len(paths), labels, classes, paths, attrs)
    LOGGER.info("wrote %s: %d x %d features", features, len(paths), attrs["feature_dim"])
    return attrs
