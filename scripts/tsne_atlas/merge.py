"""Stage merge_features: join a feature set's extraction shards (``files.feature_shards``) into its
features file, byte-identical to the file one extraction job writes. Reads and writes one batch at a
time: its memory is flat in N, its time is that of copying the features once."""

import logging
import time
from collections.abc import Sequence

from .files.feature_shards import merge_shards, read_shard
from .jobs import AtlasError

LOGGER = logging.getLogger("tsne_atlas.merge_features")


def merge_features(
    shards: Sequence[str],
    images: str,
    features: str,
    feature_set: str,
    precision: str,
    channels_last: bool,
    batch_size: int,
) -> dict:
    """Merge ``shards`` (in index order) of ``feature_set`` into ``features``.

    The shards must have been extracted with ``precision``, ``channels_last`` and ``batch_size`` (the
    extraction settings of the config) for feature set ``feature_set``: one that was not is refused.
    """
    configured = {
        "feature_set": feature_set,
        "precision_setting": precision,
        "channels_last": channels_last,
        "batch_size": batch_size,
    }
    first = read_shard(shards[0])
    for key, value in configured.items():
        if first.attrs[key] != value:
            name = key if key == "feature_set" else f"extraction.{key.removesuffix('_setting')}"
            raise AtlasError(
                f"{shards[0]} was extracted with {name} {first.attrs[key]!r}, the config has {value!r}; "
                f"delete it and rerun"
            )
    began = time.perf_counter()
    attrs = merge_shards(shards, images, features)
    LOGGER.info(
        "features.%s (%s, %s on %s): merged %d shards of %d images into %s in %.1f s",
        feature_set,
        attrs["model"],
        attrs["precision"],
        attrs["device"],
        len(shards),
        attrs["n_images"],
        features,
        time.perf_counter() - began,
    )
    return attrs
