"""What every network source shares: the ``Network`` an extraction runs (a module that maps a batch
of images to the outputs of the set's nodes in one forward pass, and the preprocessing it expects),
the class names and classifier width behind the stored top-5, node handling (``penultimate``, module
names), and the common cases of a weights record (``none``, a file, ``auto``'s random fallback) that
the sources with weights to resolve (``torchvision``, ``timm``) build theirs from.
"""

import difflib
import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.models.feature_extraction import get_graph_node_names

from ..config import PENULTIMATE
from ..files.features import PREDICTIONS_STORED
from ..jobs import AtlasError, file_sha256

# The weights records below are made by stage fetch_weights (module ``weights``), which logs as itself.
LOGGER = logging.getLogger("tsne_atlas.fetch_weights")
DOWNLOAD_TIMEOUT_S = 60
# The output key of the classifier's logits, beside the feature nodes (never a config node: the schema
# does not allow '@' in node names). A network returns it only when it has class names to predict.
LOGITS = "@logits"
# Why a features file holds no predictions (its ``predictions`` attribute; "stored" when it does).
NO_PREDICTIONS_RANDOM = "none: random weights"
NO_PREDICTIONS_OWN = "none: own network (its output is the feature, no classifier)"


def no_class_names(key: str) -> str:
    return f"none: no class names (give {key}.class_names)"


@dataclass
class Network:
    """A network ready to extract: ``module(batch)`` returns ``{node: tensor}`` for every config node.

    ``nodes`` maps each node as the config names it to what it resolved to (``penultimate`` ->
    ``flatten`` for a ResNet), recorded in the features file.

    ``class_names``: the name of each of the classifier's outputs when the network predicts classes; then
    ``module(batch)`` also returns the classifier's logits under ``LOGITS`` (not a node), from the same
    pass. ``predictions_reason``: ``stored``, or why there are no predictions (``none: ...``).
    """

    module: torch.nn.Module
    nodes: dict[str, str]
    transform: Callable
    weights_source: str
    weights_random: bool
    class_names: list[str] | None = None
    predictions_reason: str = NO_PREDICTIONS_OWN


class RenamedOutputs(torch.nn.Module):
    """Wraps a feature extractor whose outputs are keyed by graph node: keys them by config node, and
    the graph node ``logits_node`` (the model's output), when given, by ``LOGITS``."""

    def __init__(self, extractor: torch.nn.Module, nodes: dict[str, str], logits_node: str | None = None):
        super().__init__()
        self.extractor = extractor
        self.nodes = dict(nodes)
        self.logits_node = logits_node

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.extractor(batch)
        renamed = {node: outputs[graph_node] for node, graph_node in self.nodes.items()}
        if self.logits_node is not None:
            renamed[LOGITS] = outputs[self.logits_node]
        return renamed


def read_class_names(path: str, key: str) -> list[str]:
    """The class names of a ``class_names`` file: one per line (trailing blank lines ignored)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise AtlasError(
            f"{key} file '{path}' could not be read ({type(err).__name__}); give a UTF-8 text file "
            f"with one class name per line"
        ) from None
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    return names


def head_width(model: torch.nn.Module) -> int:
    """The number of outputs of a classifier: timm's ``num_classes``, else the out width of the last
    ``Linear`` (of the last ``Conv2d`` for fully convolutional classifiers such as SqueezeNet); 0 without."""
    if isinstance(getattr(model, "num_classes", None), int):
        return int(model.num_classes)
    for layer_type, width in ((torch.nn.Linear, "out_features"), (torch.nn.Conv2d, "out_channels")):
        layers = [module for module in model.modules() if isinstance(module, layer_type)]
        if layers:
            return int(getattr(layers[-1], width))
    return 0


def prediction_classes(
    record: dict, width: int, class_names: str | None, builtin: list[str] | None, key: str
) -> tuple[list[str] | None, str]:
    """(class names, predictions reason) of a network whose classifier has ``width`` outputs.

    ``class_names``: the set's ``class_names`` file (checked whenever given), which comes before
    ``builtin``, the names its weights come with (ImageNet's). Random weights predict nothing.
    """
    names = None
    if class_names:
        names_key = f"{key}.class_names"
        names = read_class_names(class_names, names_key)
        if width == 0:
            raise AtlasError(
                f"{names_key} '{class_names}' is given but the network has no classifier (its weights have none); "
                f"remove {names_key}"
            )
        if len(names) != width:
            raise AtlasError(
                f"{names_key} file '{class_names}' has {len(names)} lines but the network's classifier has {width} "
                f"outputs; give one class name per line, one line per output, in the order of the outputs"
            )
    elif builtin is not None and len(builtin) == width:
        names = list(builtin)
    if record["weights_random"]:
        return None, NO_PREDICTIONS_RANDOM
    if names is None:
        return None, no_class_names(key)
    return names, PREDICTIONS_STORED


# Mutation testing (`make mutation`, docs/development.md) covers the prediction part above: class names,
# the classifier's width, the logits output. Node handling and weights records, below, are left to the
# unit and workflow tests.
# pragma: no mutate start
def close_matches(name: str, names: list[str], n: int = 5) -> str:
    """'; close matches: a, b' for a mistyped name, or '' when nothing is close."""
    matches = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
    return f"; close matches: {', '.join(matches)}" if matches else ""


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
    model: torch.nn.Module,
    nodes: list[str],
    key: str = "nodes",
    node_names: Callable = get_graph_node_names,
    find_penultimate: Callable = penultimate_node,
) -> dict[str, str]:
    """Each config node -> the graph node it means. ``penultimate`` is found by
    ``find_penultimate(model, node_names)``; a module name (e.g. 'layer3') stands for the last node
    inside it, as in create_feature_extractor."""
    _, eval_nodes = node_names(model)
    resolved = {}
    for node in nodes:
        if node == PENULTIMATE:
            resolved[node] = find_penultimate(model, node_names)
            continue
        if node not in eval_nodes and not any(name.startswith(node + ".") for name in eval_nodes):
            tail = ", ".join(eval_nodes[-12:])
            # Module names (layer3 for layer3.1.relu_1) count too: a typo of one is the usual mistake.
            names = sorted(set(eval_nodes) | {name.rsplit(".", i)[0] for name in eval_nodes for i in (1, 2)})
            raise AtlasError(
                f"{key}: '{node}' is not a node of this model{close_matches(node, names)}; use '{PENULTIMATE}' "
                f"or one of its {len(eval_nodes)} nodes, the last being: {tail}"
            )
        resolved[node] = node
    return resolved


# ---------------------------------------------------------------------------------------------------
# Weights records: what the sources with weights share (``files.weights_record`` is the file's layout)


def blank_record(arch: str, weights: str) -> dict:
    """A weights record (``files.weights_record``) before it is decided what ``weights`` means."""
    return {
        "arch": arch,
        "weights": weights,
        "kind": None,
        "enum": None,
        "path": None,
        "package": None,
        "weights_source": None,
        "weights_random": None,
        "warning": None,
    }


def local_record(record: dict, init_seed: int) -> dict:
    """The record of weights that need no lookup: ``none`` (random initialisation) or a checked file."""
    weights = record["weights"]
    if weights == "none":
        return {
            **record,
            "kind": "none",
            "weights_random": True,
            "weights_source": f"random initialisation (weights: none, init_seed {init_seed})",
        }
    return {
        **record,
        "kind": "file",
        "path": os.path.abspath(weights),
        "weights_random": False,
        "weights_source": f"file {Path(weights).name} (sha256 {file_sha256(weights)[:16]})",
    }


def random_fallback(record: dict, warning: str, missing: str, init_seed: int) -> dict:
    """``auto`` without its pretrained weights: random initialisation, said loudly (here, in the record
    that extraction repeats, and on every figure through ``weights_random``)."""
    LOGGER.warning("%s", warning)
    return {
        **record,
        "kind": "random",
        "weights_random": True,
        "warning": warning,
        "weights_source": f"random initialisation ({missing} unavailable, init_seed {init_seed})",
    }


# pragma: no mutate end
