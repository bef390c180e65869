"""Sources ``torchscript`` and ``export``: your own network, saved as TorchScript or with
``torch.export``, as a ``Network`` whose one node, ``penultimate``, is the network's output. It has no
weights to resolve: the saved file holds them. An exported archive is screened (``export_archive``)
before it is loaded.
"""

import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from ..config import PENULTIMATE
from ..jobs import AtlasError, file_sha256
from .export_archive import export_refusal
from .network import Network

SAVE_HOW = {
    "torchscript": "torch.jit.save(torch.jit.script(model.eval()), 'model.pt')",
    "export": (
        "torch.export.save(torch.export.export(model.eval(), (example,), "
        "dynamic_shapes=({0: torch.export.Dim('batch')},)), 'model.pt2')"
    ),
}
OTHER_SOURCE = {"torchscript": "export", "export": "torchscript"}
SOURCE_NAMES = {"torchscript": "TorchScript", "export": "torch.export"}


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


def own_network(source: str, path: str, input_size: int, mean, std, key: str = "features") -> Network:
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
    that a crafted file can run code while loading; exported programs are screened by
    ``export_archive.export_refusal`` before torch.export.load, which would otherwise unpickle some
    payloads and evaluate shape expressions.
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


def build(settings: dict, record: None, key: str) -> Network:
    """The Network of a ``torchscript`` or ``export`` set's ``settings`` (schema defaults filled in, as
    ``config.feature_set_settings`` gives them; no weights record)."""
    return own_network(
        settings["source"],
        settings["path"],
        int(settings["input_size"]),
        settings["mean"],
        settings["std"],
        key,
    )
