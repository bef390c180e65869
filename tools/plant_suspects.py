"""Plant wrong labels and odd images in a copy of the demo and measure where the workflow's suspects and
outliers lists rank them.

    PYTHONPATH=scripts .venv/bin/python tools/plant_suspects.py WORK [--n 10] [--seed 0]
        [--per-class M] [--classes C ...] [--random lite0 resnet101] [--perplexity P] [--cores C]
        [--docs-figure PNG]

1. Copies ``resources/animal-mnist`` (its class folders, or ``--classes``; ``--per-class M``: the first M
   images of each class by name) to ``WORK/data``; WORK must not exist or be empty.
2. Runs the workflow on the copy, every image sampled (``sample.n_images: all``), with the trained
   EfficientNet-Lite0 alone, as far as its prepared input (``WORK/unplanted/``), and keeps the images that
   have no twin: no other image with the same SHA-256 (``sample/images.csv``), and cosine below
   ``suspects.near_duplicate_cosine`` (the schema's default, 0.99) to every other image in the prepared
   input, the space in which the suspects stage looks for near-duplicates.
3. Chooses ``--n`` of them, seeded, one class after another so every class gives one before any gives
   two, and moves each into another class's folder (a seeded choice); writes ``WORK/planted.csv``
   (``path`` where it now is, ``true_class``, ``planted_class``). Then adds odd images, in the size and
   mode of the dataset's images: a group of ten similar ones (one seeded smooth random texture, each
   shifted a little, with its contrast and a little noise of its own) in one class's folder and one isolated one (scikit-image's photo of
   coins, scaled down) in another's (seeded choices); writes ``WORK/planted-outliers.csv`` (``path``,
   ``kind``: ``group`` or ``isolated``).
4. Runs the workflow on the planted copy (``WORK/planted/``), again every image, with the trained set and
   the random sets beside it (``--random``: ``lite0``, EfficientNet-Lite0 with ``weights: none``, the
   default, so that only the weights differ; ``resnet101``, the demo's ResNet-101 with ``weights: none``),
   as far as each set's ``suspects.csv`` and ``outliers.csv``; the other settings are the demo's
   (``--perplexity`` replaces ``tsne.perplexities``, which size the k-NN graph the suspects read: 3 x the
   largest).
5. Prints, and writes to ``WORK/planted-ranks.md``, each planted image's rank in each set's
   ``suspects.csv`` ("not listed" when all its neighbours share the planted label) and how many rank
   in the top k, k = 10, 20 and N; ``WORK/planted-ranks.csv`` holds the ranks. ``WORK/planted-suspects-<set>.png``
   is the top of each set's suspects list drawn as the workflow draws it, with the planted images'
   rows shaded and captioned "PLANTED, truly <class>"; ``--docs-figure`` writes a copy of the trained
   set's, downscaled, for the docs.
6. Prints, and writes to ``WORK/planted-outliers.md``, each odd image's rank in each set's
   ``outliers.csv`` ("not listed" past ``suspects.max_rows``) and its rank by the k-neighbour ratio
   alone (``relative_distance``, the score before the whole-graph part joined it, recomputed from the
   set's k-NN graph over every image), how many rank in the top k, and how far the odd images are
   from the real ones: each one's distance to its nearest real image over the median distance of a
   real image to its nearest real neighbour (in the prepared input, read off the k-NN graph);
   ``WORK/planted-outlier-ranks.csv`` holds the numbers.
"""

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "animal-mnist"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
EXTENSIONS = {".png", ".jpg", ".jpeg"}

TRAINED = "efficientnet-lite0"
FEATURE_SETS = {
    TRAINED: {"source": "timm", "arch": "tf_efficientnet_lite0"},
    "efficientnet-lite0-random": {"source": "timm", "arch": "tf_efficientnet_lite0", "weights": "none"},
    "resnet101-random": {"source": "torchvision", "arch": "resnet101", "weights": "none"},
}
RANDOM_SETS = {"lite0": "efficientnet-lite0-random", "resnet101": "resnet101-random"}
PLANTED_FIELDS = ("path", "true_class", "planted_class")
ODD_FIELDS = ("path", "kind")
# The odd images: a group of this many similar ones, and one isolated one.
GROUP_SIZE = 10
# How the group's members differ from their one texture: a shift of up to this many pixels, a contrast
# factor in this range, this many grey levels (standard deviation) of noise.
GROUP_SHIFT = 2
GROUP_CONTRAST = (0.85, 1.0)
GROUP_NOISE = 6.0
TOP_K = (10, 20)
# The docs' copy of the figure: at most this wide, in pixels, as a 256-colour PNG.
DOCS_WIDTH = 1000


class PlantError(Exception):
    """A request the tool cannot carry out; its message is one line naming what to change."""


def schema_default(section: str, key: str):
    from tsne_atlas.schema import SCHEMA_PATH, load_schema

    return load_schema(str(SCHEMA_PATH))["properties"][section]["properties"][key]["default"]


def copy_dataset(
    source: Path, dest: Path, per_class: int | None = None, classes: list[str] | None = None
) -> dict[str, list[str]]:
    """Copy the class folders of ``source`` (images only; ``per_class``: the first that many of each by
    name; ``classes``: those folders only) to ``dest``; returns {class: [relative paths]}."""
    copied = {}
    folders = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = sorted(set(classes or []) - set(folders))
    if unknown:
        raise PlantError(f"--classes {' '.join(unknown)}: no such folder in {source}; choose from {', '.join(folders)}")
    classes = sorted(classes) if classes else folders
    if len(classes) < 2:
        raise PlantError(f"{source}: {len(classes)} class folder(s); planting a wrong label needs at least two")
    for name in classes:
        images = sorted(p for p in (source / name).iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)[
            :per_class
        ]
        (dest / name).mkdir(parents=True)
        for image in images:
            shutil.copy2(image, dest / name / image.name)
        copied[name] = [f"{name}/{image.name}" for image in images]
    return copied


def max_cosine_to_others(X: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Each row's highest cosine similarity to any other row of ``X`` (N,), over all pairs, in row chunks."""
    from tsne_atlas.suspects import unit_rows

    unit = unit_rows(X)
    best = np.empty(len(unit))
    for start in range(0, len(unit), chunk):
        block = unit[start : start + chunk] @ unit.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
        best[start : start + chunk] = block.max(axis=1) if len(unit) > 1 else -np.inf
    return best


def twin_free(hashes: list[str], X: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask (N,): images whose SHA-256 no other image shares and whose cosine to every other
    row of ``X`` is below ``threshold``."""
    counts: dict[str, int] = {}
    for digest in hashes:
        counts[digest] = counts.get(digest, 0) + 1
    unique = np.array([counts[digest] == 1 for digest in hashes], dtype=bool)
    return unique & (max_cosine_to_others(X) < threshold)


def choose_plants(paths: list[str], labels: list[str], eligible, n: int, seed: int) -> list[dict]:
    """``n`` planted images: rows (path where it will be, true_class, planted_class, original).

    Seeded: the classes in a seeded order, one eligible image from each in turn (a seeded choice), until
    n are chosen, so every class gives one before any gives two; each goes to a seeded choice of another
    class. A class with no eligible image left is passed over."""
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise PlantError(f"the dataset has {len(classes)} class(es); planting a wrong label needs at least two")
    pool = {name: [p for p, lab, ok in zip(paths, labels, eligible) if ok and lab == name] for name in classes}
    available = sum(len(candidates) for candidates in pool.values())
    if not 1 <= n <= available:
        raise PlantError(
            f"--n {n}: {available} of the {len(paths)} images have no twin, so plant from 1 to {available}"
        )
    rng = np.random.default_rng(seed)
    order = [classes[i] for i in rng.permutation(len(classes))]
    chosen: list[dict] = []
    while len(chosen) < n and any(pool.values()):
        for name in order:
            if len(chosen) == n or not pool[name]:
                continue
            original = pool[name].pop(int(rng.integers(len(pool[name]))))
            others = [c for c in classes if c != name]
            target = others[int(rng.integers(len(others)))]
            chosen.append(
                {
                    "path": f"{target}/{Path(original).name}",
                    "true_class": name,
                    "planted_class": target,
                    "original": original,
                }
            )
    return chosen


def plant(root: Path, plants: list[dict], planted_csv: Path) -> None:
    """Move each planted image into its planted class's folder under ``root``; write ``planted_csv``."""
    for row in plants:
        dest = root / row["path"]
        if dest.exists():
            raise PlantError(f"{dest} exists already; planting {row['original']} there would overwrite it")
        (root / row["original"]).rename(dest)
    write_planted(planted_csv, plants)


def write_planted(path: Path, plants: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(PLANTED_FIELDS)
        writer.writerows([row[name] for name in PLANTED_FIELDS] for row in plants)


def read_planted(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != PLANTED_FIELDS:
            raise PlantError(f"{path}: not a planted list (columns {', '.join(PLANTED_FIELDS)} expected)")
        return list(reader)


def odd_images(size: tuple[int, int], mode: str, seed: int) -> dict[str, list]:
    """{"group": GROUP_SIZE PIL images, "isolated": [one]} of ``size`` (width, height) and ``mode``, seeded.

    The group: one smooth random texture (Gaussian noise blurred over a ninth of the image's side, periodic,
    stretched to 0-255), each member shifted by up to GROUP_SHIFT pixels, its contrast scaled by a
    factor from GROUP_CONTRAST and GROUP_NOISE grey levels of noise of its own added: similar to each
    other, unlike any photo or silhouette. The isolated one: scikit-image's photo of coins (bundled with
    it) scaled to ``size``."""
    import skimage.data
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng([seed, 1])
    width, height = size
    texture = gaussian_filter(rng.normal(size=(height, width)), sigma=max(size) / 9, mode="wrap")
    texture = (texture - texture.min()) / np.ptp(texture) * 255

    def image(array):
        return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), "L").convert(mode)

    group = []
    for _ in range(GROUP_SIZE):
        shift = rng.integers(-GROUP_SHIFT, GROUP_SHIFT + 1, size=2)
        contrast = rng.uniform(*GROUP_CONTRAST)
        group.append(image(np.roll(texture, shift, axis=(0, 1)) * contrast + rng.normal(0, GROUP_NOISE, texture.shape)))
    coins = Image.fromarray(skimage.data.coins()).resize(size, Image.LANCZOS)
    return {"group": group, "isolated": [coins.convert(mode)]}


def plant_odd(root: Path, classes: list[str], seed: int, odd_csv: Path) -> list[dict]:
    """Save ``odd_images`` (in the size and mode of the first image of the first class) under ``root``:
    the group in one class's folder, the isolated one in another's (seeded); write ``odd_csv``; the rows
    (path, kind)."""
    from PIL import Image

    if len(classes) < 2:
        raise PlantError(f"{root}: {len(classes)} class folder(s); the odd images go to two of them")
    first = min(p for p in (root / classes[0]).iterdir() if p.suffix.lower() in EXTENSIONS)
    with Image.open(first) as image:
        size, mode = image.size, image.mode
    rng = np.random.default_rng([seed, 2])
    homes = [classes[i] for i in rng.permutation(len(classes))[:2]]
    rows = []
    for (kind, images), home in zip(odd_images(size, mode, seed).items(), homes):
        for n, image in enumerate(images):
            name = f"odd-group-{n:02d}.png" if kind == "group" else "odd-isolated.png"
            dest = root / home / name
            if dest.exists():
                raise PlantError(f"{dest} exists already; an odd image planted there would overwrite it")
            image.save(dest)
            rows.append({"path": f"{home}/{name}", "kind": kind})
    with open(odd_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(ODD_FIELDS)
        writer.writerows([row[name] for name in ODD_FIELDS] for row in rows)
    return rows


def local_ratio_ranks(graph: Path, paths: list[str], k: int) -> dict[str, int]:
    """Every image's rank by the k-neighbour ratio alone (``relative_outlier_scores``, ties by index):
    outliers.csv's order before its whole-graph part joined it."""
    from tsne_atlas.files.map_inputs import read_neighbours
    from tsne_atlas.suspects import rank_outliers, relative_outlier_scores

    indices, distances = read_neighbours(graph)
    order = rank_outliers(relative_outlier_scores(indices, distances, min(k, indices.shape[1])))
    return {paths[i]: rank for rank, i in enumerate(order, start=1)}


def odd_distances(graph: Path, paths: list[str], odd: list[dict]) -> list[float]:
    """Each odd image's distance to its nearest real (not planted odd) image over the median distance
    of a real image to its nearest real neighbour, read off the k-NN graph (nan where none of an
    image's neighbours is real)."""
    from tsne_atlas.files.map_inputs import read_neighbours

    indices, distances = read_neighbours(graph)
    row = {path: i for i, path in enumerate(paths)}
    is_odd = np.zeros(len(paths), dtype=bool)
    is_odd[[row[r["path"]] for r in odd]] = True
    real_neighbour = np.where(is_odd[indices], np.inf, distances).min(axis=1)
    typical = np.median(real_neighbour[~is_odd & np.isfinite(real_neighbour)])
    nearest = [real_neighbour[row[r["path"]]] for r in odd]
    return [float(d / typical) if np.isfinite(d) else float("nan") for d in nearest]


def outlier_table(odd: list[dict], ranks: dict, local: dict, ratios: dict, listed: dict, n_images: int) -> str:
    """A Markdown table: a row per odd image with its rank in outliers.csv and by the k-neighbour ratio
    alone per set, then the top-k counts, the range of distance ratios (``odd_distances``), the rows of
    each outliers.csv (``listed``) and the images the k-ratio ranks (``n_images``)."""
    sets = list(ranks)
    head = [f"rank in {name} | k-ratio alone" for name in sets]
    lines = [
        "| odd image | kind | " + " | ".join(head) + " |",
        "|---|---|" + "---|---|" * len(sets),
    ]
    for n, row in enumerate(odd):
        cells = [f"{'not listed' if ranks[name][n] is None else ranks[name][n]} | {local[name][n]}" for name in sets]
        lines.append(f"| `{row['path']}` | {row['kind']} | " + " | ".join(cells) + " |")
    for k in sorted({*TOP_K, len(odd)}):
        counts = [
            f"{top_k_counts(ranks[name], [k])[k]} of {len(odd)} | {top_k_counts(local[name], [k])[k]} of {len(odd)}"
            for name in sets
        ]
        lines.append(f"| **in the top {k}** | | " + " | ".join(counts) + " |")
    far = [f"{min(ratios[name]):.1f}–{max(ratios[name]):.1f} | " for name in sets]
    lines.append("| distance to the nearest real image, over a real image's | | " + " | ".join(far) + " |")
    lines.append("| images ranked | | " + " | ".join(f"{listed[name]} | {n_images}" for name in sets) + " |")
    return "\n".join(lines)


def write_outlier_ranks_csv(path: Path, odd: list[dict], ranks: dict, local: dict, ratios: dict) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        columns = [(f"rank_{name}", f"local_rank_{name}", f"distance_ratio_{name}") for name in ranks]
        writer.writerow([*ODD_FIELDS, *(c for group in columns for c in group)])
        for n, row in enumerate(odd):
            cells = []
            for name in ranks:
                cells += ["" if ranks[name][n] is None else ranks[name][n], local[name][n], f"{ratios[name][n]:.2f}"]
            writer.writerow([row["kind"] if f == "kind" else row["path"] for f in ODD_FIELDS] + cells)


def workflow_config(root: Path, sets: list[str], perplexity: float | None = None) -> dict:
    """The demo's config for a planted run: ``root`` (folders), every image, the named feature sets."""
    config = {
        "results": "results",
        "dataset": {"root": str(root)},
        "sample": {"n_images": "all"},
        "features": {name: FEATURE_SETS[name] for name in sets},
    }
    if perplexity is not None:
        config["tsne"] = {"perplexities": [perplexity]}
    return config


def run_workflow(workdir: Path, config: dict, targets: list[str], cores: int) -> float:
    """Run this repository's workflow in ``workdir`` with ``config`` for ``targets``; its wall time in seconds."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    command = [
        SNAKEMAKE,
        *targets,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        str(cores),
        "--quiet",
        "rules",
    ]
    began = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    (workdir / "snakemake.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise PlantError(
            f"the workflow failed in {workdir} (its output: {workdir}/snakemake.log):\n{result.stderr[-3000:]}"
        )
    return time.perf_counter() - began


def eligible_images(results: Path, threshold: float) -> tuple[list[str], list[str], np.ndarray]:
    """(paths, labels, twin-free mask) of a finished unplanted run's sample and trained prepared input."""
    from tsne_atlas.files.manifest import read_images, sample_labels
    from tsne_atlas.files.map_inputs import read_input

    paths, hashes = read_images(results / "sample" / "images.csv")
    labels = sample_labels(results / "sample" / "manifest.csv", paths, "images.csv").labels
    X, _ = read_input(results / "embeddings" / TRAINED / "input.h5")
    return paths, labels, twin_free(hashes, X, threshold)


def planted_ranks(plants: list[dict], suspects: list[dict]) -> list[int | None]:
    """Each planted image's rank in a suspects table (None: not listed)."""
    rank = {row["path"]: int(row["rank"]) for row in suspects}
    return [rank.get(row["path"]) for row in plants]


def top_k_counts(ranks: list[int | None], ks: list[int]) -> dict[int, int]:
    """How many of ``ranks`` are at most k, for each k."""
    return {k: sum(r is not None and r <= k for r in ranks) for k in ks}


def rank_table(plants: list[dict], ranks: dict[str, list], listed: dict[str, int]) -> str:
    """A Markdown table: a row per planted image with its rank per set, then the top-k counts."""
    sets = list(ranks)
    ks = sorted({*TOP_K, len(plants)})
    lines = [
        "| planted image | true class | planted as | " + " | ".join(f"rank in {name}" for name in sets) + " |",
        "|---|---|---|" + "---|" * len(sets),
    ]
    for n, row in enumerate(plants):
        cells = ["not listed" if ranks[name][n] is None else str(ranks[name][n]) for name in sets]
        lines.append(f"| `{row['path']}` | {row['true_class']} | {row['planted_class']} | " + " | ".join(cells) + " |")
    for k in ks:
        counts = [f"{top_k_counts(ranks[name], [k])[k]} of {len(plants)}" for name in sets]
        lines.append(f"| **in the top {k}** | | | " + " | ".join(counts) + " |")
    lines.append("| images listed as suspects | | | " + " | ".join(f"{listed[name]}" for name in sets) + " |")
    return "\n".join(lines)


def write_ranks_csv(path: Path, plants: list[dict], ranks: dict[str, list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*PLANTED_FIELDS, *(f"rank_{name}" for name in ranks)])
        for n, row in enumerate(plants):
            writer.writerow(
                [*(row[f] for f in PLANTED_FIELDS), *("" if r[n] is None else r[n] for r in ranks.values())]
            )


def marked_figure(suspects: list[dict], plants: list[dict], root: Path, png: Path, title: str, thumb_size: int) -> int:
    """The top of a suspects table drawn as the workflow draws it (``suspects_figure``), each planted
    image's row shaded yellow and its caption starting "PLANTED, truly <class>"; the number of planted
    rows drawn."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from tsne_atlas import suspects_figure as sf
    from tsne_atlas.figure_style import PNG_METADATA

    truth = {row["path"]: row["true_class"] for row in plants}
    rows = []
    for path, label, caption, neighbours in sf.suspect_figure_rows(suspects):
        if path in truth:
            caption = f"PLANTED, truly {truth[path]}\n{caption}"
        rows.append((path, label, caption, neighbours[: sf.MAX_NEIGHBOURS]))
    if not rows:
        raise PlantError(f"the suspects table behind {png} is empty: nothing to draw")
    fig = sf.draw_rows(rows, root, title, thumb_size, None)
    height = fig.get_size_inches()[1] * sf.DPI
    cell_h = thumb_size + sf.TEXT_H + sf.GAP
    marked = 0
    for r, (path, *_) in enumerate(rows):
        if path in truth:
            marked += 1
            top = sf.TITLE_H + r * cell_h - sf.GAP / 2
            fig.patches.append(
                Rectangle(
                    (0, 1 - (top + cell_h) / height),
                    1,
                    cell_h / height,
                    transform=fig.transFigure,
                    facecolor="#fff3b0",
                    edgecolor="none",
                    zorder=-10,
                )
            )
    try:
        fig.savefig(png, format="png", dpi=sf.DPI, metadata=PNG_METADATA)
    finally:
        plt.close(fig)
    return marked


def docs_copy(png: Path, dest: Path, width: int = DOCS_WIDTH) -> None:
    """``png`` scaled to ``width`` pixels wide (aspect kept) as a 256-colour PNG at ``dest``."""
    from PIL import Image

    with Image.open(png) as image:
        image = image.convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)


def plant_suspects(
    work: Path,
    n: int = 10,
    seed: int = 0,
    per_class: int | None = None,
    classes: list[str] | None = None,
    random: tuple[str, ...] = ("lite0",),
    perplexity: float | None = None,
    cores: int | None = None,
    docs_figure: Path | None = None,
    source: Path = DEMO,
) -> dict:
    """Steps 1 to 6 of the module's docstring; returns {"plants", "ranks" {set: [rank or None]},
    "listed" {set: rows of suspects.csv}, "table", "odd" (the odd images' rows), "outlier_ranks" {set:
    [rank in outliers.csv or None]}, "local_ranks" {set: [rank by the k-neighbour ratio alone]},
    "odd_distances" {set: [distance ratio]}, "outlier_table", "seconds" {step: wall}}."""
    from tsne_atlas.files.manifest import read_images
    from tsne_atlas.files.suspects import read_outliers, read_suspects

    work = Path(work).resolve()
    if work.exists() and any(work.iterdir()):
        raise PlantError(f"{work} is not empty; give a new or empty folder")
    cores = cores or os.cpu_count() or 1
    threshold = schema_default("suspects", "near_duplicate_cosine")
    sets = [TRAINED, *(RANDOM_SETS[name] for name in random)]
    data = work / "data"
    copy_dataset(source, data, per_class, classes)
    seconds = {}
    seconds["unplanted run"] = run_workflow(
        work / "unplanted",
        workflow_config(data, [TRAINED], perplexity),
        [f"results/embeddings/{TRAINED}/input.h5", "results/sample/manifest.csv"],
        cores,
    )
    paths, labels, eligible = eligible_images(work / "unplanted" / "results", threshold)
    plants = choose_plants(paths, labels, eligible, n, seed)
    plant(data, plants, work / "planted.csv")
    odd = plant_odd(data, sorted(set(labels)), seed, work / "planted-outliers.csv")
    targets = [f"results/suspects/{name}/{table}.csv" for name in sets for table in ("suspects", "outliers")]
    seconds["planted run"] = run_workflow(work / "planted", workflow_config(data, sets, perplexity), targets, cores)
    results = work / "planted" / "results" / "suspects"
    ranks, listed = {}, {}
    thumb_size = schema_default("suspects", "thumb_size")
    for name in sets:
        suspects = read_suspects(results / name / "suspects.csv")
        ranks[name], listed[name] = planted_ranks(plants, suspects), len(suspects)
        found = top_k_counts(ranks[name], [len(plants)])[len(plants)]
        marked_figure(
            suspects,
            plants,
            data,
            work / f"planted-suspects-{name}.png",
            f"Suspect labels in {name} features, {len(plants)} planted (shaded): {found} of them in the top {len(plants)}",
            thumb_size,
        )
    write_ranks_csv(work / "planted-ranks.csv", plants, ranks)
    table = rank_table(plants, ranks, listed)
    (work / "planted-ranks.md").write_text(table + "\n", encoding="utf-8")
    if docs_figure is not None:
        docs_copy(work / f"planted-suspects-{TRAINED}.png", Path(docs_figure))
    outlier_ranks, local, ratios, rows = {}, {}, {}, {}
    planted_paths, _ = read_images(work / "planted" / "results" / "sample" / "images.csv")
    k = schema_default("suspects", "neighbours")
    for name in sets:
        outliers = read_outliers(results / name / "outliers.csv")
        outlier_ranks[name], rows[name] = planted_ranks(odd, outliers), len(outliers)
        (graph,) = (work / "planted" / "results" / "embeddings" / name / "graph").glob("k-*.npz")
        by_ratio = local_ratio_ranks(graph, planted_paths, k)
        local[name] = [by_ratio[row["path"]] for row in odd]
        ratios[name] = odd_distances(graph, planted_paths, odd)
    write_outlier_ranks_csv(work / "planted-outlier-ranks.csv", odd, outlier_ranks, local, ratios)
    odd_table = outlier_table(odd, outlier_ranks, local, ratios, rows, len(planted_paths))
    (work / "planted-outliers.md").write_text(odd_table + "\n", encoding="utf-8")
    return {
        "plants": plants,
        "ranks": ranks,
        "listed": listed,
        "table": table,
        "odd": odd,
        "outlier_ranks": outlier_ranks,
        "local_ranks": local,
        "odd_distances": ratios,
        "outlier_table": odd_table,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="a new or empty folder for the copy, the runs and the tables")
    parser.add_argument("--n", type=int, default=10, help="images to plant (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of which images and which classes (default 0)")
    parser.add_argument(
        "--per-class", type=int, default=None, help="copy the first M images of each class (default all)"
    )
    parser.add_argument("--classes", nargs="+", default=None, help="copy these class folders only (default all)")
    parser.add_argument("--random", nargs="*", choices=sorted(RANDOM_SETS), default=["lite0"])
    parser.add_argument("--perplexity", type=float, default=None, help="t-SNE perplexity (the graph holds 3 x it)")
    parser.add_argument("--cores", type=int, default=None, help="Snakemake's --cores (default: all)")
    parser.add_argument(
        "--docs-figure", type=Path, default=None, help="also write the trained set's figure here, downscaled"
    )
    args = parser.parse_args(argv)
    try:
        result = plant_suspects(
            args.work,
            n=args.n,
            seed=args.seed,
            per_class=args.per_class,
            classes=args.classes,
            random=tuple(args.random),
            perplexity=args.perplexity,
            cores=args.cores,
            docs_figure=args.docs_figure,
        )
    except PlantError as err:
        print(f"plant_suspects: {err}", file=sys.stderr)
        return 1
    print(result["table"])
    print()
    print(result["outlier_table"])
    print(", ".join(f"{step} {wall:.0f} s" for step, wall in result["seconds"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
