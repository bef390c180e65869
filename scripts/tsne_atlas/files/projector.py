"""TensorBoard's Embedding Projector files, in ``results/projector/`` (``tensorboard --logdir results/projector``):

- ``<features>/tensors.tsv``: the prepared input of the feature set (``embeddings/<features>/input.h5``'s
  ``/X``: z-scored, PCA-reduced, what every t-SNE run sees), one row per image, tab-separated, no
  header: the values as float32 (what TensorBoard holds), written with 9 significant digits, so they
  read back exactly.
- ``<features>/metadata.tsv``: a header row, then one row per row of ``tensors.tsv``, in its order:
  ``path``, ``label``, ``predicted`` and ``predicted_probability`` (only when the feature set stores
  predictions), then the sample manifest's metadata columns. TensorBoard takes the first line as a
  header when it holds a tab (always here: there are two columns at least). Values are text: a tab
  or a line break in one (``\\n``, ``\\r`` and the other characters ``str.splitlines`` breaks at)
  becomes a space, so every row stays one row of the right width; nothing else is changed or escaped.
- ``<features>/sprite.jpg``: the images' thumbnails in a square grid of ``columns`` x ``columns``
  cells of ``single_image_dim`` pixels, row by row in ``tensors.tsv``'s order, white where no image is;
  at most 8192 x 8192 pixels (TensorBoard's limit).
- ``<features>/embedding.json``: what the sweep's config file needs from the set (``features``,
  ``tensor_shape``, ``single_image_dim``, ``sprite_columns``, the file names) and its provenance.
- ``projector_config.pbtxt``: a ``ProjectorConfig`` in protobuf text format, one ``embeddings``
  entry per feature set, with paths relative to the file's folder.
"""

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..jobs import AtlasError, atomic_path

TENSORS_NAME = "tensors.tsv"
METADATA_NAME = "metadata.tsv"
SPRITE_NAME = "sprite.jpg"
RECORD_NAME = "embedding.json"
CONFIG_NAME = "projector_config.pbtxt"
FORMAT = 1
# 9 significant digits write any float32 so that it parses back to the same float32; fewer may not.
TENSOR_FORMAT = "%.9g"
# JPEG like the explorer's atlases the sprite is cut from: a PNG keeps their JPEG artefacts losslessly,
# 1.6-3.4 times larger and about 30 times slower to write (docs/outputs.md), and TensorBoard loads the whole
# sprite before it shows any of it.
SPRITE_QUALITY = 90
# Tabs and every character Python's str.splitlines breaks a line at (JavaScript's split('\n') and
# universal newlines see fewer): in a value each would break a row or shift its columns.
BREAKS = re.compile("[\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def cell_text(value) -> str:
    """A metadata value as one TSV cell: tabs and line breaks become spaces."""
    return BREAKS.sub(" ", str(value))


def write_tensors(path: str | os.PathLike, X: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="ascii", newline="\n") as handle:
        np.savetxt(handle, np.asarray(X, dtype=np.float32), fmt=TENSOR_FORMAT, delimiter="\t")


def read_tensors(path: str | os.PathLike) -> np.ndarray:
    """``tensors.tsv`` as a float32 N x d matrix, as TensorBoard reads it."""
    try:
        return np.loadtxt(path, delimiter="\t", ndmin=2, dtype=np.float32)
    except (OSError, ValueError) as err:
        raise AtlasError(f"{path}: not a projector tensors file ({err}); delete it and rerun") from None


def write_metadata(path: str | os.PathLike, columns: dict[str, list]) -> None:
    """``columns``: name -> one value per image (all of equal length, at least two columns)."""
    lengths = {len(values) for values in columns.values()}
    if len(columns) < 2 or len(lengths) != 1:
        raise ValueError(f"metadata needs two or more columns of one length, got {len(columns)} of lengths {lengths}")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\t".join(cell_text(name) for name in columns) + "\n")
        for row in zip(*columns.values()):
            handle.write("\t".join(cell_text(value) for value in row) + "\n")


def read_metadata(path: str | os.PathLike) -> dict[str, list[str]]:
    """``metadata.tsv`` as column name -> values (text), split the way TensorBoard splits it."""
    with open(path, encoding="utf-8", newline="\n") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or "\t" not in lines[0]:
        raise AtlasError(f"{path}: not a projector metadata file (no header row); delete it and rerun")
    names = lines[0].split("\t")
    rows = [line.split("\t") for line in lines[1:]]
    if any(len(row) != len(names) for row in rows):
        raise AtlasError(f"{path}: rows of another width than the header's {len(names)}; delete it and rerun")
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def write_sprite(path: str | os.PathLike, sprite: Image.Image) -> None:
    with atomic_path(path) as tmp:
        sprite.save(tmp, format="JPEG", quality=SPRITE_QUALITY)


def read_sprite(path: str | os.PathLike) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def write_record(path: str | os.PathLike, record: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"format": FORMAT, **record}, indent=1, ensure_ascii=False), encoding="utf-8")


def read_record(path: str | os.PathLike) -> dict:
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        if record.get("format") != FORMAT:
            raise ValueError(f"format {record.get('format')!r}, expected {FORMAT}")
        return record
    except (OSError, ValueError) as err:
        raise AtlasError(
            f"{path}: not a complete projector export record ({err}); delete its folder and rerun"
        ) from None


@dataclass(frozen=True)
class ProjectorEmbedding:
    """One ``embeddings`` entry of ``projector_config.pbtxt`` (paths relative to the file's folder)."""

    tensor_name: str
    tensor_path: str
    tensor_shape: tuple[int, int]
    metadata_path: str
    sprite_path: str
    single_image_dim: tuple[int, int]


def _quoted(text: str) -> str:
    """A protobuf text-format string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_config(path: str | os.PathLike, embeddings: list[ProjectorEmbedding]) -> None:
    lines = []
    for embedding in embeddings:
        lines += [
            "embeddings {",
            f"  tensor_name: {_quoted(embedding.tensor_name)}",
            f"  tensor_path: {_quoted(embedding.tensor_path)}",
            *(f"  tensor_shape: {n}" for n in embedding.tensor_shape),
            f"  metadata_path: {_quoted(embedding.metadata_path)}",
            "  sprite {",
            f"    image_path: {_quoted(embedding.sprite_path)}",
            *(f"    single_image_dim: {n}" for n in embedding.single_image_dim),
            "  }",
            "}",
        ]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


_FIELD = re.compile(r'^\s*(\w+): (?:"((?:[^"\\]|\\.)*)"|(\d+))$')


def read_config(path: str | os.PathLike) -> list[ProjectorEmbedding]:
    """The entries of a ``projector_config.pbtxt`` as :func:`write_config` writes it."""
    embeddings, fields = [], None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line == "embeddings {":
            fields = {"tensor_shape": [], "single_image_dim": []}
        elif line == "}":
            embeddings.append(
                ProjectorEmbedding(
                    fields["tensor_name"],
                    fields["tensor_path"],
                    tuple(fields["tensor_shape"]),
                    fields["metadata_path"],
                    fields["image_path"],
                    tuple(fields["single_image_dim"]),
                )
            )
            fields = None
        elif match := _FIELD.match(line):
            name, text, number = match.groups()
            if number is not None:
                fields[name].append(int(number))
            else:
                fields[name] = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)
        elif line.strip() not in ("sprite {", "}"):
            raise AtlasError(f"{path}: unexpected line {line!r}; delete it and rerun")
    return embeddings
