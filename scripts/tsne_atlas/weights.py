"""Stage fetch_weights: resolve a feature set's ``weights`` once, on the host that runs Snakemake.

A local rule: on a cluster it runs on the login node, which can reach the internet when compute
nodes cannot. For torchvision, ``auto``/``pretrained``/``imagenet`` take the ImageNet state dict
from the torch hub cache (``$TORCH_HOME``, default ``~/.cache/torch/hub``) or download it there; a
state-dict file is taken as it is. For timm they take the model's default pretrained weights from
the Hugging Face cache (``$HF_HUB_CACHE``, default ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``)
or download them there, after a quick check that the hub can be reached at all (``HF_HUB_OFFLINE=1``
skips it). The result is a small JSON record (``files.weights_record``) that extraction reads, so
extraction loads a local file and never touches the network. ``auto`` without reachable
pretrained weights gives kind ``random``: a loud warning here, which the extraction repeats.
"""

import argparse
import difflib
import logging
import os
import socket
import threading
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torchvision.models import get_model_weights, list_models

from .config import WEIGHT_KEYWORDS
from .files.weights_record import write_record
from .jobs import AtlasError, file_sha256

LOGGER = logging.getLogger("tsne_atlas.fetch_weights")
DOWNLOAD_TIMEOUT_S = 60
# How long fetch_weights waits for a TCP connection to the Hugging Face hub (or the proxy) before it
# takes the hub as unreachable: offline, huggingface_hub itself retries for about 46 s.
HUB_CONNECT_TIMEOUT_S = 3.0
HF_DEFAULT_ENDPOINT = "https://huggingface.co"


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


def blank_record(arch: str, weights: str) -> dict:
    """A weights record (``files.weights_record``) before it is decided what ``weights`` means."""
    return {
        "arch": arch,
        "weights": weights,
        "kind": None,
        "enum": None,
        "path": None,
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


def resolve_weights(arch: str, weights: str, init_seed: int = 0, key: str = "features.resnet101") -> dict:
    """Decide what a torchvision set's ``weights`` means here and now; returns the record described above.

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
# timm


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

    ``auto``/``pretrained``/``imagenet``: timm's default pretrained weights of ``arch`` from the Hugging
    Face hub (a few older models: from a URL), taken from the local cache or downloaded into it, the
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


# Weight resolvers by source: resolver(arch, weights, init_seed, key) -> record.
RESOLVERS = {"torchvision": resolve_weights, "timm": resolve_timm_weights}


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
