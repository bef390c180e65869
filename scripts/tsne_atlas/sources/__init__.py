"""Where a feature set's features come from: one module per ``features.<set>.source``, and ``SOURCES``
below, the one place that lists the sources.

- ``torchvision``     torchvision classifiers: their weights resolution and their builder
- ``timm``            timm models: their weights resolution (Hugging Face hub or cache) and their builder
- ``own_network``     your own network saved as TorchScript or with torch.export (``torchscript``, ``export``)
- ``export_archive``  the screening of an exported archive before torch.export.load reads it
- ``precomputed``     features files made elsewhere, matched to the sample by path
- ``network``         what the network sources share: the ``Network`` an extraction runs, node handling,
                      class names and classifier width (the stored top-5), the common weights records

Weights are resolved before (stage fetch_weights, module ``weights``, through ``RESOLVERS``) into a
record naming local files only, so building a network (``build_network``) never touches the network.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from ..jobs import AtlasError
from . import own_network, precomputed, timm, torchvision
from .network import Network

LOGGER = logging.getLogger("tsne_atlas.sources")


@dataclass(frozen=True)
class Source:
    """A source of features: its module; ``build(settings, record, key) -> Network`` when it is a network
    (None: a file of features, ``precomputed``); ``resolve_weights(arch, weights, init_seed, key) -> record``
    when it has weights to resolve (None: the saved network holds them, or there is no network)."""

    module: ModuleType
    build: Callable[..., Network] | None = None
    resolve_weights: Callable[..., dict] | None = None


# The sources by the name ``features.<set>.source`` gives them.
SOURCES: dict[str, Source] = {
    "torchvision": Source(torchvision, torchvision.build, torchvision.resolve_weights),
    "timm": Source(timm, timm.build, timm.resolve_timm_weights),
    "torchscript": Source(own_network, own_network.build),
    "export": Source(own_network, own_network.build),
    "precomputed": Source(precomputed),
}
# Builders by source, each called as builder(settings, record, key) -> Network; ``record`` is the
# fetch_weights record (None for sources without weights to resolve).
BUILDERS: dict[str, Callable[..., Network]] = {name: s.build for name, s in SOURCES.items() if s.build}
# Weight resolvers by source: resolver(arch, weights, init_seed, key) -> record.
RESOLVERS: dict[str, Callable[..., dict]] = {
    name: s.resolve_weights for name, s in SOURCES.items() if s.resolve_weights
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
