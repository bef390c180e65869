"""Checks on the whole config that a JSON schema cannot express, run when the
workflow is loaded so a bad sweep fails in one line before any job starts.

Kept free of heavy imports: Snakemake imports this on every invocation.
"""

import hashlib
import json
import os
from pathlib import Path

from .files.runs import METHODS, run_params, run_seed
from .jobs import AtlasError
from .methods import MAP_METHODS

WEIGHT_KEYWORDS = ("auto", "pretrained", "imagenet", "none")
NETWORK_SOURCES = ("torchvision", "timm")
OWN_NETWORK_SOURCES = ("torchscript", "export")
# Keys that only some sources use: giving one to another source is a mistake worth a clear line.
SOURCE_KEYS = {
    "arch": NETWORK_SOURCES,
    "weights": NETWORK_SOURCES,
    "init_seed": NETWORK_SOURCES,
    # Sources with a classifier head: its outputs' names, for the predictions stored with the features.
    "class_names": NETWORK_SOURCES,
    "nodes": NETWORK_SOURCES + OWN_NETWORK_SOURCES,
    "path": (*OWN_NETWORK_SOURCES, "precomputed"),
    "paths_file": ("precomputed",),
    "input_size": OWN_NETWORK_SOURCES,
    "mean": OWN_NETWORK_SOURCES,
    "std": OWN_NETWORK_SOURCES,
}
PENULTIMATE = "penultimate"
# The dataset keys only a manifest layout uses (the other layouts pass them to no job).
MANIFEST_KEYS = ("manifest", "label_column", "missing_label")
# The one node of a precomputed set (the file's features as they are).
PRECOMPUTED_NODE = "precomputed"


def configured_methods(config: dict) -> list:
    """The configured map methods' declarations (``methods``), in METHODS order."""
    return [method for name, method in MAP_METHODS.items() if name in config["methods"]]


def graph_neighbours(config: dict) -> int:
    """k of the sweep's shared k-NN graph: ``graph.neighbours``, or with ``auto`` what the configured
    methods need there (t-SNE: 3 x its largest perplexity) or else what the suspects, the explorer and the clusters read."""
    given = config["graph"]["neighbours"]
    if given != "auto":
        return int(given)
    needed = [method.shared_graph_neighbours(config) for method in configured_methods(config)]
    return max([*needed, 0]) or max(
        config["suspects"]["neighbours"], config["explorer"]["neighbours"], config["clusters"]["neighbours"]
    )


def sweep_runs(config: dict) -> list[dict]:
    """Every map of one feature set, in METHODS order then settings order: the method, its settings
    and ``params``, the file stem naming it (``files.runs``)."""
    return [
        {"method": method.name, **settings, "params": run_params(method.name, settings)}
        for method in configured_methods(config)
        for settings in method.settings(config)
    ]


def sweep_seeds(config: dict) -> list[int]:
    """The seeds of the configured stochastic methods, in METHODS then config order, each once."""
    return list(dict.fromkeys(seed for method in configured_methods(config) for seed in method.seeds(config)))


def compare_seed(config: dict) -> int | None:
    """The seed the comparison sheet shows: ``compare.seed``, or the sweep's first seed (None: no
    stochastic method)."""
    seeds = sweep_seeds(config)
    return config["compare"]["seed"] if config["compare"]["seed"] is not None else (seeds[0] if seeds else None)


def runs_at_seed(runs: list[dict], seed: int | None) -> list[dict]:
    """The runs a comparison at ``seed`` shows: each stochastic method's at that seed (or, if the method
    has no run at it, at its first seed), and the deterministic ones."""
    chosen = []
    for method in METHODS:
        of_method = [run for run in runs if run["method"] == method]
        seeds = sorted({run_seed(run) for run in of_method} - {None})
        at = seed if seed in seeds else (seeds[0] if seeds else None)
        chosen += [run for run in of_method if run_seed(run) in (None, at)]
    return chosen


# explorer.backend ``auto``: the Bokeh canvas page up to this many images (every page at today's sizes is
# byte for byte what it was), the WebGL points page above (explorer_points.py).
POINTS_ABOVE = 100_000
POINTS_BACKEND = "points"
# A points page's thumbnails: every image, in cells of at most POINTS_CELL pixels, POINTS_ATLAS_COLUMNS a
# row (and at most as many rows) per atlas. Measured on 48-pixel synthetic images: 2.2 KB an image at 96
# pixels (2.2 GB at 1,000,000), 0.84 KB at 48 (0.84 GB); a zoomed-in view loads one atlas for almost
# every image it shows (cells follow the sample's order, random on a map), so atlases of 64 cells
# (54 KB at 48 pixels) cost a quarter of what 256 would.
POINTS_CELL = 48
POINTS_ATLAS_COLUMNS = 8


def explorer_backend(backend: str, n_images: int) -> str:
    """The page ``explorer.backend`` asks for at ``n_images`` images: ``canvas``, ``webgl`` or ``points``;
    ``auto`` is ``canvas`` up to POINTS_ABOVE images and ``points`` above."""
    if backend != "auto":
        return backend
    return POINTS_BACKEND if n_images > POINTS_ABOVE else "canvas"


def explorer_thumbnail_params(explorer: dict, n_images: int) -> dict:
    """The params of rule explorer_thumbnails (config section ``explorer``): the cell size and the cap
    (``max_images``) as ever; for a points page every image (``every_image``), the cap kept for the
    projector export, in cells of at most POINTS_CELL pixels, POINTS_ATLAS_COLUMNS a row. A canvas or
    webgl page's params are what they were before points pages (so nothing reruns)."""
    params = {"thumb_size": explorer["thumb_size"], "max_images": explorer["max_images"]}
    if explorer_backend(explorer["backend"], n_images) != POINTS_BACKEND:
        return params
    return {
        **params,
        "thumb_size": min(explorer["thumb_size"], POINTS_CELL),
        "every_image": True,
        "columns": POINTS_ATLAS_COLUMNS,
    }


def check_graph(config: dict) -> None:
    """A given ``graph.neighbours`` must hold what the methods read from the sweep's graph."""
    given = config["graph"]["neighbours"]
    if given == "auto":
        return
    for method in configured_methods(config):
        needed = method.shared_graph_neighbours(config)
        if needed > int(given):
            raise AtlasError(
                f"graph.neighbours: {given} is fewer than the {needed} neighbours {method.title} reads "
                f"({method.name} settings); use at least {needed} or auto"
            )


def settings_hash(settings: dict) -> str:
    """Short stable hash of a settings mapping (recorded with the features)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def features_config_hash(config: dict, feature_set: str) -> str:
    """The ``config_hash`` recorded in a set's features file: the dataset and sample sections, the
    set's own settings and the extraction settings that can change a feature (not the worker and
    thread counts, nor how the extraction is split into shards: a merged file equals one job's).
    Provenance only: it is not a rule param, so it reruns nothing itself (every setting in it that can
    change a feature is a param or input of extraction)."""
    run_only = ("threads", "num_workers", "shards", "images_per_shard")
    return settings_hash(
        {
            "dataset": config["dataset"],
            "sample": config["sample"],
            "features": config["features"][feature_set],
            "extraction": {k: v for k, v in config["extraction"].items() if k not in run_only},
        }
    )


def extraction_job_arguments(config: dict, feature_set: str) -> dict:
    """What an extraction job (one job or one shard) gets beside its rule's params, on purpose: the
    DataLoader's worker count (how fast, never what: as a param, changing it would rerun extraction and
    all after it) and the ``config_hash`` provenance recorded in the features file."""
    return {
        "num_workers": config["extraction"]["num_workers"],
        "config_hash": features_config_hash(config, feature_set),
    }


def feature_set_settings(config: dict, defaults: dict) -> dict[str, dict]:
    """Every feature set of ``config['features']`` with the schema's ``defaults`` filled in, in config order.

    A precomputed set has the one node ``PRECOMPUTED_NODE``; an own network's ``penultimate`` is its output.
    """
    sets = {}
    for name, given in config["features"].items():
        settings = {**defaults, **(given or {})}
        if settings["source"] == "precomputed":
            settings["nodes"] = [PRECOMPUTED_NODE]
        sets[name] = settings
    return sets


def feature_ids(sets: dict[str, dict]) -> dict[str, tuple[str, str]]:
    """Feature set id -> (set name, node), in config order: a one-node set is named as given,
    a set of several nodes gives ``<set>.<node>`` for each (the node as written in the config)."""
    ids = {}
    for name, settings in sets.items():
        nodes = list(settings["nodes"])
        for node in nodes:
            ids[name if len(nodes) == 1 else f"{name}.{node}"] = (name, node)
    return ids


def check_feature_sets(given: dict, sets: dict[str, dict], defaults: dict) -> None:
    """What the schema cannot say about the feature sets: keys that do not fit the source, files that
    are missing, two sets that would compute the same features. ``defaults``: the schema's."""
    seen: dict[str, str] = {}
    for name, settings in sets.items():
        source = settings["source"]
        key = f"features.{name}"
        for option, value in (given[name] or {}).items():
            # Snakemake's validation fills in defaults, so only a value other than the default
            # shows that a key was given on purpose.
            if option in SOURCE_KEYS and source not in SOURCE_KEYS[option] and value != defaults.get(option):
                users = ", ".join(SOURCE_KEYS[option])
                raise AtlasError(f"{key}.{option} is only used by sources {users}, not '{source}'; remove it")
        if source in NETWORK_SOURCES:
            weights = str(settings["weights"])
            if weights not in WEIGHT_KEYWORDS and not Path(weights).is_file():
                raise AtlasError(
                    f"{key}.weights '{weights}' is neither one of {list(WEIGHT_KEYWORDS)} nor an existing file; "
                    f"give one of those words or the path of a checkpoint file"
                )
            class_names = settings.get("class_names")
            if class_names and not Path(class_names).is_file():
                raise AtlasError(
                    f"{key}.class_names '{class_names}' does not exist or is not a file; give a text file with "
                    f"one class name per line, in the order of the classifier's outputs, or remove the key"
                )
        else:
            if "path" not in settings:
                raise AtlasError(f"{key}.path is missing: a '{source}' set reads its network or features from a file")
            if not Path(settings["path"]).is_file():
                raise AtlasError(f"{key}.path '{settings['path']}' does not exist or is not a file; fix the path")
        if source in OWN_NETWORK_SOURCES and list(settings["nodes"]) != [PENULTIMATE]:
            raise AtlasError(
                f"{key}.nodes: a '{source}' network gives its output only (node '{PENULTIMATE}'); "
                f"save the network up to the layer you want instead"
            )
        if source == "precomputed":
            needs_paths = Path(settings["path"]).suffix.lower() == ".npy"
            if needs_paths and not Path(settings.get("paths_file", "")).is_file():
                raise AtlasError(
                    f"{key}.paths_file is missing or not a file: a .npy features file needs a text file of "
                    f"the image path of each row"
                )
        identity = json.dumps({k: v for k, v in settings.items()}, sort_keys=True, default=str)
        if identity in seen:
            raise AtlasError(
                f"features.{seen[identity]} and {key} have identical settings (same features twice); "
                f"remove one or change its settings"
            )
        seen[identity] = name


def check_dataset(dataset: dict) -> None:
    """The root must be a folder; a manifest layout needs its file, and only it takes one."""
    root = Path(dataset["root"])
    layout = dataset["layout"]
    if not root.is_dir():
        what = {
            "folders": "with one sub-folder of images per class",
            "manifest": "the manifest's paths are relative to",
        }
        raise AtlasError(
            f"dataset.root '{root}' does not exist or is not a folder (working directory {os.getcwd()}); "
            f"set dataset.root to the folder {what.get(layout, 'of the images')}"
        )
    manifest = dataset["manifest"]
    if layout == "manifest" and not manifest:
        raise AtlasError("dataset.layout is 'manifest' but dataset.manifest is empty; give the CSV or TSV file's path")
    if layout != "manifest" and manifest:
        raise AtlasError(
            f"dataset.manifest is set but dataset.layout is '{layout}'; set dataset.layout: manifest to use it"
        )
    if layout == "manifest" and not Path(manifest).is_file():
        raise AtlasError(f"dataset.manifest '{manifest}' does not exist or is not a file; fix the path")


def reference_dataset(config: dict) -> dict:
    """The dataset section the reference sample is drawn from: with a ``split`` query set, only the
    rows of ``dataset.manifest`` outside the query's split (``collection.read_dataset_manifest``)."""
    query = config["query"]
    if query["layout"] != "split":
        return config["dataset"]
    return {**config["dataset"], "split": [query["split_column"], query["split_value"], False]}


def query_dataset(config: dict) -> dict | None:
    """The query set as a dataset section (``collection.read_collection`` reads it; None: no query set).
    It shares the reference's extensions and missing-label rule; a split is the reference's manifest."""
    query, dataset = config["query"], config["dataset"]
    layout = query["layout"]
    if layout == "none":
        return None
    if layout == "split":
        return {**dataset, "split": [query["split_column"], query["split_value"], True]}
    return {
        "layout": layout,
        "root": query["folder"],
        "manifest": query["manifest"] if layout == "manifest" else "",
        "label_column": query["label_column"] if layout == "manifest" else "",
        "missing_label": dataset["missing_label"],
        "extensions": dataset["extensions"],
        "section": "query",
    }


def check_query(config: dict) -> None:
    """A query set's folder and manifest must exist; a split needs the reference's manifest layout."""
    query = config["query"]
    layout = query["layout"]
    if layout == "none":
        return
    if layout == "split":
        if config["dataset"]["layout"] != "manifest":
            raise AtlasError(
                f"query.layout is 'split' but dataset.layout is '{config['dataset']['layout']}'; a split is a column of "
                f"dataset.manifest: use dataset.layout: manifest, or give the query images as query.layout folders/flat/manifest"
            )
        given = [key for key in ("folder", "manifest") if query[key]]
        if given:
            raise AtlasError(
                f"query.{given[0]} is set but query.layout is 'split', whose images are rows of dataset.manifest under "
                f"dataset.root; remove query.{given[0]}, or use query.layout folders/flat/manifest"
            )
        return
    if not query["folder"] or not Path(query["folder"]).is_dir():
        raise AtlasError(
            f"query.folder '{query['folder']}' is not a folder (working directory {os.getcwd()}); set it to the folder of the "
            f"query images, or query.layout: none"
        )
    if layout == "manifest" and not Path(query["manifest"] or "").is_file():
        raise AtlasError(f"query.manifest '{query['manifest']}' is not a file; give the query's CSV or TSV file")
    if layout != "manifest" and query["manifest"]:
        raise AtlasError(f"query.manifest is set but query.layout is '{layout}'; set query.layout: manifest to use it")


def check_compare(compare: dict, ids: list[str], seeds: list[int]) -> None:
    """The comparison's reference and seed must be among the sweep's (``seeds``: its methods' seeds)."""
    if compare["reference"] and compare["reference"] not in ids:
        raise AtlasError(
            f"compare.reference '{compare['reference']}' is not a feature set id; use one of: {', '.join(ids)}"
        )
    if compare["seed"] is not None and compare["seed"] not in seeds:
        raise AtlasError(f"compare.seed {compare['seed']} is not a seed of the sweep's maps {seeds}; use one of them")


def check_config(config: dict, feature_set_defaults: dict, count_images=None) -> None:
    """Cross-key checks after schema validation; raises AtlasError naming the key and the fix.

    ``feature_set_defaults``: the schema's default of each feature-set key.

    ``count_images(dataset)`` is called only when ``sample.n_images`` is ``all``.
    """
    check_dataset(config["dataset"])
    check_query(config)
    sets = feature_set_settings(config, feature_set_defaults)
    check_feature_sets(config["features"], sets, feature_set_defaults)
    check_compare(config["compare"], list(feature_ids(sets)), sweep_seeds(config))
    check_graph(config)
    n_images = config["sample"]["n_images"]
    if n_images == "all":
        n_images = count_images(reference_dataset(config)) if count_images else None
    if n_images is not None:
        for method in configured_methods(config):
            method.check(config, int(n_images))
