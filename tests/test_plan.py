"""The workflow's plan (scripts/tsne_atlas/plan.py), without Snakemake: what a config asks for, the
dataset read once per invocation and handed to the jobs, the incomplete features files removed, and
the done message, which docs/outputs.md must agree with."""

import copy
import re
from pathlib import Path

import h5py
import pytest
from snakemake.utils import validate

from conftest import TINY
from test_files_formats import write as write_complete_features
from tsne_atlas import plan as atlas_plan
from tsne_atlas.collection import count_images
from tsne_atlas.jobs import AtlasError
from tsne_atlas.plan import DATASET_FACTS_VARIABLE, SUMMARY, load_plan, remove_incomplete_features
from tsne_atlas.schema import SCHEMA_PATH, feature_set_defaults

REPO = Path(__file__).resolve().parents[1]
SET_DEFAULTS = feature_set_defaults(SCHEMA_PATH)


def validated(config: dict, **sections) -> dict:
    config = copy.deepcopy(config)
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    validate(config, schema=str(SCHEMA_PATH))
    return config


class Counter:
    """count_images, counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, dataset):
        self.calls += 1
        return count_images(dataset)


def test_the_tiny_config_plans_two_feature_sets_of_four_runs_each():
    plan = load_plan(validated(TINY), SET_DEFAULTS, environ={})
    assert plan.feature_ids == ["resnet18.layer3", "resnet18.penultimate"]
    assert plan.features["resnet18.layer3"] == ("resnet18", "layer3")
    assert plan.n_images == 40 and plan.dataset.manifest_digest is None
    assert plan.shards == {"resnet18": 1}
    assert plan.methods == ("tsne",) and [run["params"] for run in plan.runs] == [
        "perplexity-5_seed-0",
        "perplexity-5_seed-1",
        "perplexity-10_seed-0",
        "perplexity-10_seed-1",
    ]
    assert plan.graph_k == 30  # 3 x the largest perplexity
    assert plan.compare and plan.compare_reference == "resnet18.layer3" and plan.compare_seed == 0
    assert plan.projector


def test_shards_follow_the_extraction_settings_and_a_precomputed_set_is_one_job(tmp_path):
    features = tmp_path / "features.csv"
    features.write_text("path,a,b\nx.png,1,2\n")
    config = validated(
        TINY,
        features={
            "resnet18": {"arch": "resnet18", "weights": "none"},
            "own": {"source": "precomputed", "path": str(features)},
        },
        extraction={"shards": 3, "batch_size": 10},
        compare={"reference": "own"},
    )
    plan = load_plan(config, SET_DEFAULTS, environ={})
    assert plan.shards == {"resnet18": 3, "own": 1}
    assert plan.compare_reference == "own" and plan.feature_ids == ["resnet18", "own"]


def test_all_counts_the_dataset_once_in_the_main_process_and_never_in_a_job_given_its_facts():
    config = validated(TINY, sample={"n_images": "all"})
    count = Counter()
    main = load_plan(config, SET_DEFAULTS, environ={}, main_process=True, count=count)
    # The config check and the plan share the one count of the dataset; the query set is counted once too.
    assert count.calls == 2 and main.dataset.n_query == 10
    assert main.n_images == count_images(config["dataset"]) > 40
    # A job started by that main process: its environment holds what the main process put there.
    job_count = Counter()
    job = load_plan(config, SET_DEFAULTS, environ=dict(main.environment), main_process=False, count=job_count)
    assert job_count.calls == 0 and job == main
    # A job without them (an executor passing no environment) counts for itself.
    assert load_plan(config, SET_DEFAULTS, environ={}, main_process=False, count=job_count) == main
    assert job_count.calls == 2


def test_facts_measured_for_another_config_are_not_taken():
    """A job takes only what was measured for its own dataset and sample settings; the main process
    always measures (an environment it inherits may come from another run)."""
    config = validated(TINY, sample={"n_images": "all"})
    stale = {DATASET_FACTS_VARIABLE: atlas_plan.DatasetFacts(35, None, 10, None).encode(atlas_plan.dataset_key(config))}
    count = Counter()
    assert load_plan(config, SET_DEFAULTS, environ=stale, main_process=False, count=count).n_images == 35
    assert count.calls == 0
    assert load_plan(config, SET_DEFAULTS, environ=stale, main_process=True, count=count).n_images > 40
    other = validated(config, sample={"stratified": not config["sample"]["stratified"]})
    assert load_plan(other, SET_DEFAULTS, environ=stale, main_process=False, count=count).n_images > 40
    assert count.calls == 4  # the dataset and the query set, twice
    for garbled in ("", "x", f"{atlas_plan.dataset_key(config)} many -"):
        assert atlas_plan.DatasetFacts.decode(garbled, atlas_plan.dataset_key(config)) is None


def test_a_manifest_digest_reaches_the_job_and_a_bad_manifest_fails_in_one_line(tmp_path):
    manifest = tmp_path / "images.csv"
    manifest.write_text("path,label\n" + "".join(f"cat/{i}.png,cat\n" for i in range(40)))
    config = validated(
        TINY, dataset={"root": str(tmp_path), "layout": "manifest", "manifest": str(manifest), "label_column": "label"}
    )
    main = load_plan(config, SET_DEFAULTS, environ={})
    assert re.fullmatch("[0-9a-f]{16}", main.dataset.manifest_digest)
    manifest.write_text("path,label\nelsewhere.png,dog\n")  # changed during the run: the job plans as its DAG
    assert load_plan(config, SET_DEFAULTS, environ=dict(main.environment), main_process=False) == main
    manifest.write_text("file,label\ncat/0.png,cat\n")
    with pytest.raises(AtlasError) as error:
        load_plan(config, SET_DEFAULTS, environ={})
    assert "\n" not in str(error.value) and "path" in str(error.value)


def test_numba_cache_defaults_to_the_results_folder_unless_the_environment_sets_it(tmp_path):
    config = validated(TINY, results=str(tmp_path / "out"))
    plan = load_plan(config, SET_DEFAULTS, environ={})
    assert plan.environment["NUMBA_CACHE_DIR"] == str(tmp_path / "out" / ".numba-cache")
    kept = load_plan(config, SET_DEFAULTS, environ={"NUMBA_CACHE_DIR": "/shared/numba"})
    assert kept.environment["NUMBA_CACHE_DIR"] == "/shared/numba"
    environ = {"NUMBA_CACHE_DIR": "/shared/numba", "HOME": "/home/me"}
    assert sorted(atlas_plan.apply_environment(kept, environ)) == ["NUMBA_CACHE_DIR", DATASET_FACTS_VARIABLE]
    assert environ["NUMBA_CACHE_DIR"] == "/shared/numba" and environ["HOME"] == "/home/me"
    assert environ[DATASET_FACTS_VARIABLE] == kept.environment[DATASET_FACTS_VARIABLE]


def test_incomplete_features_files_are_removed_and_a_dry_run_only_warns(tmp_path, capsys):
    config = validated(
        TINY,
        results=str(tmp_path),
        features={
            "broken": {"arch": "resnet18", "weights": "none"},
            "complete": {"arch": "resnet34", "weights": "none"},
            "absent": {"arch": "resnet50", "weights": "none"},
        },
    )
    plan = load_plan(config, SET_DEFAULTS, environ={})
    (tmp_path / "features").mkdir()
    broken, complete = Path(plan.features_path("broken")), Path(plan.features_path("complete"))
    with h5py.File(broken, "w") as h5:
        h5.create_dataset("paths", data=[b"a.png"])
    write_complete_features(complete)
    assert remove_incomplete_features(plan, dry_run=True) == [str(broken)]
    assert broken.exists() and complete.exists()
    assert capsys.readouterr().err.strip() == (
        f"tsne-atlas: warning: {broken} is incomplete (datasets ['features'] are missing); a real run will rebuild it"
    )
    assert remove_incomplete_features(plan, dry_run=False) == [str(broken)]
    assert not broken.exists() and complete.exists()
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("was incomplete (datasets ['features'] are missing); removed, it will be rebuilt")
    )
    assert remove_incomplete_features(plan, dry_run=False) == []


def test_done_summary_lists_every_output_folder_the_plan_makes():
    plan = load_plan(validated(TINY, results="out"), SET_DEFAULTS, environ={})
    assert plan.summary() == (
        "\ntsne-atlas: done. Results in out/\n"
        "  feature sets resnet18.layer3, resnet18.penultimate\n"
        "  sample       out/sample/images.csv (paths, hashes), manifest.csv (labels, metadata)\n"
        "  features     out/features/<set>.h5\n"
        "  embeddings   out/embeddings/<feature set>/<method>/ (8 maps; per feature set 4 tsne)\n"
        "  scatter      out/scatter/<feature set>/<method>/*.png, *.svg\n"
        "  mosaics      out/mosaic/<feature set>/<method>/*.png, out/grid_mosaic/<feature set>/<method>/*.png\n"
        "  metrics      out/metrics/<feature set>/sweep.csv, sweep.png\n"
        "  overview     out/overview/<feature set>.png, .pdf\n"
        "  suspects     out/suspects/<feature set>/suspects.csv, duplicates.csv, outliers.csv (+ PNGs)\n"
        "  clusters     out/clusters/<feature set>/clusters.csv, table.csv, summary.json\n"
        "  quality      out/quality/quality.csv (image problems; a PNG per problem)\n"
        "  explorer     out/explorer.html (open in a browser; thumbnails in out/explorer/)\n"
        "  projector    out/projector/ (tensorboard --logdir out/projector)\n"
        "  query        out/query/placement/<feature set>/placement.csv, leaks.csv, classes.csv; figures in out/query/figures/\n"
        "  compare      out/compare/sheet.png, metrics.png, cka.png, clusters.png (+ CSV tables)\n"
        "  logs         out/logs/\n"
    )
    one_set = validated(
        TINY,
        results="out",
        features={"resnet18": {"arch": "resnet18", "weights": "none"}},
        projector={"enabled": False},
        methods=["tsne", "pca"],
    )
    lines = load_plan(one_set, SET_DEFAULTS, environ={}).summary().splitlines()
    assert "  embeddings   out/embeddings/<feature set>/<method>/ (5 maps; per feature set 4 tsne, 1 pca)" in lines
    assert not [line for line in lines if line.split()[:1] in (["projector"], ["compare"])]


def files_block() -> list[str]:
    """The results-relative paths of docs/outputs.md's "Files" block, one entry per line."""
    text = (REPO / "docs" / "outputs.md").read_text()
    block = text.split("## Files", 1)[1].split("```", 2)[1]
    return [re.split(r"\s{2,}", line.strip())[0] for line in block.splitlines()[2:] if line.strip()]


def test_the_done_summary_and_docs_outputs_name_the_same_folders_and_files():
    """Every file the done message names is in docs/outputs.md's file list, and every folder there is
    in the message (but the few a user need not open)."""
    documented = files_block()
    folders = {re.split(r"[/.]", entry)[0] for entry in documented}
    summarised = set()
    for _, where, _ in SUMMARY:
        for path in re.findall(r"\{results\}/((?:<[^>]+>|[\w.*/-])*)", where):
            folder = re.split(r"[/.]", path)[0]
            summarised.add(folder)
            named = re.findall(r"[\w.]+\.\w+", where.split(f"{{results}}/{path}", 1)[1].split("{results}")[0])
            named = [Path(path).name, *named] if "*" not in path and "<" not in Path(path).name else named
            in_docs = [entry for entry in documented if re.split(r"[/.]", entry)[0] == folder]
            assert in_docs, f"SUMMARY names {folder}/, docs/outputs.md's file list does not"
            for name in named:
                assert any(name in entry for entry in in_docs), (
                    f"SUMMARY names {folder}/…{name}, docs/outputs.md's file list does not"
                )
    unsummarised = {"weights", "", "explorer-data"}  # "": .numba-cache/; explorer-data/: the points page loads it
    assert folders - summarised <= unsummarised, folders - summarised
    assert summarised <= folders


def test_the_workflow_binds_the_plan_and_restates_no_output_path():
    """rules/common.smk reads the dataset only through load_plan, and rule all's targets are the
    rules' declared outputs, not paths written again."""
    common = (REPO / "rules" / "common.smk").read_text()
    for work in ("count_images", "manifest_digest(", "features_file_problem", "os.environ", "shard_count"):
        assert work not in common, work
    final = common.split("def final_outputs", 1)[1].split("\ndef ", 1)[0]
    assert "{RESULTS}" not in final and "rules, name" in final
    assert "PLAN.summary()" in (REPO / "Snakefile").read_text()
