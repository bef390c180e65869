"""A query set on the finished tiny run (tests/tiny-config.yaml places 10 demo images the sample does not
draw, from a manifest saved with a byte-order mark, two of them of a class the reference lacks): what it
writes; that adding, changing or removing it moves no reference map (Snakemake's own dry runs); what
each query setting reruns. (Placement byte-identical in another run: tests/test_slurm.py compares the
cluster's query files with a local run's.)"""

import math
import shutil

import pytest

from conftest import TINY, TINY_IDS, planned_jobs, with_changes
from test_reruns import downstream, rules_of, schema_leaves_by_name
from tsne_atlas.files.manifest import read_images, read_manifest
from tsne_atlas.files.placement import read_classes, read_placement
from tsne_atlas.files.runs import read_embedding, read_meta

pytestmark = pytest.mark.workflow

# The rules of the query set, and those that show it beside the reference (the explorer; the target).
QUERY_RULES = {
    "sample_query",
    "label_query",
    "extract_query_features",
    "extract_query_features_shard",
    "merge_query_features",
    "prepare_query",
    "query_neighbours",
    "place_query",
    "placement_tables",
    "query_figures",
    "query_thumbnails",
}
SHOWS_QUERY = {"explorer", "all"}


def test_the_query_set_is_placed_on_every_map_and_read_off(finished_run):
    out = finished_run[0] / "results"
    paths, _ = read_images(out / "query" / "sample" / "images.csv")
    labels = read_manifest(out / "query" / "sample" / "manifest.csv")
    # The byte-order mark was read past: the manifest's columns are path, label and its metadata.
    assert len(paths) == 10 and labels.labels.count("parrot") == 2 and set(labels.metadata) == {"batch"}
    runs = sorted((out / "embeddings").glob("*/tsne/*.tsv"))
    assert len(runs) == 8
    for run in runs:
        name = run.relative_to(out / "embeddings")
        placed = out / "query" / "maps" / name
        placed_paths, coords = read_embedding(placed)
        assert placed_paths == paths and coords.shape == (10, 2) and all(map(math.isfinite, coords.ravel()))
        meta, run_meta = read_meta(placed.with_suffix(".json")), read_meta(run.with_suffix(".json"))
        assert (meta["perplexity"], meta["seed"], meta["placed_on"]) == (
            run_meta["perplexity"],
            run_meta["seed"],
            str(run.relative_to(finished_run[0])),
        )
        figure = out / "query" / "figures" / name.with_suffix(".png")
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert figure.with_suffix(".mosaic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for features_id in TINY_IDS:
        folder = out / "query" / "placement" / features_id
        rows = read_placement(folder / "placement.csv")
        assert [row["path"] for row in rows] == paths
        assert all(row["ood_score"] > 0 for row in rows)
        parrot = {row["label"]: row for row in read_classes(folder / "classes.csv")}["parrot"]
        assert parrot["known"] is False and parrot["n"] == 2
        assert (folder / "leaks.csv").is_file()


def test_adding_changing_or_removing_the_query_set_moves_no_reference_map(finished_run, tmp_path):
    """Dry runs on the finished run: each query setting reruns what the schema declares for it (its
    x-reruns and what depends on them), all of it query rules or what shows the query; removing the
    query set reruns only what shows it."""
    workdir = finished_run[0]
    graph = rules_of(workdir, TINY)
    every_rule = {rule for edge in graph for rule in edge}
    reference_rules = every_rule - QUERY_RULES - SHOWS_QUERY
    shutil.copytree(TINY["dataset"]["root"], tmp_path / "copy-of-demo")
    shutil.copy(TINY["query"]["manifest"], tmp_path / "same-rows.csv")
    leaves = schema_leaves_by_name()
    changes = {
        "folder": str(tmp_path / "copy-of-demo"),
        "manifest": str(tmp_path / "same-rows.csv"),
        "label_column": "",
        "neighbours": 11,
    }
    for key, value in changes.items():
        planned = set(planned_jobs(workdir, with_changes(TINY, "query", **{key: value})))
        declared = downstream(set(leaves[f"query.{key}"]["x-reruns"]) & every_rule, graph)
        assert planned == declared, f"query.{key}: planned {sorted(planned)}, declared {sorted(declared)}"
        assert not planned & reference_rules, key
    # A split's keys matter only with query.layout split: here they rerun nothing.
    for key, value in {"split_column": "fold", "split_value": "val"}.items():
        assert planned_jobs(workdir, with_changes(TINY, "query", **{key: value})) == {}, key
    removed = planned_jobs(workdir, with_changes(TINY, "query", layout="none", folder="", manifest=""))
    assert set(removed) <= SHOWS_QUERY, removed
