"""Checks on the whole config that a JSON schema cannot express, run when the
workflow is loaded so a bad sweep fails in one line before any job starts.

Kept free of heavy imports: Snakemake imports this on every invocation.
"""

import hashlib
import json
import math
import os
from pathlib import Path

from .jobs import AtlasError

WEIGHT_KEYWORDS = ("auto", "imagenet", "none")


def graph_neighbors(perplexities) -> int:
    """k of the sweep's one k-NN graph: 3 x the largest perplexity, so every perplexity's
    3 x perplexity nearest neighbours are its first columns (openTSNE's set_perplexity rule)."""
    return int(3 * max(float(p) for p in perplexities))


def min_images_for_perplexity(perplexity: float) -> int:
    """openTSNE builds a 3*perplexity nearest-neighbour graph, so it needs N > 3*perplexity + 1."""
    return math.floor(3 * perplexity) + 2


def check_perplexity(perplexity: float, n_images: int) -> None:
    if perplexity <= 0:
        raise AtlasError(f"tsne.perplexities: {perplexity} is not positive; use values such as 5, 30, 50")
    if n_images < min_images_for_perplexity(perplexity):
        raise AtlasError(
            f"tsne.perplexities: perplexity {perplexity:g} needs at least {min_images_for_perplexity(perplexity)} "
            f"images (3 x perplexity neighbours per point) but the sample has {n_images}; "
            f"use perplexities below {(n_images - 2) / 3:.4g} or raise sample.n_images"
        )


def settings_hash(settings: dict) -> str:
    """Short stable hash of a settings mapping (recorded with the features)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def features_config_hash(config: dict) -> str:
    """The ``config_hash`` recorded in features.h5: the dataset, sample and model sections but
    ``model.threads``. Provenance only: it is not a rule param, so it reruns nothing itself
    (every setting in it that can change a feature is a param or input of extraction)."""
    return settings_hash(
        {
            "dataset": config["dataset"],
            "sample": config["sample"],
            "model": {k: v for k, v in config["model"].items() if k != "threads"},
        }
    )


def check_config(config: dict, count_images=None) -> None:
    """Cross-key checks after schema validation; raises AtlasError naming the key and the fix.

    ``count_images(root, extensions)`` is called only when ``sample.n_images`` is ``all``.
    """
    root = Path(config["dataset"]["root"])
    if not root.is_dir():
        raise AtlasError(
            f"dataset.root '{root}' does not exist or is not a folder (working directory {os.getcwd()}); "
            f"set dataset.root to a folder with one sub-folder of images per class"
        )
    weights = str(config["model"]["weights"])
    if weights not in WEIGHT_KEYWORDS and not Path(weights).is_file():
        raise AtlasError(
            f"model.weights '{weights}' is neither one of {list(WEIGHT_KEYWORDS)} nor an existing file; "
            f"give one of those words or the path of a state-dict file"
        )
    n_images = config["sample"]["n_images"]
    if n_images == "all":
        n_images = count_images(str(root), list(config["dataset"]["extensions"])) if count_images else None
    if n_images is not None:
        for perplexity in config["tsne"]["perplexities"]:
            check_perplexity(float(perplexity), int(n_images))
