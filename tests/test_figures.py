import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageColor

from conftest import schema_defaults, write_clusters, write_embedding
from tsne_atlas import canvas, figure_style
from tsne_atlas import mosaic as rm
from tsne_atlas import scatter as ps
from tsne_atlas.figure_style import NOTE_COLOUR, RANDOM_WEIGHTS_NOTE, class_colours, colour_bgr255, sets_weights_note
from tsne_atlas.files.runs import read_embedding
from tsne_atlas.jobs import AtlasError
from tsne_atlas.subsample import fixed_subsample


@pytest.mark.parametrize("n", [1, 3, 10, 20, 30])
def test_class_colours_are_distinct(n):
    colours = class_colours(n)
    assert len(colours) == n and len(set(colours)) == n
    assert all(0 <= c <= 1 for rgb in colours for c in rgb)


def mosaic(tsv, meta, root, png, canvas_size, thumb_size, border, background, max_images=10_000):
    """Rule mosaic's function with the arguments in the order these tests give them."""
    manifest = str(Path(tsv).parent / "manifest.csv")  # conftest.write_embedding writes it there
    rm.mosaic(
        str(tsv), str(meta), manifest, str(root), canvas_size, thumb_size, border, background, max_images, str(png)
    )


def write_features_without_predictions(path, paths, reason="none: random weights"):
    from tsne_atlas.files.features import write_features

    write_features(
        path, [{"n": np.zeros((len(paths), 2), np.float32)}], len(paths), paths, {}, {"n": "n"}, None, reason
    )


def scatter(tsv, meta, png, svg, features=None):
    """Rule scatter's function at the schema's default settings; ``features`` by default a features file
    without predictions (random weights). The predicted-class plot goes beside ``png``."""
    paths = read_embedding(tsv)[0]
    if features is None:
        features = Path(tsv).parent / "no-predictions.h5"
        write_features_without_predictions(features, paths)
    manifest = str(Path(tsv).parent / "manifest.csv")
    from tsne_atlas.files.manifest import read_manifest

    clusters, summary = write_clusters(Path(tsv).parent, paths, read_manifest(manifest).labels)
    ps.scatter(
        str(tsv),
        str(meta),
        manifest,
        str(features),
        clusters,
        summary,
        **schema_defaults("scatter"),
        png=str(png),
        svg=str(svg),
        predicted=str(Path(png).with_suffix(".predicted.png")),
        cluster_map=str(Path(png).with_suffix(".clusters.png")),
    )


def test_layout_keeps_aspect_stays_on_canvas_and_matches_scatter_orientation():
    coords = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0], [10.0, 5.0]])
    assert rm.canvas_shape(coords, canvas_size=110, tile_size=10) == (110, 60)  # 10 + 100 / 2
    pos = rm.layout_positions(coords, canvas_size=110, tile_size=10)
    assert pos[1, 0] - pos[0, 0] == 100  # x spans the canvas
    assert pos[0, 1] - pos[2, 1] == 50  # y has half the span (equal aspect) and points up
    assert pos[0, 1] == 50 and pos[2, 1] == 0  # ...and spans the (shorter) canvas: no blank band


@pytest.mark.parametrize(
    "extent, shape",
    [
        ((2.0, 1.0), (2000, 70 + 965)),  # 2 : 1: one tile plus half the long side's 1930 px of corners
        ((1.0, 2.0), (70 + 965, 2000)),  # 1 : 2: the same, standing up
        ((2.3, 1.0), (2000, 70 + 839)),  # the demo's shape: 1930 / 2.3 = 839.1
        ((1.0, 1.0), (2000, 2000)),
    ],
)
def test_canvas_follows_the_embeddings_aspect_with_the_long_side_canvas_size(extent, shape):
    rng = np.random.default_rng(0)
    coords = np.vstack([[0.0, 0.0], extent, rng.uniform(size=(50, 2)) * extent]) - 7.0
    assert rm.canvas_shape(coords, 2000, 70) == shape
    pos = rm.layout_positions(coords, 2000, 70)
    room = np.array(shape) - 70
    # Tiles reach all four edges of the canvas...
    assert pos.min(axis=0).tolist() == [0, 0] and pos.max(axis=0).tolist() == room.tolist()
    # ...at one scale for x and y: the corners' spread has the embedding's aspect (to a pixel of rounding).
    spread = np.ptp(pos, axis=0)
    assert spread[0] * extent[1] == pytest.approx(spread[1] * extent[0], abs=max(extent))


@pytest.mark.parametrize(
    "coords, shape, first",
    [
        ([[0.0, 3.0], [5.0, 3.0], [9.0, 3.0]], (300, 30), (0, 0)),  # on a horizontal line: one tile high
        ([[2.0, 0.0], [2.0, 5.0], [2.0, 9.0]], (30, 300), (0, 270)),  # on a vertical line: one tile wide
        ([[4.0, 4.0]], (300, 30), (135, 0)),  # one point: a strip one tile high, the tile centred
        ([[4.0, 4.0], [4.0, 4.0]], (300, 30), (135, 0)),  # several points, all in one place
    ],
)
def test_degenerate_embeddings_get_a_canvas_one_tile_thick(coords, shape, first):
    assert rm.canvas_shape(np.array(coords), 300, 30) == shape
    pos = rm.layout_positions(np.array(coords), 300, 30)
    assert tuple(pos[0]) == first and (pos >= 0).all() and (pos <= np.array(shape) - 30).all()


def test_legend_is_the_canvas_width_unless_the_canvas_is_tall_and_thin():
    assert canvas.legend_width(2000, 2000) == 2000
    assert canvas.legend_width(2000, 870) == 2000  # a wide canvas: its own width
    assert canvas.legend_width(300, 1000) == 600  # LEGEND_MIN_WIDTH at text unit 1
    assert canvas.legend_width(70, 2000) == 1200  # text twice the size: twice the minimum
    assert canvas.legend_width(140, 200) == 200  # never wider than the canvas' long side


def test_tall_thin_mosaic_keeps_a_legible_legend_below_its_centred_canvas(image_folder):
    paths = sorted(image_folder.rglob("*.png"))
    coords = np.column_stack([np.linspace(0, 1, len(paths)), np.linspace(0, 20, len(paths))])  # 1 : 20
    width, height = rm.canvas_shape(coords, 2000, 26)
    assert (width, height) == (26 + 99, 2000)
    classes = ["ant", "bee", "cat"]
    labels = np.array([["ant", "bee", "cat"].index(p.parent.name) for p in paths])
    image = rm.render_mosaic(coords, paths, labels, classes, 2000, 20, 3, "white", RANDOM_WEIGHTS_NOTE)
    assert image.shape[1] == 1200 and image.shape[0] > 2000  # the strip's width, not the canvas's 125 px
    # The canvas is centred over the strip; its tiles span it (the last to a pixel of rounding).
    left = (1200 - width) // 2
    drawn = np.flatnonzero((image[:2000] != 255).any(axis=(0, 2)))
    assert drawn.min() == left and left + width - 2 <= drawn.max() <= left + width - 1
    # The strip is the one legend_strip draws at that width, its text sized by the 2000-px long side.
    colours = [colour_bgr255(c) for c in class_colours(3)]
    strip = canvas.legend_strip(classes, colours, 1200, (255, 255, 255), RANDOM_WEIGHTS_NOTE, text_size=2000)
    np.testing.assert_array_equal(image[2000:], strip)
    assert strip.shape[0] > canvas.legend_strip(classes, colours, 1200, (255, 255, 255), RANDOM_WEIGHTS_NOTE).shape[0]


def test_degenerate_embeddings_render(image_folder):
    paths = sorted(image_folder.rglob("*.png"))[:3]
    for coords in (np.zeros((1, 2)), np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0]])):
        image = rm.render_mosaic(coords, paths, np.zeros(len(coords), int), ["ant"], 300, 20, 3, "black")
        assert max(image.shape[:2]) >= 300 and (image != 0).any()


@pytest.fixture
def embedding(image_folder, tmp_path):
    paths = [f"{c}/{c}_{i:03d}.png" for c in ("ant", "bee", "cat") for i in range(4)]
    labels = [p.split("/")[0] for p in paths]
    coords = np.array([[i % 4 * 10.0, i // 4 * 10.0] for i in range(12)])
    meta = {
        "classes": ["ant", "bee", "cat"],
        "features": "resnet18",
        "method": "tsne",
        "perplexity": 5.0,
        "seed": 0,
        "n_images": 12,
        "kl_divergence": 0.5,
        "model": "resnet18",
        "weights_random": True,
    }
    write_embedding(str(tmp_path / "e.tsv"), str(tmp_path / "e.json"), paths, labels, coords, meta)
    return tmp_path / "e.tsv", tmp_path / "e.json", image_folder


def test_mosaic_places_framed_thumbnails_and_is_reproducible(embedding, tmp_path):
    tsv, meta, root = embedding
    mosaic(str(tsv), str(meta), str(root), str(tmp_path / "a.png"), 200, 20, 3, "white")
    mosaic(str(tsv), str(meta), str(root), str(tmp_path / "b.png"), 200, 20, 3, "white")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    image = cv2.imread(str(tmp_path / "a.png"))
    # A 3 : 2 embedding: the canvas is 200 x (one 26-px tile + 174 * 2/3), the legend strip below it.
    height = 26 + 116
    assert image.shape[1] == 200 and image.shape[0] > height
    colours = [colour_bgr255(c) for c in class_colours(3)]
    tile = 20 + 2 * 3
    coords = np.array([[i % 4 * 10.0, i // 4 * 10.0] for i in range(12)])
    positions = rm.layout_positions(coords, 200, tile)
    # Point 0 (ant) has the lowest y, so it is drawn lowest; point 11 (cat) is top-right.
    assert positions[0, 1] == height - tile and positions[11].tolist() == [200 - tile, 0]
    for index, colour in ((0, colours[0]), (11, colours[2])):
        x, y = positions[index]
        top = y + (tile - (16 + 6)) // 2  # 20x16 images: framed 26x22, centred in the tile
        assert tuple(image[top, x + tile // 2]) == colour  # the class-coloured border
        assert tuple(image[top + 11, x + tile // 2]) not in colours  # the image inside it
    # Somewhere in the middle of the canvas is empty background.
    assert (image[:height][image[:height].sum(axis=2) == 765]).size > 0
    # The random-weights note is drawn in red below the legend.
    strip = image[height:]
    assert ((strip[:, :, 2] > 150) & (strip[:, :, 1] < 80)).any()


def test_mosaic_thumbnails_keep_aspect(tmp_path):
    Image.new("RGB", (40, 10), "red").save(tmp_path / "wide.png")
    thumb = canvas.load_thumbnail(tmp_path / "wide.png", 20)
    assert thumb.shape == (5, 20, 3) and tuple(thumb[2, 10]) == (0, 0, 255)


def test_mosaic_too_small_canvas_is_an_error(embedding, tmp_path):
    tsv, meta, root = embedding
    with pytest.raises(AtlasError) as err:
        mosaic(str(tsv), str(meta), str(root), str(tmp_path / "m.png"), 64, 80, 3, "white")
    assert str(err.value) == (
        "mosaic.thumb_size 80 plus borders does not fit mosaic.canvas_size 64; "
        "lower the thumbnail size or enlarge the canvas"
    )
    assert not (tmp_path / "m.png").exists()


def svg_texts(path) -> list[str]:
    """The texts of a Matplotlib SVG (drawn as paths; each is named in a comment before it)."""
    return re.findall(r"<!-- (.*?) -->", path.read_text())


def note_pixels(path) -> int:
    """Pixels of a PNG in the note's red (figure_style.NOTE_COLOUR)."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=int)
    return int((np.abs(rgb - np.array(ImageColor.getrgb(NOTE_COLOUR))).sum(axis=2) < 40).sum())


def test_predicted_class_plot_colours_the_most_predicted_classes_or_says_why_not(embedding, tmp_path):
    from tsne_atlas.files.features import TOP_INDEX, TOP_PROBABILITY, write_features

    tsv, meta_json, _ = embedding
    paths = read_embedding(tsv)[0]
    names = [f"class {i}" for i in range(20)]
    # 12 images: class 0 predicted 3 times, classes 1-9 once each: with a cap of 4 classes, 0 and 1-3 stay.
    top = np.array([[0, 1, 2, 3, 4]] * 3 + [[i, 0, 1, 2, 3] for i in range(1, 10)], dtype=np.int32)
    batch = {"n": np.zeros((12, 2), np.float32), TOP_INDEX: top, TOP_PROBABILITY: np.full((12, 5), 0.2, np.float32)}
    write_features(tmp_path / "p.h5", [batch], 12, paths, {}, {"n": "n"}, names)
    labels, classes = figure_style.most_frequent([names[i] for i in top[:, 0]], max_classes=4)
    assert classes == ["class 0", "class 1", "class 2", "class 3", "other"]
    assert labels.count("class 0") == 3 and labels.count("other") == 6
    scatter(tsv, meta_json, tmp_path / "s.png", tmp_path / "s.svg", features=tmp_path / "p.h5")
    with Image.open(tmp_path / "s.predicted.png") as png:
        assert png.size[0] > 600
    # Without predictions the plot says why, in words, and draws the map in grey.
    fig = ps.plot_predicted(np.zeros((3, 2)), None, "none: random weights", "t", None, 12, 8)
    assert "No predictions to colour by: random weights" in [t.get_text() for t in fig.axes[0].texts]
    ps.plt.close(fig)
    scatter(tsv, meta_json, tmp_path / "r.png", tmp_path / "r.svg")
    assert (tmp_path / "r.predicted.png").stat().st_size > 1000


def test_scatter_writes_png_and_svg_with_equal_aspect_and_note(embedding, tmp_path):
    tsv, meta_json, _ = embedding
    scatter(str(tsv), str(meta_json), str(tmp_path / "s.png"), str(tmp_path / "s.svg"))
    with Image.open(tmp_path / "s.png") as png:
        assert png.format == "PNG" and png.size[0] > 600
    assert (tmp_path / "s.svg").read_text().lstrip().startswith("<?xml")
    # The files render_scatter wrote carry the title, the legend and the note the metadata asks for
    # (weights_random: true)...
    texts = svg_texts(tmp_path / "s.svg")
    assert "t-SNE of resnet18 features, perplexity 5, seed 0 (N=12, KL 0.500)" in texts
    assert {"ant (4)", "bee (4)", "cat (4)", RANDOM_WEIGHTS_NOTE} <= set(texts)
    assert note_pixels(tmp_path / "s.png") > 100
    # ...and trained weights give neither the note nor its red.
    trained = {**json.loads(meta_json.read_text()), "weights_random": False}
    (tmp_path / "trained.json").write_text(json.dumps(trained))
    scatter(str(tsv), str(tmp_path / "trained.json"), str(tmp_path / "t.png"), str(tmp_path / "t.svg"))
    assert RANDOM_WEIGHTS_NOTE not in svg_texts(tmp_path / "t.svg") and note_pixels(tmp_path / "t.png") == 0
    # Equal aspect: the figure plot_scatter builds for these files.
    meta = json.loads(meta_json.read_text())
    coords = np.array([[0, 0], [30, 0], [0, 10]], dtype=float)
    fig = ps.plot_scatter(coords, ["ant", "bee", "cat"], meta["classes"], "t", RANDOM_WEIGHTS_NOTE)
    ax = fig.axes[0]
    assert ax.get_aspect() == 1.0
    ps.plt.close(fig)


def test_scatter_is_byte_reproducible(embedding, tmp_path):
    tsv, meta_json, _ = embedding
    for name in ("a", "b"):
        scatter(str(tsv), str(meta_json), str(tmp_path / f"{name}.png"), str(tmp_path / f"{name}.svg"))
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()


@pytest.fixture
def embedding30(image_folder, tmp_path):
    """30 rows reusing the 15 images of ``image_folder``, on a 6 x 5 grid."""
    files = sorted(p.relative_to(image_folder).as_posix() for p in image_folder.rglob("*.png"))
    paths = [files[i % len(files)] for i in range(30)]
    labels = [p.split("/")[0] for p in paths]
    coords = np.array([[i % 6 * 10.0, i // 6 * 10.0] for i in range(30)])
    meta = {
        "classes": ["ant", "bee", "cat"],
        "features": "resnet18",
        "method": "tsne",
        "perplexity": 5.0,
        "seed": 0,
        "n_images": 30,
        "kl_divergence": 0.5,
        "model": "resnet18",
        "weights_random": True,
    }
    write_embedding(str(tmp_path / "e30.tsv"), str(tmp_path / "e30.json"), paths, labels, coords, meta)
    return tmp_path / "e30.tsv", tmp_path / "e30.json", image_folder, coords


def spy_mosaic(monkeypatch):
    """Record the coordinates, image paths and note render_mosaic is given (paths as it consumes them)."""
    seen = {}
    render = rm.render_mosaic

    def spy(coords, image_paths, label_indices, classes, *args):
        seen["coords"], seen["note"] = coords, args[-1]
        seen["paths"] = []

        def consume():
            for path in image_paths:
                seen["paths"].append(str(path))
                yield path

        return render(coords, consume(), label_indices, classes, *args)

    monkeypatch.setattr(rm, "render_mosaic", spy)
    return seen


def test_mosaic_above_max_images_draws_a_fixed_subsample_and_says_so(embedding30, tmp_path, monkeypatch):
    tsv, meta, root, coords = embedding30
    seen = spy_mosaic(monkeypatch)
    mosaic(str(tsv), str(meta), str(root), str(tmp_path / "a.png"), 200, 20, 3, "white", max_images=10)
    keep = fixed_subsample(30, 10)
    assert len(keep) == 10 and list(keep) == sorted(set(keep))
    assert len(seen["paths"]) == 10
    np.testing.assert_array_equal(seen["coords"], coords[keep])
    assert seen["note"] == (
        f"{RANDOM_WEIGHTS_NOTE}\nshowing a random 10 of 30 images (fixed subsample; mosaic.max_images)"
    )
    # The same subsample, and the same bytes, on every run (the seed of the run does not matter).
    mosaic(str(tsv), str(meta), str(root), str(tmp_path / "b.png"), 200, 20, 3, "white", max_images=10)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    # The note is a second red line below the legend: the strip is one line taller than with every image.
    mosaic(str(tsv), str(meta), str(root), str(tmp_path / "all.png"), 200, 20, 3, "white", max_images=30)
    assert seen["note"] == RANDOM_WEIGHTS_NOTE and len(seen["paths"]) == 30
    capped, full = cv2.imread(str(tmp_path / "a.png")), cv2.imread(str(tmp_path / "all.png"))
    # Each canvas follows the aspect of the points it draws; the legend strips are what lies below.
    capped_h, full_h = rm.canvas_shape(coords[keep], 200, 26)[1], rm.canvas_shape(coords, 200, 26)[1]
    assert capped.shape[0] - capped_h > full.shape[0] - full_h and capped.shape[1] == full.shape[1] == 200
    red = (capped[capped_h:, :, 2] > 150) & (capped[capped_h:, :, 1] < 80)
    rows = np.flatnonzero(red.any(axis=1))
    assert rows.max() - rows.min() > 20  # two lines of red text
    assert np.flatnonzero(red.any(axis=0)).max() < 200 - 5  # long lines shrink to fit the width


def test_mosaic_loads_one_thumbnail_at_a_time(embedding30, monkeypatch):
    """Paths are consumed as thumbnails are drawn: no list of decoded images is built first."""
    _, _, root, coords = embedding30
    events = []
    load = canvas.load_thumbnail
    monkeypatch.setattr(canvas, "load_thumbnail", lambda path, size: (events.append("load"), load(path, size))[1])

    def paths():
        for path in sorted(root.rglob("*.png"))[:5]:
            events.append("next")
            yield path

    rm.render_mosaic(coords[:5], paths(), np.zeros(5, dtype=int), ["ant"], 200, 20, 3, "white")
    assert events == ["next", "load"] * 5


def test_mosaic_at_or_below_max_images_is_unchanged(embedding, tmp_path):
    tsv, meta, root = embedding
    mosaic(str(tsv), str(meta), str(root), str(tmp_path / "a.png"), 200, 20, 3, "white")
    mosaic(str(tsv), str(meta), str(root), str(tmp_path / "b.png"), 200, 20, 3, "white", max_images=12)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_scatter_markers_shrink_above_ten_thousand_points():
    assert figure_style.marker_area(12, 500) == figure_style.marker_area(12, figure_style.FULL_SIZE_POINTS) == 12
    assert figure_style.marker_area(12, 100_000) == pytest.approx(1.2)
    assert figure_style.marker_area(12, 10**8) == figure_style.MIN_MARKER_AREA  # a floor, so points stay visible
    assert figure_style.marker_area(0.1, 10**6) == 0.1  # never larger than asked for
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(40_000, 2))
    labels = ["ant", "bee"] * 20_000
    fig = ps.plot_scatter(coords, labels, ["ant", "bee"], "t")
    ax = fig.axes[0]
    assert [c.get_sizes()[0] for c in ax.collections] == [pytest.approx(3.0)] * 2
    # Legend markers keep the size they have with few points.
    small = ps.plot_scatter(coords[:100], labels[:100], ["ant", "bee"], "t")
    legend_sizes = [fig_.axes[0].get_legend().legend_handles[0].get_sizes()[0] for fig_ in (fig, small)]
    assert legend_sizes[0] == pytest.approx(legend_sizes[1])
    figure_style.plt.close(fig)
    figure_style.plt.close(small)


def test_class_names_are_drawn_literally_never_as_mathtext():
    """A class called "$x^2$" (user text) is drawn as written, not typeset as a formula: its legend entry
    is as wide as the same characters drawn with mathtext off."""
    coords = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    labels = ["$x^2$", "a_b", "$x^2$"]
    fig = ps.plot_scatter(coords, labels, sorted(set(labels)), "t")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    entry = fig.axes[0].get_legend().get_texts()[0]
    plain = fig.text(0, 0, "$x^2$ (2)", parse_math=False, fontproperties=entry.get_fontproperties())
    math = fig.text(0, 0, "$x^2$ (2)", fontproperties=entry.get_fontproperties())
    width = entry.get_window_extent(renderer).width
    assert width == pytest.approx(plain.get_window_extent(renderer).width, abs=0.5)
    assert abs(width - math.get_window_extent(renderer).width) > 3  # the check can tell the two apart
    ps.plt.close(fig)


def test_a_figure_spanning_sets_names_the_random_ones_only_when_some_are_trained():
    assert sets_weights_note([], ["a", "b"]) is None
    assert sets_weights_note(["a", "b", "a"], ["a", "b"]) == RANDOM_WEIGHTS_NOTE
    note = sets_weights_note(["resnet101"], ["resnet101", "efficientnet-lite0"])
    assert note == "RANDOM WEIGHTS: the features of resnet101 come from an untrained network"


def test_a_long_scatter_title_stays_inside_the_figure():
    """The title spans the figure, not the axes: centred over the axes beside the legend, the demo's
    title ran off the left edge ("SNE of efficientnet-lite0 ...")."""
    coords = np.random.default_rng(0).normal(size=(30, 2))
    labels = [f"class {i % 10}" for i in range(30)]
    title = "t-SNE of efficientnet-lite0 (tf_efficientnet_lite0) features, perplexity 30, seed 0 (N=500, KL 0.584)"
    fig = ps.plot_scatter(coords, labels, sorted(set(labels)), title, width_in=8.0)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    shown = [t for t in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_text() == title)]
    assert shown, "the title is drawn"
    box, frame = shown[0].get_window_extent(renderer), fig.bbox
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1
    figure_style.plt.close(fig)


def test_above_the_switch_the_points_are_one_image_in_the_svg_and_pdf_and_the_png_is_unchanged(tmp_path, monkeypatch):
    """The scatter stage and the contact sheet with RASTERIZE_ABOVE_POINTS lowered to 40: 41 points are one
    <image> in the SVG (no element per point) and one image in the PDF, while the PNGs have the bytes they
    have without the switch (10**9: never); 40 points, at the switch, give every file as without it."""
    import base64
    import io

    from tsne_atlas import overview

    assert figure_style.RASTERIZE_ABOVE_POINTS >= 100_000  # today's sizes, up to 100,000 images, are drawn as before
    meta = {"classes": ["ant", "bee"], "features": "resnet18", "method": "tsne", "perplexity": 5.0, "seed": 0}
    for switch in (40, 10**9):
        monkeypatch.setattr(figure_style, "RASTERIZE_ABOVE_POINTS", switch)
        for n in (40, 41):
            rng = np.random.default_rng(n)
            folder = tmp_path / f"{n}-{switch}"
            folder.mkdir()
            tsv, meta_json = folder / "run.tsv", folder / "run.json"
            paths = [f"{'ab'[i % 2]}/{i:03d}.png" for i in range(n)]
            labels = [["ant", "bee"][i % 2] for i in range(n)]
            write_embedding(str(tsv), str(meta_json), paths, labels, rng.normal(size=(n, 2)), {**meta, "n_images": n})
            scatter(tsv, meta_json, folder / "s.png", folder / "s.svg")
            run = {"meta": {**meta, "n_images": n}, "coords": rng.normal(size=(n, 2)), "labels": labels}
            fig = overview.plot_overview(
                [{**run, "metrics": {"trustworthiness": 0.9, "knn_accuracy_2d": 0.8}}], ["ant", "bee"], 2.0
            )
            pdf = figure_style.vector_dpi(fig, 150)
            fig.savefig(folder / "sheet.pdf", format="pdf", metadata=figure_style.PDF_METADATA, **pdf)
            figure_style.plt.close(fig)
            svg, pdf = (folder / "s.svg").read_text(), (folder / "sheet.pdf").read_bytes()
            rasterized = n > switch
            assert svg.count("<image") == (1 if rasterized else 0), (n, switch)
            markers = svg.count('<use xlink:href="#m')  # a marker drawn (glyphs are #DejaVuSans-...)
            assert (markers < n) == rasterized, (n, switch, markers)  # one per point and legend entry, or the legend's
            assert (b"/Subtype /Image" in pdf) == rasterized, (n, switch)
    for n in (40, 41):
        for name in ("s.png", "s.clusters.png", "s.predicted.png"):
            assert (tmp_path / f"{n}-40" / name).read_bytes() == (tmp_path / f"{n}-{10**9}" / name).read_bytes()
    for name in ("s.svg", "sheet.pdf"):
        assert (tmp_path / "40-40" / name).read_bytes() == (tmp_path / f"40-{10**9}" / name).read_bytes()
    # The image of the points has the PNG's resolution (schema default scatter.dpi 150), not the SVG's 72 or 100.
    tag = re.search(r"<image [^>]*>", (tmp_path / "41-40" / "s.svg").read_text()).group(0)
    png = Image.open(io.BytesIO(base64.b64decode(re.search(r"base64,([^\"]*)", tag).group(1))))
    width_pt = float(re.search(r' width="([0-9.]+)"', tag).group(1))
    assert png.width / width_pt == pytest.approx(schema_defaults("scatter")["dpi"] / 72, rel=0.02)


def test_a_colorbar_or_heatmap_alone_keeps_its_vector_files_as_before():
    """matplotlib rasterizes a heatmap's and a colorbar's image in any vector file: that is not a map's points,
    so the figure is saved without a dpi (its SVG as before, which the demo's compare/clusters.svg checks)."""
    fig, ax = figure_style.plt.subplots()
    image = ax.imshow(np.arange(12.0).reshape(3, 4))
    fig.colorbar(image, ax=ax)
    assert any(artist.get_rasterized() for axes in fig.axes for artist in axes.get_children())
    assert figure_style.vector_dpi(fig, 150) == {}
    ax.scatter([0, 1], [0, 1], rasterized=True)
    assert figure_style.vector_dpi(fig, 150) == {"dpi": 150}
    figure_style.plt.close(fig)
