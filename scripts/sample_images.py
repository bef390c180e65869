"""Stage 1, sample: pick images from a class-per-folder dataset and write a manifest CSV.

The manifest lists ``path`` (relative to the dataset root, POSIX separators) and
``label`` (the folder name, or its entry in the label map), sorted by label then path,
so the sample is inspectable and the same config always gives the same file.
"""

import csv
import os
from pathlib import Path

import numpy as np

from workflow_utils import AtlasError, atomic_path, job_log

MANIFEST_FIELDS = ("path", "label")


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


def sample_manifest(
    images_by_label: dict[str, list[str]],
    n_images: int | str,
    random_state: int,
    stratified: bool = True,
) -> list[tuple[str, str]]:
    """Pick ``n_images`` (path, label) pairs; ``"all"`` takes every image.

    Raises AtlasError when fewer images exist than asked for.
    """
    pool = [(path, label) for label in sorted(images_by_label) for path in images_by_label[label]]
    available = len(pool)
    if n_images == "all":
        return sorted(pool, key=lambda item: (item[1], item[0]))
    n_images = int(n_images)
    if available < n_images:
        raise AtlasError(
            f"sample.n_images is {n_images} but the dataset has only {available} usable images; "
            f"lower sample.n_images or set it to 'all'"
        )
    rng = np.random.default_rng(random_state)
    chosen: list[tuple[str, str]] = []
    if stratified:
        quotas = stratified_quotas({label: len(paths) for label, paths in images_by_label.items()}, n_images)
        for label in sorted(images_by_label):
            paths = images_by_label[label]
            picks = rng.choice(len(paths), size=quotas[label], replace=False) if quotas[label] else []
            chosen.extend((paths[i], label) for i in picks)
    else:
        picks = rng.choice(available, size=n_images, replace=False)
        chosen = [pool[i] for i in picks]
    return sorted(chosen, key=lambda item: (item[1], item[0]))


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
        return [(row[0], row[1]) for row in reader]


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
    manifest: str,
    logger=None,
) -> list[tuple[str, str]]:
    images = apply_label_map(list_images(root, extensions), label_map)
    if not any(images.values()):
        raise AtlasError(
            f"dataset.root '{root}' holds no images with extensions {extensions} in its class folders; "
            f"check dataset.root and dataset.extensions"
        )
    rows = sample_manifest(images, n_images, random_state, stratified)
    write_manifest(manifest, rows)
    if logger:
        counts = {label: sum(1 for _, lab in rows if lab == label) for label in sorted(images)}
        logger.info("sampled %d of %d images from %s: %s", len(rows), sum(map(len, images.values())), root, counts)
    return rows


def main(snakemake) -> None:
    with job_log(snakemake.log[0]) as logger:
        sample_images(
            root=snakemake.params.root,
            extensions=list(snakemake.params.extensions),
            label_map=dict(snakemake.params.label_map),
            n_images=snakemake.params.n_images,
            random_state=int(snakemake.params.seed),
            stratified=bool(snakemake.params.stratified),
            manifest=snakemake.output.manifest,
            logger=logger,
        )


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
