import re
import sys

from snakemake.utils import validate

# The workflow's package, scripts/tsne_atlas, is reached through the folder Snakemake puts on
# sys.path for the Snakefile (this repository's, also when it is used as a module).
from scripts.tsne_atlas.config import (
    NETWORK_SOURCES,
    POINTS_BACKEND,
    WEIGHT_KEYWORDS,
    explorer_backend,
    explorer_thumbnail_params,
    query_dataset,
    reference_dataset,
    runs_at_seed,
)
from scripts.tsne_atlas.files.runs import (
    RUN_KEYS,
    RUN_PATTERN,
    WILDCARD_CONSTRAINTS,
    parse_params,
    wildcard_value,
)
from scripts.tsne_atlas.jobs import AtlasError, is_dry_run
from scripts.tsne_atlas.methods import MAP_METHODS
from scripts.tsne_atlas.methods.tsne import neighbours_for
from scripts.tsne_atlas.plan import (
    apply_environment,
    load_plan,
    remove_incomplete_features,
)
from scripts.tsne_atlas.resources import (
    affinities_mem_mb,
    affinities_runtime_min,
    clusters_mem_mb,
    clusters_runtime_min,
    input_columns,
    knn_mem_mb,
    knn_runtime_min,
    overview_mem_mb,
    quality_mem_mb,
    run_metrics_mem_mb,
    scatter_mem_mb,
    suspects_mem_mb,
    suspects_runtime_min,
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
    sampling_runtime_min,
    thumbnails_runtime_min,
    maps_mem_mb,
    map_mem_mb,
    map_runtime_min,
    maps_runtime_min,
    prepare_mem_mb,
)
from scripts.tsne_atlas.collection import watched_folders
from scripts.tsne_atlas.shards import shard_rows
from scripts.tsne_atlas.schema import (
    SCHEMA_PATH,
    feature_set_defaults,
    schema_error_line,
)

try:
    validate(config, schema=str(SCHEMA_PATH))
except WorkflowError:
    sys.exit(f"tsne-atlas: config error: {schema_error_line(config, SCHEMA_PATH)}")
# What the config asks for (scripts/tsne_atlas/plan.py), checked; the dataset is read here only in
# the main process, which hands what it read to every job in the environment.
try:
    PLAN = load_plan(
        config, feature_set_defaults(SCHEMA_PATH), main_process=workflow.is_main_process
    )
except AtlasError as err:
    sys.exit(f"tsne-atlas: config error: {err}")


# Every job gets the dataset facts and NUMBA_CACHE_DIR (plan.py); envvars passes them to jobs of an
# executor that does not start them in this environment.
envvars:
    *apply_environment(PLAN),


# A features file that cannot be complete is removed so it is rebuilt: once, by the main process.
if workflow.is_main_process:
    remove_incomplete_features(PLAN, dry_run=is_dry_run(workflow))

RESULTS = PLAN.results
FEATURE_SETS = PLAN.feature_sets
FEATURES = PLAN.features
FEATURE_IDS = PLAN.feature_ids
N_IMAGES = PLAN.n_images
SHARDS = PLAN.shards
GRAPH_K = PLAN.graph_k
RUNS = PLAN.runs
COMPARE_REFERENCE = PLAN.compare_reference
# What sampling depends on in a dataset manifest (None for the other layouts).
DATASET_MANIFEST_DIGEST = PLAN.dataset.manifest_digest
# Where each feature set's maps and the input they share live: embeddings/<feature set id>/.
EMBEDDINGS = f"{RESULTS}/embeddings"
# The explorer page's renderer: explorer.backend, its auto resolved by the sample's size (canvas up to
# 100,000 images, the WebGL points page above: scripts/tsne_atlas/config.py).
EXPLORER_BACKEND = explorer_backend(config["explorer"]["backend"], N_IMAGES)

# The query set (section query, rules/query.smk): everything it makes lies in results/query/.
QUERY = f"{RESULTS}/query"
QUERY_DATASET = query_dataset(config) or {}
QUERY_ROOT = QUERY_DATASET.get("root", "")
# What sample_query and label_query read the query set with (scripts/tsne_atlas/sampling.py).
QUERY_COLLECTION = {
    "layout": QUERY_DATASET.get("layout"),
    "query_root": QUERY_ROOT,
    "extensions": config["dataset"]["extensions"],
    "label_column": QUERY_DATASET.get("label_column"),
    "missing_label": config["dataset"]["missing_label"],
    "split": QUERY_DATASET.get("split"),
}
N_QUERY = PLAN.dataset.n_query
# What the query's images depend on in a query manifest (None for folders): sample_query's rerun trigger.
QUERY_MANIFEST_DIGEST = PLAN.dataset.query_digest


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
        "method": "|".join(PLAN.methods),
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
    return lambda wildcards: run_files(
        pattern, runs=runs_at_seed(RUNS, PLAN.compare_seed)
    )


# The targets of the default target (Snakefile: all): every output of these rules, per run, per feature set and once.
FINAL_RULES = {
    "run": ("scatter", "mosaic", "grid_mosaic"),
    "feature set": (
        "find_clusters",
        "sweep_metrics",
        "sweep_overview",
        "suspects_figures",
    ),
    "once": ("explorer", "image_quality"),
}
# Unless projector.enabled is false: each feature set's export and the projector's config file.
PROJECTOR_RULES = {"feature set": ("projector_export",), "once": ("projector_config",)}
# With a query set, its placement tables and figures.
QUERY_RULES = {"run": ("query_figures",), "feature set": ("placement_tables",)}
# With two or more feature sets, the comparison figures.
COMPARE_RULES = {
    "once": ("compare_sheet", "compare_metrics", "compare_cka", "compare_clusters")
}


def final_outputs():
    """The declared outputs of FINAL_RULES (and of PROJECTOR_RULES, COMPARE_RULES when the plan makes
    them), for every run of every feature set, every feature set, or once."""
    chosen = [FINAL_RULES]
    chosen += [PROJECTOR_RULES] if PLAN.projector else []
    chosen += [COMPARE_RULES] if PLAN.compare else []
    chosen += [QUERY_RULES] if N_QUERY else []
    outputs = {"run": [], "feature set": [], "once": []}
    for rule_names in chosen:
        for scope, names in rule_names.items():
            outputs[scope] += [
                path for name in names for path in getattr(rules, name).output
            ]
    return (
        run_files(outputs["run"])
        + expand(outputs["feature set"], features=FEATURE_IDS)
        + outputs["once"]
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


def query_collection_inputs(wildcards):
    """What the query's sampling reads: its manifest (a split's: the dataset manifest; only as old as its
    digest param says, so editing labels or metadata re-extracts nothing), or its folders.
    """
    if QUERY_DATASET.get("layout") == "manifest":
        return {"query_manifest": ancient(QUERY_DATASET["manifest"])}
    return watched_folders(QUERY_ROOT, QUERY_DATASET.get("layout"))


def reference_split_param():
    """sample_images' param of a split query set: (column, value, False), the rows the reference keeps."""
    split = reference_dataset(config).get("split")
    return {"split": split} if split else {}


def query_manifest_input(wildcards):
    """Labelling the query reads its manifest (labels, metadata): any edit of it relabels."""
    if QUERY_DATASET.get("layout") == "manifest":
        return {"query_manifest": QUERY_DATASET["manifest"]}
    return {}


def query_sets_pattern(sharded):
    """sets_pattern for the query's extraction, whose shards are sized from the query set."""
    names = [
        name for name, count in PLAN.query_shards.items() if (count > 1) == sharded
    ]
    return "|".join(re.escape(name) for name in names) or "(?!)"


def query_feature_shards(wildcards):
    count = PLAN.query_shards[wildcards.feature_set]
    return [
        f"{QUERY}/features/shards/{wildcards.feature_set}/{index}-of-{count}.h5"
        for index in range(1, count + 1)
    ]


def query_shard_runtime_min(wildcards):
    start, stop = shard_rows(
        N_QUERY,
        config["extraction"]["batch_size"],
        int(wildcards.shard),
        int(wildcards.shards),
    )
    return extraction_runtime_min(stop - start, config["extraction"]["device"])


def explorer_query_inputs(wildcards):
    """With a query set, what the explorer's query layer reads: the query placed on every run (TSV and
    JSON, in the order of the embeddings), its manifest and thumbnails, and each feature set id's nearest
    reference images; nothing without one, so the rule's inputs are then what they were before.
    """
    if not N_QUERY:
        return {}
    return {
        "query_placed": run_files(rules.place_query.output.placed),
        "query_placed_metas": run_files(rules.place_query.output.placed_meta),
        "query_manifest": rules.label_query.output.manifest,
        "query_thumbnails": rules.query_thumbnails.output.thumbnails,
        "query_neighbours": expand(
            rules.query_neighbours.output.query_neighbours, features=FEATURE_IDS
        ),
    }


def explorer_outputs():
    """The explorer's page, and for a points page the folder of data it loads beside it (explorer-data/:
    scripts/tsne_atlas/explorer_points.py); a canvas or webgl page's outputs are what they were before.
    """
    outputs = {
        "html": report(
            f"{RESULTS}/explorer.html",
            caption="../report/explorer.rst",
            category="Sweep",
            labels={"features": "all", "figure": "interactive explorer"},
        )
    }
    if EXPLORER_BACKEND == POINTS_BACKEND:
        outputs["data"] = directory(f"{RESULTS}/explorer-data")
    return outputs


def explorer_query_params():
    """With a query set, the explorer's param of its folder (the page links each query image there);
    none without one, so the rule's params are then what they were before."""
    return {"query_root": QUERY_ROOT} if N_QUERY else {}


def query_features_file(wildcards):
    """The query's features file of the wildcards' feature set id."""
    return f"{QUERY}/features/{FEATURES[wildcards.features][0]}.h5"
