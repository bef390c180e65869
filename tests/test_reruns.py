"""Which settings rerun what: for every key of the schema, a change planned by Snakemake's own dry run
reruns exactly the rules the schema declares for that key (``x-reruns``) and what depends on them; and
adding, editing or removing a feature set touches that set's jobs and the outputs that span sets only."""

import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from conftest import (
    SCHEMA,
    TINY,
    TINY_IDS,
    TINY_SET,
    planned_jobs,
    snakemake,
    with_changes,
    with_set_changes,
    without_query,
)

pytestmark = pytest.mark.workflow

# A valid new value for each key whose change cannot be derived from its type alone (the tiny config's
# value, or the default, plus one step would not do). Lambdas get the test's tmp folder.
NEW_VALUES = {
    "results": lambda tmp: "elsewhere",
    "dataset.root": lambda tmp: str(tmp / "copy-of-demo"),
    "dataset.extensions": lambda tmp: [".png"],
    "dataset.label_map": lambda tmp: {"cat": "kitty"},
    "dataset.layout": lambda tmp: "flat",
    "sample.n_images": lambda tmp: 36,
    f"features.{TINY_SET}.arch": lambda tmp: "resnet34",
    f"features.{TINY_SET}.weights": lambda tmp: str(tmp / "weights.pth"),
    f"features.{TINY_SET}.nodes": lambda tmp: ["layer2", "penultimate"],
    f"features.{TINY_SET}.source": lambda tmp: "timm",
    f"features.{TINY_SET}.class_names": lambda tmp: class_names_file(tmp),
    "extraction.device": lambda tmp: "cpu",
    "extraction.precision": lambda tmp: "fp32",
    "compare.reference": lambda tmp: TINY_IDS[1],
    "compare.seed": lambda tmp: 1,
    # Raising the largest perplexity: adding a smaller one reuses the graph (tested in test_workflow).
    "tsne.perplexities": lambda tmp: [5, 12],
    # Other seeds from the first on: the comparison sheet shows the first seed's runs.
    "tsne.seeds": lambda tmp: [1, 2],
    "tsne.implementation": lambda tmp: "sklearn",
    "tsne.negative_gradient": lambda tmp: "fft",
    "tsne.init": lambda tmp: "random",
    # A graph of 31 neighbours: more than t-SNE's 30 (3 x perplexity 10), so a new graph and all it feeds.
    "graph.neighbours": lambda tmp: 31,
    "mosaic.background": lambda tmp: "black",
    "grid_mosaic.background": lambda tmp: "black",
    # auto is canvas at the tiny size (so is canvas, which reruns nothing): webgl redraws the page.
    "explorer.backend": lambda tmp: "webgl",
}
# Switches that only add outputs (on by default): switching one off on the finished run plans nothing (no
# output is redone or removed); its x-reruns say what switching it on runs (test_switching_the_projector_on_…).
OUTPUT_SWITCHES = {"projector.enabled"}


def class_names_file(tmp) -> str:
    """A class_names file for the tiny config's resnet18: one name per output of its 1000-way classifier."""
    path = tmp / "classes.txt"
    path.write_text("".join(f"class {i}\n" for i in range(1000)))
    return str(path)


def schema_leaves(
    source: str = "torchvision", feature_set: str = TINY_SET, layout: str = "folders"
) -> list[tuple[str, str, dict]]:
    """(section, key, leaf) for every setting; a feature set's keys as section ``features.<feature_set>``,
    those its ``source`` uses (the others are refused for it; tests/test_sources_workflow.py has them);
    the dataset keys of a manifest layout only for ``layout: manifest`` (tests/test_inputs_workflow.py)."""
    from tsne_atlas.config import MANIFEST_KEYS, SOURCE_KEYS

    schema = yaml.safe_load(SCHEMA.read_text())
    leaves = []
    for section, spec in schema["properties"].items():
        if "properties" in spec:
            leaves += [
                (section, key, leaf)
                for key, leaf in spec["properties"].items()
                if not (section == "dataset" and key in MANIFEST_KEYS and layout != "manifest")
            ]
        elif isinstance(spec.get("additionalProperties"), dict):
            per_set = spec["additionalProperties"]["properties"]
            leaves += [
                (f"{section}.{feature_set}", key, leaf)
                for key, leaf in per_set.items()
                if source in SOURCE_KEYS.get(key, (source,))
            ]
        else:
            leaves.append((section, None, spec))
    return leaves


def changed(config: dict, section: str, key: str | None, value) -> dict:
    """``config`` with one setting changed (a feature set's key as section ``features.<set>``)."""
    if key is None:
        return {**config, section: value}
    if section.startswith("features."):
        return with_set_changes(config, section.split(".", 1)[1], **{key: value})
    return with_changes(config, section, **{key: value})


def current_value(config: dict, section: str, key: str | None, leaf: dict):
    if key is None:
        return config[section]
    if section.startswith("features."):
        return config["features"][section.split(".", 1)[1]].get(key, leaf.get("default"))
    return config.get(section, {}).get(key, leaf.get("default"))


def new_value(section: str, key: str | None, leaf: dict, current, tmp):
    """A valid value other than ``current``."""
    name = f"{section}.{key}" if key else section
    if name in NEW_VALUES:
        return NEW_VALUES[name](tmp)
    if leaf.get("type") == "boolean":
        return not current
    if "enum" in leaf:
        return next(value for value in leaf["enum"] if value != current)
    if leaf.get("type") == "integer":
        return current + 1 if current + 1 <= leaf.get("maximum", current + 1) else current - 1
    if leaf.get("type") == "number":
        return current * 0.9 if "maximum" in leaf and current * 1.1 > leaf["maximum"] else current * 1.1
    raise AssertionError(f"{name}: add a new value to NEW_VALUES")


def downstream(rules: set[str], edges: set[tuple[str, str]]) -> set[str]:
    """``rules`` and every rule that depends on one of them, transitively."""
    found, todo = set(rules), list(rules)
    while todo:
        rule = todo.pop()
        for upstream, down in edges:
            if upstream == rule and down not in found:
                found.add(down)
                todo.append(down)
    return found


def rules_of(workdir, config: dict, targets: tuple[str, ...] = ()) -> set[tuple[str, str]]:
    """The workflow's rule dependencies (upstream, downstream) for ``config`` and ``targets`` (none: rule
    all), from Snakemake's --rulegraph."""
    result = snakemake(workdir, *targets, "--rulegraph", config=config)
    assert result.returncode == 0, result.stderr[-2000:]
    names = dict(re.findall(r"^\s*(\d+)\[label = \"(\w+)\"", result.stdout, flags=re.M))
    return {(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)$", result.stdout, flags=re.M)}


@pytest.fixture(scope="module")
def rule_graph(finished_run) -> set[tuple[str, str]]:
    return rules_of(finished_run[0], TINY)


def rerun_mismatches(
    workdir, rule_graph, tmp_path, leaves, base: dict = TINY, values: dict | None = None, targets: tuple[str, ...] = ()
) -> list[str]:
    """For each (section, key, schema leaf): change the key in the ``base`` config (the one finished in
    ``workdir``, to ``targets``; none: rule all) and compare the rules of Snakemake's dry run with the leaf's
    ``x-reruns`` and everything downstream of them. ``values``: new values by key name; ``rule_graph`` None:
    the base config's."""
    rule_graph = rule_graph or rules_of(workdir, base, targets)
    every_rule = {rule for edge in rule_graph for rule in edge}
    cases = []
    for section, key, leaf in leaves:
        name = f"{section}.{key}" if key else section
        current = current_value(base, section, key, leaf)
        value = (values or {}).get(key) if key in (values or {}) else new_value(section, key, leaf, current, tmp_path)
        # The declared rules the base config has (a method it leaves out has no jobs to rerun).
        declared = leaf["x-reruns"] if leaf["x-reruns"] == "all" else set(leaf["x-reruns"]) & every_rule
        expected = every_rule if declared == "all" else downstream(declared, rule_graph) if declared else set()
        if name in OUTPUT_SWITCHES and value is False:
            expected = set()
        cases.append((name, value, changed(base, section, key, value), expected))
    # Two dry runs at a time (one per core): each is a separate Snakemake process reading the same workdir.
    with ThreadPoolExecutor(max_workers=2) as pool:
        planned = list(pool.map(lambda case: set(planned_jobs(workdir, case[2], targets)), cases))
    return [
        f"{name}={value!r}: planned {sorted(jobs)}, declared {sorted(expected)}"
        for (name, value, _, expected), jobs in zip(cases, planned)
        if jobs != expected
    ]


# Settings of the methods the tiny config leaves out (UMAP, PCA, PaCMAP) rerun nothing there:
# tests/test_maps.py checks them on a run of every method, and enabling a method below.
METHOD_SETTINGS = ("methods", "umap", "pacmap")
# How the extraction is split: it changes no feature, but switching it re-extracts (test below).
SHARDING = ("extraction.shards",)
# The query set's settings: tests/test_query_workflow.py holds each to its x-reruns, and to moving no
# reference map (a split's keys and switching to or from a split resample the reference: only there).
QUERY_SETTINGS = ("query",)


def test_every_setting_reruns_what_the_schema_declares(finished_run, rule_graph, tmp_path):
    workdir, _ = finished_run
    shutil.copytree(TINY["dataset"]["root"], tmp_path / "copy-of-demo")
    import torch
    from torchvision.models import get_model

    torch.save(get_model("resnet18", weights=None).state_dict(), tmp_path / "weights.pth")
    leaves = [
        leaf
        for leaf in schema_leaves()
        if leaf[0] not in METHOD_SETTINGS + QUERY_SETTINGS and f"{leaf[0]}.{leaf[1]}" not in SHARDING
    ]
    assert len(leaves) > 40
    # The image quality checks' thresholds and figure settings too: each reruns image_quality alone.
    assert {"quality.blurry_below", "quality.max_share", "quality.max_images"} <= {f"{s}.{k}" for s, k, _ in leaves}
    assert rerun_mismatches(workdir, rule_graph, tmp_path, leaves) == []
    # Run-only settings: how many workers and threads, never what comes out.
    run_only = {f"{section}.{key}" for section, key, leaf in leaves if leaf["x-reruns"] == []}
    assert {"extraction.num_workers", "extraction.threads", "tsne.threads"} <= run_only


def test_switching_the_projector_on_runs_what_the_schema_declares(finished_run, rule_graph, tmp_path):
    """On a copy of the finished run without its projector export (as if run with projector.enabled false),
    switching it on runs projector_export and projector_config (and the target rule), nothing else."""
    workdir = tmp_path / "copy"
    shutil.copytree(finished_run[0], workdir, symlinks=True)
    shutil.rmtree(workdir / "results" / "projector")
    declared = schema_leaves_by_name()["projector.enabled"]["x-reruns"]
    assert planned_jobs(workdir, with_changes(TINY, "projector", enabled=False)) == {}
    planned = planned_jobs(workdir, with_changes(TINY, "projector", enabled=True))
    assert planned == {"projector_export": len(TINY_IDS), "projector_config": 1, "all": 1}
    assert set(planned) == downstream(set(declared), rule_graph)


@pytest.mark.parametrize("method", ["umap", "pca", "pacmap"])
def test_enabling_a_method_runs_its_maps_and_what_spans_runs_and_no_tsne(finished_run, rule_graph, method):
    """On the finished t-SNE-only run: adding UMAP (or PCA, or PaCMAP) plans its maps, their per-run figures
    and the figures that span runs; no t-SNE job, no shared input, graph or affinity job."""
    workdir, _ = finished_run
    # One map per seed (the t-SNE seeds, its own being null) of a stochastic method, one of PCA.
    n_runs = len(TINY_IDS) * (len(TINY["tsne"]["seeds"]) if method != "pca" else 1)
    planned = planned_jobs(workdir, {**TINY, "methods": ["tsne", method]})
    per_run = {"scatter": n_runs, "mosaic": n_runs, "grid_mosaic": n_runs, "embedding_metrics": n_runs}
    per_run |= {"place_query": n_runs, "query_figures": n_runs}  # the tiny config's query set, placed on the new maps
    spanning = {"sweep_metrics": len(TINY_IDS), "sweep_overview": len(TINY_IDS), "explorer": 1, "all": 1}
    compare = {"compare_sheet": 1, "compare_metrics": 1}
    assert planned == {"map": n_runs, **per_run, **spanning, **compare}
    declared = schema_leaves_by_name()["methods"]["x-reruns"]
    assert declared == ["map"]


def test_sharding_a_finished_extraction_extracts_again_in_shards_and_reruns_what_follows(finished_run, rule_graph):
    """extraction.shards changes how the features are computed, never what (the merged file is the same
    bytes), but Snakemake sees a features file made by another rule from other inputs: switching to shards
    extracts again, in shards, and reruns everything after extraction, as the schema's extract_features says."""
    workdir, _ = finished_run
    planned = planned_jobs(workdir, with_changes(TINY, "extraction", shards=2))
    after = downstream({"extract_features"}, rule_graph) - {"extract_features"}
    assert set(planned) == after | {"extract_features_shard", "merge_features"}
    assert (planned["extract_features_shard"], planned["merge_features"]) == (2, 1)
    assert schema_leaves_by_name()["extraction.shards"]["x-reruns"] == ["extract_features"]
    # auto: one shard per images_per_shard (100,000) images, so the tiny sample's 40 make one, as run.
    assert planned_jobs(workdir, with_changes(TINY, "extraction", shards="auto")) == {}
    # More shards than batches (two of 20 images): one per batch.
    assert planned_jobs(workdir, with_changes(TINY, "extraction", shards=9))["extract_features_shard"] == 2


def test_a_wrong_declaration_is_reported(finished_run, rule_graph, tmp_path):
    """The check above can fail: declared to rerun nothing, scatter.dpi is reported, with what it does rerun."""
    workdir, _ = finished_run
    dpi = {**schema_leaves_by_name()["scatter.dpi"], "x-reruns": []}
    [mismatch] = rerun_mismatches(workdir, rule_graph, tmp_path, [("scatter", "dpi", dpi)])
    assert mismatch.startswith("scatter.dpi=61: planned ['all', 'query_figures', 'scatter'], declared []")


def schema_leaves_by_name() -> dict[str, dict]:
    return {f"{section}.{key}" if key else section: leaf for section, key, leaf in schema_leaves()}


# A second feature set: the tiny config's network with other random weights.
OTHER_SET = {"arch": "resnet18", "weights": "none", "init_seed": 1}
# What one more one-node set brings: its extraction, its runs and figures, and what spans sets.
ONE_SET_JOBS = {
    "extract_features": 1,
    "prepare_input": 1,
    "knn_graph": 1,
    "tsne_affinities": 2,
    "map": 4,
    "scatter": 4,
    "mosaic": 4,
    "grid_mosaic": 4,
    "embedding_metrics": 4,
    "sweep_metrics": 1,
    "sweep_overview": 1,
    "find_suspects": 1,
    "find_clusters": 1,
    "suspects_figures": 1,
    "projector_export": 1,
}
SPANNING_JOBS = {
    "explorer": 1,
    "compare_sheet": 1,
    "compare_metrics": 1,
    "compare_cka": 1,
    "compare_clusters": 1,
    "projector_config": 1,
    "all": 1,
}


def files_of(out, features_id: str) -> dict[str, int]:
    """Every output file of one feature set id, with its mtime in ns."""
    return {
        str(path.relative_to(out)): path.stat().st_mtime_ns
        for path in sorted(out.rglob("*"))
        if path.is_file() and any(part == features_id or part.startswith(f"{features_id}.") for part in path.parts)
    }


def test_adding_editing_and_removing_a_feature_set_touches_that_set_only(finished_run, tmp_path):
    """On a copy of the finished tiny run: a new set runs only its own jobs and those spanning sets;
    editing it reruns the same; removing it reruns only what spans sets, and no other set's file changes."""
    workdir = tmp_path / "copy"
    shutil.copytree(finished_run[0], workdir, symlinks=True)
    out = workdir / "results"
    # Without the query set (the explorer, which shows it, reruns anyway; its own files are left as they are).
    base = without_query(TINY)
    added = with_set_changes(base, "other", **OTHER_SET)
    assert planned_jobs(workdir, added) == {"fetch_weights": 1, **ONE_SET_JOBS, **SPANNING_JOBS}
    before = {features_id: files_of(out, features_id) for features_id in TINY_IDS}
    assert all(before.values())
    result = snakemake(workdir, config=added)
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(workdir, added) == {}
    # Editing the new set (its weights' seed) reruns that set, nothing of the first.
    edited = with_set_changes(added, "other", init_seed=2)
    assert planned_jobs(workdir, edited) == {"fetch_weights": 1, **ONE_SET_JOBS, **SPANNING_JOBS}
    # Editing the first set's nodes reruns its one extraction and both its nodes' jobs, not 'other'.
    nodes = with_set_changes(added, nodes=["layer4", "penultimate"])
    assert planned_jobs(workdir, nodes) == {
        **{rule: 2 * count for rule, count in ONE_SET_JOBS.items() if rule != "extract_features"},
        "extract_features": 1,
        **SPANNING_JOBS,
    }
    # Removing it again: only what spans sets is redone, and the first set's files are untouched.
    assert planned_jobs(workdir, base) == SPANNING_JOBS
    result = snakemake(workdir, config=base)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {features_id: files_of(out, features_id) for features_id in TINY_IDS} == before
    assert planned_jobs(workdir, base) == {}


def test_a_set_of_the_tiny_configs_network_with_identical_settings_is_refused(tmp_path):
    """Two sets computing the same features would only cost time: refused before any job, in one line."""
    config = with_set_changes(TINY, "twin", **TINY["features"][TINY_SET])
    result = snakemake(tmp_path, "--dry-run", config=config)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        f"tsne-atlas: config error: features.{TINY_SET} and features.twin have identical settings "
        "(same features twice); remove one or change its settings"
    )
