import json

import cv2
import numpy as np
import pytest
from PIL import Image

import plot_scatter as ps
import render_mosaic as rm
from figure_style import RANDOM_WEIGHTS_NOTE, class_colours, colour_bgr255
from run_tsne import write_embedding


@pytest.mark.parametrize("n", [1, 3, 10, 20, 30])
def test_class_colours_are_distinct(n):
    colours = class_colours(n)
    assert len(colours) == n and len(set(colours)) == n
    assert all(0 <= c <= 1 for rgb in colours for c in rgb)


def test_layout_keeps_aspect_stays_on_canvas_and_matches_scatter_orientation():
    coords = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0], [10.0, 5.0]])
    pos = rm.layout_positions(coords, canvas_size=110, tile_size=10)
    assert pos.min() >= 0 and pos.max() <= 100
    assert pos[1, 0] - pos[0, 0] == 100  # x spans the canvas
    assert pos[0, 1] - pos[2, 1] == 50  # y has half the span (equal aspect) and points up
    assert pos[0, 1] == 75  # ...centred vertically


@pytest.fixture
def embedding(image_folder, tmp_path):
    paths = [f"{c}/{c}_{i:03d}.png" for c in ("ant", "bee", "cat") for i in range(4)]
    labels = [p.split("/")[0] for p in paths]
    coords = np.array([[i % 4 * 10.0, i // 4 * 10.0] for i in range(12)])
    meta = {"classes": ["ant", "bee", "cat"], "perplexity": 5.0, "seed": 0, "n_images": 12,
            "kl_divergence": 0.5, "model": "resnet18", "weights_random": True}
    write_embedding(str(tmp_path / "e.tsv"), str(tmp_path / "e.json"), paths, labels, coords, meta)
    return tmp_path / "e.tsv", tmp_path / "e.json", image_folder


def test_mosaic_places_framed_thumbnails_and_is_reproducible(embedding, tmp_path):
    tsv, meta, root = embedding
    rm.mosaic_from_embedding(str(tsv), str(meta), str(root), str(tmp_path / "a.png"), 200, 20, 3, "white")
    rm.mosaic_from_embedding(str(tsv), str(meta), str(root), str(tmp_path / "b.png"), 200, 20, 3, "white")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    image = cv2.imread(str(tmp_path / "a.png"))
    assert image.shape[1] == 200 and image.shape[0] > 200  # legend strip below the canvas
    colours = [colour_bgr255(c) for c in class_colours(3)]
    tile = 20 + 2 * 3
    coords = np.array([[i % 4 * 10.0, i // 4 * 10.0] for i in range(12)])
    positions = rm.layout_positions(coords, 200, tile)
    # Point 0 (ant) has the lowest y, so it is drawn lowest; point 11 (cat) is top-right.
    assert positions[0, 1] > positions[11, 1] and positions[11, 0] == 200 - tile
    for index, colour in ((0, colours[0]), (11, colours[2])):
        x, y = positions[index]
        top = y + (tile - (16 + 6)) // 2  # 20x16 images: framed 26x22, centred in the tile
        assert tuple(image[top, x + tile // 2]) == colour  # the class-coloured border
        assert tuple(image[top + 11, x + tile // 2]) not in colours  # the image inside it
    # Somewhere in the middle of the canvas is empty background.
    assert (image[:200][image[:200].sum(axis=2) == 765]).size > 0
    # The random-weights note is drawn in red below the legend.
    strip = image[200:]
    assert ((strip[:, :, 2] > 150) & (strip[:, :, 1] < 80)).any()


def test_mosaic_thumbnails_keep_aspect(tmp_path):
    Image.new("RGB", (40, 10), "red").save(tmp_path / "wide.png")
    thumb = rm.load_thumbnail(tmp_path / "wide.png", 20)
    assert thumb.shape == (5, 20, 3) and tuple(thumb[2, 10]) == (0, 0, 255)


def test_mosaic_too_small_canvas_is_an_error(embedding, tmp_path):
    tsv, meta, root = embedding
    with pytest.raises(Exception, match="does not fit mosaic.canvas_size"):
        rm.mosaic_from_embedding(str(tsv), str(meta), str(root), str(tmp_path / "m.png"), 64, 80, 3, "white")


def test_scatter_writes_png_and_svg_with_equal_aspect_and_note(embedding, tmp_path):
    tsv, meta_json, _ = embedding
    ps.render_scatter(str(tsv), str(meta_json), str(tmp_path / "s.png"), str(tmp_path / "s.svg"))
    with Image.open(tmp_path / "s.png") as png:
        assert png.format == "PNG" and png.size[0] > 600
    assert (tmp_path / "s.svg").read_text().lstrip().startswith("<?xml")
    meta = json.loads(meta_json.read_text())
    coords = np.array([[0, 0], [30, 0], [0, 10]], dtype=float)
    fig = ps.plot_scatter(coords, ["ant", "bee", "cat"], meta["classes"], "t", RANDOM_WEIGHTS_NOTE)
    ax = fig.axes[0]
    assert ax.get_aspect() == 1.0
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ant (1)", "bee (1)", "cat (1)"]
    assert RANDOM_WEIGHTS_NOTE in [t.get_text() for t in fig.texts]


def test_scatter_is_byte_reproducible(embedding, tmp_path):
    tsv, meta_json, _ = embedding
    for name in ("a", "b"):
        ps.render_scatter(str(tsv), str(meta_json), str(tmp_path / f"{name}.png"), str(tmp_path / f"{name}.svg"))
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
