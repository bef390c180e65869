"""Stages projector_export and projector_config: every feature set for TensorBoard's Embedding Projector.

Per feature set, the images of the explorer's thumbnails index (every sampled image, or the explorer's
fixed subsample above ``explorer.max_images``; of a points page's index, which lists every image, that
same subsample: ``projector_cells``), in the index's order: their rows of the prepared input
(what every t-SNE run sees: z-scored, PCA-reduced, ~50 columns; the raw 2048-d features of 100,000
images would be GBs of TSV), their labels, predictions and metadata, and a sprite cut from the
explorer's atlases. One ``projector_config.pbtxt`` then lists every set. The files are described in
``files/projector.py``.

How TensorBoard reads them (tensorboard/plugins/projector/projector_plugin.py, 2.21 and master as of
2026-06): ``_update_configs`` adds the logdir itself as run "." when no event file names a run ("so
that the projector still works when there are no runs"), and reads ``<logdir>/projector_config.pbtxt``
for it; ``_rel_to_abs_asset_path`` resolves a relative ``tensor_path``, ``metadata_path`` or sprite
``image_path`` against the config file's folder (after ``realpath``) and refuses one that leaves it,
so the files must lie under ``results/projector/`` (a symlink to the explorer's atlases would be
refused). The front end (vz_projector/data-provider.ts) refuses a sprite over
``MAX_SPRITE_IMAGE_SIZE_PX = 8192`` in either direction, and scatterPlotVisualizerSprites.ts finds a
cell's row as ``floor(index / spritesPerColumn)``: right only for a square grid, so the sprite is one.
"""

import logging
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .files import projector as files
from .files.features import read_predictions
from .files.manifest import read_images, sample_labels
from .files.map_inputs import read_input
from .files.thumbnails import INDEX_NAME, ThumbnailIndex, read_index
from .jobs import AtlasError
from .subsample import fixed_subsample

LOGGER = logging.getLogger("tsne_atlas.projector")

# TensorBoard's front end refuses a larger sprite (MAX_SPRITE_IMAGE_SIZE_PX in vz_projector/data-provider.ts).
SPRITE_LIMIT = 8192
BACKGROUND = (255, 255, 255)


def sprite_layout(n_images: int, cell: int, limit: int = SPRITE_LIMIT) -> tuple[int, int]:
    """(columns, single_image_dim): the square grid of ``ceil(sqrt(n))`` cells a side, and the side of a
    cell, the explorer's ``cell`` or less, so the sprite stays within ``limit`` pixels a side."""
    if n_images < 1:
        raise ValueError("a sprite needs one image at least")
    columns = math.isqrt(n_images - 1) + 1
    dim = min(cell, limit // columns)
    if dim < 1:
        raise AtlasError(
            f"{n_images} images do not fit TensorBoard's {limit} x {limit} pixel sprite even at one pixel each; "
            f"lower explorer.max_images to {limit * limit} or less"
        )
    return columns, dim


def projector_cells(index: ThumbnailIndex) -> np.ndarray:
    """The cells of ``index`` the export holds: every one, or, where the index keeps a cap (a points page's
    lists every image), the explorer's fixed subsample of that many, as a canvas page's index lists it."""
    if index.max_images is None:
        return np.arange(len(index.paths))
    return fixed_subsample(len(index.paths), index.max_images)


def build_sprite(index: ThumbnailIndex, columns: int, dim: int, cells: np.ndarray | None = None) -> Image.Image:
    """The sprite of the images ``cells`` of ``index`` (all of them by default), in that order: each cell
    cut from its atlas and scaled to ``dim``. Holds the sprite and one decoded atlas at a time (cells in
    increasing order fill atlases in order)."""
    cells = np.arange(len(index.paths)) if cells is None else cells
    sprite = Image.new("RGB", (columns * dim, columns * dim), BACKGROUND)
    name, atlas = None, None
    try:
        for position, i in enumerate(cells):
            atlas_name, left, top = index.position(int(i))
            if atlas_name != name:
                if atlas is not None:
                    atlas.close()
                atlas = Image.open(index.folder / atlas_name)
                atlas.load()
                name = atlas_name
            cell = atlas.crop((left, top, left + index.cell, top + index.cell))
            if dim != index.cell:
                cell = cell.resize((dim, dim), Image.Resampling.LANCZOS)
            row, column = divmod(position, columns)
            sprite.paste(cell, (column * dim, row * dim))
    finally:
        if atlas is not None:
            atlas.close()
    return sprite


def index_rows(shown: list[str], paths: list[str], index_file: str, images: str) -> np.ndarray:
    """Each shown image's row in the sample (``paths``, the order of ``images.csv`` and of the prepared
    input); AtlasError naming both files when the thumbnails are of another sample."""
    row_of = {path: row for row, path in enumerate(paths)}
    missing = [path for path in shown if path not in row_of]
    if missing:
        raise AtlasError(
            f"{index_file} lists {len(missing)} image(s) that {images} does not (first: '{missing[0]}'): "
            f"the thumbnails are of another sample; delete {Path(index_file).parent} and rerun"
        )
    return np.array([row_of[path] for path in shown], dtype=np.int64)


def projector_export(
    prepared: str,
    images: str,
    manifest: str,
    features: str,
    thumbnails: str,
    features_id: str,
    tensors: str,
    metadata: str,
    sprite: str,
    record: str,
) -> dict:
    """One feature set's tensors.tsv, metadata.tsv, sprite and record (rule projector_export)."""
    X, attrs = read_input(prepared)
    paths, _ = read_images(images)
    if len(X) != len(paths):
        raise AtlasError(
            f"{prepared} has {len(X)} rows but {images} {len(paths)}; delete the results folder's tsne/ and rerun"
        )
    labels = sample_labels(manifest, paths, images)
    index = read_index(thumbnails)
    index_file = os.path.join(thumbnails, INDEX_NAME)
    if index.n_total != len(paths):
        raise AtlasError(
            f"{index_file} was made for a sample of {index.n_total} images, {images} lists {len(paths)}: "
            f"the thumbnails are of another sample; delete {thumbnails} and rerun"
        )
    cells = projector_cells(index)
    rows = index_rows([index.paths[i] for i in cells], paths, index_file, images)
    columns = {"path": [paths[i] for i in rows], "label": [labels.labels[i] for i in rows]}
    predictions, reason = read_predictions(features)
    if predictions is not None:
        names, probabilities = predictions.top1()
        columns["predicted"] = [names[i] for i in rows]
        columns["predicted_probability"] = [f"{probabilities[i]:.4f}" for i in rows]
    for name, values in labels.metadata.items():
        columns[name] = [values[i] for i in rows]
    files.write_tensors(tensors, X[rows])
    files.write_metadata(metadata, columns)
    sprite_columns, dim = sprite_layout(len(rows), index.cell, SPRITE_LIMIT)
    files.write_sprite(sprite, build_sprite(index, sprite_columns, dim, cells))
    written = {
        "features": features_id,
        "tensor_shape": [len(rows), int(X.shape[1])],
        "n_total": len(paths),
        "tensors": Path(tensors).name,
        "metadata": Path(metadata).name,
        "sprite": Path(sprite).name,
        "single_image_dim": [dim, dim],
        "sprite_columns": sprite_columns,
        "predictions": reason,
        "prepared": {key: attrs.get(key) for key in ("node", "feature_dim", "standardize", "pca_components")},
    }
    files.write_record(record, written)
    LOGGER.info(
        "%s: %d of %d images, %d columns, sprite %d x %d cells of %d px",
        features_id,
        len(rows),
        len(paths),
        X.shape[1],
        sprite_columns,
        sprite_columns,
        dim,
    )
    return written


def projector_config(records: list[str], order: list[str], config: str) -> list[files.ProjectorEmbedding]:
    """The sweep's projector_config.pbtxt: one entry per feature set's record (rule projector_config), its
    paths relative to the config file's folder (TensorBoard refuses paths that leave it). ``order``: the
    feature set ids, one per record (a param, so that removing a set from the config rewrites the file)."""
    folder = Path(config).parent
    embeddings = []
    for path, features_id in zip(records, order, strict=True):
        record = files.read_record(path)
        if record["features"] != features_id:
            raise AtlasError(f"{path}: the export of '{record['features']}', not '{features_id}'; delete it and rerun")
        relative = Path(os.path.relpath(Path(path).parent, folder))
        if relative.parts and relative.parts[0] == "..":
            raise ValueError(f"{path} is not under {folder}: TensorBoard would refuse its files")
        embeddings.append(
            files.ProjectorEmbedding(
                tensor_name=record["features"],
                tensor_path=(relative / record["tensors"]).as_posix(),
                tensor_shape=tuple(record["tensor_shape"]),
                metadata_path=(relative / record["metadata"]).as_posix(),
                sprite_path=(relative / record["sprite"]).as_posix(),
                single_image_dim=tuple(record["single_image_dim"]),
            )
        )
    files.write_config(config, embeddings)
    LOGGER.info("%s: %d embeddings (%s)", config, len(embeddings), ", ".join(e.tensor_name for e in embeddings))
    return embeddings
