import csv
import json

import numpy as np
import pytest
from PIL import Image

from conftest import schema_defaults, write_clusters, write_embedding
from tsne_atlas import grid_mosaic as gm
from tsne_atlas import metrics as em
from tsne_atlas import metrics_plot
from tsne_atlas import overview as so
from tsne_atlas.figure_style import RANDOM_WEIGHTS_NOTE, class_colours, colour_bgr255
from tsne_atlas.files.metrics import SWEEP_FIELDS
from tsne_atlas.subsample import fixed_subsample


def test_knn_accuracy_leaves_each_point_out():
    X = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
    assert em.knn_accuracy(X, np.array([0, 0, 0, 1, 1, 1]), knn_k=2) == 1.0
    # A lone point of its class cannot be its own neighbour, so it is misclassified.
    X[2] = 0.25  # nearest other point of the lone class-1 point at 0.25 is the class-0 point at 0.1
    assert em.knn_accuracy(X, np.array([0, 0, 1, 1, 1, 1]), knn_k=1) == pytest.approx(5 / 6)


def test_metrics_reward_a_faithful_embedding():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.3, size=(30, 8)) for c in (0, 5, 10)])
    labels = np.repeat([0, 1, 2], 30)
    faithful = X[:, :2]
    shuffled = rng.permutation(faithful)
    ks = schema_defaults("metrics", "trustworthiness_k", "knn_k")
    good, bad = em.embedding_metrics(X, faithful, labels, **ks), em.embedding_metrics(X, shuffled, labels, **ks)
    assert good["trustworthiness"] > 0.9 > bad["trustworthiness"] + 0.2
    assert good["knn_accuracy_2d"] == 1.0 and bad["knn_accuracy_2d"] < 0.6
    assert good["knn_accuracy_features"] == bad["knn_accuracy_features"] == 1.0


def fake_rows():
    return [
        {
            "features": "resnet18",
            "method": "tsne",
            "perplexity": p,
            "seed": s,
            "trustworthiness": 0.9 + p / 1000 + s / 100,
            "knn_accuracy_2d": 0.6,
            "knn_accuracy_features": 0.7,
            "kl_divergence": 1.0 / p,
            "n_images": 50,
            "runtime_s": 1.0,
            "knn_k": 5,
            "weights_random": True,
        }
        for p in (5, 30)
        for s in (0, 1, 2)
    ]


def test_sweep_table_and_plot(tmp_path):
    files = []
    for i, row in enumerate(reversed(fake_rows())):
        files.append(tmp_path / f"{i}.json")
        files[-1].write_text(json.dumps(row))
    _, summary = write_clusters(tmp_path, ["a.png", "b.png"], ["x", "y"], "resnet18", ari=0.25)
    metrics_plot.sweep_metrics(
        [str(f) for f in files], summary, str(tmp_path / "sweep.csv"), str(tmp_path / "s.png"), str(tmp_path / "s.svg")
    )
    with open(tmp_path / "sweep.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [(float(r["perplexity"]), int(r["seed"])) for r in table] == [
        (5, 0),
        (5, 1),
        (5, 2),
        (30, 0),
        (30, 1),
        (30, 2),
    ]
    assert list(table[0]) == list(SWEEP_FIELDS)
    fig = metrics_plot.plot_sweep_metrics(fake_rows(), RANDOM_WEIGHTS_NOTE)
    assert [ax.get_title() for ax in fig.axes] == [
        "trustworthiness",
        "k-NN label accuracy",
        "KL divergence (t-SNE)",
    ]
    assert fig.legends[0].get_title().get_text() == RANDOM_WEIGHTS_NOTE
    with Image.open(tmp_path / "s.png") as image:
        assert image.size[0] > 1000


def test_contact_sheet_has_a_panel_per_run_with_metrics_in_titles():
    rng = np.random.default_rng(1)
    runs = [
        {
            "meta": {"features": "resnet18", "method": "tsne", "perplexity": r["perplexity"], "seed": r["seed"]},
            "coords": rng.normal(size=(50, 2)),
            "labels": ["a", "b"] * 25,
            "metrics": r,
        }
        for r in fake_rows()
    ]
    fig = so.plot_overview(runs, ["a", "b"], 2.6, note=RANDOM_WEIGHTS_NOTE)
    axes = np.array(fig.axes).reshape(2, 3)
    assert axes[0, 0].get_title().startswith("t-SNE p=5 s=0") and axes[1, 2].get_title().startswith("t-SNE p=30 s=2")
    assert "T=0.925" in axes[0, 2].get_title()
    assert all(ax.get_aspect() == 1.0 for ax in axes.ravel())
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b"]
    assert legend.get_title().get_text() == RANDOM_WEIGHTS_NOTE


def test_grid_assignment_is_a_permutation_that_keeps_neighbours():
    rng = np.random.default_rng(0)
    coords = rng.uniform(size=(30, 2))
    rows, cols = gm.grid_shape(30)
    assert (rows, cols) == (5, 6)
    cells = gm.grid_assignment(coords, rows, cols)
    assert len(set(cells)) == 30 and cells.max() < 30
    r, c = np.divmod(cells, cols)
    # Left-right and up-down order survive the snapping (strong rank correlation).
    assert np.corrcoef(coords[:, 0], c)[0, 1] > 0.8
    assert np.corrcoef(coords[:, 1], -r)[0, 1] > 0.8
    # Points already on a grid land on their own cells.
    gx, gy = np.meshgrid(np.arange(cols), np.arange(rows)[::-1])
    exact = np.column_stack([gx.ravel(), gy.ravel()]).astype(float)
    assert list(gm.grid_assignment(exact, rows, cols)) == list(range(rows * cols))


# The grid mosaic's settings: the schema's defaults with small thumbnails.
GRID = {**schema_defaults("grid_mosaic"), "thumb_size": 10, "border": 2}


def test_grid_mosaic_draws_one_framed_cell_per_image(image_folder, tmp_path):
    paths = [f"{c}/{c}_{i:03d}.png" for c in ("ant", "bee", "cat") for i in range(4)]
    coords = np.array([[i % 4, i // 4] for i in range(12)], dtype=float)
    meta = {"classes": ["ant", "bee", "cat"], "seed": 0, "weights_random": False}
    write_embedding(str(tmp_path / "e.tsv"), str(tmp_path / "e.json"), paths, [p[:3] for p in paths], coords, meta)
    gm.grid_mosaic(
        str(tmp_path / "e.tsv"),
        str(tmp_path / "e.json"),
        str(tmp_path / "manifest.csv"),
        str(image_folder),
        **GRID,
        png=str(tmp_path / "g.png"),
    )
    image = np.asarray(Image.open(tmp_path / "g.png").convert("RGB"))[:, :, ::-1]  # BGR like OpenCV
    tile = 14
    assert image.shape[1] == 4 * tile  # 12 images: a 3 x 4 grid
    colours = [colour_bgr255(c) for c in class_colours(3)]
    # Bottom row of the grid holds the ants (lowest y), top row the cats.
    assert tuple(image[2 * tile, 0]) == colours[0] and tuple(image[0, 0]) == colours[2]
    again = tmp_path / "g2.png"
    manifest = str(tmp_path / "manifest.csv")
    gm.grid_mosaic(
        str(tmp_path / "e.tsv"), str(tmp_path / "e.json"), manifest, str(image_folder), **GRID, png=str(again)
    )
    assert again.read_bytes() == (tmp_path / "g.png").read_bytes()


def test_grid_mosaic_subsamples_above_the_cap():
    keep = fixed_subsample(100, 30, random_state=0)
    assert len(keep) == 30 and len(set(keep)) == 30 and list(keep) == sorted(keep)
    assert list(fixed_subsample(20, 30)) == list(range(20))


def test_metrics_subsample_is_fixed_and_bounded():
    assert list(fixed_subsample(50, 100)) == list(range(50))
    keep = fixed_subsample(100_000, 5000)
    assert len(keep) == 5000 and len(set(keep)) == 5000 and keep.max() < 100_000
    assert np.all(np.diff(keep) > 0)
    np.testing.assert_array_equal(keep, fixed_subsample(100_000, 5000))  # same for every run


def test_grid_mosaic_above_the_cap_shows_the_same_subsample_for_every_seed_and_says_so(
    image_folder, tmp_path, monkeypatch
):
    files = sorted(p.relative_to(image_folder).as_posix() for p in image_folder.rglob("*.png"))
    paths = [files[i % len(files)] for i in range(30)]
    labels = [p.split("/")[0] for p in paths]
    coords = np.random.default_rng(0).normal(size=(30, 2))
    seen = []

    def spy(coords, image_paths, label_indices, classes, *args):
        seen.append((coords, [str(p) for p in image_paths], args[-1]))  # args[-1]: the note
        return np.zeros((4, 4, 3), np.uint8)

    monkeypatch.setattr(gm, "render_grid_mosaic", spy)
    for seed in (0, 1):
        meta = {
            "classes": ["ant", "bee", "cat"],
            "features": "resnet18",
            "method": "tsne",
            "perplexity": 5.0,
            "seed": seed,
            "n_images": 30,
            "kl_divergence": 0.5,
            "model": "resnet18",
            "weights_random": True,
        }
        write_embedding(str(tmp_path / "e.tsv"), str(tmp_path / "e.json"), paths, labels, coords, meta)
        gm.grid_mosaic(
            str(tmp_path / "e.tsv"),
            str(tmp_path / "e.json"),
            str(tmp_path / "manifest.csv"),
            str(image_folder),
            **{**GRID, "max_images": 10},
            png=str(tmp_path / f"g{seed}.png"),
        )
    (coords0, paths0, note0), (_, paths1, note1) = seen
    keep = fixed_subsample(30, 10)
    assert len(paths0) == 10 and paths0 == paths1  # one subsample for the whole sweep
    np.testing.assert_array_equal(coords0, coords[keep])
    assert (
        note0
        == note1
        == (f"{RANDOM_WEIGHTS_NOTE}\nshowing a random 10 of 30 images (fixed subsample; grid_mosaic.max_images)")
    )


def test_contact_sheet_markers_shrink_with_many_points():
    rng = np.random.default_rng(1)
    runs = [
        {
            "meta": {"features": "resnet18", "method": "tsne", "perplexity": r["perplexity"], "seed": r["seed"]},
            "coords": rng.normal(size=(n, 2)),
            "labels": ["a", "b"] * (n // 2),
            "metrics": r,
        }
        for r, n in zip(fake_rows()[:2], (100, 40_000))
    ]
    fig = so.plot_overview(runs, ["a", "b"], 2.6, panel_point_size=3.0)
    sizes = [ax.collections[0].get_sizes()[0] for ax in fig.axes if ax.collections]
    assert sizes == [pytest.approx(3.0), pytest.approx(0.75)]


def test_metrics_of_a_large_run_use_the_fixed_subsample(tmp_path):
    """Above metrics.max_images the metrics are computed on the shared subsample, and say how many points."""
    from tsne_atlas import preparation as ti
    from tsne_atlas.files.features import write_features

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 30)
    features = (rng.normal(size=(90, 12)) + 5 * labels[:, None]).astype(np.float32)
    paths = [f"p/{i}.png" for i in range(90)]
    write_features(tmp_path / "f.h5", [{"n": features}], 90, paths, {}, {"n": "n"})
    ti.prepare_input(
        str(tmp_path / "f.h5"), "n", standardize=False, pca_components=0, prepared=str(tmp_path / "input.h5")
    )
    coords = features[:, :2].astype(np.float64) + rng.normal(scale=0.1, size=(90, 2))
    meta = {
        "features": "f",
        "method": "tsne",
        "perplexity": 10.0,
        "seed": 0,
        "kl_divergence": 1.0,
        "n_images": 90,
        "runtime_s": 0.1,
        "classes": ["a", "b", "c"],
    }
    write_embedding(
        str(tmp_path / "e.tsv"),
        str(tmp_path / "e.json"),
        [f"p/{i}.png" for i in range(90)],
        ["abc"[k] for k in labels],
        coords,
        meta,
    )
    args = (
        str(tmp_path / "input.h5"),
        str(tmp_path / "e.tsv"),
        str(tmp_path / "e.json"),
        str(tmp_path / "manifest.csv"),
    )
    settings = schema_defaults("metrics", "trustworthiness_k", "knn_k")
    capped = em.embedding_metrics_for_run(*args, **settings, max_images=30, metrics=str(tmp_path / "capped.json"))
    full = em.embedding_metrics_for_run(*args, **settings, max_images=5000, metrics=str(tmp_path / "full.json"))
    assert capped["n_metric_images"] == 30 and full["n_metric_images"] == 90
    keep = fixed_subsample(90, 30)
    expected = em.embedding_metrics(features[keep].astype(np.float64), coords[keep], labels[keep], **settings)
    assert capped["trustworthiness"] == pytest.approx(expected["trustworthiness"], abs=1e-6)
    assert capped["trustworthiness"] != full["trustworthiness"]


def test_a_metric_is_shown_with_two_decimals_and_a_missing_one_as_n_a():
    """format_metric (files/metrics.py), the text of the overview's panel titles."""
    from tsne_atlas.files.metrics import format_metric

    assert format_metric(0.87654) == "0.88"
    assert format_metric(1) == "1.00"
    assert format_metric(0.87654, digits=3) == "0.877"
    assert format_metric(None) == "n/a"


def test_sweep_table_says_n_a_for_a_missing_or_none_metric(tmp_path):
    """write_sweep_table (files/metrics.py): a label metric that is None (unlabelled images) and a metric a
    run does not have (PCA's KL divergence) are both ``n/a``; keys outside the table are left out."""
    from tsne_atlas.files.metrics import write_sweep_table

    row = {"features": "net", "method": "pca", "components": 2, "knn_accuracy_2d": None, "other": 1}
    write_sweep_table([row], tmp_path / "sweep.csv")
    with open(tmp_path / "sweep.csv", newline="", encoding="utf-8") as handle:
        (written,) = list(csv.DictReader(handle))
    assert list(written) == list(SWEEP_FIELDS)
    assert written["knn_accuracy_2d"] == "n/a" and written["kl_divergence"] == "n/a"
    assert written["features"] == "net" and written["method"] == "pca"


def test_run_metrics_json_is_indented_sorted_utf8_and_reads_back(tmp_path):
    """write_run_metrics and read_run_metrics (files/metrics.py), byte for byte."""
    from tsne_atlas.files.metrics import read_run_metrics, write_run_metrics

    write_run_metrics(tmp_path / "m.json", {"z": 1.5, "a": None, "label": "ü"})
    assert (tmp_path / "m.json").read_text(
        encoding="utf-8"
    ) == '{\n  "a": null,\n  "label": "\\u00fc",\n  "z": 1.5\n}\n'
    assert read_run_metrics(tmp_path / "m.json") == {"z": 1.5, "a": None, "label": "ü"}
