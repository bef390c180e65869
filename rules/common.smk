import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate

# The workflow's package, scripts/tsne_atlas, is reached through the folder Snakemake puts on
# sys.path for the Snakefile (this repository's, also when it is used as a module).
from scripts.tsne_atlas.config import (
    NETWORK_SOURCES,
    WEIGHT_KEYWORDS,
    check_config,
    compare_seed,
    feature_ids,
    feature_set_settings,
    graph_neighbours,
    runs_at_seed,
    sweep_runs,
)
from scripts.tsne_atlas.files.features import features_file_problem
from scripts.tsne_atlas.files.runs import (
    METHODS,
    RUN_KEYS,
    RUN_PATTERN,
    WILDCARD_CONSTRAINTS,
    parse_params,
    wildcard_value,
)
from scripts.tsne_atlas.jobs import AtlasError, is_dry_run
from scripts.tsne_atlas.methods import MAP_METHODS
from scripts.tsne_atlas.resources import (
    explorer_mem_mb,
    extraction_gpus,
    extraction_mem_mb,
    extraction_runtime_min,
    merge_mem_mb,
    merge_runtime_min,
    metrics_mem_mb,
    metrics_runtime_min,
    projector_mem_mb,
    projector_runtime_min,
    sample_size,
    sampling_runtime_min,
    thumbnails_runtime_min,
    maps_mem_mb,
    maps_runtime_min,
    prepare_mem_mb,
)
from scripts.tsne_atlas.collection import (
    count_images,
    manifest_digest,
    watched_folders,
)
from scripts.tsne_atlas.shards import shard_count, shard_rows
from scripts.tsne_atlas.schema import (
    SCHEMA_PATH,
    feature_set_defaults,
    schema_error_line,
)

try:
    validate(config, schema=str(SCHEMA_PATH))
except WorkflowError:
    sys.exit(f"tsne-atlas: config error: {schema_error_line(config, SCHEMA_PATH)}")
try:
    check_config(config, feature_set_defaults(SCHEMA_PATH), count_images=count_images)
except AtlasError as err:
    sys.exit(f"tsne-atlas: config error: {err}")

RESULTS = config["results"]
# The feature sets (config section features, schema defaults filled in), and the feature set ids
# they give, one per (set, node): the values of the runs' {features} wildcard, in config order.
FEATURE_SETS = feature_set_settings(config, feature_set_defaults(SCHEMA_PATH))
FEATURES = feature_ids(FEATURE_SETS)
FEATURE_IDS = list(FEATURES)
# A features file that cannot be complete (truncated copy, crash of an older version) would be
# taken for finished: remove it so it is rebuilt. Only the main process acts (cluster jobs parse
# this file too), and a dry run only warns.
for feature_set in FEATURE_SETS:
    features_path = f"{RESULTS}/features/{feature_set}.h5"
    problem = features_file_problem(features_path)
    if problem and workflow.is_main_process:
        if is_dry_run(workflow):
            print(
                f"tsne-atlas: warning: {features_path} is incomplete "
                f"({problem}); a real run will rebuild it",
                file=sys.stderr,
            )
        else:
            Path(features_path).unlink()
            print(
                f"tsne-atlas: warning: {features_path} was incomplete "
                f"({problem}); removed, it will be rebuilt",
                file=sys.stderr,
            )
# Sizes the jobs' memory and run time (rules: resources); 'all' counts the dataset.
N_IMAGES = sample_size(
    config["sample"]["n_images"], lambda: count_images(config["dataset"])
)
# Extraction jobs per feature set (extraction.shards): 1 is one extract_features job writing
# features/<set>.h5; K > 1 is K extract_features_shard jobs over slices of the sample and one
# merge_features job writing the same file. A precomputed set is imported in one job.
SHARDS = {
    name: (
        1
        if settings["source"] == "precomputed"
        else shard_count(
            N_IMAGES,
            config["extraction"]["batch_size"],
            config["extraction"]["shards"],
            config["extraction"]["images_per_shard"],
        )
    )
    for name, settings in FEATURE_SETS.items()
}
# What the sample depends on in a dataset manifest (None for the other layouts).
try:
    DATASET_MANIFEST_DIGEST = manifest_digest(
        config["dataset"], config["sample"]["stratified"]
    )
except AtlasError as err:
    sys.exit(f"tsne-atlas: config error: {err}")
# k of the sweep's shared k-NN graph (graph.neighbours, or what the methods, suspects and explorer need).
GRAPH_K = graph_neighbours(config)
# Every map of a feature set (method, settings, and ``params``, the file stem of RUN), in METHODS order.
RUNS = sweep_runs(config)
# Where each feature set's maps and the input they share live: embeddings/<feature set id>/.
EMBEDDINGS = f"{RESULTS}/embeddings"
# The comparison figures (compare/) show every feature set at one seed, aligned to a reference set.
COMPARE = len(FEATURE_IDS) > 1
COMPARE_SEED = compare_seed(config)
COMPARE_REFERENCE = config["compare"]["reference"] or FEATURE_IDS[0]
# Every feature set exported for TensorBoard's Embedding Projector (results/projector/).
PROJECTOR = config["projector"]["enabled"]
# umap-learn's numba code is compiled on first use in each job (~11 s cold): numba keeps it in this
# folder, which every job (local or on a cluster node) can write, so later jobs load it. A
# NUMBA_CACHE_DIR already set (tests share one) is kept.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.abspath(f"{RESULTS}/.numba-cache"))


# A run's identity (scripts/tsne_atlas/files/runs.py): every per-run file is named RUN, and
# the report labels each run's figures with its wildcards.
RUN = RUN_PATTERN
RUN_LABELS = {key: f"{{{key}}}" for key in RUN_KEYS}
# A run's record (files/runs.py), written by the rule of its method.
EMBEDDING = f"{EMBEDDINGS}/{RUN}.tsv"
EMBEDDING_META = f"{EMBEDDINGS}/{RUN}.json"


wildcard_constraints:
    # features: only the configured ids, so a file of another (removed) set matches no rule.
    # method: only the configured methods, likewise.
    **{
        **WILDCARD_CONSTRAINTS,
        "features": "|".join(re.escape(features_id) for features_id in FEATURE_IDS),
        "method": "|".join(
            method for method in METHODS if method in config["methods"]
        ),
    },
    feature_set="|".join(re.escape(name) for name in FEATURE_SETS),
    k=r"[0-9]+",
    perplexity=r"[0-9]+(\.[0-9]+)?",


def feature_set_of(wildcards):
    """The config set a feature set id comes from."""
    return FEATURES[wildcards.features][0]


def node_of(wildcards):
    """The node (as the config names it) a feature set id reads in its set's features file."""
    return FEATURES[wildcards.features][1]


def features_file(wildcards):
    """The features file of the set a feature set id comes from (one file holds all its nodes)."""
    return f"{RESULTS}/features/{feature_set_of(wildcards)}.h5"


def graph_path(features_id, k=GRAPH_K):
    """A k-NN graph of a feature set id's prepared input; its name carries k. By default the sweep's:
    t-SNE's affinities, the suspects and the explorer read it."""
    return f"{EMBEDDINGS}/{features_id}/graph/k-{k}.npz"


def graph_file(wildcards):
    return graph_path(wildcards.features)


# The paths of the shared files a method's declaration names (methods/base.py: shared_inputs).
SHARED_FILES = {
    "graph": graph_path,
    "affinities": lambda features_id, perplexity: (
        f"{EMBEDDINGS}/{features_id}/affinities/perplexity-{wildcard_value(perplexity)}.npz"
    ),
}


def map_settings(wildcards):
    """Param function: the settings of the wildcards' run, read from its file stem (``params``)."""
    return parse_params(wildcards.method, wildcards.params)


def map_options(wildcards):
    """Param function: the keys of the run's method section every run reads (changing one reruns
    that method's maps only)."""
    return MAP_METHODS[wildcards.method].run_options(config)


def map_threads(wildcards):
    return MAP_METHODS[wildcards.method].threads(config)


def map_inputs(wildcards):
    """A run needs the features file (paths, provenance), the prepared input and the shared files its
    method declares (t-SNE with openTSNE: its perplexity's P; UMAP: a k-NN graph)."""
    shared = MAP_METHODS[wildcards.method].shared_inputs(
        config, map_settings(wildcards), GRAPH_K
    )
    return {
        "features": features_file(wildcards),
        "prepared": f"{EMBEDDINGS}/{wildcards.features}/input.h5",
        **{
            name: SHARED_FILES[kind](wildcards.features, value)
            for name, (kind, value) in shared.items()
        },
    }


def run_files(pattern, runs=None, features=None):
    """``pattern`` (with the run's wildcards, see RUN) for every run of the sweep (or of ``runs``, a
    part of RUNS), of every feature set or of one (``features``)."""
    chosen = [
        (features_id, run)
        for features_id in ([features] if features else FEATURE_IDS)
        for run in (RUNS if runs is None else runs)
    ]
    return expand(
        pattern,
        zip,
        features=[features_id for features_id, _ in chosen],
        method=[run["method"] for _, run in chosen],
        params=[run["params"] for _, run in chosen],
    )


def sweep_files(pattern):
    """Input function giving ``pattern`` for every run of the wildcards' feature set."""
    return lambda wildcards: run_files(pattern, features=wildcards.features)


def all_sets_files(pattern):
    """Input function giving ``pattern`` for every run of every feature set."""
    return lambda wildcards: run_files(pattern)


def compare_files(pattern):
    """Input function giving ``pattern`` for every feature set's runs at the comparison seed (each
    method's first seed if it has no run at it; PCA's one run)."""
    return lambda wildcards: run_files(pattern, runs=runs_at_seed(RUNS, COMPARE_SEED))


def final_outputs():
    """Per run: scatter (PNG, SVG), mosaic, grid mosaic; per feature set: metrics, overview, suspects and,
    unless projector.enabled is false, the projector export; the explorer and the projector's config file;
    with two or more feature sets, the comparison figures."""
    per_run = [
        f"{RESULTS}/scatter/{RUN}.png",
        f"{RESULTS}/scatter/{RUN}.svg",
        f"{RESULTS}/mosaic/{RUN}.png",
        f"{RESULTS}/grid_mosaic/{RUN}.png",
    ]
    per_set = expand(
        [
            f"{RESULTS}/metrics/{{features}}/sweep.csv",
            f"{RESULTS}/overview/{{features}}.png",
            f"{RESULTS}/suspects/{{features}}/suspects.png",
        ],
        features=FEATURE_IDS,
    )
    projector = expand(
        f"{RESULTS}/projector/{{features}}/tensors.tsv", features=FEATURE_IDS
    ) + [f"{RESULTS}/projector/projector_config.pbtxt"]
    compare = [
        f"{RESULTS}/compare/sheet.png",
        f"{RESULTS}/compare/metrics.csv",
        f"{RESULTS}/compare/cka.png",
    ]
    return (
        run_files(per_run)
        + per_set
        + [f"{RESULTS}/explorer.html"]
        + (projector if PROJECTOR else [])
        + (compare if COMPARE else [])
    )


def collection_inputs(wildcards):
    """What sampling reads: the dataset manifest (only as old as its digest param says: editing its
    metadata or, unstratified, its labels must not resample), or the folders, whose mtimes change
    when images are added or removed."""
    dataset = config["dataset"]
    if dataset["layout"] == "manifest":
        return {"dataset_manifest": ancient(dataset["manifest"])}
    return watched_folders(dataset["root"], dataset["layout"])


def manifest_setting(key):
    """Param: ``dataset.<key>`` in a manifest layout, None in the others (which use no such key, so
    changing it reruns nothing there)."""
    layout = config["dataset"]["layout"]
    return config["dataset"][key] if layout == "manifest" else None


def dataset_manifest_input(wildcards):
    """Labelling reads the dataset manifest (labels, metadata): any edit of it relabels."""
    if config["dataset"]["layout"] == "manifest":
        return {"dataset_manifest": config["dataset"]["manifest"]}
    return {}


def set_files(wildcards):
    """A set's own files are inputs (a checkpoint given as weights, a network or features file):
    replacing one reruns the set's jobs."""
    settings = FEATURE_SETS[wildcards.feature_set]
    if settings["source"] in NETWORK_SOURCES:
        weights = str(settings["weights"])
        return [] if weights in WEIGHT_KEYWORDS else [weights]
    return [settings["path"]] + (
        [settings["paths_file"]] if settings.get("paths_file") else []
    )


def set_class_names(wildcards):
    """A network set's class_names file is an input of its extraction only (replacing it reruns that
    job, not fetch_weights: the weights do not depend on it)."""
    settings = FEATURE_SETS[wildcards.feature_set]
    if settings["source"] in NETWORK_SOURCES and settings.get("class_names"):
        return [settings["class_names"]]
    return []


def sets_pattern(sharded):
    """The feature_set wildcard's values for the rules of sharded sets (or of unsharded ones);
    ``(?!)`` matches nothing where there is no such set."""
    names = [name for name, count in SHARDS.items() if (count > 1) == sharded]
    return "|".join(re.escape(name) for name in names) or "(?!)"


def feature_shards(wildcards):
    """The shard files a sharded set's merge joins, in index order."""
    count = SHARDS[wildcards.feature_set]
    return [
        f"{RESULTS}/features/shards/{wildcards.feature_set}/{index}-of-{count}.h5"
        for index in range(1, count + 1)
    ]


def shard_runtime_min(wildcards):
    """A shard job's wall time, sized from its slice of the sample."""
    start, stop = shard_rows(
        N_IMAGES,
        config["extraction"]["batch_size"],
        int(wildcards.shard),
        int(wildcards.shards),
    )
    return extraction_runtime_min(stop - start, config["extraction"]["device"])


def set_setting(key):
    """Param function: the wildcards' feature set's ``key`` (schema defaults filled in)."""
    return lambda wildcards: FEATURE_SETS[wildcards.feature_set][key]


def set_gpus(wildcards):
    """The extraction job's ``gpu`` resource for the wildcards' feature set."""
    return extraction_gpus(
        config["extraction"]["device"], FEATURE_SETS[wildcards.feature_set]["source"]
    )


def features_file_per_id(wildcards):
    """The features file of every feature set id, in FEATURE_IDS order (a set of several nodes repeats)."""
    return [
        f"{RESULTS}/features/{FEATURES[features_id][0]}.h5"
        for features_id in FEATURE_IDS
    ]


def graph_file_per_id(wildcards):
    """The sweep's k-NN graph of every feature set id, in FEATURE_IDS order."""
    return [graph_path(features_id) for features_id in FEATURE_IDS]


def network_setting(key):
    """Param function: ``extraction.<key>`` for a set a network computes, None for a precomputed set."""
    return lambda wildcards: (
        None
        if FEATURE_SETS[wildcards.feature_set]["source"] == "precomputed"
        else config["extraction"][key]
    )


def weights_record(wildcards):
    """A set with weights to resolve reads the record fetch_weights wrote for it."""
    if FEATURE_SETS[wildcards.feature_set]["source"] in NETWORK_SOURCES:
        return {"resolved": f"{RESULTS}/weights/{wildcards.feature_set}.json"}
    return {}


def results_summary():
    methods = ", ".join(
        f"{sum(run['method'] == method for run in RUNS)} {method}"
        for method in METHODS
        if method in config["methods"]
    )
    summary = (
        f"\ntsne-atlas: done. Results in {RESULTS}/\n"
        f"  feature sets {', '.join(FEATURE_IDS)}\n"
        f"  sample       {RESULTS}/sample/images.csv (paths, hashes), manifest.csv (labels, metadata)\n"
        f"  features     {RESULTS}/features/<set>.h5\n"
        f"  embeddings   {EMBEDDINGS}/<feature set>/<method>/ ({len(FEATURE_IDS) * len(RUNS)} maps; per feature set {methods})\n"
        f"  scatter      {RESULTS}/scatter/<feature set>/<method>/*.png, *.svg\n"
        f"  mosaics      {RESULTS}/mosaic/<feature set>/<method>/*.png, {RESULTS}/grid_mosaic/<feature set>/<method>/*.png\n"
        f"  metrics      {RESULTS}/metrics/<feature set>/sweep.csv, sweep.png\n"
        f"  overview     {RESULTS}/overview/<feature set>.png, .pdf\n"
        f"  suspects     {RESULTS}/suspects/<feature set>/suspects.csv, duplicates.csv, outliers.csv (+ PNGs)\n"
        f"  explorer     {RESULTS}/explorer.html (open in a browser; thumbnails in {RESULTS}/explorer/)\n"
    )
    if PROJECTOR:
        summary += f"  projector    {RESULTS}/projector/ (tensorboard --logdir {RESULTS}/projector)\n"
    if COMPARE:
        summary += f"  compare      {RESULTS}/compare/sheet.png, metrics.png, cka.png (+ CSV tables)\n"
    return summary + f"  logs         {RESULTS}/logs/\n"
