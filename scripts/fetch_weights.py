"""Stage 1b, fetch_weights: resolve ``model.weights`` once, on the host that runs Snakemake.

A local rule: on a cluster it runs on the login node, which can reach the internet when compute
nodes cannot. ``auto``/``imagenet`` take torchvision's ImageNet state dict from the torch hub cache
(``$TORCH_HOME``, default ``~/.cache/torch/hub``) or download it there; a state-dict file is taken
as it is. The result is a small JSON record that extraction reads, so extraction loads a local file
and never touches the network:

    {"arch": "resnet101", "weights": "auto", "kind": "imagenet", "enum": "ResNet101_Weights.IMAGENET1K_V2",
     "path": "/home/me/.cache/torch/hub/checkpoints/resnet101-cd907fc2.pth",
     "weights_source": "imagenet (ResNet101_Weights.IMAGENET1K_V2)", "weights_random": false, "warning": null}

``kind`` is ``imagenet``, ``file`` (model.weights is a path), ``none`` (random initialisation asked
for) or ``random`` (``auto`` without reachable ImageNet weights: a loud warning, and the
extraction repeats it).
"""

import hashlib
import json
import logging
import os
import socket
from pathlib import Path

import torch
import torchvision
from torchvision.models import get_model_weights, list_models

from atlas_config import WEIGHT_KEYWORDS
from workflow_utils import AtlasError, atomic_path, job_log

LOGGER = logging.getLogger("tsne_atlas.fetch_weights")
DOWNLOAD_TIMEOUT_S = 60
KINDS = ("imagenet", "file", "none", "random")


def classification_models() -> list[str]:
    return list_models(module=torchvision.models)


def check_arch(arch: str) -> None:
    if arch not in classification_models():
        raise AtlasError(
            f"model.arch '{arch}' is not a torchvision classification model; "
            f"choose one of: {', '.join(classification_models())}"
        )


def _imagenet_state_dict(arch: str):
    """ImageNet weights through torchvision's enum (hub cache first, then download)."""
    weights = get_model_weights(arch).DEFAULT
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # an offline host should fail, not hang
    try:
        return weights, weights.get_state_dict(progress=False, check_hash=True)
    finally:
        socket.setdefaulttimeout(previous)


def _imagenet_cache_path(arch: str) -> Path:
    weights = get_model_weights(arch).DEFAULT
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(arch: str, weights: str, init_seed: int = 0) -> dict:
    """Decide what ``model.weights`` means here and now; returns the record described above.

    ``imagenet`` without reachable weights is a one-line AtlasError; ``auto`` falls back to random
    initialisation with a loud warning.
    """
    check_arch(arch)
    weights = str(weights)
    record = {"arch": arch, "weights": weights, "kind": None, "enum": None, "path": None,
              "weights_source": None, "weights_random": None, "warning": None}
    if weights == "none":
        return {**record, "kind": "none", "weights_random": True,
                "weights_source": f"random initialisation (model.weights: none, init_seed {init_seed})"}
    if weights not in WEIGHT_KEYWORDS:
        if not Path(weights).is_file():
            raise AtlasError(f"model.weights file '{weights}' does not exist; give the path of a saved state dict")
        return {**record, "kind": "file", "path": os.path.abspath(weights), "weights_random": False,
                "weights_source": f"file {Path(weights).name} (sha256 {file_sha256(weights)[:16]})"}
    try:
        enum, _ = _imagenet_state_dict(arch)
        path = _imagenet_cache_path(arch)
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing after loading")
    except Exception as err:
        url = get_model_weights(arch).DEFAULT.url
        if weights == "imagenet":
            raise AtlasError(
                f"model.weights is 'imagenet' but the {arch} ImageNet weights could not be had "
                f"({type(err).__name__}); download {url} on a machine with "
                f"internet and put it at {_imagenet_cache_path(arch)}, or set model.weights to the file's path"
            ) from None
        warning = (
            f"!!! ImageNet weights for {arch} could not be had ({type(err).__name__}: {err}); using RANDOM "
            f"initialisation. Features and figures do not show what a trained network sees. Put {url} at "
            f"{_imagenet_cache_path(arch)} or set model.weights to a state-dict file."
        )
        LOGGER.warning("%s", warning)
        return {**record, "kind": "random", "weights_random": True, "warning": warning,
                "weights_source": f"random initialisation (ImageNet weights unavailable, init_seed {init_seed})"}
    name = f"{type(enum).__name__}.{enum.name}"
    return {**record, "kind": "imagenet", "enum": name, "path": str(path), "weights_random": False,
            "weights_source": f"imagenet ({name})"}


def write_record(record: dict, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def read_record(path: str | os.PathLike) -> dict:
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    if record.get("kind") not in KINDS:
        raise AtlasError(f"{path}: not a weights record written by fetch_weights; delete it and rerun")
    return record


def fetch_weights(arch: str, weights: str, output: str, init_seed: int = 0) -> dict:
    record = resolve_weights(arch, weights, init_seed)
    write_record(record, output)
    LOGGER.info("model.weights '%s' for %s: %s%s", weights, arch, record["weights_source"],
                f" from {record['path']}" if record["path"] else "")
    return record


def main(snakemake) -> None:
    params = snakemake.params
    with job_log(snakemake.log[0]):
        fetch_weights(params.arch, str(params.weights), snakemake.output.resolved, int(params.init_seed))


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
