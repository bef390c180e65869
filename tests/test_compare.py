import csv
import re
import zlib

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from conftest import write_clusters, write_embedding
from tsne_atlas import compare as cmp
from tsne_atlas.figure_style import NOTE_COLOUR, plt
from tsne_atlas.files.metrics import SWEEP_FIELDS, write_run_metrics
from tsne_atlas.files.runs import RunRecord
from tsne_atlas.jobs import AtlasError
from tsne_atlas.subsample import fixed_subsample

CLASSES = ["ant", "bee", "cat"]


def rotation(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


MIRROR = np.array([[1.0, 0.0], [0.0, -1.0]])


def gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA in its N x N form: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = X X^T, with H K H centring."""
    n = len(x)
    centring = np.eye(n) - np.ones((n, n)) / n
    gram_x, gram_y = centring @ x @ x.T @ centring, centring @ y @ y.T @ centring
    return float(np.sum(gram_x * gram_y) / np.sqrt(np.sum(gram_x**2) * np.sum(gram_y**2)))


# --- Procrustes ---


@pytest.mark.parametrize("reflect", [False, True])
def test_procrustes_maps_a_rotated_scaled_shifted_copy_back_onto_the_reference(reflect):
    reference = np.random.default_rng(0).normal(size=(40, 2))
    turn = rotation(2.1) @ (MIRROR if reflect else np.eye(2))
    copy = 0.37 * reference @ turn + np.array([12.0, -5.0])
    aligned = cmp.procrustes_align(reference, copy)
    assert aligned.shape == (40, 2)
    np.testing.assert_allclose(aligned, reference, atol=1e-9)


def test_procrustes_never_fits_worse_than_centring_alone():
    rng = np.random.default_rng(1)
    for _ in range(20):
        reference, coords = rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) * 3 + 7
        centred_only = coords - coords.mean(axis=0) + reference.mean(axis=0)
        aligned = cmp.procrustes_align(reference, coords)
        assert np.sum((aligned - reference) ** 2) <= np.sum((centred_only - reference) ** 2) + 1e-12
        np.testing.assert_allclose(aligned.mean(axis=0), reference.mean(axis=0), atol=1e-12)


def test_procrustes_keeps_the_shape_it_does_not_shear():
    """A sheared copy cannot be mapped back exactly: only rotation, reflection and one scale are allowed."""
    reference = np.random.default_rng(2).normal(size=(40, 2))
    sheared = reference @ np.array([[1.0, 0.8], [0.0, 1.0]])
    aligned = cmp.procrustes_align(reference, sheared)
    assert np.sum((aligned - reference) ** 2) > 0.1 * np.sum(reference**2)
    # The map is a similarity: distances between points keep their ratios.
    before = np.linalg.norm(sheared[1:] - sheared[0], axis=1)
    after = np.linalg.norm(aligned[1:] - aligned[0], axis=1)
    np.testing.assert_allclose(after / before, after[0] / before[0])


def test_procrustes_refuses_arrays_of_different_shapes():
    with pytest.raises(ValueError, match=r"\(5, 2\) and \(4, 2\)"):
        cmp.procrustes_align(np.zeros((5, 2)), np.zeros((4, 2)))


# --- CKA ---


def test_cka_of_a_representation_with_itself_is_one_and_survives_rotation_and_scale():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 8)) @ rng.normal(size=(8, 8))
    orthogonal, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert cmp.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert cmp.linear_cka(x, 4.5 * x @ orthogonal + 3.0) == pytest.approx(1.0, abs=1e-12)
    # An invertible but non-orthogonal map changes it: CKA is not invariant to any linear map.
    stretch = np.diag([1.0, 1, 1, 1, 1, 1, 1, 40.0])
    assert cmp.linear_cka(x, x @ stretch) < 0.95


def test_cka_equals_the_gram_matrix_form_and_is_a_symmetric_value_in_0_1():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(25, 6)), rng.normal(size=(25, 3))
    y[:, 0] += 2 * x[:, 0]  # some shared structure, so the value is neither 0 nor 1
    value = cmp.linear_cka(x, y)
    assert value == pytest.approx(gram_cka(x, y), rel=1e-12)
    assert value == pytest.approx(cmp.linear_cka(y, x), rel=1e-12)
    assert 0.05 < value < 0.95


def test_cka_of_features_wider_than_the_images_agrees_with_the_gram_form():
    """D above N, where linear_cka computes through N x N products (the light ones there): same value."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(10, 300)), rng.normal(size=(10, 200))
    y[:, :50] += x[:, :50]
    assert cmp.linear_cka(x, y) == pytest.approx(gram_cka(x, y), rel=1e-12)


def test_cka_matrix_is_symmetric_with_ones_on_the_diagonal():
    rng = np.random.default_rng(6)
    base = rng.normal(size=(40, 5))
    features = [base, base @ rng.normal(size=(5, 9)), rng.normal(size=(40, 4)), base[:, :2]]
    matrix = cmp.cka_matrix(features)
    assert matrix.shape == (4, 4)
    np.testing.assert_array_equal(matrix, matrix.T)
    np.testing.assert_array_equal(np.diag(matrix), np.ones(4))
    assert matrix[0, 2] == pytest.approx(cmp.linear_cka(base, features[2]))
    assert np.all((matrix >= 0) & (matrix <= 1))


def test_cka_of_a_constant_representation_is_an_error_naming_the_set():
    rng = np.random.default_rng(7)
    with pytest.raises(AtlasError, match=r"feature set 'flat' is the same for every compared image") as err:
        cmp.cka_matrix([rng.normal(size=(10, 3)), np.full((10, 3), 0.1)], ids=["real", "flat"])
    assert "\n" not in str(err.value)


# --- matching images across sets ---


def test_matched_rows_pairs_the_same_images_across_orders_in_the_first_sets_order():
    first = ["a", "b", "c", "d", "e"]
    second = ["e", "x", "c", "a", "b"]  # no d; an extra x
    third = ["b", "c", "a", "e", "d", "y"]
    rows = cmp.matched_rows([first, second, third])
    assert [[paths[i] for i in r] for paths, r in zip([first, second, third], rows)] == [["a", "b", "c", "e"]] * 3
    assert [r.tolist() for r in rows] == [[0, 1, 2, 4], [3, 4, 2, 0], [2, 0, 1, 3]]


def test_matched_rows_needs_three_shared_images():
    with pytest.raises(AtlasError, match=r"share 2 image\(s\), at least 3") as err:
        cmp.matched_rows([["a", "b", "c"], ["b", "c", "d"]])
    assert "\n" not in str(err.value)


def test_matched_rows_refuses_a_set_that_lists_an_image_twice():
    with pytest.raises(AtlasError, match=r"feature set 2 of 2 lists image 'b' twice"):
        cmp.matched_rows([["a", "b", "c"], ["a", "b", "c", "b"]])


# --- the comparison sheet ---


def clustered(n: int, seed: int) -> tuple[list[str], list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = [CLASSES[i % 3] for i in range(n)]
    centres = {"ant": (0.0, 0.0), "bee": (6.0, 0.0), "cat": (0.0, 9.0)}
    coords = np.array([centres[label] for label in labels]) + rng.normal(scale=0.8, size=(n, 2))
    return [f"{label}/{i:03d}.png" for i, label in enumerate(labels)], labels, coords


def run_record(set_id, perplexity, paths, labels, coords, weights_random=False, seed=0) -> RunRecord:
    meta = {
        "features": set_id,
        "method": "tsne",
        "perplexity": perplexity,
        "seed": seed,
        "classes": CLASSES,
        "weights_random": weights_random,
        "model": "resnet18",
    }
    return RunRecord(list(paths), list(labels), np.asarray(coords, dtype=float), meta)


def sheet_rows(n: int = 30) -> list[tuple[str, list[RunRecord]]]:
    """A reference set, a rotated + reflected + scaled copy of it in another image order, and a random set."""
    rows: dict[str, list[RunRecord]] = {"ref": [], "copy": [], "noise": []}
    order = np.random.default_rng(9).permutation(n)
    for k, perplexity in enumerate((30.0, 5.0)):
        paths, labels, coords = clustered(n, seed=k)
        rows["ref"].append(run_record("ref", perplexity, paths, labels, coords))
        moved = 2.5 * coords @ rotation(0.9 + k) @ MIRROR - 40.0
        rows["copy"].append(
            run_record("copy", perplexity, [paths[i] for i in order], [labels[i] for i in order], moved[order])
        )
        noise = np.random.default_rng(k + 10).normal(size=(n, 2))
        rows["noise"].append(run_record("noise", perplexity, paths, labels, noise, weights_random=True))
    return list(rows.items())


def test_aligned_runs_put_a_rotated_reflected_copy_onto_the_reference():
    rows = sheet_rows()
    aligned = dict(cmp.aligned_runs(rows, "ref"))
    references, copies = dict(rows)["ref"], dict(rows)["copy"]
    for reference, copy, coords in zip(references, copies, aligned["copy"]):
        position = {path: i for i, path in enumerate(reference.paths)}
        back_in_reference_order = coords[np.argsort([position[p] for p in copy.paths])]
        np.testing.assert_allclose(back_in_reference_order, reference.coords, atol=1e-9)
        assert not np.allclose(copy.coords[np.argsort([position[p] for p in copy.paths])], reference.coords)
    for reference, coords in zip(references, aligned["ref"]):
        np.testing.assert_array_equal(coords, reference.coords)  # the reference stays as it is
    assert [c.shape for c in aligned["noise"]] == [(30, 2), (30, 2)]


def test_aligned_runs_need_the_reference_and_its_run_at_each_perplexity():
    rows = sheet_rows()
    with pytest.raises(AtlasError, match=r"reference feature set 'nope' is not among .*'ref', 'copy', 'noise'"):
        cmp.aligned_runs(rows, "nope")
    extra = run_record("copy", 50.0, *clustered(30, seed=3))
    with pytest.raises(AtlasError, match=r"'copy' has a t-SNE perplexity 50 map, the reference 'ref' has none"):
        cmp.aligned_runs([rows[0], ("copy", [*rows[1][1], extra])], "ref")


def test_comparison_sheet_has_a_row_per_set_and_a_column_per_perplexity():
    fig = cmp.plot_compare_sheet(sheet_rows(), "ref", panel_in=2.0, note="a subsample note")
    axes = np.array(fig.axes).reshape(3, 2)
    assert [ax.get_title() for ax in axes[0]] == ["perplexity 5", "perplexity 30"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["ref\n(reference)", "copy", "noise\nRANDOM WEIGHTS"]
    assert to_rgb(axes[2, 0].yaxis.label.get_color()) == to_rgb(NOTE_COLOUR)
    # The drawn points are the aligned ones: the copy's first panel (perplexity 5) sits on the reference's.
    ref_points = np.concatenate([c.get_offsets() for c in axes[0, 0].collections])
    copy_points = np.concatenate([c.get_offsets() for c in axes[1, 0].collections])
    assert np.allclose(np.sort(copy_points, axis=0), np.sort(ref_points, axis=0), atol=1e-9)
    assert all(ax.get_aspect() == 1.0 and not ax.get_xticks().size for ax in axes.ravel())
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == CLASSES
    # Only the noise row is random: the note names it, not the whole sheet.
    note = "RANDOM WEIGHTS: the features of noise come from an untrained network"
    # Wrapped to the figure's width (between words), the subsample note on a line of its own.
    assert legend.get_title().get_text().replace("\n", " ") == f"{note} a subsample note"
    assert legend.get_title().get_text().endswith("\na subsample note")
    title = " ".join(fig.get_suptitle().split())  # wrapped to the figure's width
    assert "rows = feature sets, columns = perplexity, seed 0" in title
    assert "aligned to ref by orthogonal Procrustes (rotation, reflection, uniform scale)" in title


def test_comparison_sheet_shows_one_seed_and_one_run_per_cell_and_leaks_no_figure():
    open_figures = plt.get_fignums()
    rows = sheet_rows()
    rows[1][1][0].meta["seed"] = 1
    with pytest.raises(AtlasError, match=r"one seed, got seeds \[0, 1\]"):
        cmp.plot_compare_sheet(rows, "ref", panel_in=2.0)
    rows = sheet_rows()
    twice = ("copy", [*rows[1][1], rows[1][1][0]])
    with pytest.raises(AtlasError, match=r"'copy' has two t-SNE perplexity 30 maps on one sheet"):
        cmp.plot_compare_sheet([rows[0], twice], "ref", panel_in=2.0)
    assert plt.get_fignums() == open_figures


def _inside_and_apart(fig, texts) -> None:
    """Each text lies within the figure, and no two overlap (drawn extents in pixels)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    boxes = [t.get_window_extent(renderer) for t in texts]
    for text, box in zip(texts, boxes):
        assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1, (text.get_text(), box, page)
        assert page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1, (text.get_text(), box, page)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)


LONG_IDS = [f"efficientnet-lite0{kind}.{node}" for kind in ("", "-random") for node in ("blocks.0", "penultimate")]


def test_long_layer_ids_and_a_note_naming_many_random_sets_stay_on_the_sheet_and_apart():
    """Eight or ten sets named <network>.<node> (the compare-layers preset): each row label breaks before
    its node when longer than a panel is high, and the note naming the random sets wraps to the figure."""
    base = dict(sheet_rows())
    rows = []
    for k, set_id in enumerate(LONG_IDS):
        runs = base["noise" if "random" in set_id else "ref"]
        rows.append(
            (set_id, [run_record(set_id, r.meta["perplexity"], r.paths, r.labels, r.coords, k > 1) for r in runs])
        )
    fig = cmp.plot_compare_sheet(rows, LONG_IDS[1], panel_in=2.4)
    axes = np.array(fig.axes).reshape(4, 2)
    labels = [ax.yaxis.label for ax in axes[:, 0]]
    assert [label.get_text() for label in labels] == [
        "efficientnet-lite0\n.blocks.0",
        "efficientnet-lite0\n.penultimate\n(reference)",
        "efficientnet-lite0-random\n.blocks.0\nRANDOM WEIGHTS",
        "efficientnet-lite0-random\n.penultimate\nRANDOM WEIGHTS",
    ]
    note = fig.legends[0].get_title()
    assert note.get_text().count("\n") >= 1 and "efficientnet-lite0-random.penultimate" in note.get_text()
    _inside_and_apart(fig, [*labels, note])
    plt.close(fig)
    assert cmp.row_label("resnet18.layer2", 2.4) == "resnet18.layer2"  # short ids stay whole
    rows = [
        {**row, "features": LONG_IDS[i], "weights_random": i > 1}
        for i, set_id in enumerate(["layer2", "penultimate", "random"])
        for row in metric_rows()
        if row["features"] == set_id
    ]
    note = "RANDOM WEIGHTS: the features of " + ", ".join(LONG_IDS[2:3] * 4) + " come from an untrained network"
    fig = cmp.plot_compare_metrics(rows, LONG_IDS[:3], note)
    title = fig.legends[0].get_title()
    assert title.get_text().count("\n") >= 1
    _inside_and_apart(fig, [title])
    assert "(4 runs per set: perplexities x seeds)" in fig.get_suptitle()
    plt.close(fig)
    fig = cmp.plot_compare_metrics(
        [row for row in rows if row["perplexity"] == 30.0 and row["seed"] == 0], LONG_IDS[:3]
    )
    assert "(1 run per set: perplexities x seeds)" in fig.get_suptitle()
    plt.close(fig)


def test_a_one_column_sheet_of_ten_classes_keeps_its_legend_on_the_figure():
    """One perplexity (the compare-layers preset): the sheet is one panel wide, its class legend must fit it."""
    animals = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
    rng = np.random.default_rng(3)
    paths = [f"{animals[i % 10]}/{i}.png" for i in range(60)]
    labels = [animals[i % 10] for i in range(60)]
    rows = [
        (set_id, [run_record(set_id, 30.0, paths, labels, rng.normal(size=(60, 2)), weights_random="random" in set_id)])
        for set_id in LONG_IDS
    ]
    fig = cmp.plot_compare_sheet(rows, LONG_IDS[1], panel_in=2.4)
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == animals
    _inside_and_apart(fig, legend.get_texts())
    plt.close(fig)


def test_comparison_sheet_keeps_an_empty_labelled_panel_where_a_set_lacks_a_perplexity():
    rows = sheet_rows()
    fig = cmp.plot_compare_sheet([rows[0], ("copy", rows[1][1][:1])], "ref", panel_in=2.0)  # copy: perplexity 30 only
    axes = np.array(fig.axes).reshape(2, 2)
    assert [t.get_text() for t in axes[1, 0].texts] == ["no run"] and not axes[1, 0].collections
    assert axes[1, 0].get_ylabel() == "copy" and axes[1, 1].collections


def write_sheet_runs(tmp_path, rows) -> tuple[list[str], list[str]]:
    """The runs as the workflow writes them: every run of one sample (the first run's images, in its order)."""
    paths, labels = rows[0][1][0].paths, rows[0][1][0].labels
    embeddings, metas = [], []
    for set_id, runs in rows:
        for run in runs:
            run = RunRecord(paths, labels, run.coords, run.meta)
            stem = tmp_path / f"{set_id}-{run.meta['perplexity']:g}"
            write_embedding(f"{stem}.tsv", f"{stem}.json", run.paths, run.labels, run.coords, run.meta)
            embeddings.append(f"{stem}.tsv")
            metas.append(f"{stem}.json")
    return embeddings, metas


def pdf_row_labels(pdf) -> list[str]:
    """The sheet's row labels as the PDF draws them, top row first: each rotated (quarter-turn) text
    of the page's content streams, by its y position on the page. A line of a multi-line label is a
    text of its own."""
    placed = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf.read_bytes(), re.S):
        try:
            content = zlib.decompress(stream)
        except zlib.error:
            continue  # a font program or image, not page content
        for x, y, body in re.findall(rb"0 1 -1 0 ([-\d.]+) ([-\d.]+) cm\s*BT(.*?)ET", content, re.S):
            glyphs = re.findall(rb"\(((?:\\.|[^\\)])*)\)", body)
            text = b"".join(re.sub(rb"\\(.)", rb"\1", glyph) for glyph in glyphs).decode("latin-1")
            placed.append((-float(y), float(x), text))
    return [text for _, _, text in sorted(placed)]


def test_compare_sheet_stage_writes_png_and_pdf_with_rows_in_the_given_order(tmp_path):
    embeddings, metas = write_sheet_runs(tmp_path, sheet_rows())
    png, pdf = tmp_path / "out" / "sheet.png", tmp_path / "out" / "sheet.pdf"
    order = ["noise", "ref", "copy"]
    cmp.compare_sheet(
        embeddings[::-1],
        metas[::-1],
        str(tmp_path / "manifest.csv"),
        order,
        "ref",
        str(png),
        str(pdf),
        panel_in=2.0,
        dpi=50,
    )
    with Image.open(png) as image:
        # 2 columns and 3 rows of 2-inch panels at 50 dpi, plus margins and the legend.
        assert image.size[0] >= 2 * 2.0 * 50 and image.size[1] >= 3 * 2.0 * 50
    assert pdf.read_bytes().startswith(b"%PDF")
    # Rows top to bottom in the given order (not the embeddings' order, not sorted), each with its note.
    assert pdf_row_labels(pdf) == ["noise", "RANDOM WEIGHTS", "ref", "(reference)", "copy"]
    assert sorted(p.name for p in png.parent.iterdir()) == ["sheet.pdf", "sheet.png"]  # no temporary left


def test_compare_sheet_stage_refuses_runs_of_sets_not_compared_and_sets_without_runs(tmp_path):
    embeddings, metas = write_sheet_runs(tmp_path, sheet_rows())
    args = (str(tmp_path / "s.png"), str(tmp_path / "s.pdf"), 2.0, 50)
    with pytest.raises(AtlasError, match=r"feature set 'noise' is not one of the compared sets \['ref', 'copy'\]"):
        cmp.compare_sheet(embeddings, metas, str(tmp_path / "manifest.csv"), ["ref", "copy"], "ref", *args)
    with pytest.raises(AtlasError, match=r"no runs of feature set\(s\) \['extra'\]"):
        cmp.compare_sheet(
            embeddings, metas, str(tmp_path / "manifest.csv"), ["ref", "copy", "noise", "extra"], "ref", *args
        )
    assert not (tmp_path / "s.png").exists()


# --- metrics per feature set ---


def metric_rows() -> list[dict]:
    rows = []
    for set_index, set_id in enumerate(["layer2", "penultimate", "random"]):
        for perplexity in (30.0, 5.0):
            for seed in (1, 0):
                rows.append(
                    {
                        "features": set_id,
                        "method": "tsne",
                        "perplexity": perplexity,
                        "seed": seed,
                        "trustworthiness": 0.5 + 0.1 * set_index + perplexity / 1000 + seed / 100,
                        "knn_accuracy_2d": 0.3 * set_index + seed / 10,
                        "knn_accuracy_features": 0.25 * set_index + 0.1,
                        "cluster_ari": 0.2 * set_index + 0.05,
                        "kl_divergence": 1.0,
                        "n_images": 50,
                        "n_metric_images": 50,
                        "runtime_s": 0.5,
                        "weights_random": set_id == "random",
                    }
                )
    return rows


def test_metrics_plot_shows_each_sets_mean_and_range_in_the_given_order():
    order = ["random", "layer2", "penultimate"]
    fig = cmp.plot_compare_metrics(metric_rows(), order)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [title for _, title in cmp.METRIC_PANELS]
    assert [t.get_text() for t in axes[-1].get_xticklabels()] == order
    assert to_rgb(axes[-1].get_xticklabels()[0].get_color()) == to_rgb(NOTE_COLOUR)  # random weights
    assert all(ax.get_ylim() == (0.0, 1.0) for ax in axes)
    means = axes[1].containers[0].lines[0].get_ydata()  # the error bar markers: k-NN accuracy in 2-D
    np.testing.assert_allclose(means, [0.6 + 0.05, 0.0 + 0.05, 0.3 + 0.05])
    assert "separability, neighbourhood preservation and clusters" in fig.get_suptitle()


def test_metrics_plot_refuses_sets_missing_from_the_order_and_orders_without_rows():
    with pytest.raises(AtlasError, match=r"metrics of feature set\(s\) \['random'\], which are not among"):
        cmp.plot_compare_metrics(metric_rows(), ["layer2", "penultimate"])
    with pytest.raises(AtlasError, match=r"no metrics of feature set\(s\) \['layer4'\]"):
        cmp.plot_compare_metrics(metric_rows(), ["layer2", "layer4", "penultimate", "random"])


def test_compare_metrics_stage_writes_the_table_by_set_order_perplexity_and_seed(tmp_path):
    files = []
    for i, row in enumerate(metric_rows()):
        files.append(str(tmp_path / f"m{i}.json"))
        write_run_metrics(files[-1], row)
    order = ["penultimate", "random", "layer2"]
    table, png, svg = tmp_path / "t.csv", tmp_path / "m.png", tmp_path / "m.svg"
    summaries = [
        write_clusters(tmp_path / set_id, ["a.png", "b.png"], ["x", "y"], set_id, ari=0.1 * i)[1]
        for i, set_id in enumerate(order)
    ]
    cmp.compare_metrics(files, summaries, order, str(table), str(png), str(svg), dpi=150)
    with open(table, newline="") as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == ["features", *(f for f in SWEEP_FIELDS if f != "features")]
    keys = [(r["features"], float(r["perplexity"]), int(r["seed"])) for r in read]
    assert keys == [(s, p, seed) for s in order for p in (5.0, 30.0) for seed in (0, 1)]
    assert float(read[0]["trustworthiness"]) == pytest.approx(0.6 + 5 / 1000)
    # Each row carries its set's clusters (summary.json), not the run's: the same in every row of a set.
    assert [float(r["cluster_ari"]) for r in read] == [0.1 * order.index(r["features"]) for r in read]
    assert {r["n_clusters"] for r in read} == {"2"}
    with Image.open(png) as image:
        assert image.size[0] >= 6.5 * 150 - 1
    assert b"<svg" in svg.read_bytes()[:500]


# --- CKA table and heatmap ---


def test_cka_heatmap_labels_every_cell_readably_on_a_fixed_scale():
    ids = ["resnet18.layer2", "resnet18.penultimate", "resnet18-random"]
    matrix = np.array([[1.0, 0.83, 0.12], [0.83, 1.0, 0.2], [0.12, 0.2, 1.0]])
    fig = cmp.plot_cka(ids, matrix, shared_images=480)
    ax = fig.axes[0]
    values = {t.get_text(): to_rgb(t.get_color()) for t in ax.texts}
    assert sorted(values) == sorted(["1.00", "0.83", "0.12", "0.20"])
    assert len(ax.texts) == 9
    assert values["1.00"] == (0, 0, 0) and values["0.12"] == (1, 1, 1)  # dark text on yellow, light on purple
    assert [t.get_text() for t in ax.get_xticklabels()] == ids == [t.get_text() for t in ax.get_yticklabels()]
    assert ax.images[0].get_clim() == (0.0, 1.0) and ax.images[0].get_cmap().name == "viridis"
    assert len(fig.axes) == 2  # the colour bar
    assert fig.get_suptitle() == f"{cmp.CKA_TITLE}\non 480 images all sets share"


def test_cka_table_matches_images_subsamples_and_writes_an_exact_csv(tmp_path):
    rng = np.random.default_rng(8)
    n = 40
    paths = [f"img/{i:03d}.png" for i in range(n)]
    base = rng.normal(size=(n, 6))
    shuffled = rng.permutation(n)
    features = [base, (base @ rng.normal(size=(6, 4)))[shuffled], rng.normal(size=(n, 5))]
    path_lists = [paths, [paths[i] for i in shuffled], paths]
    ids = ["a", "b.layer3", "c-random"]
    table, png = tmp_path / "cka.csv", tmp_path / "cka.png"
    matrix = cmp.cka_table(ids, features, path_lists, max_images=25, table=str(table), png=str(png), dpi=150)
    keep = fixed_subsample(n, 25)
    unshuffled = features[1][np.argsort(shuffled)]
    expected = cmp.cka_matrix([base[keep], unshuffled[keep], features[2][keep]])
    np.testing.assert_allclose(matrix, expected, rtol=1e-12)
    assert matrix[0, 1] > 0.5 > matrix[0, 2]  # matched by path: the linear map of a is close to a
    with open(table, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["features", *ids]
    assert [r[0] for r in rows[1:]] == ids
    np.testing.assert_array_equal(np.array([[float(v) for v in r[1:]] for r in rows[1:]]), matrix)
    with Image.open(png) as image:
        assert image.size[0] > 450


# --- edge cases the mutation run (docs/development.md, "Mutation testing") found untested ---


def test_procrustes_puts_coincident_points_on_the_reference_centroid():
    """Coords with no spread have no frame: scale 0 maps every point onto the reference's centroid (no NaN)."""
    reference = np.random.default_rng(10).normal(size=(6, 2)) + 3.0
    aligned = cmp.procrustes_align(reference, np.full((6, 2), 2.5))
    np.testing.assert_allclose(aligned, np.tile(reference.mean(axis=0), (6, 1)), atol=1e-12)


def test_cka_refuses_row_counts_that_differ_and_features_that_are_not_a_matrix():
    rng = np.random.default_rng(11)
    with pytest.raises(ValueError, match=r"^CKA needs the same images in both: 10 rows against 9$"):
        cmp.linear_cka(rng.normal(size=(10, 3)), rng.normal(size=(9, 3)))
    with pytest.raises(ValueError, match=r"^CKA needs the same images in every set, got row counts \[10, 10, 9\]$"):
        cmp.cka_matrix([rng.normal(size=(10, 3)), rng.normal(size=(10, 2)), rng.normal(size=(9, 3))])
    with pytest.raises(ValueError, match=r"^CKA needs N x D features, got shape \(10,\)$"):
        cmp.linear_cka(rng.normal(size=10), rng.normal(size=(10, 3)))


def test_cka_matrix_without_ids_names_the_constant_set_by_its_position():
    rng = np.random.default_rng(12)
    with pytest.raises(AtlasError, match=r"^feature set 2 of 3 is the same for every compared image"):
        cmp.cka_matrix([rng.normal(size=(10, 3)), np.ones((10, 3)), rng.normal(size=(10, 3))])


def test_cka_of_a_constant_representation_says_which_of_the_two():
    rng = np.random.default_rng(15)
    varied, flat = rng.normal(size=(10, 3)), np.zeros((10, 3))
    for x, y, which in ((flat, varied, "first"), (varied, flat, "second")):
        with pytest.raises(AtlasError) as err:
            cmp.linear_cka(x, y)
        assert str(err.value) == (
            f"the {which} representation is the same for every compared image: its CKA with anything is undefined"
        )


def test_cka_of_float32_features_is_computed_in_float64():
    """Features files hold float32: CKA is the float64 value of those numbers, not a float32 computation."""
    rng = np.random.default_rng(16)
    x = rng.normal(size=(200, 64)).astype(np.float32)
    y = (x @ rng.normal(size=(64, 48)).astype(np.float32)) + rng.normal(size=(200, 48)).astype(np.float32)
    assert cmp.linear_cka(x, y) == cmp.linear_cka(x.astype(np.float64), y.astype(np.float64))


def test_procrustes_scales_a_copy_with_little_spread_and_matched_rows_accept_three_images():
    reference = np.random.default_rng(17).normal(size=(5, 2))
    tiny = 0.01 * reference @ rotation(0.4) + 1.0  # sum of squares about 0.001, well under 1
    np.testing.assert_allclose(cmp.procrustes_align(reference, tiny), reference, atol=1e-9)
    assert [r.tolist() for r in cmp.matched_rows([["a", "b", "c"], ["c", "b", "a"]])] == [[0, 1, 2], [2, 1, 0]]
    with pytest.raises(AtlasError) as err:
        cmp.matched_rows([["a", "b"], ["b", "a"]])
    assert str(err.value) == (
        "the 2 feature sets share 2 image(s), at least 3 are needed to compare them; do they come from the "
        "same sample of the same dataset?"
    )


def test_aligned_runs_refuse_a_reference_with_two_maps_of_one_setting():
    rows = sheet_rows()
    twice = [*rows[0][1], rows[0][1][0]]
    with pytest.raises(AtlasError, match=r"^feature set 'ref' has two t-SNE perplexity 30 maps on one sheet$"):
        cmp.aligned_runs([("ref", twice), rows[1]], "ref")


def test_comparison_table_columns_order_and_n_a_cells_exactly(tmp_path):
    """write_compare_table and compare_columns (files/compare.py): the feature set once and first, rows by
    the given set order, then method (t-SNE before PCA), settings and seed; None and missing cells n/a."""
    from tsne_atlas.files.compare import write_compare_table

    rows = [
        {"features": "a", "method": "pca", "components": 2, "knn_accuracy_2d": None},
        {"features": "b", "method": "tsne", "perplexity": 5, "seed": 0},
        {"features": "a", "method": "tsne", "perplexity": 30, "seed": 1},
        {"features": "a", "method": "tsne", "perplexity": 30, "seed": 0},
    ]
    write_compare_table(rows, ["b", "a"], tmp_path / "metrics.csv")
    with open(tmp_path / "metrics.csv", newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    assert table[0] == list(SWEEP_FIELDS) and table[0].count("features") == 1
    written = [dict(zip(table[0], row)) for row in table[1:]]
    assert [(r["features"], r["method"], r["seed"]) for r in written] == [
        ("b", "tsne", "0"),
        ("a", "tsne", "0"),
        ("a", "tsne", "1"),
        ("a", "pca", "n/a"),
    ]
    assert written[3]["knn_accuracy_2d"] == "n/a"
