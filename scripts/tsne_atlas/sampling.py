"""Stages sample_images and label_images: pick images from the collection (``collection``), then
name them.

sample_images writes the image list (``files.manifest``: ``sample/images.csv``, paths and content
hashes), the only input of extraction; label_images writes ``sample/manifest.csv``, each sampled
image's label (its group through ``dataset.label_map``) and metadata. So relabelling reruns no
extraction and no t-SNE.
"""

import logging
import os
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np

from .collection import list_class_folders, read_collection, read_dataset_manifest
from .files.manifest import (
    UNLABELLED,
    SampleLabels,
    read_images,
    write_images,
    write_manifest,
    write_skipped,
)
from .images import image_problem, path_problem
from .jobs import AtlasError, file_sha256

LOGGER = logging.getLogger("tsne_atlas.sampling")


def stratified_quotas(class_sizes: dict[str, int], n_images: int) -> dict[str, int]:
    """Share ``n_images`` between classes as equally as their sizes allow.

    Small classes give all they have; what they lack is shared among the others
    (water filling), so the total is ``n_images`` whenever enough images exist.
    Ties in the remainder go to classes in sorted-name order, keeping it deterministic.
    Not always as even as water filling: a remainder slot handed back by a class too small for it
    goes to the first names again ({a: 6, b: 1, c: 8, d: 8, e: 6} and 13 images give 4, 1, 4, 2, 2,
    not 3, 1, 3, 3, 3). Kept as it is: evening it out changes which images existing samples hold.
    """
    quotas = dict.fromkeys(class_sizes, 0)
    remaining = min(n_images, sum(class_sizes.values()))
    open_classes = sorted(name for name, size in class_sizes.items() if size > 0)
    while remaining > 0 and open_classes:
        share, extra = divmod(remaining, len(open_classes))
        still_open = []
        for rank, name in enumerate(open_classes):
            want = share + (1 if rank < extra else 0)
            take = min(want, class_sizes[name] - quotas[name])
            quotas[name] += take
            remaining -= take
            if quotas[name] < class_sizes[name]:
                still_open.append(name)
        open_classes = still_open
    return quotas


def usable_check(root: str | os.PathLike):
    """A function telling why a dataset-relative path is unusable (None when it is a good image)."""

    def check(relative: str) -> str | None:
        return path_problem(root, relative) or image_problem(Path(root) / relative)

    return check


def _draw(order, paths, label, want, state, check, skipped) -> None:
    """Walk ``order`` from the saved cursor until ``want`` usable images are taken."""
    while len(state["taken"]) < want and state["cursor"] < len(order):
        path = paths[order[state["cursor"]]]
        state["cursor"] += 1
        problem = check(path) if check else None
        if problem:
            skipped.append((path, label, problem))
        else:
            state["taken"].append(path)


def sample_manifest(
    images_by_label: dict[str, list[str]],
    n_images: int | str,
    seed: int,
    stratified: bool = True,
    check=None,
    skipped: list | None = None,
) -> list[tuple[str, str]]:
    """Pick ``n_images`` usable (path, label) pairs; ``"all"`` takes every usable image.

    ``check(path)`` returns why an image is unusable, or None; unusable candidates are
    appended to ``skipped`` as (path, label, reason) and replaced by further random draws
    (from the same class when stratified), so the sample keeps its size whenever enough
    usable images exist. Only candidates are checked, never the whole dataset.
    Raises AtlasError when fewer usable images exist than asked for.
    """
    skipped = [] if skipped is None else skipped
    labels = sorted(images_by_label)
    rng = np.random.default_rng(seed)
    if n_images == "all":
        rows = []
        for label in labels:
            state = {"cursor": 0, "taken": []}
            paths = images_by_label[label]
            _draw(range(len(paths)), paths, label, len(paths), state, check, skipped)
            rows.extend((path, label) for path in state["taken"])
        return sorted(rows, key=lambda item: (item[1], item[0]))
    n_images = int(n_images)
    if stratified:
        orders = {label: rng.permutation(len(images_by_label[label])) for label in labels}
        states = {label: {"cursor": 0, "taken": []} for label in labels}
        # Upper bounds of each class's usable images; they shrink as bad files turn up.
        sizes = {label: len(images_by_label[label]) for label in labels}
        while True:
            quotas = stratified_quotas(sizes, n_images)
            for label in labels:
                before = len(skipped)
                _draw(orders[label], images_by_label[label], label, quotas[label], states[label], check, skipped)
                sizes[label] -= len(skipped) - before
            if all(len(states[label]["taken"]) >= want for label, want in stratified_quotas(sizes, n_images).items()):
                break
        chosen = [(path, label) for label in labels for path in states[label]["taken"]]
    else:
        pool = [(path, label) for label in labels for path in images_by_label[label]]
        order = rng.permutation(len(pool))
        chosen = []
        for index in order:
            if len(chosen) == n_images:
                break
            path, label = pool[index]
            problem = check(path) if check else None
            if problem:
                skipped.append((path, label, problem))
            else:
                chosen.append((path, label))
    if len(chosen) < n_images:
        available = sum(len(p) for p in images_by_label.values())
        bad = f" ({len(skipped)} unusable skipped)" if skipped else ""
        raise AtlasError(
            f"sample.n_images is {n_images} but the dataset has only {available - len(skipped)} usable images{bad}; "
            f"lower sample.n_images or set it to 'all'"
        )
    return sorted(chosen, key=lambda item: (item[1], item[0]))


def strict_check(root: str | os.PathLike):
    """``usable_check`` that stops at the first unusable image (dataset.on_bad_image: fail)."""
    check = usable_check(root)

    def strict(relative):
        problem = check(relative)
        if problem:
            raise AtlasError(
                f"{Path(root) / relative}: {problem}; fix or remove the file, or set dataset.on_bad_image: skip"
            )
        return None

    return strict


def sample_images(
    layout: str,
    root: str,
    extensions: list[str],
    label_column: str | None,
    missing_label: str | None,
    n_images: int | str,
    seed: int,
    stratified: bool,
    on_bad_image: str,
    images: str,
    skipped: str,
    dataset_manifest: str | None = None,
    manifest_digest: str | None = None,
    split: list | None = None,
) -> list[str]:
    """Sample, check and hash the images; write the image list and the sidecar of skipped files (rule
    sample_images). Labels are not written here (``label_images``): the sample depends on the
    dataset's groups only, never on ``dataset.label_map``.

    ``on_bad_image``: ``skip`` replaces an unusable pick by another draw, ``fail`` stops at it.
    ``manifest_digest``: only a rerun trigger (see ``collection.manifest_digest``). ``split``: (column,
    value, False) with a split query set: the manifest rows outside it (``config.reference_dataset``).
    """
    dataset = {
        "layout": layout,
        "root": root,
        "extensions": extensions,
        "manifest": dataset_manifest,
        "label_column": label_column,
        "missing_label": missing_label,
        "split": split,
    }
    collection = read_collection(dataset)
    groups = collection.by_group()
    if layout == "folders":
        for folder in sorted(set(list_class_folders(root)) - set(groups)):
            LOGGER.warning("class folder '%s' holds no images with extensions %s; it is left out", folder, extensions)
    if not collection.paths:
        where = "in its class folders" if layout == "folders" else "under it"
        raise AtlasError(
            f"dataset.root '{root}' holds no images with extensions {extensions} {where}; "
            f"check dataset.root, dataset.layout and dataset.extensions"
        )
    check = strict_check(root) if on_bad_image == "fail" else usable_check(root)
    unusable: list[tuple[str, str, str]] = []
    rows = sample_manifest(groups, n_images, seed, stratified, check=check, skipped=unusable)
    paths = sorted(path for path, _ in rows)
    write_images(images, paths, [file_sha256(Path(root) / path) for path in paths])
    write_skipped(skipped, unusable + collection.left_out)
    taken = Counter(group for _, group in rows)
    counts = {group: taken[group] for group in groups}
    LOGGER.info("sampled %d of %d images from %s: %s", len(rows), len(collection.paths), root, counts)
    if collection.left_out:
        LOGGER.warning("left out %d manifest row(s) without a label, listed in %s", len(collection.left_out), skipped)
    if unusable:
        LOGGER.warning("skipped %d unusable file(s), listed with reasons in %s", len(unusable), skipped)
        for path, _, reason in unusable:
            LOGGER.info("skipped %s: %s", path, reason)
    return paths


def sampled_rows(
    collection, paths: list[str], images: str, source: str, folder: str
) -> tuple[list[str], dict[str, list[str]]]:
    """The groups and metadata columns of the sampled ``paths`` (from ``images``) in ``collection`` (read
    from ``source``); a sampled path it no longer has is refused in one line (delete ``folder``)."""
    row_of = {path: row for row, path in enumerate(collection.paths)}
    missing = [path for path in paths if path not in row_of]
    if missing:
        raise AtlasError(
            f"{images} lists '{missing[0]}', which {source} no longer has; delete the {folder} folder and rerun"
        )
    rows = [row_of[path] for path in paths]
    return [collection.groups[row] for row in rows], {
        name: [values[row] for row in rows] for name, values in collection.metadata.items()
    }


def label_images(
    layout: str,
    root: str,
    label_column: str | None,
    missing_label: str | None,
    label_map: dict[str, str],
    images: str,
    manifest: str,
    dataset_manifest: str | None = None,
) -> SampleLabels:
    """Each sampled image's label (its group through ``label_map``) and metadata, into ``manifest``
    (rule label_images). Cheap: changing labels reruns this and what draws labels, no extraction."""
    paths, _ = read_images(images)
    if layout == "manifest":
        collection = read_dataset_manifest(dataset_manifest, root, label_column, missing_label, check_files=False)
        groups, metadata = sampled_rows(collection, paths, images, dataset_manifest, "results/sample")
        known, what = set(collection.groups), f"labels in column '{label_column}' of {dataset_manifest}"
    elif layout == "folders":
        groups = [PurePosixPath(path).parts[0] for path in paths]
        metadata = {}
        known, what = set(list_class_folders(root)), f"folders in dataset.root '{root}'"
    else:
        groups, metadata = [UNLABELLED] * len(paths), {}
        known, what = {UNLABELLED}, f"labels of a flat layout (all '{UNLABELLED}')"
    unknown = sorted(set(label_map) - known)
    if unknown:
        raise AtlasError(
            f"dataset.label_map names {unknown}, which are not {what} ({sorted(known)[:12]}); "
            f"fix the names or remove the entries"
        )
    labels = [str(label_map.get(group, group)) for group in groups]
    write_manifest(manifest, paths, labels, metadata)
    counts = dict(sorted(Counter(labels).items()))
    LOGGER.info("labelled %d images: %s; metadata columns: %s", len(paths), counts, list(metadata) or "none")
    return SampleLabels(paths, labels, metadata)


def query_collection(
    layout: str,
    query_root: str,
    extensions: list[str],
    label_column: str,
    missing_label: str,
    split: list | None,
    query_manifest: str | None,
    check_files: bool = True,
):
    """The query set's collection (``config.query_dataset`` as the rules pass it): a split's rows are
    dataset.manifest's, so only a query manifest's messages name the query's keys."""
    dataset = {
        "layout": layout,
        "root": query_root,
        "extensions": extensions,
        "manifest": query_manifest,
        "label_column": label_column,
        "missing_label": missing_label,
        "split": split,
        "section": "dataset" if split else "query",
    }
    return read_collection(dataset, check_files)


def sample_query(
    layout: str,
    query_root: str,
    extensions: list[str],
    label_column: str,
    missing_label: str,
    split: list | None,
    on_bad_image: str,
    reference_images: str,
    root: str,
    images: str,
    skipped: str,
    query_manifest: str | None = None,
    manifest_digest: str | None = None,
) -> list[str]:
    """The query set, all of it (rule sample_query): its usable images' paths and hashes (``images``,
    what its extraction reads) and the unusable files (``skipped``), in the reference sample's formats
    (``files.manifest``). ``root``: the reference's images (``dataset.root``); ``query_root``: the
    query's. Labels are ``label_query``'s, so relabelling re-extracts no query image;
    ``manifest_digest`` is only a rerun trigger (``collection.manifest_digest`` of the query's rows).

    A query image that is the same file as a reference image is refused: it would be placed onto a map
    made with it. Classes the reference lacks are allowed: ``placement.placement_tables`` says which.
    """
    collection = query_collection(layout, query_root, extensions, label_column, missing_label, split, query_manifest)
    check = strict_check(query_root) if on_bad_image == "fail" else usable_check(query_root)
    paths, unusable = [], []
    for path, group in zip(collection.paths, collection.groups):
        problem = check(path)
        if problem:
            unusable.append((path, group, problem))
        else:
            paths.append(path)
    reference_paths, _ = read_images(reference_images)
    reference_files = {os.path.realpath(Path(root) / path): path for path in reference_paths}
    shared = [path for path in paths if os.path.realpath(Path(query_root) / path) in reference_files]
    if shared:
        same = reference_files[os.path.realpath(Path(query_root) / shared[0])]
        raise AtlasError(
            f"query image '{shared[0]}' is the reference sample's '{same}' ({reference_images}; {len(shared)} such "
            f"image(s) in all): a query set is placed onto maps made without it; leave those images out of the query "
            f"set, or take the query as a split of dataset.manifest (query.layout: split) so the reference leaves them out"
        )
    if not paths:
        raise AtlasError(
            f"query.folder '{query_root}': none of its {len(collection.paths)} image(s) is usable (reasons in {skipped}); "
            f"fix the query images or set query.layout: none"
        )
    write_images(images, paths, [file_sha256(Path(query_root) / path) for path in paths])
    write_skipped(skipped, unusable + collection.left_out)
    LOGGER.info("query set: %d images from %s", len(paths), query_root)
    if unusable or collection.left_out:
        LOGGER.warning(
            "left out %d query file(s), listed with reasons in %s", len(unusable + collection.left_out), skipped
        )
    return paths


def label_query(
    layout: str,
    query_root: str,
    extensions: list[str],
    label_column: str,
    missing_label: str,
    split: list | None,
    label_map: dict[str, str],
    images: str,
    manifest: str,
    query_manifest: str | None = None,
) -> SampleLabels:
    """Each query image's label (its group through ``dataset.label_map``, like the reference's; a name
    the query lacks is no error here) and metadata, into ``manifest`` (rule label_query)."""
    paths, _ = read_images(images)
    collection = query_collection(
        layout, query_root, extensions, label_column, missing_label, split, query_manifest, check_files=False
    )
    groups, metadata = sampled_rows(collection, paths, images, "the query set", "results/query/sample")
    labels = [str(label_map.get(group, group)) for group in groups]
    write_manifest(manifest, paths, labels, metadata)
    LOGGER.info("labelled %d query images: %s", len(paths), dict(sorted(Counter(labels).items())))
    return SampleLabels(paths, labels, metadata)
