"""The workflow's plan: what one config asks for, worked out once when the workflow is loaded.

``load_plan(config, ...)`` checks the validated config (``config.check_config``) and returns a
``Plan``: the feature sets and their ids, the sample size, the extraction shards per set, the shared
graph's k, the sweep's runs, the comparison and the projector. ``rules/common.smk`` binds its fields to
the names the rules use; this module is what a unit test can check without Snakemake.

The dataset is read at most once per Snakemake invocation. Counting the images (``sample.n_images:
all``) and hashing a dataset manifest walk or read the whole collection, and every cluster job parses
the workflow again: the main process measures them and hands them to its jobs in the environment
variable ``DATASET_FACTS_VARIABLE`` (``Plan.environment``; Snakemake passes it to each job, Slurm
with ``--export=ALL``), keyed by the config they were measured for. A job reads them instead of
measuring again, so it also plans with the numbers its DAG was built on even if the dataset
changes during the run; a job without them (an executor that passes no environment) measures.

Kept free of heavy imports: Snakemake imports this on every invocation.
"""

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .collection import count_images, manifest_digest
from .config import (
    check_config,
    compare_seed,
    feature_ids,
    feature_set_settings,
    graph_neighbours,
    query_dataset,
    reference_dataset,
    settings_hash,
    sweep_runs,
)
from .files.features import features_file_problem, remove_if_incomplete
from .files.runs import METHODS
from .jobs import AtlasError
from .resources import sample_size
from .shards import shard_count

# What the main process measured of the dataset, for its jobs: "<key> <n_images> <manifest digest or ->".
DATASET_FACTS_VARIABLE = "TSNE_ATLAS_DATASET_FACTS"
# umap-learn's numba code is compiled on first use in each job (~11 s cold): numba keeps it in this
# folder of the results, which every job (local or on a cluster node) can write, so later jobs load
# it. A NUMBA_CACHE_DIR already set (the tests share one) is kept.
NUMBA_CACHE_VARIABLE = "NUMBA_CACHE_DIR"
NUMBA_CACHE_FOLDER = ".numba-cache"


@dataclass(frozen=True)
class DatasetFacts:
    """What the plan reads from the dataset: the sample size (``sample.n_images``, counted for
    ``all``) and, for a manifest layout, the digest of what the sample depends on in it."""

    n_images: int
    manifest_digest: str | None
    # Images in the query set (query section; 0 without one): sizes its extraction shards.
    n_query: int = 0
    # For a query set read from a manifest (its own, or a split of the dataset's), the digest of its paths.
    query_digest: str | None = None

    def encode(self, key: str) -> str:
        return f"{key} {self.n_images} {self.manifest_digest or '-'} {self.n_query} {self.query_digest or '-'}"

    @classmethod
    def decode(cls, text: str | None, key: str) -> "DatasetFacts | None":
        """The facts in ``text`` if they were measured for ``key``, else None."""
        parts = (text or "").split()
        if len(parts) != 5 or parts[0] != key or not parts[1].isdigit() or not parts[3].isdigit():
            return None
        digests = [None if part == "-" else part for part in (parts[2], parts[4])]
        return cls(int(parts[1]), digests[0], int(parts[3]), digests[1])


def dataset_key(config: dict) -> str:
    """What the dataset facts depend on: the dataset and query sections and the sample's size and
    stratification."""
    sample = config["sample"]
    return settings_hash(
        {
            "dataset": config["dataset"],
            "query": config["query"],
            "n_images": sample["n_images"],
            "stratified": sample["stratified"],
        }
    )


@dataclass(frozen=True)
class Plan:
    """What a validated config asks the workflow to make (see the module docstring)."""

    # Where every output goes (``results``).
    results: str
    # The feature sets (config section features, schema defaults filled in), in config order.
    feature_sets: dict[str, dict]
    # Feature set id -> (set, node): the values of the runs' {features} wildcard, in config order.
    features: dict[str, tuple[str, str]]
    # What was read from the dataset: the sample size N (sizes the jobs) and the manifest digest.
    dataset: DatasetFacts
    # Extraction jobs per feature set (extraction.shards): 1 is one extract_features job, K > 1 is K
    # extract_features_shard jobs and a merge_features job; a precomputed set is imported in one job.
    shards: dict[str, int]
    # The same for the query set's extraction, sized from the query set (empty without one).
    query_shards: dict[str, int]
    # k of the sweep's shared k-NN graph (graph.neighbours, or what the methods, suspects and explorer need).
    graph_k: int
    # Every map of a feature set (method, settings, ``params``: the run's file stem), in METHODS order.
    runs: tuple[dict, ...]
    # The configured methods, in METHODS order.
    methods: tuple[str, ...]
    # The comparison figures (compare/): every feature set at one seed, aligned to a reference set.
    compare: bool
    compare_seed: int | None
    compare_reference: str
    # Every feature set exported for TensorBoard's Embedding Projector (projector/).
    projector: bool
    # What every job's environment gets (``apply_environment``): the dataset facts, the numba cache.
    environment: Mapping[str, str] = field(default_factory=dict)

    @property
    def feature_ids(self) -> list[str]:
        return list(self.features)

    @property
    def n_images(self) -> int:
        return self.dataset.n_images

    @property
    def query(self) -> bool:
        """A query set is placed (section query)."""
        return self.dataset.n_query > 0

    def features_path(self, feature_set: str) -> str:
        return f"{self.results}/features/{feature_set}.h5"

    def summary(self) -> str:
        """What the workflow prints when it is done (``SUMMARY``)."""
        return done_summary(self)


def dataset_facts(config: dict, environ: Mapping[str, str], main_process: bool, count=count_images) -> Callable:
    """A function giving the config's ``DatasetFacts``, measuring them at most once: a job (not the
    main process) takes what the main process put in ``environ`` for this config."""
    measured = []

    def facts() -> DatasetFacts:
        if not measured:
            given = (
                None if main_process else DatasetFacts.decode(environ.get(DATASET_FACTS_VARIABLE), dataset_key(config))
            )
            measured.append(
                given
                or DatasetFacts(
                    sample_size(config["sample"]["n_images"], lambda: count(reference_dataset(config))),
                    manifest_digest(reference_dataset(config), config["sample"]["stratified"]),
                    count(query_dataset(config)) if query_dataset(config) else 0,
                    manifest_digest(query_dataset(config), False) if query_dataset(config) else None,
                )
            )
        return measured[0]

    return facts


def load_plan(
    config: dict,
    set_defaults: dict,
    environ: Mapping[str, str] = os.environ,
    main_process: bool = True,
    count=count_images,
) -> Plan:
    """Check ``config`` (validated against the schema; ``set_defaults``: the schema's feature-set
    defaults) and plan it. Raises ``AtlasError`` naming the key and the fix.

    ``environ``: the process's environment, read for the dataset facts in a job (``main_process``
    False) and for a NUMBA_CACHE_DIR already set. ``count(dataset)``: counts the collection."""
    facts = dataset_facts(config, environ, main_process, count)
    check_config(config, set_defaults, count_images=lambda dataset: facts().n_images)
    feature_sets = feature_set_settings(config, set_defaults)
    features = feature_ids(feature_sets)
    dataset = facts()
    query = config["query"]
    if query["layout"] != "none" and not dataset.n_query:
        raise AtlasError(
            f"query.folder '{query['folder']}' holds no images with extensions {config['dataset']['extensions']} "
            f"(query.layout {query['layout']}); point query.folder at the query images, or set query.layout: none"
        )
    extraction = config["extraction"]

    def shards_for(n_images: int) -> dict[str, int]:
        return {
            name: 1
            if settings["source"] == "precomputed"
            else shard_count(n_images, extraction["batch_size"], extraction["shards"], extraction["images_per_shard"])
            for name, settings in feature_sets.items()
        }

    shards = shards_for(dataset.n_images)
    query_shards = shards_for(dataset.n_query) if dataset.n_query else {}
    results = config["results"]
    environment = {
        DATASET_FACTS_VARIABLE: dataset.encode(dataset_key(config)),
        NUMBA_CACHE_VARIABLE: environ.get(NUMBA_CACHE_VARIABLE) or os.path.abspath(f"{results}/{NUMBA_CACHE_FOLDER}"),
    }
    return Plan(
        results=results,
        feature_sets=feature_sets,
        features=features,
        dataset=dataset,
        shards=shards,
        query_shards=query_shards,
        graph_k=graph_neighbours(config),
        runs=tuple(sweep_runs(config)),
        methods=tuple(method for method in METHODS if method in config["methods"]),
        compare=len(features) > 1,
        compare_seed=compare_seed(config),
        compare_reference=config["compare"]["reference"] or next(iter(features)),
        projector=config["projector"]["enabled"],
        environment=environment,
    )


def apply_environment(plan: Plan, environ=os.environ) -> list[str]:
    """Put ``plan.environment`` into this process's environment (every job started from here
    inherits it); the names, for Snakemake's ``envvars`` (passed to jobs that do not inherit it)."""
    environ.update(plan.environment)
    return list(plan.environment)


def remove_incomplete_features(plan: Plan, dry_run: bool, stream=None) -> list[str]:
    """Remove every features file of the plan that cannot be complete (a truncated copy, the crash
    of an older version) so that it is rebuilt rather than taken for finished; a dry run only warns.
    For the main process only (once per invocation). Returns the paths found incomplete."""
    stream = stream or sys.stderr
    found = []
    for feature_set in plan.feature_sets:
        path = plan.features_path(feature_set)
        problem = features_file_problem(path) if dry_run else remove_if_incomplete(path)
        if not problem:
            continue
        found.append(path)
        if dry_run:
            print(f"tsne-atlas: warning: {path} is incomplete ({problem}); a real run will rebuild it", file=stream)
        else:
            print(f"tsne-atlas: warning: {path} was incomplete ({problem}); removed, it will be rebuilt", file=stream)
    return found


# What the done message lists, one line per output folder: (name, where and what, when: None for
# always, else the Plan flag that makes it). ``{results}`` is the results folder, ``{maps}`` the count
# of maps. docs/outputs.md ("Files") lists every file; tests/test_plan.py checks the two agree.
SUMMARY = (
    ("sample", "{results}/sample/images.csv (paths, hashes), manifest.csv (labels, metadata)", None),
    ("features", "{results}/features/<set>.h5", None),
    ("embeddings", "{results}/embeddings/<feature set>/<method>/ ({maps})", None),
    ("scatter", "{results}/scatter/<feature set>/<method>/*.png, *.svg", None),
    (
        "mosaics",
        "{results}/mosaic/<feature set>/<method>/*.png, {results}/grid_mosaic/<feature set>/<method>/*.png",
        None,
    ),
    ("metrics", "{results}/metrics/<feature set>/sweep.csv, sweep.png", None),
    ("overview", "{results}/overview/<feature set>.png, .pdf", None),
    ("suspects", "{results}/suspects/<feature set>/suspects.csv, duplicates.csv, outliers.csv (+ PNGs)", None),
    ("clusters", "{results}/clusters/<feature set>/clusters.csv, table.csv, summary.json", None),
    ("quality", "{results}/quality/quality.csv (image problems; a PNG per problem)", None),
    ("explorer", "{results}/explorer.html (open in a browser; thumbnails in {results}/explorer/)", None),
    ("projector", "{results}/projector/ (tensorboard --logdir {results}/projector)", "projector"),
    (
        "query",
        "{results}/query/placement/<feature set>/placement.csv, leaks.csv, classes.csv; figures in {results}/query/figures/",
        "query",
    ),
    ("compare", "{results}/compare/sheet.png, metrics.png, cka.png, clusters.png (+ CSV tables)", "compare"),
    ("logs", "{results}/logs/", None),
)


def done_summary(plan: Plan) -> str:
    """The done message: the feature sets, then a line per output folder of ``SUMMARY`` the plan makes."""
    per_method = ", ".join(f"{sum(run['method'] == method for run in plan.runs)} {method}" for method in plan.methods)
    maps = f"{len(plan.features) * len(plan.runs)} maps; per feature set {per_method}"
    lines = [
        f"\ntsne-atlas: done. Results in {plan.results}/",
        f"  {'feature sets':<12} {', '.join(plan.features)}",
        *(
            f"  {name:<12} {where.format(results=plan.results, maps=maps)}"
            for name, where, when in SUMMARY
            if when is None or getattr(plan, when)
        ),
    ]
    return "\n".join(lines) + "\n"
