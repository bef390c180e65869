"""features/shards/<set>/<i>-of-<K>.h5: one slice of a feature set's features, written by one extraction
shard job (rule extract_features_shard) and joined into features/<set>.h5 by rule merge_features.

Layout: a features file (``files.features``) of the slice's rows only: ``/paths``, every
``/features/<node>`` and ``/predictions/top_*`` hold rows start..stop-1 of the sample, in its order, and
the attributes are those the one-job features file has (``n_images``: the whole sample's) plus
``shard``, JSON: ``index`` (1-based), ``count``, ``start``, ``stop`` and ``sample_sha256``, the SHA-256
of the sample/images.csv the slice was cut from.

``merge_shards`` checks that the shards fit together (each complete; the same settings, library
versions and device; contiguous rows of this sample, on batch boundaries) and refuses the first that
does not in one line naming it. It then streams them through ``files.features.write_features`` in the
batches one extraction job writes, so the merged file is byte-identical to that job's.
"""

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..jobs import AtlasError, file_sha256
from .features import (
    PREDICTIONS_STORED,
    TOP_INDEX,
    TOP_PROBABILITY,
    features_file_problem,
    plain_value,
    write_features,
)
from .manifest import read_images

SHARD_ATTR = "shard"
# Attributes write_features adds itself (after the caller's): left out of what a merge passes it.
WRITTEN_ATTRS = ("nodes", "predictions", "feature_dims")
PREDICTION_ROWS = (("top_index", TOP_INDEX), ("top_probability", TOP_PROBABILITY))


def shard_header(images: str | os.PathLike, index: int, count: int, start: int, stop: int) -> dict:
    """The ``shard`` attribute of shard ``index`` of ``count``, rows [start, stop) of the sample ``images``."""
    return {"index": index, "count": count, "start": start, "stop": stop, "sample_sha256": file_sha256(images)}


def write_shard(
    path: str | os.PathLike,
    batches,
    paths: Sequence[str],
    attrs: dict,
    graph_nodes: dict[str, str],
    header: dict,
    classes: Sequence[str] | None,
    predictions: str,
) -> dict[str, int]:
    """A features file of the slice's ``paths`` and rows, with the one-job file's ``attrs`` and ``header``."""
    return write_features(
        path, batches, len(paths), paths, {**attrs, SHARD_ATTR: header}, graph_nodes, classes, predictions
    )


@dataclass
class Shard:
    """What a merge needs to know of a shard file before it reads its rows."""

    path: str
    header: dict
    attrs: dict  # in the order written, ``shard`` left out
    graph_nodes: dict[str, str]
    classes: list[str] | None
    paths: list[str]


def read_shard(path: str | os.PathLike) -> Shard:
    """A shard file's header, attributes, nodes, classes and paths (not its rows)."""
    problem = features_file_problem(path)
    if problem is None and not Path(path).exists():
        problem = "it does not exist"
    if problem:
        raise AtlasError(f"{path}: not a complete shard ({problem}); delete it and rerun")
    with h5py.File(path, "r") as h5:
        attrs = {key: plain_value(value) for key, value in h5.attrs.items()}
        if SHARD_ATTR not in attrs:
            raise AtlasError(f"{path} is not an extraction shard (no '{SHARD_ATTR}' attribute); delete it and rerun")
        header = json.loads(attrs.pop(SHARD_ATTR))
        graph_nodes = {node: plain_value(h5["features"][node].attrs["graph_node"]) for node in h5["features"]}
        classes = None
        if attrs.get("predictions") == PREDICTIONS_STORED:
            classes = [_text(name) for name in h5["predictions"]["classes"][:]]
        paths = [_text(p) for p in h5["paths"][:]]
    return Shard(str(path), header, attrs, graph_nodes, classes, paths)


def check_shards(shards: list[Shard], sample_paths: list[str], images: str | os.PathLike, sample_sha256: str) -> None:
    """Refuse, in one line naming the shard file, shards that do not make one features file of this sample."""
    first = shards[0]
    batch_size = int(first.attrs["batch_size"])
    expected = 0
    for position, shard in enumerate(shards, start=1):
        header, path = shard.header, shard.path
        if (header["index"], header["count"]) != (position, len(shards)):
            raise AtlasError(
                f"{path} is shard {header['index']} of {header['count']}, not {position} of {len(shards)}; "
                f"delete it and rerun"
            )
        if header["sample_sha256"] != sample_sha256:
            raise AtlasError(
                f"{path} was cut from another sample than {images} (it changed since); delete it and rerun"
            )
        for key in sorted(set(first.attrs) | set(shard.attrs)):
            if first.attrs.get(key) != shard.attrs.get(key):
                raise AtlasError(
                    f"{path} was extracted with {key} {_short(shard.attrs.get(key))}, {first.path} with "
                    f"{_short(first.attrs.get(key))}: one features file needs one setting; delete both and rerun"
                )
        if (shard.graph_nodes, shard.classes) != (first.graph_nodes, first.classes):
            raise AtlasError(f"{path} holds other nodes or class names than {first.path}; delete both and rerun")
        start, stop = int(header["start"]), int(header["stop"])
        if start > expected:
            raise AtlasError(
                f"{path} starts at row {start}: rows {expected}-{start - 1} of {images} are in no shard; "
                f"delete it and rerun"
            )
        if start < expected:
            raise AtlasError(
                f"{path} starts at row {start}, inside the shard before it (up to row {expected - 1}): rows "
                f"{start}-{expected - 1} are in two shards; delete it and rerun"
            )
        if start % batch_size:
            raise AtlasError(
                f"{path} starts at row {start}, not on a batch boundary of batch_size {batch_size} (its batches are "
                f"not one job's); delete it and rerun"
            )
        if len(shard.paths) != stop - start:
            raise AtlasError(f"{path} holds {len(shard.paths)} rows, not rows {start}-{stop - 1}; delete it and rerun")
        if shard.paths != sample_paths[start:stop]:
            row = next(i for i, (a, b) in enumerate(zip(shard.paths, sample_paths[start:stop])) if a != b) + start
            raise AtlasError(
                f"{path}: row {row} is '{shard.paths[row - start]}' but '{sample_paths[row]}' in {images}; "
                f"delete it and rerun"
            )
        expected = stop
    if expected != len(sample_paths):
        raise AtlasError(
            f"rows {expected}-{len(sample_paths) - 1} of {images} are in no shard (the last, {shards[-1].path}, "
            f"ends at row {expected - 1}); delete the shards and rerun"
        )


def shard_batches(shards: list[Shard], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """The shards' rows in the batches one extraction job yields (``{node: rows}``, predictions too)."""
    for shard in shards:
        with h5py.File(shard.path, "r") as h5:
            n_rows = len(shard.paths)
            for start in range(0, n_rows, batch_size):
                rows = slice(start, min(start + batch_size, n_rows))
                batch = {}
                if shard.classes is not None:
                    batch.update({key: h5["predictions"][name][rows] for name, key in PREDICTION_ROWS})
                batch.update({node: h5["features"][node][rows] for node in shard.graph_nodes})
                yield batch


def merge_shards(
    shard_files: Sequence[str | os.PathLike], images: str | os.PathLike, features: str | os.PathLike
) -> dict:
    """Join the shards of one feature set (in index order) into ``features``: the file one extraction
    job writes, byte for byte. Returns its attributes."""
    sample_paths, _ = read_images(images)
    shards = [read_shard(path) for path in shard_files]
    if not shards:
        raise ValueError("no shards to merge")
    check_shards(shards, sample_paths, images, file_sha256(images))
    first = shards[0]
    # JSON-valued attributes (versions) stay the JSON text they were read as, so they are written back unchanged.
    attrs = {key: value for key, value in first.attrs.items() if key not in WRITTEN_ATTRS}
    write_features(
        features,
        shard_batches(shards, int(first.attrs["batch_size"])),
        len(sample_paths),
        sample_paths,
        attrs,
        first.graph_nodes,
        first.classes,
        first.attrs["predictions"],
    )
    return first.attrs


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
