"""Stage fetch_weights: resolve a feature set's ``weights`` once, on the host that runs Snakemake.

A local rule: on a cluster it runs on the login node, which can reach the internet when compute
nodes cannot. For torchvision, ``auto``/``pretrained``/``imagenet`` take the ImageNet state dict
from the torch hub cache (``$TORCH_HOME``, default ``~/.cache/torch/hub``) or download it there; a
state-dict file is taken as it is. The result is a small JSON record (``files.weights_record``) that extraction reads, so
extraction loads a local file and never touches the network. ``auto`` without reachable
ImageNet weights gives kind ``random``: a loud warning here, which the extraction repeats.
"""

import difflib
import hashlib
import logging
import os
import socket
from pathlib import Path

import torch
import torchvision
from torchvision.models import get_model_weights, list_models

from .config import WEIGHT_KEYWORDS
from .files.weights_record import write_record
from .jobs import AtlasError

LOGGER = logging.getLogger("tsne_atlas.fetch_weights")
DOWNLOAD_TIMEOUT_S = 60


def classification_models() -> list[str]:
    return list_models(module=torchvision.models)


def close_matches(name: str, names: list[str], n: int = 5) -> str:
    """'; close matches: a, b' for a mistyped name, or '' when nothing is close."""
    matches = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
    return f"; close matches: {', '.join(matches)}" if matches else ""


def check_arch(arch: str, key: str = "arch") -> None:
    models = classification_models()
    if arch not in models:
        raise AtlasError(
            f"{key} '{arch}' is not a torchvision classification model{close_matches(arch, models)}; "
            f"torchvision.models.list_models() lists them all"
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


def resolve_weights(arch: str, weights: str, init_seed: int = 0, key: str = "features.resnet101") -> dict:
    """Decide what a torchvision set's ``weights`` means here and now; returns the record described above.

    ``pretrained``/``imagenet`` without reachable weights is a one-line AtlasError; ``auto`` falls
    back to random initialisation with a loud warning. ``key`` names the set in messages.
    """
    check_arch(arch, f"{key}.arch")
    weights = str(weights)
    record = {
        "arch": arch,
        "weights": weights,
        "kind": None,
        "enum": None,
        "path": None,
        "weights_source": None,
        "weights_random": None,
        "warning": None,
    }
    if weights == "none":
        return {
            **record,
            "kind": "none",
            "weights_random": True,
            "weights_source": f"random initialisation (weights: none, init_seed {init_seed})",
        }
    if weights not in WEIGHT_KEYWORDS:
        if not Path(weights).is_file():
            raise AtlasError(f"{key}.weights file '{weights}' does not exist; give the path of a saved state dict")
        return {
            **record,
            "kind": "file",
            "path": os.path.abspath(weights),
            "weights_random": False,
            "weights_source": f"file {Path(weights).name} (sha256 {file_sha256(weights)[:16]})",
        }
    try:
        enum, _ = _imagenet_state_dict(arch)
        path = _imagenet_cache_path(arch)
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing after loading")
    except Exception as err:
        url = get_model_weights(arch).DEFAULT.url
        if weights != "auto":
            raise AtlasError(
                f"{key}.weights is '{weights}' but the {arch} ImageNet weights could not be had "
                f"({type(err).__name__}); download {url} on a machine with "
                f"internet and put it at {_imagenet_cache_path(arch)}, or set {key}.weights to the file's path"
            ) from None
        warning = (
            f"!!! ImageNet weights for {arch} could not be had ({type(err).__name__}: {err}); using RANDOM "
            f"initialisation. Features and figures do not show what a trained network sees. Put {url} at "
            f"{_imagenet_cache_path(arch)} or set {key}.weights to a state-dict file."
        )
        LOGGER.warning("%s", warning)
        return {
            **record,
            "kind": "random",
            "weights_random": True,
            "warning": warning,
            "weights_source": f"random initialisation (ImageNet weights unavailable, init_seed {init_seed})",
        }
    name = f"{type(enum).__name__}.{enum.name}"
    return {
        **record,
        "kind": "pretrained",
        "enum": name,
        "path": str(path),
        "weights_random": False,
        "weights_source": f"imagenet ({name})",
    }


# Weight resolvers by source: resolver(arch, weights, init_seed, key) -> record.
RESOLVERS = {"torchvision": resolve_weights}


def fetch_weights(feature_set: str, source: str, arch: str, weights: str, init_seed: int, resolved: str) -> dict:
    """Resolve a feature set's ``weights`` for ``arch`` and write the record to ``resolved`` (rule fetch_weights)."""
    key = f"features.{feature_set}"
    if source not in RESOLVERS:
        raise AtlasError(f"{key}.source '{source}' has no weights to resolve; it needs no fetch_weights job")
    record = RESOLVERS[source](arch, str(weights), init_seed, key)
    record["source"] = source
    write_record(record, resolved)
    LOGGER.info(
        "%s.weights '%s' for %s: %s%s",
        key,
        weights,
        arch,
        record["weights_source"],
        f" from {record['path']}" if record["path"] else "",
    )
    return record
