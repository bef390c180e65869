import sys
from pathlib import Path

from snakemake.utils import validate

# The workflow's package, scripts/tsne_atlas, is reached through the folder Snakemake puts on
# sys.path for the Snakefile (this repository's, also when it is used as a module).
from scripts.tsne_atlas.config import (
    WEIGHT_KEYWORDS,
    check_config,
    graph_neighbors,
)
from scripts.tsne_atlas.files.features import features_file_problem
from scripts.tsne_atlas.files.runs import (
    RUN_KEYS,
    RUN_PATTERN,
    WILDCARD_CONSTRAINTS,
    wildcard_value,
)
from scripts.tsne_atlas.jobs import AtlasError, is_dry_run
from scripts.tsne_atlas.resources import (
    extraction_gpus,
    extraction_mem_mb,
    extraction_runtime_min,
    metrics_mem_mb,
    metrics_runtime_min,
    sample_size,
    tsne_input_mem_mb,
    tsne_mem_mb,
    tsne_runtime_min,
)
from scripts.tsne_atlas.sampling import count_images
from scripts.tsne_atlas.schema import SCHEMA_PATH, schema_error_line

try:
    validate(config, schema=str(SCHEMA_PATH))
except WorkflowError:
    sys.exit(f"tsne-atlas: config error: {schema_error_line(config, SCHEMA_PATH)}")
try:
    check_config(config, count_images=count_images)
except AtlasError as err:
    sys.exit(f"tsne-atlas: config error: {err}")

RESULTS = config["results"]
# A features file that cannot be complete (truncated copy, crash of an older version) would be
# taken for finished: remove it so it is rebuilt. Only the main process acts (cluster jobs parse
# this file too), and a dry run only warns.
FEATURES_PROBLEM = features_file_problem(f"{RESULTS}/features/features.h5")
if FEATURES_PROBLEM and workflow.is_main_process:
    if is_dry_run(workflow):
        print(
            f"tsne-atlas: warning: {RESULTS}/features/features.h5 is incomplete "
            f"({FEATURES_PROBLEM}); a real run will rebuild it",
            file=sys.stderr,
        )
    else:
        Path(f"{RESULTS}/features/features.h5").unlink()
        print(
            f"tsne-atlas: warning: {RESULTS}/features/features.h5 was incomplete "
            f"({FEATURES_PROBLEM}); removed, it will be rebuilt",
            file=sys.stderr,
        )
# Sizes the jobs' memory and run time (rules: resources); 'all' counts the dataset.
N_IMAGES = sample_size(
    config["sample"]["n_images"],
    lambda: count_images(
        config["dataset"]["root"], list(config["dataset"]["extensions"])
    ),
)
PERPLEXITIES = [wildcard_value(p) for p in config["tsne"]["perplexities"]]
SEEDS = [wildcard_value(s) for s in config["tsne"]["seeds"]]
# The values of RUN's wildcards over the sweep.
SWEEP = {"perplexity": PERPLEXITIES, "seed": SEEDS}


# A run's identity (scripts/tsne_atlas/files/runs.py): every per-run file is named RUN, and
# the report labels each run's figures with its wildcards.
RUN = RUN_PATTERN
RUN_LABELS = {key: f"{{{key}}}" for key in RUN_KEYS}


wildcard_constraints:
    **WILDCARD_CONSTRAINTS,
    k=r"[0-9]+",


def neighbors_file(wildcards):
    """The sweep's k-NN graph, reused by every perplexity; its name carries k."""
    return f"{RESULTS}/tsne/neighbors/k-{graph_neighbors(PERPLEXITIES)}.npz"


def tsne_run_inputs(wildcards):
    """A run needs the features (labels, paths), the prepared input and, for openTSNE, its P."""
    inputs = {
        "features": f"{RESULTS}/features/features.h5",
        "prepared": f"{RESULTS}/tsne/input.h5",
    }
    if config["tsne"]["implementation"] == "opentsne":
        inputs["affinities"] = (
            f"{RESULTS}/tsne/affinities/perplexity-{wildcards.perplexity}.npz"
        )
    return inputs


def run_files(pattern):
    """``pattern`` (with the run's wildcards, see RUN) for every run of the sweep."""
    return expand(pattern, **SWEEP)


def sweep_files(pattern):
    """Input function giving ``pattern`` for every run of the sweep."""
    return lambda wildcards: run_files(pattern)


def final_outputs():
    """Per run: scatter (PNG, SVG), mosaic, grid mosaic; per sweep: metrics, overview, explorer."""
    per_run = [
        f"{RESULTS}/scatter/{RUN}.png",
        f"{RESULTS}/scatter/{RUN}.svg",
        f"{RESULTS}/mosaic/{RUN}.png",
        f"{RESULTS}/grid_mosaic/{RUN}.png",
    ]
    return run_files(per_run) + [
        f"{RESULTS}/metrics/sweep.csv",
        f"{RESULTS}/overview/sweep.png",
        f"{RESULTS}/explorer.html",
    ]


def class_folders(wildcards):
    """The dataset's class folders: a folder's mtime changes when images are added or removed."""
    root = Path(config["dataset"]["root"])
    return sorted(
        str(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )


def weights_file(wildcards):
    """A state-dict file given as model.weights is an input: replacing it reruns extraction."""
    weights = str(config["model"]["weights"])
    return [] if weights in WEIGHT_KEYWORDS else [weights]


def results_summary():
    n_runs = len(PERPLEXITIES) * len(SEEDS)
    return (
        f"\ntsne-atlas: done. Results in {RESULTS}/\n"
        f"  manifest   {RESULTS}/sample/manifest.csv\n"
        f"  features   {RESULTS}/features/features.h5\n"
        f"  embeddings {RESULTS}/tsne/ ({n_runs} runs: perplexities {', '.join(PERPLEXITIES)}; seeds {', '.join(SEEDS)})\n"
        f"  scatter    {RESULTS}/scatter/*.png, *.svg\n"
        f"  mosaics    {RESULTS}/mosaic/*.png, {RESULTS}/grid_mosaic/*.png\n"
        f"  metrics    {RESULTS}/metrics/sweep.csv, sweep.png\n"
        f"  overview   {RESULTS}/overview/sweep.png, sweep.pdf\n"
        f"  explorer   {RESULTS}/explorer.html (open in a browser)\n"
        f"  logs       {RESULTS}/logs/\n"
    )
