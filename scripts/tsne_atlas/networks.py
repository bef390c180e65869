"""The networks a feature set can come from, each built as a ``Network``: a module that maps a batch
of images to the outputs of the set's nodes in one forward pass, and the preprocessing it expects.

Sources: ``torchvision`` classifiers (built here), ``timm`` models and your own network saved as
TorchScript or with ``torch.export``. Weights were resolved before (stage fetch_weights, module
``weights``) into a record naming local files only, so building a network never touches the network.
"""

import inspect
import io
import json
import logging
import os
import platform
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.models import get_model, get_model_weights
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from .config import PENULTIMATE
from .files.features import PREDICTIONS_STORED
from .jobs import AtlasError
from .weights import check_arch, close_matches, file_sha256

LOGGER = logging.getLogger("tsne_atlas.networks")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
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
# the classifier's width, the logits output. Building networks, below, is left to the unit and workflow tests.
# pragma: no mutate start
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


def torchvision_network(
    record: dict, nodes: list[str], init_seed: int = 0, key: str = "features", class_names: str | None = None
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


# ---------------------------------------------------------------------------------------------------
# timm


def timm_graph_node_names(model: torch.nn.Module):
    """(train, eval) graph node names, traced with timm's leaf modules and functions."""
    from timm.models._features_fx import get_graph_node_names as timm_node_names

    return timm_node_names(model)


def timm_penultimate_node(model: torch.nn.Module, node_names: Callable = timm_graph_node_names) -> str:
    """The graph node feeding a timm model's classifier (``get_classifier()``): the node before the
    classifier's first node. timm's own ``Linear`` is traced through (its weight is a node), so the
    classifier is looked for by module name; without one, ``penultimate_node``'s rule applies."""
    _, eval_nodes = node_names(model)
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    names = {id(module): name for name, module in model.named_modules()}
    name = names.get(id(classifier)) if isinstance(classifier, torch.nn.Module) else None
    if name:
        for i, node in enumerate(eval_nodes):
            if i > 0 and (node == name or node.startswith(name + ".")):
                return eval_nodes[i - 1]
    return penultimate_node(model, node_names)


class PreLogits(torch.nn.Module):
    """A timm model's ``forward_head(forward_features(x), pre_logits=True)`` as ``{'penultimate': ...}``:
    the classifier's input, exactly as timm defines it, without tracing. ``logits``: also the model's
    output, ``forward_head(forward_features(x))``, under ``LOGITS`` (the same forward_features)."""

    def __init__(self, model: torch.nn.Module, logits: bool = False):
        super().__init__()
        self.model = model
        self.logits = logits

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.model.forward_features(batch)
        outputs = {PENULTIMATE: self.model.forward_head(features, pre_logits=True)}
        if self.logits:
            outputs[LOGITS] = self.model.forward_head(features)
        return outputs


def timm_imagenet_names(model: torch.nn.Module, record: dict) -> list[str] | None:
    """ImageNet-1k's class names as timm ships them (``timm.data.ImageNetInfo``; each class's first WordNet
    lemma, e.g. 'tench') for a model whose pretrained weights were loaded and whose pretrained config is
    an ImageNet-1k head (1000 classes, no label offset); None otherwise."""
    if record.get("kind") != "pretrained":
        return None
    from timm.data import ImageNetInfo, infer_imagenet_subset

    cfg = getattr(model, "pretrained_cfg", None) or {}
    if (
        getattr(model, "num_classes", None) != 1000
        or cfg.get("num_classes") != 1000
        or cfg.get("label_offset")
        or infer_imagenet_subset(model) != "imagenet-1k"
    ):
        return None
    return [description.split(", ")[0] for description in ImageNetInfo("imagenet-1k").label_descriptions()]


def timm_classes(shapes: dict[str, tuple[int, ...]], arch: str) -> int:
    """The number of classes a checkpoint's classifier has (0 for a checkpoint without one)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    classifiers = (cfg.classifier if cfg else None) or ()
    for name in (classifiers,) if isinstance(classifiers, str) else classifiers:
        shape = shapes.get(f"{name}.weight")
        if shape:
            return int(shape[0])
    return 0


def timm_model(record: dict, init_seed: int = 0, key: str = "features") -> torch.nn.Module:
    """timm's ``record['arch']`` with the weights of the record's local file (timm applies the model's own
    checkpoint filter, as for its pretrained weights), in eval mode. Nothing here downloads: pretrained is
    only ever a local file (``pretrained_cfg_overlay=file``); other weights are random, seeded with init_seed.

    A checkpoint file whose classifier has another number of classes (a fine-tuned model) builds the arch
    with that many classes, so it loads strictly all the same.
    """
    import timm

    from .weights import check_timm_arch, checkpoint_shapes

    arch = record["arch"]
    check_timm_arch(arch, f"{key}.arch")
    torch.manual_seed(init_seed)
    if record["kind"] not in ("pretrained", "file"):
        return timm.create_model(arch, pretrained=False).eval()
    weights_key = f"{key}.weights"
    path = visible_weights_file(record, weights_key)
    overlay: dict = {"file": path, "source": None}
    if record["kind"] == "file":
        overlay["num_classes"] = timm_classes(checkpoint_shapes(path, weights_key), arch)
    try:
        model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=overlay)
    except AtlasError:
        raise
    except Exception as err:
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else (lines or [""])[0]
        shown = record["weights"] if record["kind"] == "file" else path
        raise AtlasError(
            f"{weights_key} file '{shown}' does not fit timm arch '{arch}' ({type(err).__name__}: {detail[:300]}); "
            f"use the arch the weights were saved from"
        ) from None
    return model.eval()


def check_penultimate(model: torch.nn.Module, extractor: torch.nn.Module, node: str, input_size, key: str) -> None:
    """The traced penultimate node must give what timm's ``forward_head(..., pre_logits=True)`` gives."""
    batch = torch.randn((1, *input_size), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(batch), pre_logits=True)
        traced = extractor(batch)[node]
    if traced.shape != expected.shape or not torch.allclose(traced, expected, rtol=1e-4, atol=1e-5):
        raise AtlasError(
            f"{key}.nodes: in this timm model the graph node before the classifier ('{node}') is not its "
            f"pre-logits; list '{PENULTIMATE}' alone (nodes: [{PENULTIMATE}]) or name graph nodes only"
        )


def timm_network(
    record: dict, nodes: list[str], init_seed: int = 0, key: str = "features", class_names: str | None = None
) -> Network:
    """A timm model giving ``nodes``, all in one forward pass.

    ``penultimate`` is the classifier's input as ``forward_head(..., pre_logits=True)`` gives it. Alone,
    it is taken by that call (no tracing, works for every timm model). With other nodes (graph node or
    module names, as for torchvision) the model is traced with timm's FX feature extraction, the
    penultimate node is the one before the classifier, checked at build time to equal the pre-logits.
    Preprocessing is the model's own eval transform (``timm.data.resolve_data_config`` + ``create_transform``).
    With class names (``class_names``, a file, or ImageNet's for pretrained ImageNet-1k weights) the
    model's output (its logits) comes from the same pass: see ``Network``.
    """
    from timm.data import create_transform, resolve_data_config
    from timm.models._features_fx import create_feature_extractor as timm_feature_extractor

    model = timm_model(record, init_seed, key)
    data_config = resolve_data_config({}, model=model)
    transform = create_transform(**data_config, is_training=False)
    names, reason = prediction_classes(record, head_width(model), class_names, timm_imagenet_names(model, record), key)
    if list(nodes) == [PENULTIMATE]:
        if "pre_logits" not in inspect.signature(model.forward_head).parameters:
            raise AtlasError(
                f"{key}.nodes: timm arch '{record['arch']}' has no forward_head(pre_logits=True); "
                f"name the graph node to take instead of '{PENULTIMATE}'"
            )
        module, resolved = PreLogits(model, bool(names)), {PENULTIMATE: "forward_head(pre_logits=True)"}
    else:
        try:
            traced = timm_graph_node_names(model)  # traced once, not once per question
            resolved = resolve_nodes(
                model, nodes, f"{key}.nodes", node_names=lambda _: traced, find_penultimate=timm_penultimate_node
            )
            logits_node = traced[1][-1] if names else None  # the model's output (``fc`` for a ResNet)
            return_nodes = set(resolved.values()) | ({logits_node} if logits_node else set())
            extractor = timm_feature_extractor(model, return_nodes=sorted(return_nodes))
        except AtlasError:
            raise
        except Exception as err:
            raise AtlasError(
                f"{key}.nodes: timm arch '{record['arch']}' cannot be traced with torch.fx to take several nodes "
                f"({type(err).__name__}); use nodes: [{PENULTIMATE}], which needs no tracing"
            ) from None
        if PENULTIMATE in resolved:
            check_penultimate(model, extractor, resolved[PENULTIMATE], data_config["input_size"], key)
        module = RenamedOutputs(extractor, resolved, logits_node)
    return Network(
        module=module.eval(),
        nodes=resolved,
        transform=transform,
        weights_source=record["weights_source"],
        weights_random=bool(record["weights_random"]),
        class_names=names,
        predictions_reason=reason,
    )


# ---------------------------------------------------------------------------------------------------
# Your own network: TorchScript or torch.export

SAVE_HOW = {
    "torchscript": "torch.jit.save(torch.jit.script(model.eval()), 'model.pt')",
    "export": (
        "torch.export.save(torch.export.export(model.eval(), (example,), "
        "dynamic_shapes=({0: torch.export.Dim('batch')},)), 'model.pt2')"
    ),
}
OTHER_SOURCE = {"torchscript": "export", "export": "torchscript"}
SOURCE_NAMES = {"torchscript": "TorchScript", "export": "torch.export"}

# What an exported program may hold for this workflow to load it (paths inside the archive, after its
# root folder). Anything else (AOTInductor's compiled libraries above all) is refused before loading.
EXPORT_ENTRIES = re.compile(
    r"(archive_format|archive_version|byteorder|version|\.data/.*|models/[^/]+\.json|extra/.*"
    r"|data/weights/[^/]+|data/constants/[^/]+|data/sample_inputs/[^/]+\.pt)"
)
# sympy names a shape expression may use (torch writes them as ``Symbol('s77', positive=True, integer=True)``);
# torch.export.load passes each expression to sympy.sympify, which runs it as Python.
_SYMPY_WORDS = (
    "Symbol Integer Rational Float Add Mul Pow Max Min Abs Eq Ne Lt Le Gt Ge And Or Not oo zoo nan true "
    "false True False positive negative integer nonnegative "
    "nonpositive real finite infinite even odd zero nonzero commutative precision "
    "FloorDiv ModularIndexing Where PythonMod Mod CleanDiv CeilToInt FloorToInt CeilDiv LShift RShift "
    "PowByNatural FloatPow FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator TruncToFloat TruncToInt "
    "RoundToInt RoundDecimal ToFloat Identity"
)
SYMPY_NAMES = frozenset(_SYMPY_WORDS.split())
SYMBOL_NAME = re.compile(r"[a-z]{1,3}\d+")
EXPRESSION_CHARACTERS = re.compile(r"[A-Za-z0-9_ ()+\-*/%,.'=<>!]*")
# Callables a graph node may name: operators (torch.ops.<namespace>.<op>[.<overload>]), plain arithmetic.
NODE_TARGET = re.compile(
    r"torch\.ops\.[A-Za-z]\w*\.[A-Za-z]\w*(\.[A-Za-z]\w*)?|torch\._?sym_[a-z_]+"
    r"|_operator\.(add|sub|mul|truediv|floordiv|mod|pow|neg|pos|abs|eq|ne|lt|le|gt|ge|and_|or_|xor|not_|"
    r"invert|lshift|rshift|getitem|matmul)|math\.[a-z]\w*"
)


def _json_strings(value, keys: tuple[str, ...]):
    """Every string under one of ``keys`` anywhere in a JSON document."""
    if isinstance(value, dict):
        for name, item in value.items():
            if name in keys and isinstance(item, str):
                yield name, item
            else:
                yield from _json_strings(item, keys)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item, keys)


def export_refusal(path: str) -> str | None:
    """Why torch.export.load would run more than the program's graph for this file; None when it would not.

    torch 2.14's torch.export.load (torch/export/pt2_archive/_package.py, torch/_export/serde/serialize.py)
    reads tensors as raw bytes and the program as JSON, but it also: unpickles tensor-subclass payloads
    (``use_pickle``) with torch.load with weights_only=False, opaque objects with pickle.loads and custom
    objects with TorchScript's unpickler; retries sample inputs and legacy weights with
    torch.load with weights_only=False when weights_only=True fails; loads AOTInductor shared libraries
    found in the archive; and passes every shape expression to sympy.sympify, which evaluates it as
    Python. So those are checked here first, and a program calling anything but operators is refused.
    """
    with zipfile.ZipFile(path) as archive:
        if len({name.split("/", 1)[0] for name in archive.namelist()}) != 1 or not all(
            "/" in name for name in archive.namelist()
        ):
            return "its entries are not all in one folder, as torch.export.save writes them"
        names = {name.split("/", 1)[1]: name for name in archive.namelist()}
        unexpected = sorted(
            name for name in names if name and not name.endswith("/") and not EXPORT_ENTRIES.fullmatch(name)
        )
        if unexpected:
            return f"it holds {unexpected[0]}, which is not part of a plain exported program (compiled code?)"
        models = [name[len("models/") : -len(".json")] for name in names if name.startswith("models/")]
        if not models:
            return "it holds no exported program"
        for model in models:
            if f"data/weights/{model}.pt" in names or f"data/constants/{model}.pt" in names:
                return "it uses the legacy weights format, which is unpickled; save it again with this torch"
            for config in (
                f"data/weights/{model}_weights_config.json",
                f"data/constants/{model}_constants_config.json",
            ):
                entries = json.loads(archive.read(names[config])).get("config", {}) if config in names else {}
                for name, entry in entries.items():
                    if entry.get("use_pickle") or not str(entry.get("path_name", "")).startswith(
                        ("weight_", "tensor_")
                    ):
                        return f"'{name}' is a pickled object (tensor subclass or custom object), not a plain tensor"
            sample = names.get(f"data/sample_inputs/{model}.pt")
            if sample:
                buffer = io.BytesIO(archive.read(sample))
                try:
                    torch.load(buffer, weights_only=True)
                except Exception:
                    return "its sample inputs are not plain tensors (torch.export.load would unpickle them)"
            text = archive.read(names[f"models/{model}.json"]).decode("utf-8")
            if "default_factory_module" in text or '"__enum__"' in text:
                return "its input or output structure names a Python module to import"
            program = json.loads(text)
            for _, expression in _json_strings(program, ("expr_str",)):
                words = set(re.findall(r"[A-Za-z_]\w*", expression))
                odd = sorted(w for w in words if w not in SYMPY_NAMES and not SYMBOL_NAME.fullmatch(w))
                if odd or not EXPRESSION_CHARACTERS.fullmatch(expression):
                    return f"a shape expression is not a plain sympy expression ({expression[:60]!r})"
            for _, target in _json_strings(program, ("target",)):
                if not NODE_TARGET.fullmatch(target) or "__" in target:
                    return f"a node calls '{target[:80]}', which is not an operator"
    return None


def saved_network_kind(path: str) -> str:
    """'torchscript', 'export', 'torch file' (torch.save: a state dict or a pickled model), 'zip' or 'not a zip'."""
    if not zipfile.is_zipfile(path):
        return "not a zip"
    with zipfile.ZipFile(path) as archive:
        inner = {name.split("/", 1)[1] for name in archive.namelist() if "/" in name}
    if "archive_format" in inner and any(name.startswith("models/") for name in inner):
        return "export"
    if "constants.pkl" in inner or any(name.startswith("code/") for name in inner):
        return "torchscript"
    if "data.pkl" in inner:
        return "torch file"
    return "zip"


def refuse_network_file(source: str, path: str, key: str, found: str) -> AtlasError:
    """The one-line error for a ``path`` that is not a ``source`` network: what it is instead and the fix."""
    kind = saved_network_kind(path)
    if kind == OTHER_SOURCE[source]:
        what = f"a {SOURCE_NAMES[kind]} file, not {SOURCE_NAMES[source]}; set {key}.source: {kind}"
    elif kind == "torch file":
        what = (
            f"a torch.save file (a state dict or a pickled model), not a saved network; save it with {SAVE_HOW[source]}"
        )
    else:
        what = f"not a {SOURCE_NAMES[source]} file ({found}); save your network with {SAVE_HOW[source]}"
    return AtlasError(f"{key}.path '{path}' is {what}")


class OwnNetwork(torch.nn.Module):
    """A TorchScript or exported network as ``{'penultimate': its output}``.

    The output must be one tensor (N x D, or N x C x H x W, averaged over space by the extraction).
    ``batch_size`` is the one batch size a static torch.export program runs (None: any).
    """

    def __init__(self, network: torch.nn.Module, key: str, batch_size: int | None = None):
        super().__init__()
        self.network = network
        self.key = key
        self.batch_size = batch_size

    def train(self, mode: bool = True) -> "OwnNetwork":
        """Saved networks keep the mode they were saved in (an exported program refuses ``eval()``)."""
        self.training = mode
        return self

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.batch_size is not None and batch.shape[0] != self.batch_size:
            raise AtlasError(
                f"{self.key}.path: the exported program runs batches of {self.batch_size} images only, "
                f"got {batch.shape[0]} (every batch, the last included, must have that size); export it with a "
                f"dynamic batch: "
                f"{SAVE_HOW['export']}"
            )
        output = self.network(batch)
        if not isinstance(output, torch.Tensor):
            raise AtlasError(
                f"{self.key}.path: the network returns a {type(output).__name__}, not one tensor; save a network "
                f"whose forward returns the features (e.g. a wrapper returning the output you want)"
            )
        return {PENULTIMATE: output}


def static_batch_size(program) -> int | None:
    """The batch size an ExportedProgram was specialised to, or None when its batch dimension is dynamic."""
    inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in inputs:
            value = node.meta.get("val")
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                first = value.shape[0]
                return first if isinstance(first, int) else None
    return None


def load_own_network(source: str, path: str, key: str) -> tuple[torch.nn.Module, int | None]:
    """The saved network of ``path`` on the CPU, and the batch size it is fixed to (None: any)."""
    path = str(path)
    if not Path(path).is_file():
        raise AtlasError(f"{key}.path '{path}' does not exist or is not a file; fix the path")
    if source == "torchscript":
        try:
            return torch.jit.load(path, map_location="cpu").eval(), None
        except Exception as err:
            raise refuse_network_file(source, path, key, type(err).__name__) from None
    if saved_network_kind(path) != "export":
        raise refuse_network_file(source, path, key, "no exported program in it")
    refusal = export_refusal(path)
    if refusal:
        raise AtlasError(f"{key}.path '{path}' is refused: {refusal}; save a plain network with {SAVE_HOW['export']}")
    try:
        program = torch.export.load(path)
    except Exception as err:
        raise AtlasError(
            f"{key}.path '{path}' could not be loaded by torch.export.load ({type(err).__name__}); "
            f"save it again with this torch version: {SAVE_HOW['export']}"
        ) from None
    return program.module(), static_batch_size(program)


def own_preprocessing(input_size: int, mean, std) -> Callable:
    """Resize the shorter side to input_size x 256/224, centre-crop input_size, scale to [0, 1], normalise."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(round(input_size * 256 / 224)),
            transforms.CenterCrop(input_size),
            transforms.ToTensor(),
            transforms.Normalize([float(m) for m in mean], [float(s) for s in std]),
        ]
    )


def own_network(
    source: str, path: str, input_size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD, key: str = "features"
) -> Network:
    """Your own network, saved as TorchScript (``source: torchscript``) or with torch.export (``export``).

    Its only node is ``penultimate``: the network's output, which must be one tensor per image (a
    4-D output is averaged over space by the extraction). Save it in eval mode; with CPU tensors.

    TorchScript: ``torch.jit.save(torch.jit.script(model.eval()), 'model.pt')`` (or ``torch.jit.trace``).

    torch.export: a program is specialised to the batch size of its example unless the batch dimension
    is declared dynamic, so export it as::

        batch = torch.export.Dim("batch")
        program = torch.export.export(model.eval(), (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, "model.pt2")

    A static program only runs batches of its example's size: another size stops the job in one line.

    A saved network is a program: load only networks you trust. torch.jit.load's own documentation warns
    that a crafted file can run code while loading; exported programs are screened by ``export_refusal``
    before torch.export.load, which would otherwise unpickle some payloads and evaluate shape expressions.
    """
    module, batch_size = load_own_network(source, path, key)
    module = OwnNetwork(module, key, batch_size)
    probe = torch.zeros(batch_size or 1, 3, input_size, input_size)
    try:
        with torch.no_grad():
            output = module(probe)[PENULTIMATE]
    except AtlasError:
        raise
    except Exception as err:
        detail = (str(err).strip().splitlines() or [""])[0][:200]
        raise AtlasError(
            f"{key}.path: the network fails on {input_size} x {input_size} RGB images ({type(err).__name__}: "
            f"{detail}); set {key}.input_size to the size it was made for"
        ) from None
    if output.dim() < 2 or output.shape[0] != probe.shape[0]:
        raise AtlasError(
            f"{key}.path: the network's output has shape {tuple(output.shape)} for a batch of {probe.shape[0]}; "
            f"it must give one feature vector (or map) per image"
        )
    name = Path(path).name
    return Network(
        module=module.eval(),
        nodes={PENULTIMATE: "output"},
        transform=own_preprocessing(input_size, mean, std),
        weights_source=f"own network {name} (sha256 {file_sha256(path)[:16]})",
        weights_random=False,
    )


def _own(source: str) -> Callable[..., Network]:
    return lambda settings, record, key: own_network(
        source,
        settings["path"],
        int(settings.get("input_size", 224)),
        settings.get("mean", IMAGENET_MEAN),
        settings.get("std", IMAGENET_STD),
        key,
    )


# Builders by source, each called as builder(settings, record, key) -> Network; ``record`` is the
# fetch_weights record (None for sources without weights to resolve).
BUILDERS: dict[str, Callable[..., Network]] = {
    "torchvision": lambda settings, record, key: torchvision_network(
        record, list(settings["nodes"]), int(settings["init_seed"]), key, settings.get("class_names") or None
    ),
    "timm": lambda settings, record, key: timm_network(
        record, list(settings["nodes"]), int(settings["init_seed"]), key, settings.get("class_names") or None
    ),
    "torchscript": _own("torchscript"),
    "export": _own("export"),
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


# pragma: no mutate end
