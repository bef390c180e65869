"""The whole workflow, run for real by Snakemake on a tiny config in a temporary folder."""

import csv
import json
import subprocess

import pytest
from PIL import Image

from conftest import (
    BIN,
    REPO,
    SNAKEMAKE,
    TINY,
    TINY_IDS,
    TINY_SET,
    planned_jobs,
    snakemake,
    with_changes,
    with_set_changes,
)
from tsne_atlas.files.features import read_features
from tsne_atlas.files.map_inputs import read_input

pytestmark = pytest.mark.workflow


def test_run_produces_every_output(finished_run):
    workdir, result = finished_run
    out = workdir / "results"
    with open(out / "sample" / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 40 and {r["label"] for r in rows} == {
        "bear",
        "bird",
        "cat",
        "cow",
        "dog",
        "elephant",
        "giraffe",
        "horse",
        "sheep",
        "zebra",
    }
    # One file for the set: both nodes from one forward pass.
    layer3, penultimate = (
        read_features(out / "features" / f"{TINY_SET}.h5", node, with_features=False)
        for node in ("layer3", "penultimate")
    )
    assert layer3["shape"] == (40, 256) and penultimate["shape"] == (40, 512)
    assert penultimate["attrs"]["graph_node"] == "flatten"
    assert penultimate["attrs"]["model"] == "resnet18" and bool(penultimate["attrs"]["weights_random"])
    runs = [f"{features}/tsne/perplexity-{p}_seed-{s}" for features in TINY_IDS for p in (5, 10) for s in (0, 1)]
    for features in TINY_IDS:
        # Shared by the set's sweep, computed once: the PCA input, the k-NN graph at 3 x 10, P per perplexity.
        for shared in ("input.h5", "graph/k-30.npz", "affinities/perplexity-5.npz", "affinities/perplexity-10.npz"):
            assert (out / "embeddings" / features / shared).stat().st_size > 0, shared
        for name in (
            f"metrics/{features}/sweep.csv",
            f"metrics/{features}/sweep.png",
            f"metrics/{features}/sweep.svg",
            f"overview/{features}.png",
            f"overview/{features}.pdf",
        ):
            assert (out / name).stat().st_size > 0, name
        with open(out / "metrics" / features / "sweep.csv", newline="") as handle:
            table = list(csv.DictReader(handle))
        assert len(table) == 4 and {row["n_metric_images"] for row in table} == {"40"}
        assert {row["features"] for row in table} == {features}
    for run in runs:
        meta = json.loads((out / "embeddings" / f"{run}.json").read_text())
        assert meta["precomputed_affinities"] is True and meta["negative_gradient"] == "bh" and meta["bh_theta"] == 0.8
        assert meta["features"] == run.split("/")[0] and meta["node"] == run.split("/")[0].split(".")[1]
        assert meta["feature_dim"] == (256 if meta["node"] == "layer3" else 512)
        assert (out / "embeddings" / f"{run}.tsv").stat().st_size > 0
        assert (out / "scatter" / f"{run}.svg").stat().st_size > 0
        for png in (out / "scatter" / f"{run}.png", out / "mosaic" / f"{run}.png"):
            with Image.open(png) as image:
                assert image.format == "PNG"
        assert (out / "logs" / "embeddings" / f"{run}.log").exists()
        with Image.open(out / "grid_mosaic" / f"{run}.png") as image:
            assert image.size[0] == 7 * (48 + 2 * 2)  # 40 images: a 6 x 7 grid of 52-px tiles
    # Two feature sets: the comparison outputs.
    for name in ("explorer.html", "compare/sheet.png", "compare/sheet.pdf", "compare/metrics.csv"):
        assert (out / name).stat().st_size > 0, name
    for name in ("compare/metrics.png", "compare/metrics.svg", "compare/cka.csv", "compare/cka.png"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "compare" / "metrics.csv", newline="") as handle:
        assert [(row["features"], row["perplexity"]) for row in csv.DictReader(handle)][::2] == [
            (features, p) for features in TINY_IDS for p in ("5.0", "10.0")
        ]
    log = (out / "logs" / "extract_features" / f"{TINY_SET}.log").read_text()
    assert "RANDOM initialisation" not in log  # 'none' asked
    assert "nodes layer3 (layer3), penultimate (flatten) for 40 images in one pass" in log
    record = json.loads((out / "weights" / f"{TINY_SET}.json").read_text())  # fetch_weights' record
    assert record["kind"] == "none" and record["source"] == "torchvision"
    assert "tsne-atlas: done. Results in results/" in result.stdout + result.stderr
    assert not list(out.rglob(".tmp-*"))


def test_the_configs_tsne_settings_reach_opentsne(finished_run):
    """Each run's coordinates are openTSNE's own result for the config's settings (defaults: Barnes-Hut
    below 20,000 images, theta 0.8, PCA initialisation) on the sweep's shared input and affinities,
    and not the result of other settings: the settings are used, not only recorded."""
    import numpy as np
    from openTSNE import TSNE
    from openTSNE.affinity import PrecomputedAffinities
    from scipy.sparse import load_npz

    out = finished_run[0] / "results" / "embeddings" / TINY_IDS[1]
    X, _ = read_input(out / "input.h5")

    def opentsne(perplexity, seed, **settings):
        P = load_npz(out / "affinities" / f"perplexity-{perplexity}.npz").tocsr()
        tsne = TSNE(perplexity=perplexity, initialization="pca", random_state=seed, n_jobs=1, verbose=False, **settings)
        return np.asarray(tsne.fit(X, affinities=PrecomputedAffinities(P, normalize=False)))

    for perplexity, seed in ((5, 0), (10, 1)):
        with open(out / "tsne" / f"perplexity-{perplexity}_seed-{seed}.tsv", newline="") as handle:
            written = np.array([[float(r["x"]), float(r["y"])] for r in csv.DictReader(handle, delimiter="\t")])
        np.testing.assert_array_equal(written, opentsne(perplexity, seed, negative_gradient_method="bh", theta=0.8))
        # openTSNE's own default theta (0.5) gives another embedding.
        assert np.abs(written - opentsne(perplexity, seed, negative_gradient_method="bh", theta=0.5)).max() > 1e-3


def test_second_run_does_nothing(finished_run):
    workdir, _ = finished_run
    assert planned_jobs(workdir, TINY) == {}


def test_adding_a_perplexity_runs_only_its_tsne_and_figures(finished_run):
    workdir, _ = finished_run
    config = with_changes(TINY, "tsne", perplexities=[5, 10, 8])
    assert planned_jobs(workdir, config) == {
        # For each of the two feature sets: its affinities come from the existing neighbour graph
        # (k = 3 x 10 covers 3 x 8), two runs (one per seed) and their figures...
        "tsne_affinities": 2,
        "map": 4,
        "scatter": 4,
        "mosaic": 4,
        "grid_mosaic": 4,
        "embedding_metrics": 4,
        # ...the query set placed on those runs, and drawn...
        "place_query": 4,
        "query_figures": 4,
        # ...and the figures that show every run: per set, and across sets (the sheet shows seed 0).
        "sweep_metrics": 2,
        "sweep_overview": 2,
        "explorer": 1,
        "compare_sheet": 1,
        "compare_metrics": 1,
        "all": 1,
    }


def test_adding_a_seed_reuses_every_shared_tsne_input(finished_run):
    workdir, _ = finished_run
    config = with_changes(TINY, "tsne", seeds=[0, 1, 7])
    assert planned_jobs(workdir, config) == {
        "map": 4,
        "scatter": 4,
        "mosaic": 4,
        "grid_mosaic": 4,
        "embedding_metrics": 4,
        "place_query": 4,
        "query_figures": 4,
        "sweep_metrics": 2,
        "sweep_overview": 2,
        "explorer": 1,
        # The comparison sheet shows seed 0 only: it stays.
        "compare_metrics": 1,
        "all": 1,
    }


def test_raising_the_largest_perplexity_rebuilds_the_neighbour_graph(finished_run):
    workdir, _ = finished_run
    config = with_changes(TINY, "tsne", perplexities=[5, 12])
    jobs = planned_jobs(workdir, config)
    # k = 36 > 30: a new graph, so both perplexities' affinities and every run are redone.
    assert jobs["knn_graph"] == 2 and jobs["tsne_affinities"] == 4 and jobs["map"] == 8
    assert "prepare_input" not in jobs and "extract_features" not in jobs


def test_changing_a_mosaic_setting_reruns_only_mosaics(finished_run):
    workdir, _ = finished_run
    config = with_changes(TINY, "mosaic", thumb_size=20)
    # The query set's mosaics are drawn with the same settings, on the same frames.
    assert planned_jobs(workdir, config) == {"mosaic": 8, "query_figures": 8, "all": 1}


@pytest.mark.parametrize("change", [{"n_images": 36}, {"seed": 1}])
def test_changing_the_sample_reruns_from_sampling(finished_run, change):
    workdir, _ = finished_run
    config = with_changes(TINY, "sample", **change)
    assert planned_jobs(workdir, config) == {
        "sample_images": 1,
        "label_images": 1,
        "explorer_thumbnails": 1,
        "extract_features": 1,  # one job for both nodes of the set
        "prepare_input": 2,
        "knn_graph": 2,
        "tsne_affinities": 4,
        "map": 8,
        "scatter": 8,
        "mosaic": 8,
        "grid_mosaic": 8,
        "embedding_metrics": 8,
        "sweep_metrics": 2,
        "sweep_overview": 2,
        "explorer": 1,
        "compare_sheet": 1,
        "compare_metrics": 1,
        "compare_cka": 1,
        "compare_clusters": 1,
        "find_suspects": 2,
        "suspects_figures": 2,
        "find_clusters": 2,
        "image_quality": 1,
        "projector_export": 2,
        "projector_config": 1,
        # The query set is checked against the new sample, extracted as before, and placed on the new maps.
        "sample_query": 1,
        "label_query": 1,
        "extract_query_features": 1,
        "prepare_query": 2,
        "query_neighbours": 2,
        "place_query": 8,
        "query_figures": 8,
        "placement_tables": 2,
        "query_thumbnails": 1,
        "all": 1,
    }


def test_unsupported_perplexity_fails_before_any_job(tmp_path):
    config = with_changes(TINY, "tsne", perplexities=[5, 30])
    result = snakemake(tmp_path, "--dry-run", config=config)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert message.startswith("tsne-atlas: config error: tsne.perplexities: perplexity 30 needs at least 92 images")
    assert len(message.splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_unknown_config_key_is_one_line(tmp_path):
    config = {**TINY, "mosaic": {**TINY["mosaic"], "thumbsize": 10}}
    result = snakemake(tmp_path, "--dry-run", config=config)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "tsne-atlas: config error: mosaic: Additional properties are not allowed ('thumbsize' was unexpected); "
        "see docs/configuration.md"
    )


@pytest.mark.parametrize(
    "results, expected",
    [
        ("", "results: '' should be non-empty"),
        ("/", "results: '/' is not allowed here (folder every output goes to"),
    ],
)
def test_results_must_be_a_folder_other_than_the_filesystem_root(tmp_path, results, expected):
    """'' and '/' would write /sample/manifest.csv, /features/...: refused before any job."""
    result = snakemake(tmp_path, "--dry-run", config={**TINY, "results": results})
    assert result.returncode != 0
    message = result.stderr.strip()
    assert message.startswith(f"tsne-atlas: config error: {expected}") and len(message.splitlines()) == 1
    assert message.endswith("; see docs/configuration.md")


def test_too_large_sample_fails_in_one_line_and_leaves_no_manifest(tmp_path):
    config = with_changes(TINY, "sample", n_images=2000)
    result = snakemake(tmp_path, config=config)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("tsne-atlas: error:")]
    assert errors == [
        "tsne-atlas: error: sample.n_images is 2000 but the dataset has only 1000 usable images; "
        "lower sample.n_images or set it to 'all'"
    ]
    assert not (tmp_path / "results" / "sample" / "manifest.csv").exists()


def test_lint_is_clean():
    result = subprocess.run(
        [SNAKEMAKE, "--lint", "-s", str(REPO / "Snakefile")], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_snakefmt_is_clean():
    files = [str(REPO / "Snakefile"), *map(str, sorted((REPO / "rules").glob("*.smk")))]
    result = subprocess.run([str(BIN / "snakefmt"), "--check", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_images_added_to_a_class_folder_rerun_from_sampling(tmp_path):
    import shutil

    data = tmp_path / "data"
    for name in ("bear", "cat", "zebra"):
        shutil.copytree(REPO / "resources" / "animal-mnist" / name, data / name)
    config = {**TINY, "dataset": {"root": str(data)}, "sample": {"n_images": 36}}
    result = snakemake(tmp_path, "--until", "sample_images", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(tmp_path, config).get("sample_images") is None
    shutil.copy(data / "cat" / "cat_02000.png", data / "cat" / "cat_new.png")
    assert planned_jobs(tmp_path, config)["sample_images"] == 1


def test_report_builds(finished_run):
    workdir, _ = finished_run
    result = snakemake(workdir, "--report", str(workdir / "report.zip"), config=TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    import zipfile

    archive = zipfile.ZipFile(workdir / "report.zip")
    names = archive.namelist()
    assert any(n.endswith("perplexity-5_seed-0.png") for n in names)
    # A run's captions name it by method and settings, rendered from the rules' wildcards (every method's
    # figures share these captions).
    assert '<span class=\\"pre\\">tsne/perplexity-5_seed-0</span>' in archive.read("report/report.html").decode()
    assert any(n.endswith("cka.png") for n in names) and any(n.endswith("sheet.png") for n in names)
    # The image quality figures, one per problem, each with the caption listing every check's threshold.
    problems = ("blurry", "dark", "light", "low_information", "odd_aspect_ratio", "grayscale", "small")
    assert sum(n.endswith(tuple(f"/{problem}.png" for problem in problems)) for n in names) == 7
    assert "grayscale_below: 0.005" in archive.read("report/report.html").decode()


def test_replacing_the_weights_file_reruns_extraction(tmp_path):
    import torch
    from torchvision.models import get_model

    weights = tmp_path / "resnet18.pth"
    torch.manual_seed(1)
    torch.save(get_model("resnet18", weights=None).state_dict(), weights)
    config = with_set_changes(
        {**TINY, "sample": {"n_images": 12}, "tsne": {"perplexities": [3], "seeds": [0]}}, weights=str(weights)
    )
    result = snakemake(tmp_path, "--until", "extract_features", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    stored = read_features(tmp_path / "results" / "features" / f"{TINY_SET}.h5", "penultimate", with_features=False)
    assert "resnet18.pth" in stored["attrs"]["weights_source"] and not stored["attrs"]["weights_random"]
    assert "extract_features" not in planned_jobs(tmp_path, config)
    torch.save(get_model("resnet18", weights=None).state_dict(), weights)
    planned = planned_jobs(tmp_path, config)
    assert planned["fetch_weights"] == 1 and planned["extract_features"] == 1


def test_truncated_features_file_is_rebuilt(tmp_path):
    config = {**TINY, "sample": {"n_images": 12}, "tsne": {"perplexities": [3], "seeds": [0]}}
    result = snakemake(tmp_path, "--until", "extract_features", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    features = tmp_path / "results" / "features" / f"{TINY_SET}.h5"
    complete = features.read_bytes()
    features.write_bytes(complete[: len(complete) // 2])  # a truncated copy with the final name
    # A dry run leaves it alone...
    assert snakemake(tmp_path, "--dry-run", config=config).returncode == 0 and features.exists()
    # ...a real run says so, removes it and rebuilds it, identical to the original.
    result = snakemake(tmp_path, "--until", "extract_features", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{TINY_SET}.h5 was incomplete (not readable as HDF5" in result.stderr
    assert features.read_bytes() == complete
