"""The sample, in ``results/sample/``: which images, and what they are called.

- ``images.csv``: ``path, sha256``. The sampled images (relative to the dataset root, POSIX
  separators, sorted by path) and the SHA-256 of each file's bytes. Written by sample_images; the
  only thing extraction reads, so labels never rerun an extraction.
- ``manifest.csv``: ``path, label`` and then the dataset manifest's other columns (metadata, as
  text), one row per row of ``images.csv``, in its order. ``label`` is the class after
  ``dataset.label_map``, or ``unlabelled``. Written by label_images; every stage that colours,
  counts or names a class joins it.
- ``skipped.csv``: ``path, label, reason``. Unusable files met while sampling (``label`` as the
  dataset gives it, before the label map).

Metadata is text from users: it is written and read by the csv module (commas, quotes and new
lines round-trip) and never becomes markup anywhere.
"""

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..jobs import AtlasError, atomic_path

IMAGES_FIELDS = ("path", "sha256")
MANIFEST_FIELDS = ("path", "label")
SKIPPED_FIELDS = ("path", "label", "reason")
# The label of every image of a collection without labels (a flat folder, a manifest without a label column).
UNLABELLED = "unlabelled"
# Columns the workflow itself writes beside the metadata (here, in the explorer and in the suspect
# lists): a metadata column with one of these names would be ambiguous.
BUILTIN_COLUMNS = (
    "path",
    "label",
    "sha256",
    "x",
    "y",
    "predicted",
    "predicted_probability",
    "disagreement",
)


@dataclass
class SampleLabels:
    """``manifest.csv`` as the figures see it: paths, labels and metadata columns, in sample order."""

    paths: list[str]
    labels: list[str]
    metadata: dict[str, list[str]] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        """False when no image has a label: label-based figures and metrics then say n/a."""
        return any(label != UNLABELLED for label in self.labels)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    def indices(self) -> np.ndarray:
        """Each image's index into ``classes``."""
        index = {name: i for i, name in enumerate(self.classes)}
        return np.array([index[label] for label in self.labels], dtype=np.int64)


def check_relative(path: str | os.PathLike, relative: str, where: str) -> None:
    # Manifests may be edited by hand: every path must stay under the dataset root.
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise AtlasError(f"{path}: {where} path '{relative}' leaves the dataset root; manifest paths must be relative")


def write_images(path: str | os.PathLike, paths: list[str], hashes: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(IMAGES_FIELDS)
        writer.writerows(zip(paths, hashes))


def read_images(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(paths, sha256 hashes) of ``images.csv``."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if tuple(header or ()) != IMAGES_FIELDS:
            raise AtlasError(f"{path}: not a sample image list (header {header}, expected {list(IMAGES_FIELDS)})")
        rows = list(reader)
    for row in rows:
        check_relative(path, row[0], "image")
    return [row[0] for row in rows], [row[1] for row in rows]


def write_manifest(
    path: str | os.PathLike, paths: list[str], labels: list[str], metadata: dict[str, list[str]] | None = None
) -> None:
    metadata = metadata or {}
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_FIELDS + tuple(metadata))
        for row, (relative, label) in enumerate(zip(paths, labels)):
            writer.writerow([relative, label] + [values[row] for values in metadata.values()])


def read_manifest(path: str | os.PathLike) -> SampleLabels:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if tuple(header or ())[:2] != MANIFEST_FIELDS:
            raise AtlasError(f"{path}: not a sample manifest (header {header}, expected {list(MANIFEST_FIELDS)} first)")
        rows = list(reader)
    for row in rows:
        check_relative(path, row[0], "image")
    columns = header[2:]
    return SampleLabels(
        [row[0] for row in rows],
        [row[1] for row in rows],
        {name: [row[2 + i] for row in rows] for i, name in enumerate(columns)},
    )


def sample_labels(manifest: str | os.PathLike, paths: list[str], where: str) -> SampleLabels:
    """``manifest.csv``, checked to list exactly ``paths`` (what ``where`` holds) in the same order."""
    labels = read_manifest(manifest)
    if labels.paths != list(paths):
        raise AtlasError(
            f"{manifest} lists other images than {where} ({len(labels.paths)} vs {len(paths)} rows); "
            f"delete the results/sample folder and rerun"
        )
    return labels


def write_skipped(path: str | os.PathLike, skipped: list[tuple[str, str, str]]) -> None:
    """The sidecar of unusable files met while sampling: path, label, reason."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(SKIPPED_FIELDS)
        writer.writerows(sorted(skipped))
