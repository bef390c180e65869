"""Stage sample_images: pick images from a class-per-folder dataset and write the manifest.

The manifest (``files.manifest``) lists each sampled image's path and label (the folder
name, or its entry in the label map).
"""

import logging
import os
from pathlib import Path

import numpy as np

from .files.manifest import write_manifest, write_skipped
from .images import image_problem, path_problem
from .jobs import AtlasError

LOGGER = logging.getLogger("tsne_atlas.sampling")


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
    wanted = {ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions}
    images: dict[str, list[str]] = {}
    for folder in list_class_folders(root):
        found = []
        for dirpath, dirnames, filenames in os.walk(Path(root) / folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = Path(dirpath).relative_to(root)
            found.extend(
                (rel_dir / name).as_posix()
                for name in filenames
                if not name.startswith(".") and Path(name).suffix.lower() in wanted
            )
        images[folder] = sorted(found)
    return images


def apply_label_map(images: dict[str, list[str]], label_map: dict[str, str]) -> dict[str, list[str]]:
    """Group images by display label; folders missing from ``label_map`` keep their name."""
    unknown = sorted(set(label_map) - set(images))
    if unknown:
        raise AtlasError(
            f"dataset.label_map names folder(s) {unknown} that are not in dataset.root "
            f"(folders there: {sorted(images)}); fix the names or remove the entries"
        )
    by_label: dict[str, list[str]] = {}
    for folder, paths in images.items():
        by_label.setdefault(str(label_map.get(folder, folder)), []).extend(paths)
    return {label: sorted(paths) for label, paths in by_label.items()}


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
    random_state: int,
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
    rng = np.random.default_rng(random_state)
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


def count_images(root: str | os.PathLike, extensions: list[str]) -> int:
    """Number of usable images under ``root`` (used to check the sweep when n_images is 'all')."""
    return sum(len(paths) for paths in list_images(root, extensions).values())


def sample_images(
    root: str,
    extensions: list[str],
    label_map: dict[str, str],
    n_images: int | str,
    random_state: int,
    stratified: bool,
    on_bad_image: str,
    manifest: str,
    skipped: str,
) -> list[tuple[str, str]]:
    """Sample, check and write the manifest and the sidecar of skipped files (rule sample_images).

    ``on_bad_image``: ``skip`` replaces an unusable pick by another draw, ``fail`` stops at it.
    """
    found = list_images(root, extensions)
    for folder in sorted(folder for folder, paths in found.items() if not paths):
        LOGGER.warning("class folder '%s' holds no images with extensions %s; it is left out", folder, extensions)
    images = {label: paths for label, paths in apply_label_map(found, label_map).items() if paths}
    if not images:
        raise AtlasError(
            f"dataset.root '{root}' holds no images with extensions {extensions} in its class folders; "
            f"check dataset.root and dataset.extensions"
        )
    check = usable_check(root)
    if on_bad_image == "fail":
        strict = check

        def check(relative):
            problem = strict(relative)
            if problem:
                raise AtlasError(
                    f"{Path(root) / relative}: {problem}; fix or remove the file, or set dataset.on_bad_image: skip"
                )
            return None

    unusable: list[tuple[str, str, str]] = []
    rows = sample_manifest(images, n_images, random_state, stratified, check=check, skipped=unusable)
    write_manifest(manifest, rows)
    write_skipped(skipped, unusable)
    counts = {label: sum(1 for _, lab in rows if lab == label) for label in sorted(images)}
    LOGGER.info("sampled %d of %d images from %s: %s", len(rows), sum(map(len, images.values())), root, counts)
    if unusable:
        LOGGER.warning("skipped %d unusable file(s), listed with reasons in %s", len(unusable), skipped)
        for path, _, reason in unusable:
            LOGGER.info("skipped %s: %s", path, reason)
    return rows
