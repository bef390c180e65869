"""Any image collection in, through the real workflow: a CSV manifest with metadata, a flat unlabelled
folder, relabelling that extracts nothing, the network's predictions, and planted faults (wrong
labels, duplicates) found where they should be."""

import csv
import json
import shutil

import h5py
import pytest
import torch
import torchvision
from PIL import Image

from conftest import DEMO_ROOT, TINY, TINY_SET, planned_jobs, snakemake, with_changes

pytestmark = pytest.mark.workflow

# What runs when only the labels change: labelling and everything that draws, counts or ranks labels.
LABEL_JOBS = {
    "label_images",
    "scatter",
    "mosaic",
    "grid_mosaic",
    "embedding_metrics",
    "sweep_metrics",
    "sweep_overview",
    "explorer",
    "find_suspects",
    "suspects_figures",
    "image_quality",
    "projector_export",
    "projector_config",
    "compare_sheet",
    "compare_metrics",
    # The clusters are found without labels but named by them and scored against them.
    "find_clusters",
    "compare_clusters",
    # The query set's labels go through the same label map: its tables and figures, never its extraction.
    "label_query",
    "placement_tables",
    "query_figures",
    "all",
}
# ...and what never does: the sample, the features and every t-SNE input and run.
UNTOUCHED = {
    "sample_images",
    "explorer_thumbnails",
    "fetch_weights",
    "extract_features",
    "prepare_input",
    "knn_graph",
    "tsne_affinities",
}
MANIFEST_LEAVES = {("dataset", "manifest"), ("dataset", "label_column"), ("dataset", "missing_label")}
SMALL = {
    "features": {"r18": {"arch": "resnet18", "weights": "none"}},
    "extraction": {"batch_size": 20, "num_workers": 0, "threads": 2},
    "tsne": {"perplexities": [5], "seeds": [0]},
    "prepare": {"pca_components": 20},
    "scatter": {"dpi": 50},
    "mosaic": {"canvas_size": 300, "thumb_size": 24},
    "overview": {"dpi": 50},
}


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def copy_demo(root, per_class: int):
    """The first ``per_class`` demo images of each class, in class folders under ``root``."""
    for folder in sorted(p for p in DEMO_ROOT.iterdir() if p.is_dir()):
        (root / folder.name).mkdir(parents=True)
        for image in sorted(folder.glob("*.png"))[:per_class]:
            shutil.copy(image, root / folder.name / image.name)
    return root


def test_renaming_and_merging_labels_reruns_no_extraction_and_no_tsne(finished_run):
    workdir, _ = finished_run
    relabelled = with_changes(TINY, "dataset", label_map={"cat": "pet", "dog": "pet", "cow": "cattle"})
    jobs = planned_jobs(workdir, relabelled)
    assert set(jobs) == LABEL_JOBS and jobs["label_images"] == 1
    assert not UNTOUCHED & set(jobs) and "map" not in jobs


def test_planted_wrong_labels_and_duplicates_are_found(tmp_path):
    """Five zebra images the sample holds nowhere else, planted in the horse folder, are listed with
    "zebra" as their neighbours' majority and rank in the top third of a table ordered by
    distance-weighted label disagreement; a byte copy and a re-encoded JPEG copy of one image are both
    found as its duplicates."""
    root = copy_demo(tmp_path / "data", per_class=20)
    # Zebras past the 20 copied: no plant has a twin under its true label, so only label disagreement
    # (not a near-zero distance to another label) can rank it.
    zebras = sorted((DEMO_ROOT / "zebra").glob("*.png"))[20:25]
    for zebra in zebras:
        shutil.copy(zebra, root / "horse" / f"planted_{zebra.name}")
    cat = sorted((root / "cat").glob("*.png"))[3]
    shutil.copy(cat, root / "cat" / "byte_copy.png")
    Image.open(cat).convert("RGB").save(root / "cat" / "reencoded.jpg", quality=75)
    config = {**SMALL, "dataset": {"root": str(root)}, "sample": {"n_images": "all"}}
    lists = tmp_path / "results" / "suspects" / "r18"
    result = snakemake(tmp_path, "results/suspects/r18/suspects.csv", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    suspects = read_csv(lists / "suspects.csv")
    planted = [f"horse/planted_{zebra.name}" for zebra in zebras]
    rows = {row["path"]: row for row in suspects}
    for path in planted:
        row = rows[path]
        neighbours = row["neighbour_labels"].split(" | ")
        assert row["majority_label"] == "zebra" and neighbours.count("horse") <= 2, (path, neighbours)
        # The table's weight is the one its neighbours give: 1 / (distance + eps) summed over the horses.
        weights = [1.0 / (float(d) + 1e-9) for d in row["neighbour_distances"].split(" | ")]
        horse_share = sum(w for w, label in zip(weights, neighbours) if label == "horse") / sum(weights)
        assert float(row["agreement_weighted"]) == pytest.approx(horse_share, abs=2e-4), path
    # Ranked by distance-weighted disagreement, most first; with random weights most images have some
    # disagreeing neighbour (196 of the 207 here), and the plants' zebra neighbours put them in the top third
    # (ranks 7 to 43 of 196 here; a ranking blind to the labels puts them last, 152 to 156).
    weighted = [round(1.0 - float(row["agreement_weighted"]), 4) for row in suspects]
    assert weighted == sorted(weighted, reverse=True), [row["path"] for row in suspects[:10]]
    ranks = [int(rows[path]["rank"]) for path in planted]
    assert max(ranks) <= len(suspects) // 3, (ranks, len(suspects))
    pairs = {(row["kind"], row["path_a"], row["path_b"]) for row in read_csv(lists / "duplicates.csv")}
    original = f"cat/{cat.name}"
    assert ("exact", "cat/byte_copy.png", original) in pairs
    assert {("near", original, "cat/reencoded.jpg"), ("near", "cat/byte_copy.png", "cat/reencoded.jpg")} <= pairs
    assert not [pair for pair in pairs if pair[0] == "exact" and set(planted) & set(pair[1:])]


def write_checkpoint_and_class_names(tmp_path):
    """A ResNet-18 checkpoint (random init, saved to a file as trained weights would be) and 1,000 class names."""
    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    names = tmp_path / "classes.txt"
    names.write_text("".join(f"class <{i}>\n" for i in range(1000)), encoding="utf-8")
    return weights, names


def test_a_manifest_with_metadata_runs_end_to_end_with_predictions_and_edits_rerun_only_labels(tmp_path):
    """A manifest with metadata and a split column: the rows of split "test" are the query set, placed on
    the map of the others (query.layout split)."""
    root = copy_demo(tmp_path / "data", per_class=3)
    images = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    manifest = tmp_path / "collection.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "species", "annotator", "note", "split"])
        for i, path in enumerate(images):
            split = "test" if i % 5 == 0 else "Test" if i % 5 == 1 else "train"  # "Test" is not "test"
            writer.writerow([path, path.split("/")[0], f"annotator {i % 2}", f"<script>alert({i})</script>, ok", split])
    weights, names = write_checkpoint_and_class_names(tmp_path)
    config = {
        **SMALL,
        "dataset": {"root": str(root), "layout": "manifest", "manifest": str(manifest), "label_column": "species"},
        "sample": {"n_images": 24, "stratified": False},
        "features": {"r18": {"arch": "resnet18", "weights": str(weights), "class_names": str(names)}},
        "query": {"layout": "split", "split_column": "split", "split_value": "test"},
    }
    result = snakemake(tmp_path, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "results"
    rows = read_csv(out / "sample" / "manifest.csv")
    assert len(rows) == 24 and list(rows[0]) == ["path", "label", "annotator", "note", "split"]
    # The six "test" rows are the query, placed on the map of the 24 others, which hold none of them.
    query = read_csv(out / "query" / "sample" / "manifest.csv")
    assert [row["path"] for row in query] == images[::5] and {row["split"] for row in rows} == {"Test", "train"}
    placed = read_csv(out / "query" / "placement" / "r18" / "placement.csv")
    assert [row["path"] for row in placed] == images[::5]
    assert (out / "query" / "figures" / "r18" / "tsne" / "perplexity-5_seed-0.png").stat().st_size > 5000
    assert rows[0]["note"].startswith("<script>alert(")
    with h5py.File(out / "features" / "r18.h5") as h5:
        assert h5.attrs["predictions"] == "stored" and h5["predictions/top_index"].shape == (24, 5)
        assert "labels" not in h5
    assert (out / "scatter" / "r18" / "tsne" / "perplexity-5_seed-0.predicted.png").stat().st_size > 5000
    page = (out / "explorer.html").read_text(encoding="utf-8")
    # Metadata reaches the page as data (JSON-escaped), never as a live script tag.
    assert "annotator" in page and "<script>alert(" not in page
    # The keys only a manifest layout uses rerun what the schema declares (checked here, on a manifest run).
    from test_reruns import rerun_mismatches, schema_leaves

    (tmp_path / "copy.csv").write_bytes(manifest.read_bytes())
    leaves = [leaf for leaf in schema_leaves(layout="manifest") if leaf[:2] in MANIFEST_LEAVES]
    assert len(leaves) == 3
    values = {"manifest": str(tmp_path / "copy.csv"), "label_column": "annotator", "missing_label": "skip"}
    assert rerun_mismatches(tmp_path, None, tmp_path, leaves, base=config, values=values) == []
    # Editing metadata (the sample is unstratified: labels too) relabels; nothing is sampled or extracted again.
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace("annotator 1", "annotator 2").replace(",cat,", ",kitty,"), encoding="utf-8")
    jobs = planned_jobs(tmp_path, config)
    assert "label_images" in jobs and not UNTOUCHED & set(jobs) and "map" not in jobs
    # With stratified sampling a label edit can change the sample: it resamples (the docs say so).
    stratified = with_changes(config, "sample", stratified=True)
    assert "sample_images" in planned_jobs(tmp_path, stratified)


def test_a_flat_unlabelled_folder_runs_end_to_end_and_label_figures_say_n_a(tmp_path):
    root = tmp_path / "photos"
    for i, image in enumerate(sorted(DEMO_ROOT.glob("*/*.png"))[::40]):
        folder = root / f"day-{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, folder / f"IMG_{i:04d}.png")
    config = {**SMALL, "dataset": {"root": str(root), "layout": "flat"}, "sample": {"n_images": "all"}}
    result = snakemake(tmp_path, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "results"
    assert {row["label"] for row in read_csv(out / "sample" / "manifest.csv")} == {"unlabelled"}
    sweep = read_csv(out / "metrics" / "r18" / "sweep.csv")
    assert sweep[0]["knn_accuracy_2d"] == "n/a" and float(sweep[0]["trustworthiness"]) > 0.5
    assert read_csv(out / "suspects" / "r18" / "suspects.csv") == []  # no labels: no label suspects...
    assert len(read_csv(out / "suspects" / "r18" / "outliers.csv")) == len(list(root.rglob("*.png")))  # ...outliers
    # ...and clusters, named by number (random weights: no predictions), with no agreement to report.
    summary = json.loads((out / "clusters" / "r18" / "summary.json").read_text())
    assert summary["adjusted_rand_index"] is None and summary["agreement"] == "n/a: the images have no labels"
    names = {row["cluster_name"] for row in read_csv(out / "clusters" / "r18" / "clusters.csv")}
    assert names == {f"cluster {i}" for i in range(summary["n_clusters"])}
    assert read_csv(out / "metrics" / "r18" / "sweep.csv")[0]["cluster_ari"] == "n/a"
    for figure in (
        "suspects/r18/suspects.png",
        "overview/r18.png",
        "scatter/r18/tsne/perplexity-5_seed-0.png",
        "scatter/r18/tsne/perplexity-5_seed-0.clusters.png",
    ):
        assert (out / figure).stat().st_size > 3000, figure
    # A new image two folders down is seen: sampling is planned again.
    (root / "day-0" / "deeper").mkdir()
    shutil.copy(next(root.rglob("*.png")), root / "day-0" / "deeper" / "new.png")
    assert "sample_images" in planned_jobs(tmp_path, config)


def test_tiny_run_lists_suspects_duplicates_and_outliers_per_feature_set(finished_run):
    workdir, _ = finished_run
    for features in (f"{TINY_SET}.layer3", f"{TINY_SET}.penultimate"):
        folder = workdir / "results" / "suspects" / features
        outliers = read_csv(folder / "outliers.csv")
        assert len(outliers) == 40 and [int(row["rank"]) for row in outliers] == list(range(1, 41))
        assert all(len(row["neighbours"].split(" | ")) == 10 for row in outliers)
        for name in ("suspects.png", "duplicates.png", "outliers.png"):
            assert (folder / name).stat().st_size > 3000, name
