"""Extraction shards (``extraction.shards``): the contiguous slices of the sample that separate jobs
extract, each into a partial file (``files.feature_shards``) that one merge job joins.

Slices start and end on batch boundaries, so every batch a shard feeds the network is a batch of the
one-job run, and the merged features file is byte-identical to that run's.

Kept free of heavy imports: Snakemake imports this on every invocation.
"""

import math

from .jobs import AtlasError


def n_batches(n_images: int, batch_size: int) -> int:
    return math.ceil(n_images / batch_size)


def shard_count(n_images: int, batch_size: int, shards: int | str, images_per_shard: int) -> int:
    """K, the number of extraction jobs: ``shards``, or for ``auto`` ceil(n_images / images_per_shard);
    at least 1 and at most one per batch of ``batch_size`` images."""
    wanted = math.ceil(n_images / images_per_shard) if shards == "auto" else int(shards)
    return max(1, min(wanted, n_batches(n_images, batch_size)))


def shard_rows(n_images: int, batch_size: int, index: int, count: int) -> tuple[int, int]:
    """Rows [start, stop) of the sample that shard ``index`` (1-based) of ``count`` extracts: whole
    batches, shared out as evenly as they divide (the last batch may be short, as in one job)."""
    if not 1 <= index <= count:
        raise ValueError(f"shard {index} of {count}")
    batches = n_batches(n_images, batch_size)
    if count > batches:
        raise AtlasError(
            f"extraction.shards: {count} shards, but the sample's {n_images} images make only {batches} batches of "
            f"extraction.batch_size {batch_size} (fewer images were usable than counted); lower extraction.shards"
        )
    first, last = (index - 1) * batches // count, index * batches // count
    return first * batch_size, min(n_images, last * batch_size)
