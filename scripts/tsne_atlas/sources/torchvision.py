"""Source ``torchvision``: torchvision classifiers, their weights resolution and their builder.

Weights (stage fetch_weights, on the host that runs Snakemake): ``auto``/``pretrained``/``imagenet``
take the ImageNet state dict from the torch hub cache (``$TORCH_HOME``, default ``~/.cache/torch/hub``)
or download it there; a state-dict file is taken as it is. Building reads the record's local file only.
"""

import os
import socket
from pathlib import Path

import torch
import torchvision
from torchvision.models import get_model, get_model_weights, list_models
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from ..config import WEIGHT_KEYWORDS
from ..jobs import AtlasError
from .network import (
    DOWNLOAD_TIMEOUT_S,
    Network,
    RenamedOutputs,
    blank_record,
    close_matches,
    head_width,
    local_record,
    prediction_classes,
    random_fallback,
    resolve_nodes,
    visible_weights_file,
)


def classification_models() -> list[str]:
    return list_models(module=torchvision.models)


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


def resolve_weights(arch: str, weights: str, init_seed: int = 0, key: str = "features.resnet101") -> dict:
    """Decide what a torchvision set's ``weights`` means here and now; returns its record (``files.weights_record``).

    ``pretrained``/``imagenet`` without reachable weights is a one-line AtlasError; ``auto`` falls
    back to random initialisation with a loud warning. ``key`` names the set in messages.
    """
    check_arch(arch, f"{key}.arch")
    weights = str(weights)
    record = blank_record(arch, weights)
    if weights == "none" or weights not in WEIGHT_KEYWORDS:
        if weights != "none" and not Path(weights).is_file():
            raise AtlasError(f"{key}.weights file '{weights}' does not exist; give the path of a saved state dict")
        return local_record(record, init_seed)
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
        return random_fallback(record, warning, "ImageNet weights", init_seed)
    name = f"{type(enum).__name__}.{enum.name}"
    return {
        **record,
        "kind": "pretrained",
        "enum": name,
        "path": str(path),
        "weights_random": False,
        "weights_source": f"imagenet ({name})",
    }


# ---------------------------------------------------------------------------------------------------
# The network


def load_state_dict_file(path: str | os.PathLike, key: str = "weights") -> dict:
    """Load a state dict with ``weights_only=True`` (no arbitrary code from the file).

    ``key`` names the setting in errors (``features.<set>.weights``).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AtlasError(f"{key} file '{path}' does not exist; give the path of a saved state dict") from None
    except Exception as err:
        raise AtlasError(
            f"{key} file '{path}' could not be loaded as a state dict ({type(err).__name__}); "
            f"save it with torch.save(model.state_dict(), path)"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # common checkpoint wrapper
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AtlasError(
            f"{key} file '{path}' is not a state dict (a mapping of names to tensors); "
            f"save it with torch.save(model.state_dict(), path)"
        )
    return state


def load_weights_into(model: torch.nn.Module, state: dict, record: dict, key: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise AtlasError(
            f"{key} file '{record['weights'] if record['kind'] == 'file' else record['path']}' does not fit "
            f"{key.rsplit('.', 1)[0]}.arch '{record['arch']}' ({first[1].strip() if len(first) > 1 else first[0]}); "
            f"use the arch the weights were saved from"
        ) from None


def torchvision_model(record: dict, init_seed: int = 0, key: str = "weights") -> torch.nn.Module:
    """``record['arch']`` with the weights a fetch_weights record names (local files only), in eval mode."""
    arch = record["arch"]
    check_arch(arch, key.rsplit(".", 1)[0] + ".arch" if "." in key else "arch")
    torch.manual_seed(init_seed)
    model = get_model(arch, weights=None)
    if record["kind"] in ("pretrained", "file"):
        load_weights_into(model, load_state_dict_file(visible_weights_file(record, key), key), record, key)
    return model.eval()


def torchvision_categories(record: dict) -> list[str] | None:
    """The class names of the torchvision weights enum a ``pretrained`` record resolved to
    (``weights.meta['categories']``, ImageNet's 1000 for ImageNet weights); None for other weights.
    Read from torchvision's enum, so nothing is downloaded."""
    if record.get("kind") != "pretrained" or not record.get("enum"):
        return None
    enum_class, _, member = str(record["enum"]).rpartition(".")
    weights = get_model_weights(record["arch"])
    if enum_class and weights.__name__ != enum_class:
        return None
    try:
        categories = weights[member].meta.get("categories")
    except KeyError:
        return None
    return list(categories) if categories else None


def torchvision_preprocessing(arch: str):
    """The preprocessing of the arch's default torchvision weights (resize, crop, normalise).

    Used for every weights choice, so a random or custom model sees the same input a
    pretrained one would.
    """
    return get_model_weights(arch).DEFAULT.transforms()


def torchvision_network(
    record: dict, nodes: list[str], init_seed: int = 0, key: str = "features", class_names: str = ""
) -> Network:
    """A torchvision classifier giving ``nodes`` (one forward pass for all of them), and its logits when
    it has class names (``class_names``, a file, or its ImageNet weights' categories): see ``Network``."""
    model = torchvision_model(record, init_seed, f"{key}.weights")
    traced = get_graph_node_names(model)  # traced once, not once per question
    resolved = resolve_nodes(model, nodes, f"{key}.nodes", node_names=lambda _: traced)
    names, reason = prediction_classes(record, head_width(model), class_names, torchvision_categories(record), key)
    logits_node = traced[1][-1] if names else None  # the model's output (``fc`` for a ResNet)
    return_nodes = set(resolved.values()) | ({logits_node} if logits_node else set())
    extractor = create_feature_extractor(model, return_nodes=sorted(return_nodes))
    return Network(
        module=RenamedOutputs(extractor, resolved, logits_node).eval(),
        nodes=resolved,
        transform=torchvision_preprocessing(record["arch"]),
        weights_source=record["weights_source"],
        weights_random=bool(record["weights_random"]),
        class_names=names,
        predictions_reason=reason,
    )


def build(settings: dict, record: dict, key: str) -> Network:
    """The Network of a torchvision set's ``settings`` and its fetch_weights ``record``."""
    return torchvision_network(
        record, list(settings["nodes"]), int(settings["init_seed"]), key, settings["class_names"]
    )
