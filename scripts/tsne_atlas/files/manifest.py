"""sample/manifest.csv (the sample: ``path, label``) and sample/skipped.csv (``path, label, reason``).

Paths are relative to the dataset root with POSIX separators; rows are sorted by label then
path, so the sample is inspectable and the same config always gives the same file.
"""

import csv
import os
from pathlib import Path

from ..jobs import AtlasError, atomic_path

MANIFEST_FIELDS = ("path", "label")
SKIPPED_FIELDS = ("path", "label", "reason")


def write_manifest(path: str | os.PathLike, rows: list[tuple[str, str]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_FIELDS)
        writer.writerows(rows)


def read_manifest(path: str | os.PathLike) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if tuple(header or ()) != MANIFEST_FIELDS:
            raise AtlasError(f"{path}: not a sample manifest (header {header}, expected {list(MANIFEST_FIELDS)})")
        rows = [(row[0], row[1]) for row in reader]
    for relative, _ in rows:
        # Manifests may be edited by hand: every path must stay under the dataset root.
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise AtlasError(f"{path}: path '{relative}' leaves the dataset root; manifest paths must be relative")
    return rows


def write_skipped(path: str | os.PathLike, skipped: list[tuple[str, str, str]]) -> None:
    """The sidecar of unusable files met while sampling: path, label, reason."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(SKIPPED_FIELDS)
        writer.writerows(sorted(skipped))
