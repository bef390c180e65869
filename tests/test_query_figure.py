"""The figures of a query set placed on a run's map (issue 28): the map with the query on top and its mosaic.

Real files throughout: the run, its placement and both manifests written by the workflow's own writers,
real PNG thumbnails in two folders (the reference's and the query's)."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tsne_atlas import canvas
from tsne_atlas import mosaic as rm
from tsne_atlas import query_figure as qf
from tsne_atlas.figure_style import MARKERS, class_colours, colour_bgr255, plt
from tsne_atlas.files.manifest import UNLABELLED, read_manifest, write_manifest
from tsne_atlas.files.placement import PLACEMENT_FIELDS, write_placement
from tsne_atlas.files.runs import read_embedding, read_run, write_run
from tsne_atlas.jobs import AtlasError
from tsne_atlas.subsample import fixed_subsample

SIZE = {"point_size": 12.0, "width_in": 4.0, "dpi": 50}
MOSAIC = {"canvas_size": 300, "thumb_size": 16, "border": 2, "background": "white"}
TILE = 16 + 2 * 2
META = {
    "features": "resnet18",
    "method": "tsne",
    "perplexity": 5.0,
    "seed": 0,
    "n_images": 24,
    "kl_divergence": 0.5,
    "model": "resnet18",
    "weights_random": False,
}
# Query images: two ants, a bee, three wasps (no class of the reference), one far out of the map (their
# tiles apart on the mosaic, so none hides another), and last a copy of the reference's last image (cat_007) placed exactly where it is on the map.
QUERY = [
    ("q/ant_a.png", "ant", (0.5, 1.0)),
    ("q/ant_b.png", "ant", (5.0, 4.0)),
    ("q/bee_a.png", "bee", (18.0, 3.0)),
    ("q/wasp_a.png", "wasp", (5.0, 11.0)),
    ("q/wasp_b.png", "wasp", (15.0, 9.0)),
    ("q/wasp_far.png", "wasp", (60.0, -30.0)),
]


def square(path, colour):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), colour).save(path)


@pytest.fixture
def placed(tmp_path):
    """A run of 24 images in three classes (ant, bee, cat: a cluster each), its manifest, and a query set
    placed on it (QUERY and the cat copy), each image a 16-px square of its own colour."""
    reference_root, query_root = tmp_path / "data", tmp_path / "query"
    rng = np.random.default_rng(0)
    centres = {"ant": (0.0, 0.0), "bee": (20.0, 0.0), "cat": (10.0, 15.0)}
    paths = [f"{c}/{c}_{i:03d}.png" for c in centres for i in range(8)]
    labels = [p.split("/")[0] for p in paths]
    coords = np.array([centres[label] for label in labels]) + rng.normal(scale=2.0, size=(24, 2))
    for i, path in enumerate(paths):
        square(reference_root / path, (10 * i, 200 - 5 * i, 90))
    write_run(tmp_path / "run.tsv", tmp_path / "run.json", paths, coords, META)
    write_manifest(tmp_path / "manifest.csv", paths, labels)
    for i, (path, _, _) in enumerate(QUERY):
        square(query_root / path, (250 - 20 * i, 30, 20 * i))
    (query_root / "q").mkdir(exist_ok=True)
    shutil.copyfile(reference_root / paths[-1], query_root / "q/cat_copy.png")
    q_paths = [path for path, _, _ in QUERY] + ["q/cat_copy.png"]
    q_labels = [label for _, label, _ in QUERY] + ["cat"]
    q_coords = np.array([xy for _, _, xy in QUERY] + [coords[-1]])
    placement = META | {"n_images": len(q_paths), "placement": "transform"}
    write_run(tmp_path / "placed.tsv", tmp_path / "placed.json", q_paths, q_coords, placement)
    write_manifest(tmp_path / "query_manifest.csv", q_paths, q_labels)
    # placement.csv: the far wasp far out of distribution too, the others in it.
    rows = [
        {field: None for field in PLACEMENT_FIELDS}
        | {
            "path": path,
            "label": label,
            "ood_score": 9.0 if "far" in path else 1.0,
            "neighbours": [],
            "neighbour_labels": [],
        }
        for path, label in sorted(zip(q_paths, q_labels))
    ]
    write_placement(tmp_path / "placement.csv", rows)
    return {
        "embedding": str(tmp_path / "run.tsv"),
        "meta": str(tmp_path / "run.json"),
        "manifest": str(tmp_path / "manifest.csv"),
        "placed": str(tmp_path / "placed.tsv"),
        "placed_meta": str(tmp_path / "placed.json"),
        "query_manifest": str(tmp_path / "query_manifest.csv"),
        "query_root": str(query_root),
        "placement": str(tmp_path / "placement.csv"),
        "ood_threshold": 3.0,
        "reference_root": str(reference_root),
    }


def draw(placed, out, max_images=10_000, **changed) -> tuple[str, str]:
    """Rule query_figures' function on ``placed``; returns (png, mosaic_png) in folder ``out``."""
    Path(out).mkdir(exist_ok=True)
    png, mosaic_png = f"{out}/query.png", f"{out}/query_mosaic.png"
    inputs = {key: value for key, value in placed.items() if key != "reference_root"} | changed
    qf.query_figures(**inputs, **SIZE, **MOSAIC, max_images=max_images, png=png, mosaic_png=mosaic_png)
    return png, mosaic_png


def records(placed):
    reference = read_run(placed["embedding"], placed["meta"], placed["manifest"])
    return reference, qf.read_query(
        placed["placed"], placed["placed_meta"], placed["query_manifest"], placed["meta"], reference.meta
    )


def test_query_classes_take_the_reference_colour_or_a_neutral_one_and_a_marker_each():
    reference = ["ant", "bee", "cat"]
    groups = qf.query_classes(["wasp", UNLABELLED, "cat", "ant", "wasp", "fly", "ant"], reference)
    # The reference's classes in its order, then those it lacks by name, unlabelled last.
    assert [(g.name, g.count) for g in groups] == [("ant", 2), ("cat", 1), ("fly", 1), ("wasp", 2), (UNLABELLED, 1)]
    colours = class_colours(3)
    assert [g.colour for g in groups] == [colours[0], colours[2], qf.NEUTRAL, qf.NEUTRAL, qf.NEUTRAL]
    assert [g.marker for g in groups] == MARKERS[:5]
    assert [g.unknown for g in groups] == [False, False, True, True, False]  # unlabelled is no class
    assert [g.legend_name() for g in groups] == [
        "ant",
        "cat",
        "fly (not in reference)",
        "wasp (not in reference)",
        UNLABELLED,
    ]
    # More query classes than shapes: the shapes come round again.
    many = qf.query_classes([f"c{i:02d}" for i in range(10)], [])
    assert [g.marker for g in many] == MARKERS + MARKERS[:2]
    # An unlabelled query set is one group, one marker.
    assert [(g.name, g.marker, g.unknown) for g in qf.query_classes([UNLABELLED] * 4, reference)] == [
        (UNLABELLED, "o", False)
    ]


def test_query_images_far_out_of_distribution_are_ringed_in_red(placed, tmp_path):
    reference, query = records(placed)
    far = qf.far_images(placed["placement"], query.paths, 3.0)
    assert [path for path, is_far in zip(query.paths, far) if is_far] == ["q/wasp_far.png"]
    assert not qf.far_images(placed["placement"], query.paths, 10.0).any()
    fig = qf.plot_query_map(reference, query, "t", None, 12.0, 4.0, far, 3.0)
    ring = {c.get_gid(): c for c in fig.axes[0].collections}["query:far"]
    assert ring.get_offsets().tolist() == [[60.0, -30.0]] and tuple(ring.get_edgecolors()[0][:3]) == qf.FAR_COLOUR
    assert "far from every reference image (1; OOD score ≥ 3)" in [
        t.get_text() for t in fig.axes[0].get_legend().get_texts()
    ]
    plt.close(fig)
    # A table of other images is refused in one line.
    write_placement(tmp_path / "other.csv", [])
    with pytest.raises(AtlasError, match=r"other.csv lists other images than the query's placement; delete it"):
        qf.far_images(str(tmp_path / "other.csv"), query.paths, 3.0)


def test_the_map_draws_the_reference_light_and_each_query_class_on_top_with_its_marker(placed):
    reference, query = records(placed)
    fig = qf.plot_query_map(reference, query, "t", None, 12.0, 4.0, np.zeros(len(query.paths), bool), 3.0)
    ax = fig.axes[0]
    by_gid = {c.get_gid(): c for c in ax.collections}
    assert set(by_gid) == {f"reference:{c}" for c in ("ant", "bee", "cat")} | {
        f"query:{c}" for c in ("ant", "bee", "cat", "wasp")
    }
    colours = class_colours(3)
    labels = np.array(query.labels)
    shapes = set()
    for name, colour in (("ant", colours[0]), ("bee", colours[1]), ("cat", colours[2]), ("wasp", qf.NEUTRAL)):
        drawn = by_gid[f"query:{name}"]
        assert np.array_equal(drawn.get_offsets(), query.coords[labels == name])
        assert tuple(drawn.get_facecolor()[0][:3]) == pytest.approx(colour)
        assert tuple(drawn.get_edgecolor()[0][:3]) == pytest.approx(qf.EDGE) and drawn.get_linewidths()[0] > 0
        shapes.add(drawn.get_paths()[0].vertices.round(6).tobytes())
        assert drawn.get_sizes()[0] > by_gid["reference:ant"].get_sizes()[0]
        assert drawn.get_zorder() > max(by_gid[f"reference:{c}"].get_zorder() for c in ("ant", "bee", "cat"))
    assert len(shapes) == 4  # a marker shape per query class
    for index, name in enumerate(("ant", "bee", "cat")):
        drawn = by_gid[f"reference:{name}"]
        assert np.array_equal(drawn.get_offsets(), reference.coords[np.array(reference.labels) == name])
        light = drawn.get_facecolor()[0][:3]
        # The class's own colour, lighter: every channel between it and white.
        assert all(c <= f <= 1 for c, f in zip(colours[index], light)) and sum(light) > sum(colours[index]) + 0.3
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == [
        "reference map (24)",
        "ant (8)",
        "bee (8)",
        "cat (8)",
        "query, placed (7)",
        "ant (2)",
        "bee (1)",
        "cat (1)",
        "wasp (3, not in reference)",
    ]
    fig.canvas.draw()
    # The axes cover both sets: the wasp placed far out of the reference is in view.
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 <= query.coords[:, 0].min() and query.coords[:, 0].max() <= x1
    assert y0 <= query.coords[:, 1].min() and query.coords[:, 1].max() <= y1
    plt.close(fig)


def test_the_title_says_how_many_were_placed_and_a_long_one_wraps_inside_the_figure(placed):
    assert (
        qf.query_title("PCA of a features (N=24)", 7, 8.0)
        == "PCA of a features (N=24) — 7 query images placed (map unchanged)"
    )
    assert qf.query_title("PCA of a (N=2)", 1, 8.0).endswith("— 1 query image placed (map unchanged)")
    run_title = "t-SNE of efficientnet-lite0 (tf_efficientnet_lite0) features, perplexity 30, seed 0 (N=500, KL 0.584)"
    title = qf.query_title(run_title, 1234, 8.0)
    assert title == f"{run_title} —\n1,234 query images placed (map unchanged)"
    reference, query = records(placed)
    fig = qf.plot_query_map(reference, query, title, None, 12.0, 8.0, np.zeros(len(query.paths), bool), 3.0)
    fig.canvas.draw()
    (shown,) = [t for t in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_text() == title)]
    box = shown.get_window_extent(fig.canvas.get_renderer())
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1
    plt.close(fig)


def test_query_figures_write_valid_pngs_that_rerender_byte_identical(placed, tmp_path):
    png, mosaic_png = draw(placed, tmp_path / "a")
    again = draw(placed, tmp_path / "b")
    assert Path(png).read_bytes() == Path(again[0]).read_bytes()
    assert Path(mosaic_png).read_bytes() == Path(again[1]).read_bytes()
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (200, 160)  # 4 x 3.2 inches at 50 dpi
        assert image.info["Software"] == "tsne-atlas"
    picture = cv2.imread(mosaic_png)
    assert picture is not None and picture.shape[1] == 300


def test_the_mosaic_uses_the_run_mosaic_frame_and_frames_each_query_image_in_its_class_colour(
    placed, tmp_path, monkeypatch
):
    reference, query = records(placed)
    legends = []
    legend = canvas.with_legend
    monkeypatch.setattr(qf, "with_legend", lambda *args: (legends.append(args), legend(*args))[1])
    image, outside = qf.render_query_mosaic(
        reference, np.arange(24), query, np.arange(7), placed["query_root"], **MOSAIC, notes=["a note"]
    )
    # The legend: the reference's classes in their colours, then the class it lacks, in grey and said.
    ((_, names, colours, _, note),) = legends
    assert names == ["ant", "bee", "cat", "wasp (not in reference)"]
    assert colours == [colour_bgr255(c) for c in [*class_colours(3), qf.NEUTRAL]]
    assert note.splitlines() == [
        "dots: the 24 reference images; framed thumbnails: 7 query images placed on the map (map unchanged)",
        "a note",
        "1 query image placed outside the reference's frame is drawn at its edge",
    ]
    run_png = tmp_path / "run_mosaic.png"
    rm.mosaic(
        placed["embedding"],
        placed["meta"],
        placed["manifest"],
        placed["reference_root"],
        **MOSAIC,
        max_images=10_000,
        png=str(run_png),
    )
    run_image = cv2.imread(str(run_png))
    width, height = rm.canvas_shape(reference.coords, 300, TILE)
    assert image.shape[1] == run_image.shape[1] == width
    # The copy of the run's last image placed at its coordinates: the very tile of the run's mosaic.
    x, y = rm.layout_positions(reference.coords, 300, TILE)[-1]
    assert np.array_equal(image[y : y + TILE, x : x + TILE], run_image[y : y + TILE, x : x + TILE])
    # Every query image is framed in its class colour (the wasps, unknown to the reference, in grey).
    positions, away = canvas.map_frame(reference.coords, 300, TILE).positions(query.coords)
    # The premise of the pixel checks below: no query tile hides another.
    assert all(
        abs(int(a[0]) - int(b[0])) >= TILE or abs(int(a[1]) - int(b[1])) >= TILE
        for i, a in enumerate(positions)
        for b in positions[i + 1 :]
    )
    assert away.tolist() == [False, False, False, False, False, True, False] and outside == 1
    colours = {name: colour_bgr255(c) for name, c in zip(("ant", "bee", "cat"), class_colours(3))}
    colours["wasp"] = colour_bgr255(qf.NEUTRAL)
    for (x, y), label in zip(positions, query.labels):
        assert tuple(image[y, x + TILE // 2]) == colours[label]  # the frame's top edge
        assert tuple(image[y + TILE // 2, x + TILE // 2]) != (255, 255, 255)  # the thumbnail, not background
    # The far wasp is drawn at the frame's edge: its tile touches the canvas' right or bottom border.
    x, y = positions[5]
    assert x + TILE == width or y + TILE == height
    # The reference's dots: a light shade of the class colour at a reference point no query image covers.
    dots = [
        (px, py, label)
        for (px, py), label in zip(rm.layout_positions(reference.coords, 300, TILE), reference.label_indices())
        if all(abs(px - qx) >= TILE or abs(py - qy) >= TILE for qx, qy in positions)
    ]
    assert dots
    for px, py, label in dots:
        dot = image[py + TILE // 2, px + TILE // 2].astype(int)
        colour = np.array(colour_bgr255(class_colours(3)[label]))
        assert (dot >= colour - 1).all() and colour.sum() + 100 < dot.sum() < 3 * 255 - 30  # lighter, same hue
        assert tuple(dot) == colour_bgr255(qf.blend(class_colours(3)[label], (1.0, 1.0, 1.0), qf.FADE))


def test_the_mosaic_caps_query_thumbnails_at_max_images_with_the_run_mosaics_subsample(placed, tmp_path, monkeypatch):
    drawn = []
    paste = canvas.paste_framed
    monkeypatch.setattr(
        qf, "paste_framed", lambda canvas_, path, *rest: (drawn.append(path), paste(canvas_, path, *rest))
    )
    draw(placed, tmp_path / "capped", max_images=3)
    paths = read_embedding(placed["placed"])[0]
    assert [Path(p).relative_to(placed["query_root"]).as_posix() for p in drawn] == [
        paths[i] for i in fixed_subsample(len(paths), 3)
    ]
    assert len(drawn) == 3


@pytest.mark.parametrize(
    "change", [{"perplexity": 30.0}, {"seed": 1}, {"features": "resnet50"}, {"method": "pca", "components": 2}]
)
def test_a_placement_on_another_run_is_one_line_naming_both_files(placed, tmp_path, change):
    paths, coords = read_embedding(placed["placed"])
    other = tmp_path / "other.json"
    write_run(tmp_path / "other.tsv", other, paths, coords, META | change)
    with pytest.raises(AtlasError) as error:
        draw(placed, tmp_path / "out", placed_meta=str(other))
    message = str(error.value)
    assert "\n" not in message and str(other) in message and placed["meta"] in message and "rerun" in message
    assert not (tmp_path / "out" / "query.png").exists()


def test_a_query_manifest_of_other_images_is_one_line_naming_both_files(placed, tmp_path):
    labels = read_manifest(placed["query_manifest"])
    other = tmp_path / "other_manifest.csv"
    write_manifest(other, labels.paths[:-1], labels.labels[:-1])
    with pytest.raises(AtlasError) as error:
        draw(placed, tmp_path / "out", query_manifest=str(other))
    message = str(error.value)
    assert "\n" not in message and str(other) in message and placed["placed"] in message and "rerun" in message


def test_a_map_frame_holds_its_own_points_and_clips_others_to_its_edge():
    """The reference's own points are never outside their frame (whatever the rounding of the canvas' short
    side), land where the run's mosaic puts them, and a point beyond the map is clipped and said to be outside."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        coords = rng.normal(size=(int(rng.integers(2, 40)), 2)) * rng.uniform(0.01, 50, size=2)
        canvas_size, tile = int(rng.integers(60, 2000)), int(rng.integers(5, 60))
        frame = canvas.map_frame(coords, canvas_size, tile)
        positions, outside = frame.positions(coords)
        assert not outside.any()
        assert np.array_equal(positions, rm.layout_positions(coords, canvas_size, tile))
        assert frame.shape == rm.canvas_shape(coords, canvas_size, tile)
        beyond = coords.max(axis=0) + np.array([1.0, 0.0]), coords.min(axis=0) - np.array([0.0, 1.0])
        far, away = frame.positions(np.array(beyond))
        assert away.tolist() == [True, True]
        room = np.array(frame.shape) - tile
        assert far[0][0] == room[0] and far[1][1] == room[1]  # right edge; bottom edge (y grows downwards)


def test_a_missing_or_unreadable_query_image_is_one_line_naming_it(placed, tmp_path):
    missing = Path(placed["query_root"]) / QUERY[1][0]
    missing.unlink()
    with pytest.raises(AtlasError, match="query image missing; restore it") as error:
        draw(placed, tmp_path / "out")
    assert str(missing) in str(error.value) and "\n" not in str(error.value)
    missing.write_bytes(b"not a png")
    with pytest.raises(AtlasError, match="not a readable query image") as error:
        draw(placed, tmp_path / "out")
    assert str(missing) in str(error.value) and "\n" not in str(error.value)
