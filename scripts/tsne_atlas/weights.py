"""Stage fetch_weights: resolve a feature set's ``weights`` once, on the host that runs Snakemake.

A local rule: on a cluster it runs on the login node, which can reach the internet when compute
nodes cannot. Each source with weights resolves its own (``sources.torchvision``: the ImageNet state
dict from the torch hub cache or a download; ``sources.timm``: the model's default pretrained weights
from the Hugging Face cache or hub; both: a file taken as it is). The result is a small JSON record
(``files.weights_record``) that extraction reads, so extraction loads a local file and never touches
the network. ``auto`` without reachable pretrained weights gives kind ``random``: a loud warning here,
which the extraction repeats.
"""

import logging

from .files.weights_record import write_record
from .jobs import AtlasError
from .sources import RESOLVERS

LOGGER = logging.getLogger("tsne_atlas.fetch_weights")


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
