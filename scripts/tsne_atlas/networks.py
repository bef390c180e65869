"""The networks a feature set can come from, each built as a ``Network``: a module that maps a batch
of images to the outputs of the set's nodes in one forward pass, and the preprocessing it expects.

Sources: ``torchvision`` classifiers (built here), ``timm`` models and your own network saved as
TorchScript or with ``torch.export``. Weights were resolved before (stage fetch_weights, module
``weights``) into a record naming local files only, so building a network never touches the network.
"""

import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.models import get_model, get_model_weights
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from .config import PENULTIMATE
from .jobs import AtlasError
from .weights import check_arch

LOGGER = logging.getLogger("tsne_atlas.networks")


@dataclass
class Network:
    """A network ready to extract: ``module(batch)`` returns ``{node: tensor}`` for every config node.

    ``nodes`` maps each node as the config names it to what it resolved to (``penultimate`` ->
    ``flatten`` for a ResNet), recorded in the features file.
    """

    module: torch.nn.Module
    nodes: dict[str, str]
    transform: Callable
    weights_source: str
    weights_random: bool


class RenamedOutputs(torch.nn.Module):
    """Wraps a feature extractor whose outputs are keyed by graph node: keys them by config node."""

    def __init__(self, extractor: torch.nn.Module, nodes: dict[str, str]):
        super().__init__()
        self.extractor = extractor
        self.nodes = dict(nodes)

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.extractor(batch)
        return {node: outputs[graph_node] for node, graph_node in self.nodes.items()}


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


def visible_weights_file(record: dict, key: str) -> str:
    """The local weights file a record names, checked to exist on this host."""
    path = record["path"]
    if not Path(path).is_file():
        raise AtlasError(
            f"weights file {path} ({key} '{record['weights']}', resolved by fetch_weights on "
            f"the submitting host) is not visible on {platform.node()}; put the model cache on a "
            f"filesystem every node sees (set $TORCH_HOME or $HF_HOME) or set {key} to a file there"
        )
    return path


def load_weights_into(model: torch.nn.Module, state: dict, record: dict, key: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise AtlasError(
            f"{key} file '{record['weights'] if record['kind'] == 'file' else record['path']}' does not fit "
            f"arch '{record['arch']}' ({first[1].strip() if len(first) > 1 else first[0]}); "
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


def torchvision_preprocessing(arch: str):
    """The preprocessing of the arch's default torchvision weights (resize, crop, normalise).

    Used for every weights choice, so a random or custom model sees the same input a
    pretrained one would.
    """
    return get_model_weights(arch).DEFAULT.transforms()


def penultimate_node(model: torch.nn.Module, node_names: Callable = get_graph_node_names) -> str:
    """The graph node feeding the classifier's last layer (``flatten`` for ResNets).

    That is the node before the last ``Linear``; for fully convolutional classifiers
    (SqueezeNet) the node before the last convolution.
    """
    _, eval_nodes = node_names(model)
    modules = dict(model.named_modules())
    for layer_type in (torch.nn.Linear, torch.nn.Conv2d):
        positions = [i for i, name in enumerate(eval_nodes) if isinstance(modules.get(name), layer_type)]
        if positions and positions[-1] > 0:
            return eval_nodes[positions[-1] - 1]
    return eval_nodes[-2]


def resolve_nodes(
    model: torch.nn.Module, nodes: list[str], key: str = "nodes", node_names: Callable = get_graph_node_names
) -> dict[str, str]:
    """Each config node -> the graph node it means. ``penultimate`` is found; a module name
    (e.g. 'layer3') stands for the last node inside it, as in create_feature_extractor."""
    _, eval_nodes = node_names(model)
    resolved = {}
    for node in nodes:
        if node == PENULTIMATE:
            resolved[node] = penultimate_node(model, node_names)
            continue
        if node not in eval_nodes and not any(name.startswith(node + ".") for name in eval_nodes):
            tail = ", ".join(eval_nodes[-12:])
            raise AtlasError(
                f"{key}: '{node}' is not a node of this model; use '{PENULTIMATE}' or one of "
                f"its {len(eval_nodes)} nodes, the last being: {tail}"
            )
        resolved[node] = node
    return resolved


def torchvision_network(record: dict, nodes: list[str], init_seed: int = 0, key: str = "features") -> Network:
    """A torchvision classifier giving ``nodes`` (one forward pass for all of them)."""
    model = torchvision_model(record, init_seed, f"{key}.weights")
    resolved = resolve_nodes(model, nodes, f"{key}.nodes")
    extractor = create_feature_extractor(model, return_nodes=sorted(set(resolved.values())))
    return Network(
        module=RenamedOutputs(extractor, resolved).eval(),
        nodes=resolved,
        transform=torchvision_preprocessing(record["arch"]),
        weights_source=record["weights_source"],
        weights_random=bool(record["weights_random"]),
    )


# Builders by source, each called as builder(settings, record, key) -> Network; ``record`` is the
# fetch_weights record (None for sources without weights to resolve).
BUILDERS: dict[str, Callable[..., Network]] = {
    "torchvision": lambda settings, record, key: torchvision_network(
        record, list(settings["nodes"]), int(settings["init_seed"]), key
    ),
}


def build_network(settings: dict, record: dict | None, key: str) -> Network:
    """The Network of a feature set's ``settings`` (schema defaults filled in). ``key``: ``features.<set>``."""
    source = settings["source"]
    if source not in BUILDERS:
        raise AtlasError(f"{key}.source '{source}' has no network builder; use one of {sorted(BUILDERS)}")
    if record is not None and record.get("warning"):
        # auto fell back to random weights: say it in this job's log too.
        LOGGER.warning("%s", record["warning"])
    return BUILDERS[source](settings, record, key)
