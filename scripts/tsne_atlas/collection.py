"""The image collection a run starts from, in one of three layouts (``dataset.layout``):

- ``folders``: ``<root>/<class>/<image>``; an image's label is its top folder.
- ``manifest``: a CSV or TSV file (``dataset.manifest``) with a ``path`` column (relative to the
  root), an optional label column (``dataset.label_column``) and any other columns, kept as metadata.
- ``flat``: every image under the root, in any folders; no labels (``unlabelled``).

Each gives the same thing: every image's path and its *group*, the label as the dataset gives it,
before ``dataset.label_map``. Sampling stratifies by group; labelling maps groups to labels.
"""

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .files.manifest import BUILTIN_COLUMNS, UNLABELLED
from .jobs import AtlasError

LAYOUTS = ("folders", "manifest", "flat")
# The config keys a manifest's messages name: the dataset's, or a query set's (section query).
MESSAGE_KEYS = {
    "dataset": {"root": "dataset.root", "manifest": "dataset.manifest", "label_column": "dataset.label_column"},
    "query": {"root": "query.folder", "manifest": "query.manifest", "label_column": "query.label_column"},
}
MANIFEST_DELIMITERS = {".csv": ",", ".tsv": "\t"}


@dataclass
class Collection:
    """Every image of a dataset: paths (relative, POSIX, sorted), their groups, metadata columns."""

    paths: list[str]
    groups: list[str]
    metadata: dict[str, list[str]] = field(default_factory=dict)
    # Rows left out (path, group, reason): manifest rows without a label under missing_label: skip.
    left_out: list[tuple[str, str, str]] = field(default_factory=list)

    def by_group(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for path, group in zip(self.paths, self.groups):
            grouped.setdefault(group, []).append(path)
        return {group: sorted(paths) for group, paths in sorted(grouped.items())}


def _wanted(extensions: list[str]) -> set[str]:
    return {ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions}


def _walk_images(root: Path, folder: Path, wanted: set[str]) -> list[str]:
    """Image files under ``folder`` (hidden files and folders skipped), relative to ``root``."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root)
        found.extend(
            (rel_dir / name).as_posix()
            for name in filenames
            if not name.startswith(".") and Path(name).suffix.lower() in wanted
        )
    return sorted(found)


def watched_folders(root: str | os.PathLike, layout: str) -> list[str]:
    """The folders whose modification times tell that images were added or removed: every non-hidden
    folder under the root at any depth, with the root itself for a flat layout (for class folders a
    new folder at the top is a new input anyway)."""
    root = Path(root)
    found = [str(root)] if layout == "flat" else []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(str(Path(dirpath) / d) for d in dirnames)
    return sorted(found)


def list_class_folders(root: str | os.PathLike) -> list[str]:
    """Names of the class folders under ``root`` (hidden folders skipped), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise AtlasError(
            f"dataset.root '{root}' is not a folder: point dataset.root at a folder holding one sub-folder per class"
        )
    return sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))


def list_images(root: str | os.PathLike, extensions: list[str]) -> dict[str, list[str]]:
    """Map each class folder to its image files (relative POSIX paths, sorted).

    Files are matched on extension, case-insensitively; hidden files are skipped.
    """
    wanted = _wanted(extensions)
    return {folder: _walk_images(Path(root), Path(root) / folder, wanted) for folder in list_class_folders(root)}


def folder_collection(root: str | os.PathLike, extensions: list[str]) -> Collection:
    found = list_images(root, extensions)
    rows = sorted((path, folder) for folder, paths in found.items() for path in paths)
    return Collection([path for path, _ in rows], [folder for _, folder in rows])


def flat_collection(root: str | os.PathLike, extensions: list[str]) -> Collection:
    if not Path(root).is_dir():
        raise AtlasError(f"dataset.root '{root}' is not a folder: point dataset.root at the folder of images")
    paths = _walk_images(Path(root), Path(root), _wanted(extensions))
    return Collection(paths, [UNLABELLED] * len(paths))


def _manifest_text(manifest: Path, keys: dict) -> str:
    try:
        data = manifest.read_bytes()
    except OSError as err:
        raise AtlasError(f"{keys['manifest']} '{manifest}' cannot be read ({err.strerror}); fix the path") from None
    # Excel's "CSV UTF-8" starts the file with a byte-order mark: read past it (utf-8-sig).
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise AtlasError(
            f"{manifest}: line {line} is not UTF-8 text (byte 0x{data[err.start]:02x}); save the file as UTF-8, "
            f"e.g. iconv -f latin1 -t utf-8"
        ) from None


def _relative_path(manifest: Path, root: Path, text: str, line: int, keys: dict) -> str:
    """A manifest path as a normalised path relative to ``root``; absolute paths must lie under it."""
    where, root_key = f"{manifest}: line {line}", keys["root"]
    if not text.strip():
        raise AtlasError(f"{where}: the path is empty; give each row the image's path relative to {root_key}")
    path = PurePosixPath(text.replace("\\", "/"))
    if path.is_absolute():
        real_root = PurePosixPath(os.path.abspath(root))
        if not path.is_relative_to(real_root):
            raise AtlasError(f"{where}: '{text}' is outside {root_key} '{root}'; give paths relative to {root_key}")
        path = path.relative_to(real_root)
    normal = PurePosixPath(os.path.normpath(path.as_posix()))
    if normal.parts[:1] == ("..",) or normal.as_posix() == ".":
        raise AtlasError(f"{where}: '{text}' leaves {root_key} with '..'; give paths under {root_key}")
    return normal.as_posix()


def read_dataset_manifest(
    manifest: str | os.PathLike,
    root: str | os.PathLike,
    label_column: str,
    missing_label: str,
    check_files: bool = True,
    split: tuple[str, str, bool] | None = None,
    section: str = "dataset",
) -> Collection:
    """A CSV/TSV manifest as a collection; every error is one line naming the file, line and fix.

    ``label_column``: the column with labels; ``""`` (or ``label`` when the file has no such column)
    makes the images unlabelled. ``missing_label``: ``fail`` on a row with an empty label, or
    ``skip`` it (listed in ``left_out``). ``check_files``: refuse paths with no file under the root.
    ``split``: (column, value, keep): only the rows whose ``column`` holds ``value`` exactly as written
    (``keep`` True: a query split) or only the others (False: the reference beside it); rows of the
    other side are neither checked nor listed. ``section``: whose keys the messages name (``dataset``
    or ``query``, a query set's own manifest).
    """
    manifest, root, keys = Path(manifest), Path(root), MESSAGE_KEYS[section]
    delimiter = MANIFEST_DELIMITERS.get(manifest.suffix.lower())
    if delimiter is None:
        raise AtlasError(f"{keys['manifest']} '{manifest}' must end in .csv or .tsv (comma- or tab-separated)")
    reader = csv.reader(io.StringIO(_manifest_text(manifest, keys), newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise AtlasError(
            f"{manifest}: the file is empty; give a header line with a 'path' column and one row per image"
        )
    header = [name.strip() for name in header]
    if "path" not in header:
        raise AtlasError(
            f"{manifest}: no 'path' column (columns: {', '.join(header)}); name the column of image paths 'path'"
        )
    for name in header:
        if not name:
            raise AtlasError(f"{manifest}: a column has no name in the header line; name every column")
        if header.count(name) > 1:
            raise AtlasError(f"{manifest}: column '{name}' appears twice in the header line; rename one")
    if label_column and label_column not in header and label_column != "label":
        raise AtlasError(
            f"{keys['label_column']} '{label_column}' is not a column of {manifest} (columns: {', '.join(header)}); "
            f'name one of them, or give "" for unlabelled images'
        )
    label_column = label_column if label_column in header else ""
    split_at = None
    if split is not None:
        if split[0] not in header:
            raise AtlasError(
                f"query.split_column '{split[0]}' is not a column of {manifest} (columns: {', '.join(header)}); "
                f"name the column that holds each row's split"
            )
        split_at = header.index(split[0])
    metadata_columns = [name for name in header if name not in ("path", label_column)]
    for name in metadata_columns:
        if name in BUILTIN_COLUMNS:
            raise AtlasError(
                f"{manifest}: column '{name}' is named like one the workflow writes ({', '.join(BUILTIN_COLUMNS)}); "
                f"rename it" + (f" or set {keys['label_column']} to it" if name == "label" else "")
            )
    path_at, label_at = header.index("path"), header.index(label_column) if label_column else None
    meta_at = [header.index(name) for name in metadata_columns]
    collection = Collection([], [], {name: [] for name in metadata_columns})
    first_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank lines
        if len(row) != len(header):
            raise AtlasError(
                f"{manifest}: line {line} has {len(row)} fields but the header has {len(header)}; "
                f"quote fields holding the delimiter"
            )
        if split_at is not None and (row[split_at] == split[1]) != split[2]:
            continue  # the other side of the split
        relative = _relative_path(manifest, root, row[path_at], line, keys)
        if relative in first_line:
            raise AtlasError(
                f"{manifest}: line {line} lists '{relative}' again (first on line {first_line[relative]}); "
                f"remove the duplicate row"
            )
        first_line[relative] = line
        if check_files and not (root / relative).exists():
            raise AtlasError(
                f"{manifest}: line {line}: '{relative}' does not exist under {keys['root']} '{root}'; "
                f"fix the path or remove the row"
            )
        group = row[label_at].strip() if label_at is not None else UNLABELLED
        if not group:
            if missing_label == "skip":
                collection.left_out.append((relative, "", "no label in the manifest"))
                continue
            raise AtlasError(
                f"{manifest}: line {line}: '{relative}' has an empty '{label_column}'; "
                f"fill it in, or set dataset.missing_label: skip to leave such rows out"
            )
        collection.paths.append(relative)
        collection.groups.append(group)
        for name, at in zip(metadata_columns, meta_at):
            collection.metadata[name].append(row[at])
    if not collection.paths:
        if split is not None:
            side = f"whose '{split[0]}' is" if split[2] else f"besides those whose '{split[0]}' is"
            raise AtlasError(
                f"{manifest}: no rows {side} '{split[1]}' (matched as written, case and spaces included); "
                f"fix query.split_value or the manifest"
            )
        raise AtlasError(f"{manifest}: lists no images (only a header, or every row left out); add one row per image")
    order = sorted(range(len(collection.paths)), key=collection.paths.__getitem__)
    return Collection(
        [collection.paths[i] for i in order],
        [collection.groups[i] for i in order],
        {name: [values[i] for i in order] for name, values in collection.metadata.items()},
        collection.left_out,
    )


def read_collection(dataset: dict, check_files: bool = True) -> Collection:
    """The collection the ``dataset`` config section describes (schema defaults filled in)."""
    layout, root, extensions = dataset["layout"], dataset["root"], list(dataset["extensions"])
    if layout == "folders":
        return folder_collection(root, extensions)
    if layout == "flat":
        return flat_collection(root, extensions)
    return read_dataset_manifest(
        dataset["manifest"],
        root,
        dataset["label_column"],
        dataset["missing_label"],
        check_files,
        dataset.get("split"),
        dataset.get("section", "dataset"),
    )


def count_images(dataset: dict) -> int:
    """Number of images in the collection (used to check the sweep when n_images is 'all')."""
    return len(read_collection(dataset, check_files=False).paths)


def manifest_digest(dataset: dict, stratified: bool) -> str | None:
    """For a manifest layout, a digest of what the sample depends on: its paths, and the groups when
    sampling is stratified (None for the other layouts). A rule param of sampling, whose file input
    is ``ancient``: editing metadata, or labels of an unstratified sample, resamples nothing."""
    if dataset["layout"] != "manifest":
        return None
    collection = read_dataset_manifest(
        dataset["manifest"],
        dataset["root"],
        dataset["label_column"],
        dataset["missing_label"],
        check_files=False,
        split=dataset.get("split"),
        section=dataset.get("section", "dataset"),
    )
    rows = list(zip(collection.paths, collection.groups if stratified else [""] * len(collection.paths)))
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]
