"""The explorer page, built from a small sweep and driven in a real headless Chromium.

The browser is Debian's chromium with its chromium-driver (tools/install_system_deps.sh);
when either is missing these tests fail and say so, they never skip.
"""

import base64
import contextlib
import csv
import io
import json
import re
import shutil
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import contourpy
import numpy as np
import pytest
import yaml
from matplotlib.colors import to_hex
from PIL import Image
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait
from sklearn.neighbors import NearestNeighbors

import headless_browser as hb
from conftest import TINY, TINY_IDS, planned_jobs, rule_job, snakemake, without_query, write_embedding
from tsne_atlas import cluster_map
from tsne_atlas import explorer as bx
from tsne_atlas.figure_style import RANDOM_WEIGHTS_NOTE, class_colours
from tsne_atlas.files.clusters import cluster_of_paths, write_assignments
from tsne_atlas.files.explorer_page import from_b64, read_page_data, script_json
from tsne_atlas.files.manifest import read_images, write_images
from tsne_atlas.files.map_inputs import read_neighbours, write_neighbours
from tsne_atlas.files.thumbnails import read_index
from tsne_atlas.jobs import AtlasError, run_rule
from tsne_atlas.subsample import fixed_subsample
from tsne_atlas.suspects import label_disagreement
from tsne_atlas.thumbnails import explorer_thumbnails, thumbnail

HOSTILE_FILE = "<img src=x onerror=alert(1)>.png"
HOSTILE_CLASS = "<u>owl"
# A metadata column and values, and a predicted class, that would be markup if a page let them.
HOSTILE_COLUMN = "<b>source</b>"
HOSTILE_PREDICTION = "<i>tench</i>"
COUNTS = {"ant": 3, "bee": 3, HOSTILE_CLASS: 2}
THUMB_SIZE = 32
K = 3  # neighbours listed per clicked image; the graph holds 4
# The sweep's clusters, numbered by size as find_clusters numbers them (not in label order: the owls,
# label code 0, are cluster 2), named by label; the owls' name is markup if a page let it be.
CLUSTERS = {"ant": 0, "bee": 1, HOSTILE_CLASS: 2}
# Two runs, given out of (perplexity, seed) order: the menu sorts them.
RUNS = (
    {"features": "net", "method": "tsne", "perplexity": 30.0, "seed": 1, "kl_divergence": 0.4},
    {"features": "net", "method": "tsne", "perplexity": 5.0, "seed": 0, "kl_divergence": 0.9},
)


def write_dataset(root: Path) -> list[str]:
    """Small PNGs in class folders (one class and one file with markup in the name); sorted relative paths."""
    for class_index, (name, count) in enumerate(COUNTS.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            colour = (60 * class_index, 40 * i, 200 - 60 * class_index)
            Image.new("RGB", (40, 30), colour).save(root / name / f"{name}_{i}.png")
    Image.new("RGB", (30, 40), (250, 0, 0)).save(root / "ant" / HOSTILE_FILE)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))


def manifest_of(runs) -> str:
    """The sample manifest written beside the runs (conftest.write_embedding)."""
    return str(Path(runs[0][0]).parent / "manifest.csv")


def hostile_metadata(paths: list[str]) -> dict[str, list[str]]:
    return {HOSTILE_COLUMN: [f"<script>window.pwned = {i}</script> & 'q', \"quoted\"" for i in range(len(paths))]}


def write_predictions(path: Path, paths: list[str]) -> Path:
    """A features file whose predictions put every image in class HOSTILE_PREDICTION at 90 %."""
    from tsne_atlas.files.features import TOP_INDEX, TOP_PROBABILITY, write_features

    n = len(paths)
    batch = {
        "n": np.zeros((n, 2), np.float32),
        TOP_INDEX: np.tile(np.arange(2, dtype=np.int32), (n, 1)),
        TOP_PROBABILITY: np.tile(np.array([0.9, 0.1], np.float32), (n, 1)),
    }
    write_features(path, [batch], n, paths, {}, {"n": "n"}, [HOSTILE_PREDICTION, "other"])
    return path


def write_plain_features(path: Path, paths: list[str]) -> str:
    """A features file without predictions."""
    from tsne_atlas.files.features import write_features

    n = len(paths)
    write_features(path, [{"n": np.zeros((n, 2), np.float32)}], n, paths, {}, {"n": "n"}, predictions="none: test")
    return str(path)


def grid(n: int, columns: int = 4) -> np.ndarray:
    """Well-spaced points, one per cell, so a hover or a click hits one point."""
    return np.array([[i % columns * 10.0, i // columns * 10.0] for i in range(n)])


def write_runs(folder: Path, paths: list[str], weights_random: bool = True, features: str = "net") -> tuple[list, dict]:
    """Two runs on a grid; the second puts every image in another cell. Returns the (tsv, json) pairs
    and each run's coordinates keyed by (perplexity, seed)."""
    labels = [p.split("/")[0] for p in paths]
    pairs, coords = [], {}
    for k, run in enumerate(RUNS):
        run_coords = grid(len(paths))[::-1] + k if k else grid(len(paths))
        meta = {
            **run,
            "features": features,
            "classes": sorted(set(labels)),
            "weights_random": weights_random,
            "model": "resnet18",
            "n_images": len(paths),
            "implementation": "opentsne",
        }
        tsv, meta_json = folder / f"{features}-run{k}.tsv", folder / f"{features}-run{k}.json"
        write_embedding(str(tsv), str(meta_json), paths, labels, run_coords, meta, hostile_metadata(paths))
        pairs.append((str(tsv), str(meta_json)))
        coords[run["perplexity"], run["seed"]] = run_coords
    return pairs, coords


def graph_features(n: int, seed: int = 0) -> np.ndarray:
    """The random features write_graph's graph is of."""
    return np.random.default_rng(seed).normal(size=(n, 5))


def write_graph(path: Path, n: int, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An exact k-NN graph of random features, as knn_graph writes it."""
    features = graph_features(n, seed)
    distances, indices = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    write_neighbours(path, indices[:, 1:], distances[:, 1:])
    return indices[:, 1:], distances[:, 1:]


def write_cluster_file(path: Path, paths: list[str], clusters: list[int], names: dict[int, str]) -> str:
    """clusters.csv as find_clusters writes it: each image's cluster number and its cluster's name."""
    rows = [
        {"path": p, "label": p.split("/")[0], "cluster": c, "cluster_name": names[c]} for p, c in zip(paths, clusters)
    ]
    write_assignments(path, rows)
    return str(path)


def sweep_clusters(paths: list[str]) -> list[int]:
    return [CLUSTERS[p.split("/")[0]] for p in paths]


def write_thumbnails(folder: Path, root: Path, paths: list[str], thumb_size: int, max_images: int = 5000) -> Path:
    images = folder / "images.csv"
    write_images(images, paths, ["0" * 64] * len(paths))
    explorer_thumbnails(str(images), str(root), str(folder / "explorer"), thumb_size, max_images, threads=1)
    return folder / "explorer"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("explorer")
    paths = write_dataset(folder / "data")
    runs, coords = write_runs(folder, paths)
    graph, distances = write_graph(folder / "k-4.npz", len(paths))
    thumbnails = write_thumbnails(folder, folder / "data", paths, THUMB_SIZE)
    sweep = SimpleNamespace(
        folder=folder,
        root=folder / "data",
        paths=paths,
        runs=runs,
        coords=coords,
        graph=graph,
        distances=distances,
        thumbnails=thumbnails,
        features={"net": str(write_predictions(folder / "net.h5", paths))},
        neighbors={"net": str(folder / "k-4.npz")},
        clusters={"net": write_cluster_file(folder / "clusters.csv", paths, sweep_clusters(paths), {v: k for k, v in CLUSTERS.items()})},
        html=folder / "explorer.html",
    )  # fmt: skip
    build(sweep, sweep.html)
    return sweep


def build(sweep, page: Path, **changes) -> None:
    arguments = dict(
        runs=sweep.runs,
        manifest=manifest_of(sweep.runs),
        root=sweep.root,
        output=page,
        thumbnails=sweep.thumbnails,
        features_files=sweep.features,
        graph_files=sweep.neighbors,
        cluster_files=sweep.clusters,
        inline_max_images=5000,
        neighbours=K,
        backend="canvas",
    )
    bx.build_explorer(**{**arguments, **changes})


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    try:
        browser = hb.start_chromium(tmp_path_factory.mktemp("chromium-profile"), width=1400, height=960)
    except AtlasError as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield browser
    finally:
        browser.quit()


def open_fresh(driver, html: Path):
    """The page freshly loaded, with the browser console emptied beforehand."""
    with contextlib.suppress(NoAlertPresentException):
        driver.switch_to.alert.dismiss()  # left open by a failed test: it would block this one
    driver.get_log("browser")
    hb.open_page(driver, html)
    return driver


@pytest.fixture
def page(driver, sweep):
    return open_fresh(driver, sweep.html)


def severe_console_messages(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def model_value(driver, name: str, expression: str):
    """Evaluate ``expression`` on the Bokeh model called ``name`` (as ``m``) in the page."""
    return driver.execute_script(
        f"const m = Bokeh.documents[0].get_model_by_name(arguments[0]); return {expression};", name
    )


def points_column(driver, field: str, renderer: str = bx.POINTS_NAME) -> list:
    return model_value(driver, renderer, f"Array.from(m.data_source.data[{json.dumps(field)}])")


def count_deep(driver, condition_js: str) -> int:
    """How many elements (shadow roots included) satisfy ``condition_js`` on ``el``."""
    return driver.execute_script(hb.DEEP_ELEMENTS_JS + f"return all.filter((el) => {condition_js}).length;")


def assert_no_alert(driver) -> None:
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert


def choose(driver, select_id: str, text: str) -> None:
    """Pick an entry of one of the page's menus by its visible text, as a user would."""
    Select(driver.find_element("id", select_id)).select_by_visible_text(text)
    hb.wait_for_paint(driver)


def search(driver, text: str) -> str:
    """Type into the search box (after clearing it) and return the count it shows."""
    box = driver.find_element("id", "search")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)  # as a user empties it (WebDriver's clear() fires no input event)
    box.send_keys(text)
    WebDriverWait(driver, 5).until(lambda d: d.execute_script("return tsneAtlas.state.query") == text.strip().lower())
    return driver.find_element("id", "search-count").text


def click_point(driver, index: int) -> None:
    hb.move_to_point(driver, index, click=True)
    WebDriverWait(driver, 5).until(
        lambda d: d.execute_script("return document.getElementById('neighbours').dataset.index") == str(index)
    )


def panel_indices(driver) -> list[list[int]]:
    """The image indices the neighbours panel lists: [feature space, on the map]."""
    return driver.execute_script(
        """return Array.from(document.querySelectorAll('#neighbours .list'))
            .map((list) => Array.from(list.querySelectorAll('.neighbour')).map((n) => Number(n.dataset.index)));"""
    )


def placed_names(driver) -> list[dict]:
    """The cluster names drawn on the map, as the page shows them: text, cluster number, the centre of
    the name's box on the screen (CSS pixels), its box and its font size."""
    return driver.execute_script(
        """const layer = document.getElementById('map-names');
        if (layer.hidden) return [];
        return Array.from(layer.querySelectorAll('.map-name')).map((name) => {
            const r = name.getBoundingClientRect();
            return {text: name.textContent, cluster: Number(name.dataset.cluster), x: r.left + r.width / 2,
                    y: r.top + r.height / 2, box: [r.left, r.top, r.right, r.bottom],
                    font: getComputedStyle(name).fontSize, children: name.children.length};
        });"""
    )


def anchor_images(sweep, run: int) -> list[int]:
    """The images the page names each cluster at on run ``run`` (its anchors are those images' places)."""
    data = read_page_data(sweep.html)
    coords = np.column_stack([from_b64(data["runs"][run][axis], "<f4") for axis in "xy"])
    anchors = from_b64(data["runs"][run]["anchors"], "<f4").reshape(-1, 2)
    return [int(np.flatnonzero((coords == anchor).all(axis=1))[0]) for anchor in anchors]


def zoom(driver, factor: float) -> None:
    """Set the plot's ranges to ``factor`` times their span around their middle, as a zoom does."""
    driver.execute_script(
        """const plot = Bokeh.documents[0].get_model_by_name('plot');
        for (const range of [plot.x_range, plot.y_range]) {
            const middle = (range.start + range.end) / 2, half = (range.end - range.start) / 2 * arguments[0];
            range.setv({start: middle - half, end: middle + half});
        }""",
        factor,
    )
    hb.wait_for_paint(driver)


def overlapping(boxes: list[list[float]]) -> bool:
    return any(
        a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3] for k, a in enumerate(boxes) for b in boxes[k + 1 :]
    )


def plot_pixels(driver) -> np.ndarray:
    """The plot's frame as the screen shows it (RGB)."""
    left, top, width, height = driver.execute_script(
        """const view = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('plot'));
        const r = view.canvas_view.el.getBoundingClientRect(), f = view.frame.bbox;
        return [r.left + f.left, r.top + f.top, f.width, f.height];"""
    )
    scale = driver.execute_script("return window.devicePixelRatio")
    with Image.open(io.BytesIO(driver.get_screenshot_as_png())) as shot:
        box = [round(v * scale) for v in (left + 2, top + 2, left + width - 2, top + height - 2)]
        return np.asarray(shot.convert("RGB").crop(box), dtype=np.int16)


def test_browser_check_names_the_install_script(tmp_path):
    with pytest.raises(AtlasError, match="tools/install_system_deps.sh"):
        hb.check_browser(tmp_path / "chromium", tmp_path / "chromedriver")


def test_small_page_is_self_contained_and_byte_reproducible(sweep, tmp_path):
    text = sweep.html.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=|<link[^>]*\bhref=", text), "the page loads an external resource"
    assert "atlas-0000.jpg" not in text and text.count("data:image/jpeg;base64,") == 1  # 9 images: one atlas
    build(sweep, sweep.folder / "again.html")  # beside it: the page links the images relative to itself
    assert (sweep.folder / "again.html").read_bytes() == sweep.html.read_bytes()


def test_page_loads_without_console_errors_and_holds_every_point(page, sweep):
    assert severe_console_messages(page) == []
    assert len(points_column(page, "x")) == page.execute_script("return tsneAtlas.data.n") == len(sweep.paths) == 9
    assert model_value(page, bx.PLOT_NAME, "[m.match_aspect, m.output_backend]") == [True, "canvas"]
    legend = page.find_element("id", "legend").text
    assert "ant\n4" in legend and "bee\n3" in legend and f"{HOSTILE_CLASS}\n2" in legend


def atlas_cell(sweep, index: int) -> np.ndarray:
    thumbs = read_index(sweep.thumbnails)
    name, left, top = thumbs.position(index)
    with Image.open(sweep.thumbnails / name) as atlas:
        return np.asarray(atlas.convert("RGB").crop((left, top, left + thumbs.cell, top + thumbs.cell)), dtype=float)


def test_hover_shows_the_images_own_thumbnail_path_and_fields(page, sweep):
    index = sweep.paths.index("bee/bee_1.png")
    card = hb.hover_point(page, index)
    assert card["thumb"] == index
    assert "bee/bee_1.png" in card["text"] and "class: bee" in card["text"]
    assert "cluster: 1: bee" in card["text"]  # the run's feature set's cluster, number and name
    assert f"predicted: {HOSTILE_PREDICTION} (90%)" in card["text"]
    # The cell the card shows is that image's thumbnail (JPEG: nearly), and not another's.
    own = np.asarray(thumbnail(sweep.root / "bee/bee_1.png", THUMB_SIZE), dtype=float)
    other = np.asarray(thumbnail(sweep.root / "ant/ant_0.png", THUMB_SIZE), dtype=float)
    assert np.abs(atlas_cell(sweep, index) - own).mean() < 4 < np.abs(atlas_cell(sweep, index) - other).mean()
    shown = page.execute_script(
        "const t = document.querySelector('#hover-card .thumb'); const s = getComputedStyle(t);"
        "return [s.backgroundImage.slice(0, 27), s.width, s.backgroundPosition];"
    )
    thumbs = read_index(sweep.thumbnails)
    _, left, top = thumbs.position(index)
    assert shown == ['url("data:image/jpeg;base64', f"{THUMB_SIZE}px", f"{-left}px {-top}px"]
    assert severe_console_messages(page) == []


def test_click_lists_k_neighbours_in_feature_space_beside_those_on_the_map(page, sweep):
    index = sweep.paths.index("ant/ant_1.png")
    click_point(page, index)
    features, on_map = panel_indices(page)
    assert features == list(sweep.graph[index, :K])  # the sweep's graph, nearest first
    coords = sweep.coords[min(sweep.coords)]  # the first run in the menu
    distances = np.linalg.norm(coords - coords[index], axis=1)
    distances[index] = np.inf
    assert on_map == list(np.argsort(distances, kind="stable")[:K])
    kept = len(set(features) & set(on_map))
    assert (
        f"{kept} of its {K} nearest in feature space are among its {K} nearest on the map"
        in page.find_element("id", "neighbours").text
    )
    # The clicked image's cluster in the panel's head, each neighbour's under its distance.
    assert "cluster: 0: ant" in page.find_element("css selector", "#neighbours .focus-head").text
    listed = page.execute_script(
        "return Array.from(document.querySelectorAll('#neighbours .neighbour .distance')).map((d) => d.textContent)"
    )
    clusters = sweep_clusters(sweep.paths)
    assert [text.split(" · ")[1] for text in listed] == [f"cluster {clusters[j]}" for j in features + on_map]
    # Lines on the map from the clicked image to its feature-space neighbours.
    links = model_value(page, "neighbour-links-source", "[Array.from(m.data.x1), Array.from(m.data.y1)]")
    assert np.allclose(np.array(links).T, coords[features])
    # A neighbour's entry is clickable: it becomes the clicked image.
    page.execute_script("document.querySelector('#neighbours .neighbour').click()")
    assert page.execute_script("return document.getElementById('neighbours').dataset.index") == str(features[0])
    link = page.execute_script("return document.querySelector('#neighbours a.open').getAttribute('href')")
    assert urllib.parse.unquote(link) == f"data/{sweep.paths[features[0]]}" and not re.search(r"[<> ]", link)
    assert severe_console_messages(page) == []


def test_colour_by_cluster_shows_the_sets_clusters_by_number_and_name(page, sweep):
    choose(page, "colour-select", "cluster")
    clusters = sweep_clusters(sweep.paths)
    assert points_column(page, "c") == [c + 0.5 for c in clusters]  # cluster numbers, not label codes
    entries = page.execute_script(
        "return Array.from(document.querySelectorAll('#legend .entry')).map((e) => [e.dataset.code, e.innerText])"
    )
    counts = np.bincount(clusters)
    assert entries == [[str(c), f"{c}: {name}\n{counts[c]}"] for name, c in CLUSTERS.items()]
    assert "the same for every run of a feature set" in page.find_element("id", "legend").text
    assert model_value(page, "colour-mapper", "m.palette") == [to_hex(c) for c in class_colours(3)]
    assert severe_console_messages(page) == []


def test_cluster_names_sit_on_their_anchors_keep_their_size_when_zoomed_and_never_overlap(page, sweep):
    """Each cluster's name is centred on its anchor image (the member nearest the cluster's median on this
    run's map) at a fixed font size, follows a zoom, goes with its cluster's points when the legend hides
    them, and a name whose box would overlap one drawn before it moves off its anchor or is left out."""
    for run in (0, 1):
        if run:
            choose(page, "run-select", "net · t-SNE perplexity 30, seed 1 (KL 0.40)")
        names = placed_names(page)
        assert [(n["text"], n["cluster"], n["children"]) for n in names] == [(t, c, 0) for t, c in CLUSTERS.items()]
        for name, image in zip(names, anchor_images(sweep, run)):
            assert np.allclose([name["x"], name["y"]], hb.point_position(page, image), atol=1.5)
    font = {n["font"] for n in names}
    assert font == {"13px"}
    zoom(page, 0.6)  # zoomed in: the names move with their points, at the same size
    zoomed = placed_names(page)
    anchors = anchor_images(sweep, 1)
    for name in zoomed:
        image = anchors[name["cluster"]]
        assert np.allclose([name["x"], name["y"]], hb.point_position(page, image), atol=1.5)
        before = next(n for n in names if n["cluster"] == name["cluster"])
        assert name["font"] == "13px" and np.allclose(np.diff(name["box"][::2]), np.diff(before["box"][::2]))
    assert zoomed and not np.allclose(
        zoomed[0]["x"], next(n["x"] for n in names if n["cluster"] == zoomed[0]["cluster"])
    )
    zoom(page, 60)  # far out: every point within a few pixels, so the names would pile up
    crowded = placed_names(page)
    assert not overlapping([n["box"] for n in crowded])
    first = crowded[0]
    assert first["cluster"] == 0 and np.allclose(
        [first["x"], first["y"]], hb.point_position(page, anchors[0]), atol=1.5
    )
    on_anchor = [
        np.allclose([n["x"], n["y"]], hb.point_position(page, anchors[n["cluster"]]), atol=1.5) for n in crowded
    ]
    assert not all(on_anchor) or len(crowded) < 3
    # Hidden in the legend: the cluster's name goes with its points; the toggle hides every name.
    choose(page, "colour-select", "cluster")
    page.execute_script("document.querySelector('#legend .entry[data-code=\"1\"]').click()")
    hb.wait_for_paint(page)
    assert 1 not in [n["cluster"] for n in placed_names(page)] and placed_names(page)
    page.find_element("id", "names-toggle").click()
    hb.wait_for_paint(page)
    assert placed_names(page) == []
    assert severe_console_messages(page) == []


def test_density_toggle_draws_the_runs_contours_under_the_points(page, sweep):
    data = read_page_data(sweep.html)
    order = page.execute_script("return Bokeh.documents[0].get_model_by_name('plot').renderers.map((r) => r.name)")
    assert order.index(bx.DENSITY_NAME) < order.index(bx.POINTS_NAME)
    assert not model_value(page, bx.DENSITY_NAME, "m.visible")
    before = plot_pixels(page)
    page.find_element("id", "density-toggle").click()
    hb.wait_for_paint(page)
    after = plot_pixels(page)
    changed = np.abs(after - before).max(axis=2) > 24
    grey = np.ptp(after, axis=2) <= 12  # the contours' grey, not a point's colour
    assert changed.sum() > 300 and (changed & grey).sum() > 0.9 * changed.sum()
    # The page draws the run's contours exactly as shipped (decoded as decoded_density does), and another
    # run's when the run changes.
    for run in (0, 1):
        if run:
            choose(page, "run-select", "net · t-SNE perplexity 30, seed 1 (KL 0.40)")
        shown = model_value(
            page,
            f"{bx.DENSITY_NAME}-source",
            "[m.data.xs.map((l) => Array.from(l)), m.data.ys.map((l) => Array.from(l))]",
        )
        expected = decoded_density(data["runs"][run]["density"])
        assert len(shown[0]) == len(expected) > 0
        for xs, ys, line in zip(*shown, expected):
            assert np.allclose(np.column_stack([xs, ys]), line)
    choose(page, "run-select", "net · t-SNE perplexity 5, seed 0 (KL 0.90)")
    page.find_element("id", "density-toggle").click()
    hb.wait_for_paint(page)
    assert np.array_equal(plot_pixels(page), before)
    assert severe_console_messages(page) == []


def test_search_counts_and_rings_the_matches_and_selects_them(page, sweep):
    assert search(page, "bee") == "3 of 9 match"
    assert len(model_value(page, "matches-source", "Array.from(m.data.x)")) == 3
    assert search(page, "_1") == f"{sum('_1' in p for p in sweep.paths)} of 9 match"
    assert search(page, "OWL") == "2 of 9 match"  # a label, any case
    page.find_element("id", "select-matches").click()
    assert sorted(model_value(page, bx.POINTS_NAME, "Array.from(m.data_source.selected.indices)")) == [
        i for i, p in enumerate(sweep.paths) if p.startswith(HOSTILE_CLASS)
    ]
    assert page.find_element("id", "selection-count").text == "2 selected"
    assert search(page, "") == ""
    assert model_value(page, "matches-source", "m.data.x.length") == 0


def test_box_selection_downloads_exactly_the_selected_rows(page, sweep, tmp_path):
    hb.allow_downloads(page, tmp_path)
    page.execute_script(
        "const plot = Bokeh.documents[0].get_model_by_name('plot');"
        "plot.toolbar.active_drag = plot.toolbar.tools.find((t) => t.constructor.__name__ === 'BoxSelectTool');"
    )
    # A box around the lowest row of the first run's grid (4 points), drawn on the screen.
    coords = sweep.coords[min(sweep.coords)]
    first_row = [i for i in range(len(sweep.paths)) if coords[i, 1] == coords[:, 1].min()]
    corners = np.array([hb.point_position(page, i) for i in first_row])
    (left, top), (right, bottom) = corners.min(axis=0) - 15, corners.max(axis=0) + 15
    actions = ActionChains(page)
    pointer = actions.w3c_actions.pointer_action
    pointer.move_to_location(round(left), round(top))
    pointer.pointer_down()
    pointer.move_to_location(round((left + right) / 2), round((top + bottom) / 2))
    pointer.move_to_location(round(right), round(bottom))
    pointer.pointer_up()
    actions.perform()
    WebDriverWait(page, 5).until(lambda d: d.find_element("id", "selection-count").text == "4 selected")
    page.find_element("id", "export-selection").click()
    target = tmp_path / "tsne-atlas-selection.csv"
    deadline = time.monotonic() + 10
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(target, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["path", "label", "x", "y", "predicted", HOSTILE_COLUMN]
    assert [row[0] for row in rows[1:]] == [sweep.paths[i] for i in first_row]
    for row, i in zip(rows[1:], first_row):
        assert row[1] == sweep.paths[i].split("/")[0]
        assert np.allclose([float(row[2]), float(row[3])], coords[i])
        assert row[4:] == [f"{HOSTILE_PREDICTION} (90%)", hostile_metadata(sweep.paths)[HOSTILE_COLUMN][i]]
    assert severe_console_messages(page) == []


def test_lasso_selects_the_points_inside_its_path(page, sweep):
    page.execute_script(
        "const plot = Bokeh.documents[0].get_model_by_name('plot');"
        "plot.toolbar.active_drag = plot.toolbar.tools.find((t) => t.constructor.__name__ === 'LassoSelectTool');"
    )
    coords = sweep.coords[min(sweep.coords)]
    lowest = sorted(
        (i for i in range(len(sweep.paths)) if coords[i, 1] == coords[:, 1].min()), key=lambda i: coords[i, 0]
    )
    inside = lowest[:2]  # the two leftmost points of the lowest row
    corners = np.array([hb.point_position(page, i) for i in inside])
    (left, top), (right, bottom) = corners.min(axis=0) - 15, corners.max(axis=0) + 15
    actions = ActionChains(page)
    pointer = actions.w3c_actions.pointer_action
    pointer.move_to_location(round(left), round(top))
    pointer.pointer_down()
    for x, y in ((right, top), (right, bottom), (left, bottom), (left, top + 1)):
        pointer.move_to_location(round(x), round(y))
    pointer.pointer_up()
    actions.perform()
    WebDriverWait(page, 5).until(lambda d: d.find_element("id", "selection-count").text == "2 selected")
    assert sorted(model_value(page, bx.POINTS_NAME, "Array.from(m.data_source.selected.indices)")) == sorted(inside)
    page.find_element("id", "clear-selection").click()
    assert page.find_element("id", "selection-count").text == ""


def test_hostile_names_metadata_predictions_and_search_input_stay_text(page, sweep):
    hostile = sweep.paths.index(f"ant/{HOSTILE_FILE}")
    card = hb.hover_point(page, hostile)
    assert f"ant/{HOSTILE_FILE}" in card["text"] and card["thumb"] == hostile  # its own thumbnail all the same
    assert f"{HOSTILE_COLUMN}: <script>window.pwned = " in card["text"]
    owl = sweep.paths.index(f"{HOSTILE_CLASS}/{HOSTILE_CLASS}_0.png")
    click_point(page, owl)
    assert f"class: {HOSTILE_CLASS}" in page.find_element("id", "neighbours").text
    choose(page, "colour-select", f"metadata: {HOSTILE_COLUMN}")
    choose(page, "colour-select", "cluster")
    assert f"2: {HOSTILE_CLASS}" in page.find_element("id", "legend").text
    assert HOSTILE_CLASS in [name["text"] for name in placed_names(page)]  # drawn on the map, as text
    choose(page, "colour-select", "predicted class")
    assert HOSTILE_PREDICTION in page.find_element("id", "legend").text
    assert search(page, "<img src=x onerror=window.pwned=1>") == "0 of 9 match"
    assert search(page, "<img src=x onerror=alert(1)>") == "1 of 9 match"
    assert_no_alert(page)
    assert count_deep(page, "el.tagName === 'IMG' && el.getAttribute('src') === 'x'") == 0
    assert count_deep(page, "el.tagName === 'U'") == 0
    assert count_deep(page, "el.tagName === 'B' && el.textContent === 'source'") == 0
    assert count_deep(page, "el.tagName === 'I' && el.textContent === 'tench'") == 0
    assert count_deep(page, "el.tagName === 'SCRIPT' && el.textContent.startsWith('window.pwned')") == 0
    assert page.execute_script("return window.pwned === undefined")
    assert severe_console_messages(page) == []


def test_run_menu_switches_coordinates_title_and_hover(page, sweep):
    first, second = sorted(sweep.coords)  # the menu lists runs by (perplexity, seed)
    index = sweep.paths.index("bee/bee_0.png")
    assert [points_column(page, "x")[index], points_column(page, "y")[index]] == list(sweep.coords[first][index])
    labels = [option.text for option in Select(page.find_element("id", "run-select")).options]
    assert labels == ["net · t-SNE perplexity 5, seed 0 (KL 0.90)", "net · t-SNE perplexity 30, seed 1 (KL 0.40)"]
    choose(page, "run-select", labels[1])
    assert [points_column(page, "x")[index], points_column(page, "y")[index]] == list(sweep.coords[second][index])
    assert "perplexity 30, seed 1" in model_value(page, bx.PLOT_NAME, "m.title.text")
    assert hb.hover_point(page, index)["thumb"] == index  # the hover follows the point to its new place
    assert severe_console_messages(page) == []


def test_colour_by_metadata_predictions_and_disagreement_and_legend_hides(page, sweep):
    options = [option.text for option in Select(page.find_element("id", "colour-select")).options]
    assert options == ["label", f"metadata: {HOSTILE_COLUMN}", "cluster", "predicted class", "label disagreement"]
    # Hiding a class in the legend hides its points (from hover and selection too).
    bee = sorted(COUNTS).index("bee")
    page.execute_script(f"document.querySelector('#legend .entry[data-code=\"{bee}\"]').click()")
    visible = model_value(page, bx.POINTS_NAME, "m.view.filter.booleans")
    assert visible == [not p.startswith("bee/") for p in sweep.paths]
    hb.move_to_point(page, sweep.paths.index("bee/bee_0.png"))
    hb.wait_for_paint(page)
    assert hb.hover_card(page)["hidden"]
    choose(page, "colour-select", "label disagreement")
    assert model_value(page, bx.POINTS_NAME, "m.view.filter.booleans") is None  # a new colouring shows all
    labels = np.searchsorted(sorted(COUNTS), [p.split("/")[0] for p in sweep.paths])
    expected = label_disagreement(sweep.graph, sweep.distances, labels, K)["disagreement"]
    assert np.allclose(points_column(page, "c"), expected)
    assert model_value(page, "colour-mapper", "[m.palette.length, m.low, m.high]") == [256, 0, 1]
    assert "share of its k nearest in feature space with another label" in page.find_element("id", "legend").text
    assert severe_console_messages(page) == []


def test_the_address_keeps_the_view_and_a_link_to_it_opens_it(driver, sweep):
    page = open_fresh(driver, sweep.html)
    choose(page, "run-select", "net · t-SNE perplexity 30, seed 1 (KL 0.40)")
    search(page, "bee")
    index = sweep.paths.index("ant/ant_2.png")
    click_point(page, index)
    page.find_element("id", "names-toggle").click()
    page.find_element("id", "density-toggle").click()
    fragment = urllib.parse.urlparse(page.current_url).fragment
    assert urllib.parse.parse_qs(fragment) == {
        "run": ["1"],
        "find": ["bee"],
        "image": ["ant/ant_2.png"],
        "names": ["0"],
        "density": ["1"],
    }
    # Esc (outside the search box) clears the clicked image, and the address forgets it.
    ActionChains(page).move_to_element(page.find_element("tag name", "h1")).click().send_keys(Keys.ESCAPE).perform()
    assert page.execute_script("return document.getElementById('neighbours').dataset.index") is None
    assert "image=" not in page.current_url
    # The saved address, opened afresh: the same run, search and clicked image.
    page.get("about:blank")
    hb.open_page(page, sweep.html, fragment=fragment)
    assert page.find_element("id", "run-select").get_attribute("value") == "1"
    assert page.find_element("id", "search-count").text == "3 of 9 match"
    assert page.execute_script("return document.getElementById('neighbours').dataset.index") == str(index)
    assert (
        not page.find_element("id", "names-toggle").is_selected()
        and page.find_element("id", "density-toggle").is_selected()
    )
    assert placed_names(page) == [] and model_value(page, bx.DENSITY_NAME, "m.visible")
    assert severe_console_messages(page) == []


def test_random_weights_note_is_visible(page):
    note = page.find_element("id", "random-weights-note")
    assert note.text == RANDOM_WEIGHTS_NOTE and note.is_displayed()
    assert note.value_of_css_property("color") == "rgba(189, 31, 1, 1)"


def write_outlier_scores(path, paths: list[str], scores: list[float]) -> str:
    """An outliers.csv listing ``paths`` with ``scores`` (the rest of the sample past its end)."""
    from tsne_atlas.files.suspects import write_outliers

    rows = [
        {
            "rank": rank,
            "path": p,
            "label": "x",
            "outlier_score": score,
            "relative_distance": score,
            "wide_relative_distance": 1.0,
            "mean_neighbour_distance": 1.0,
            "neighbours": [],
            "neighbour_labels": [],
            "neighbour_distances": [],
        }
        for rank, (p, score) in enumerate(zip(paths, scores), start=1)
    ]
    write_outliers(path, rows)
    return str(path)


def test_outlier_colouring_reads_each_sets_scores_on_one_scale_and_leaves_the_unlisted_n_a(tmp_path):
    paths = ["a.png", "b.png", "c.png"]
    files = [
        write_outlier_scores(tmp_path / "one.csv", ["b.png", "a.png"], [3.0, 1.2]),
        write_outlier_scores(tmp_path / "two.csv", ["c.png", "a.png", "b.png"], [6.0, 2.0, 1.0]),
    ]
    colouring = bx.outlier_colouring(files, paths)
    assert colouring["name"] == "outlier score" and colouring["per_set"]
    one, two = colouring["sets"]
    assert one["low"] == two["low"] == 1.0 and one["high"] == two["high"] == 6.0  # one scale for every set
    np.testing.assert_allclose(from_b64(one["values"], "<f4"), [1.2, 3.0, np.nan])  # c.png past the end
    np.testing.assert_allclose(from_b64(two["values"], "<f4"), [2.0, 1.0, 6.0])


def write_problems(path, paths: list[str], problems: dict[str, list[str]]) -> str:
    """A quality.csv of ``paths`` with the given problems per path (none for the others)."""
    from tsne_atlas.files.quality import SCORE_FIELDS, write_quality

    rows = [
        {
            "path": p,
            "label": "x",
            "width": 10,
            "height": 10,
            **dict.fromkeys(SCORE_FIELDS, 1.0),
            "problems": problems.get(p, []),
        }
        for p in paths
    ]
    write_quality(path, rows)
    return str(path)


def test_problem_colouring_gives_each_combination_a_colour_and_no_problem_grey_last(tmp_path):
    paths = ["a.png", "b.png", "c.png", "d.png"]
    quality = write_problems(
        tmp_path / "q.csv", paths, {"a.png": ["dark", "small"], "b.png": ["blurry"], "c.png": ["dark", "small"]}
    )
    colouring = bx.problem_colouring(quality, paths)
    assert colouring["name"] == "image problem" and not colouring["per_set"]
    assert colouring["categories"] == ["dark + small", "blurry", bx.NO_PROBLEM]  # most frequent first
    assert colouring["colours"][-1] == bx.MISSING_COLOUR
    assert from_b64(colouring["codes"], "<i4").tolist() == [0, 1, 0, 2]
    with pytest.raises(AtlasError, match=r"q.csv has no row for e.png; delete it and rerun"):
        bx.problem_colouring(quality, ["a.png", "e.png"])


def test_no_note_with_trained_weights_and_rule_entry_point(sweep, tmp_path):
    runs, _ = write_runs(tmp_path, sweep.paths, weights_random=False)
    snakemake = rule_job(
        "explorer",
        input={
            "embeddings": [tsv for tsv, _ in runs],
            "metas": [meta for _, meta in runs],
            "manifest": manifest_of(runs),
            "features": [sweep.features["net"]],
            "graphs": [sweep.neighbors["net"]],
            "clusters": [sweep.clusters["net"]],
            "outliers": [write_outlier_scores(tmp_path / "outliers.csv", sweep.paths[:3], [4.0, 2.0, 1.5])],
            "quality": write_problems(tmp_path / "quality.csv", sweep.paths, {sweep.paths[0]: ["dark"]}),
            "thumbnails": str(sweep.thumbnails),
        },
        params={
            "order": ["net"],
            "root": str(sweep.root),
            "inline_max_images": 5000,
            "neighbours": 2,
            "backend": "webgl",
        },
        output={"html": str(tmp_path / "out" / "explorer.html")},
        log=str(tmp_path / "logs" / "explorer.log"),
    )
    run_rule(snakemake, bx.explorer)
    text = Path(snakemake.output.html).read_text(encoding="utf-8")
    assert [c["name"] for c in read_page_data(snakemake.output.html)["colourings"]][-2:] == [
        "outlier score",
        "image problem",
    ]
    assert RANDOM_WEIGHTS_NOTE not in text and "random-weights-note" not in text
    assert '"output_backend":"webgl"' in text  # explorer.backend reaches the plot
    assert "wrote" in Path(snakemake.log[0]).read_text(encoding="utf-8")


def test_runs_of_several_feature_sets_are_listed_in_config_order(sweep, tmp_path):
    runs = (
        write_runs(tmp_path, sweep.paths, features="zeta")[0] + write_runs(tmp_path, sweep.paths, features="alpha")[0]
    )
    _, _, by_name = bx.load_runs(runs, manifest_of(runs))
    assert [m["features"] for m in by_name] == ["alpha", "alpha", "zeta", "zeta"]
    page = tmp_path / "two.html"
    two = {"zeta": sweep.neighbors["net"], "alpha": sweep.neighbors["net"]}
    build(sweep, page, runs=runs, features_files={"zeta": sweep.features["net"], "alpha": write_plain_features(tmp_path / "none.h5", sweep.paths)},
          graph_files=two, cluster_files={"zeta": sweep.clusters["net"], "alpha": sweep.clusters["net"]}, order=["zeta", "alpha"])  # fmt: skip
    text = page.read_text(encoding="utf-8")
    assert "<title>tsne-atlas explorer: zeta, alpha features, 9 images, 4 runs</title>" in text


def test_large_page_loads_its_thumbnails_from_the_folder_beside_it(driver, sweep, tmp_path):
    page = sweep.folder / "large.html"
    build(sweep, page, inline_max_images=4)
    text = page.read_text(encoding="utf-8")
    assert "data:image/jpeg" not in text and '"explorer/atlas-0000.jpg"' in text
    open_fresh(driver, page)
    index = sweep.paths.index("bee/bee_2.png")
    assert hb.hover_point(driver, index)["thumb"] == index
    # The atlas the card shows really loads from file:// (an <img> of the same URL reports its size).
    size = driver.execute_async_script(
        """const done = arguments[0];
        const url = getComputedStyle(document.querySelector('#hover-card .thumb')).backgroundImage.slice(5, -2);
        const image = new Image(); image.onload = () => done([url, image.naturalWidth]); image.onerror = () => done([url, -1]);
        image.src = url;"""
    )
    assert size[0].endswith("/explorer/atlas-0000.jpg") and size[1] == 16 * THUMB_SIZE
    assert severe_console_messages(driver) == []


def test_thumbnails_are_letterboxed_cells_of_atlases_in_sample_order(sweep):
    thumbs = read_index(sweep.thumbnails)
    assert thumbs.paths == sweep.paths and thumbs.cell == THUMB_SIZE and thumbs.atlases == ["atlas-0000.jpg"]
    hostile = thumbnail(sweep.root / "ant" / HOSTILE_FILE, THUMB_SIZE)  # 30 x 40: white bands left and right
    pixels = np.asarray(hostile)
    assert (
        hostile.size == (THUMB_SIZE, THUMB_SIZE) and (pixels[:, :3] == 255).all() and (pixels[:, 6:26, 0] > 240).all()
    )


@pytest.fixture(scope="module")
def capped(tmp_path_factory) -> SimpleNamespace:
    """A sweep of 30 images in two runs, built into a page that may show at most 10 of them."""
    folder = tmp_path_factory.mktemp("explorer-capped")
    paths = []
    for i in range(30):
        name = ("ant", "bee", "cat")[i % 3]
        (folder / "data" / name).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (12, 10), (8 * i, 100, 200 - 6 * i)).save(folder / "data" / name / f"img_{i:02d}.png")
        paths.append(f"{name}/img_{i:02d}.png")
    runs, coords = write_runs(folder, paths, weights_random=False)
    # Clusters by class, and a small fourth (two images) that the 10 shown images do not reach.
    clusters = [i % 3 for i in range(30)]
    for i in sorted(set(range(30)) - set(fixed_subsample(30, 10).tolist()))[:2]:
        clusters[i] = 3
    capped = SimpleNamespace(
        folder=folder,
        root=folder / "data",
        paths=paths,
        runs=runs,
        coords=coords,
        thumbnails=write_thumbnails(folder, folder / "data", paths, 8, max_images=10),
        features={"net": write_plain_features(folder / "none.h5", paths)},
        neighbors={"net": str(folder / "k-4.npz")},
        clusters={"net": write_cluster_file(folder / "clusters.csv", paths, clusters, {0: "cluster 0", 1: "cluster 1", 2: "cluster 2", 3: "stray"})},
        cluster_numbers=clusters,
        html=folder / "explorer.html",
    )  # fmt: skip
    write_graph(folder / "k-4.npz", 30)
    build(capped, capped.html)
    return capped


CAPPED_NOTE = "Showing a random 10 of 30 images (fixed subsample; explorer.max_images)"


def test_page_above_max_images_holds_a_fixed_subsample_says_so_and_is_byte_reproducible(capped, tmp_path):
    text = capped.html.read_text(encoding="utf-8")
    kept = {capped.paths[i] for i in fixed_subsample(30, 10)}
    assert read_index(capped.thumbnails).paths == sorted(kept, key=capped.paths.index)
    assert {p for p in capped.paths if f'"{p}"' in text} == kept  # the other 20 images are not in the page
    assert CAPPED_NOTE in text
    assert "<title>tsne-atlas explorer: net features, 10 of 30 images (random subsample), 2 runs</title>" in text
    build(capped, capped.folder / "again.html")
    assert (capped.folder / "again.html").read_bytes() == capped.html.read_bytes()


def test_subsample_note_is_visible_and_every_run_shows_the_same_points(driver, capped):
    open_fresh(driver, capped.html)
    note = driver.find_element("id", "subsample-note")
    assert note.text == CAPPED_NOTE and note.is_displayed()
    keep = fixed_subsample(30, 10)
    for label, key in zip(
        ["net · t-SNE perplexity 5, seed 0 (KL 0.90)", "net · t-SNE perplexity 30, seed 1 (KL 0.40)"],
        sorted(capped.coords),
    ):
        choose(driver, "run-select", label)
        shown = np.column_stack([points_column(driver, "x"), points_column(driver, "y")])
        assert np.allclose(shown, capped.coords[key][keep])
    # Neighbours are listed among the shown images only (indices into the page's points).
    click_point(driver, 0)
    features, on_map = panel_indices(driver)
    assert all(0 <= i < 10 for i in features + on_map) and len(on_map) == K
    assert severe_console_messages(driver) == []


def test_mismatched_inputs_are_one_line_errors_and_write_nothing(sweep, tmp_path):
    paths, labels = sweep.paths[:-1], [p.split("/")[0] for p in sweep.paths[:-1]]
    meta = json.loads(Path(sweep.runs[0][1]).read_text(encoding="utf-8"))
    write_embedding(
        str(tmp_path / "short.tsv"), str(tmp_path / "short.json"), paths, labels, np.zeros((len(paths), 2)), meta
    )
    page = tmp_path / "x.html"
    with pytest.raises(AtlasError, match="lists other images than .*short.tsv"):
        build(sweep, page, runs=[*sweep.runs, (str(tmp_path / "short.tsv"), str(tmp_path / "short.json"))])
    other = write_thumbnails(tmp_path, sweep.root, sweep.paths[::-1], 8)
    with pytest.raises(AtlasError, match=r"thumbnails.json: lists other images than the runs; delete .* and rerun"):
        build(sweep, page, thumbnails=other)
    write_graph(tmp_path / "k-4.npz", 5)
    with pytest.raises(
        AtlasError,
        match="k-4.npz: a k-NN graph of 5 images, but the runs list 9; delete the results/embeddings folder and rerun",
    ):
        build(sweep, page, graph_files={"net": str(tmp_path / "k-4.npz")})
    (other / "atlas-0000.jpg").unlink()
    with pytest.raises(AtlasError, match=re.escape("atlas files missing or miscounted (['atlas-0000.jpg']); delete")):
        read_index(other)
    assert not page.exists()


def test_missing_image_is_a_one_line_error_naming_it(sweep, tmp_path):
    with pytest.raises(
        AtlasError,
        match="bee_0.png: image listed in the sample is missing; restore it or rerun the workflow from sampling",
    ):
        write_thumbnails(tmp_path, tmp_path / "elsewhere", ["bee/bee_0.png"], 8)
    assert not (tmp_path / "explorer" / "thumbnails.json").exists()


def test_thumbnail_applies_exif_rotation_and_converts_to_rgb(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    Image.new("L", (40, 20), 128).save(tmp_path / "rotated.jpg", exif=exif)
    cell = np.asarray(thumbnail(tmp_path / "rotated.jpg", 64))
    assert cell.shape == (64, 64, 3)
    assert (cell[:, :16] == 255).all() and abs(cell[:, 20:44].mean() - 128) < 3  # upright: 32 wide, 64 tall


def test_shown_neighbours_of_a_subsample_skip_hidden_images_and_pad():
    indices = np.array([[1, 2, 3], [0, 2, 3], [3, 0, 1], [2, 1, 0]])
    distances = np.arange(12, dtype=float).reshape(4, 3)
    shown, shown_distances = bx.shown_neighbours(indices, distances, np.array([0, 2, 3]), 2)
    # image 1 is not shown: row 0 lists images 2 and 3 (positions 1, 2), row "3" lists 2, 0.
    assert shown.tolist() == [[1, 2], [2, 0], [1, 0]]
    assert shown_distances.tolist() == [[1, 2], [6, 7], [9, 11]]
    shown, shown_distances = bx.shown_neighbours(indices, distances, np.array([0, 1]), 2)
    assert shown.tolist() == [[1, -1], [0, -1]] and np.isnan(shown_distances[:, 1]).all()


def test_metadata_colours_numbers_continuously_and_text_by_its_most_frequent_values():
    numbers = bx.metadata_colouring(["1.5", "", "3"])
    assert numbers["kind"] == "continuous" and (numbers["low"], numbers["high"]) == (1.5, 3.0)
    text = bx.metadata_colouring([f"v{i % 20}" for i in range(100)] + ["v0"])
    assert text["kind"] == "categorical" and text["categories"][0] == "v0" and text["categories"][-1] == "other"
    assert len(text["categories"]) == 13 and text["colours"][-1] == bx.MISSING_COLOUR


def test_page_json_cannot_close_its_script_element():
    text = script_json({"path": "</script><script>alert(1)</script>&"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"path": "</script><script>alert(1)</script>&"}


@pytest.fixture(scope="module")
def ten_thousand(tmp_path_factory) -> Path:
    """A 10,000-image explorer page: thumbnails as grey atlases of 16-pixel cells (the page only needs the
    index and the files), two runs, ten classes, a metadata column, a 10-NN graph."""
    from tsne_atlas.files.thumbnails import atlas_name, write_index

    folder = tmp_path_factory.mktemp("explorer-10k")
    n = 10_000
    rng = np.random.default_rng(0)
    paths = [f"class{i % 10}/image_{i:05d}.jpg" for i in range(n)]
    labels = [p.split("/")[0] for p in paths]
    per_atlas = 16 * 16
    atlases = [atlas_name(a) for a in range(-(-n // per_atlas))]
    (folder / "explorer").mkdir()
    for name in atlases:
        Image.new("RGB", (16 * 16, 16 * 16), (128, 128, 128)).save(folder / "explorer" / name, quality=50)
    write_index(
        folder / "explorer",
        {"cell": 16, "columns": 16, "quality": 50, "atlases": atlases, "paths": paths, "n_total": n},
    )
    runs = []
    for k, run in enumerate(RUNS):
        centres = rng.normal(scale=30, size=(10, 2))
        coords = centres[np.arange(n) % 10] + rng.normal(size=(n, 2))
        meta = {**run, "classes": sorted(set(labels)), "weights_random": True, "model": "resnet18", "n_images": n}
        tsv, meta_json = folder / f"run{k}.tsv", folder / f"run{k}.json"
        write_embedding(
            str(tsv), str(meta_json), paths, labels, coords, meta, {"batch": [str(i % 7) for i in range(n)]}
        )
        runs.append((str(tsv), str(meta_json)))
    write_graph(folder / "k-10.npz", n, k=10)
    page = folder / "explorer.html"
    clusters = write_cluster_file(
        folder / "clusters.csv", paths, [i % 10 for i in range(n)], {c: f"group {c}" for c in range(10)}
    )
    bx.build_explorer(runs, manifest_of(runs), folder / "data", page, folder / "explorer", {"net": write_plain_features(folder / "none.h5", paths)},
                      {"net": str(folder / "k-10.npz")}, inline_max_images=5000, neighbours=10, backend="canvas",
                      cluster_files={"net": clusters})  # fmt: skip
    return page


def test_ten_thousand_point_page_loads_without_console_errors_and_works(driver, ten_thousand):
    open_fresh(driver, ten_thousand)
    assert driver.execute_script("return tsneAtlas.data.n") == len(points_column(driver, "x")) == 10_000
    index = hb.central_point(driver)
    assert hb.hover_point(driver, index)["thumb"] == index
    click_point(driver, index)
    assert [len(entries) for entries in panel_indices(driver)] == [10, 10]
    assert search(driver, "image_0000") == "10 of 10,000 match"
    names = placed_names(driver)
    assert names and {n["text"] for n in names} <= {f"group {c}" for c in range(10)}
    assert not overlapping([n["box"] for n in names])
    driver.find_element("id", "density-toggle").click()
    hb.wait_for_paint(driver)
    contours = driver.execute_script("return tsneAtlas.data.runs[0].density")
    assert model_value(driver, f"{bx.DENSITY_NAME}-source", "m.data.xs.length") == len(decoded_density(contours)) > 0
    assert severe_console_messages(driver) == []


def test_page_data_reads_back_from_its_script_element_and_arrays_decode_little_endian(tmp_path):
    """from_b64 and read_page_data (files/explorer_page.py) on a page written here: the numbers come back
    exactly, in their dtype, and a page without the data element is a one-line error naming it."""
    import base64

    from tsne_atlas.files.explorer_page import SCRIPT_ID, b64, from_b64, read_page_data

    coords = np.array([1.5, -2.25, 3e-3], dtype=np.float32)
    codes = np.array([0, 7, -1, 300], dtype=np.int32)
    assert base64.b64decode(b64(codes, "<i4")) == b"\x00\x00\x00\x00\x07\x00\x00\x00\xff\xff\xff\xff\x2c\x01\x00\x00"
    decoded = from_b64(b64(coords, "<f4"), "<f4")
    assert decoded.dtype == np.dtype("<f4") and decoded.tolist() == coords.tolist()
    assert from_b64(b64(codes, "<i4"), "<i4").tolist() == [0, 7, -1, 300]
    data = {"title": "t < u", "x": b64(coords, "<f4")}
    page = tmp_path / "explorer.html"
    page.write_text(
        f'<html><script>var a = "</script>";</script>\n<script type="application/json" id="{SCRIPT_ID}">'
        f"{script_json(data)}</script>\n<script>other()</script></html>",
        encoding="utf-8",
    )
    assert read_page_data(page) == data
    multiline = tmp_path / "multiline.html"
    multiline.write_text(
        f'<script type="application/json" id="{SCRIPT_ID}">\n{json.dumps(data, indent=1)}\n</script>', encoding="utf-8"
    )
    assert read_page_data(multiline) == data
    empty = tmp_path / "empty.html"
    empty.write_text('<script type="application/json" id="other">{}</script>', encoding="utf-8")
    with pytest.raises(AtlasError) as error:
        read_page_data(empty)
    assert str(error.value) == f"{empty}: no explorer data in the page; rebuild it with the explorer rule"


def test_page_json_is_compact_utf8_without_nan_and_arrays_take_the_given_dtype():
    """script_json and b64 (files/explorer_page.py) exactly: no spaces, non-ASCII text as itself, the three
    escapes in lower case, NaN refused; an int64 array stored as int32 takes 4 bytes a number."""
    from tsne_atlas.files.explorer_page import b64

    assert script_json({"a": "ü<>&", "b": [1, 2.5]}) == '{"a":"ü\\u003c\\u003e\\u0026","b":[1,2.5]}'
    with pytest.raises(ValueError):
        script_json({"x": float("nan")})
    text = b64(np.array([1, -2], dtype=np.int64), "<i4")
    assert text == "AQAAAP7///8=" and text.isascii()


def decoded_density(density: dict) -> list[np.ndarray]:
    """The contour lines of a run's ``density`` entry, decoded as the page's code does (showDensity)."""
    starts = from_b64(density["starts"], "<u2").reshape(-1, 2).astype(np.int64)
    lengths = from_b64(density["lengths"], "<i4")
    deltas = from_b64(density["deltas"], "<i1").reshape(-1, 2).astype(np.int64)
    lines, at = [], 0
    for start, length in zip(starts, lengths):
        steps = np.vstack([start, start + np.cumsum(deltas[at : at + length], axis=0)])
        lines.append(np.array(density["origin"]) + np.array(density["step"]) * steps)
        at += length
    assert at == len(deltas)
    return lines


def distance_to_line(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Each point's distance to the polyline ``line``."""
    a, ab = line[:-1], np.diff(line, axis=0)
    t = np.clip(((points[:, None] - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-300), 0, 1)
    return np.linalg.norm(points[:, None] - (a + t[..., None] * ab), axis=-1).min(axis=1)


def test_density_contours_are_the_named_maps_within_half_a_cell_at_two_bytes_a_vertex():
    """density_lines: the lines of cluster_map.density_grid at CONTOUR_LEVELS, as the named maps draw
    them, simplified: every original vertex within DENSITY_TOLERANCE of a grid cell (plus the lattice's
    rounding) of the shipped line and back, ends kept (a closed line stays closed), fewer than half the
    vertices, each stored as two int8 steps."""
    rng = np.random.default_rng(3)
    angle = rng.uniform(0, np.pi, 300)
    coords = np.concatenate(
        [
            rng.normal((0, 0), 1.0, size=(600, 2)),
            rng.normal((8, 3), 0.5, size=(300, 2)),
            rng.normal((3, -6), 2.0, size=(400, 2)),
            np.column_stack([12 + 5 * np.cos(angle), -3 + 5 * np.sin(angle)]) + rng.normal(0, 0.2, (300, 2)),
        ]
    )
    density = bx.density_lines(coords)
    lines = decoded_density(density)
    x, y, grid = cluster_map.density_grid(coords)
    generator = contourpy.contour_generator(x, y, grid, line_type=contourpy.LineType.Separate)
    original = [line for level in cluster_map.CONTOUR_LEVELS for line in generator.lines(level)]
    assert len(lines) == len(original) > 4
    assert np.allclose(density["step"], [(x[1] - x[0]) / bx.DENSITY_STEPS, (y[1] - y[0]) / bx.DENSITY_STEPS])
    rounding = np.hypot(*density["step"])
    allowed = bx.DENSITY_TOLERANCE * min(x[1] - x[0], y[1] - y[0]) + 1.5 * rounding
    for shipped, line in zip(lines, original):
        assert distance_to_line(line, shipped).max() <= allowed
        assert distance_to_line(shipped, line).max() <= allowed
        assert np.abs(shipped[[0, -1]] - line[[0, -1]]).max() <= rounding
    kept, total = sum(map(len, lines)), sum(map(len, original))
    assert kept < total / 2
    assert len(base64.b64decode(density["deltas"])) == 2 * (kept - len(lines))


def test_simplify_line_keeps_the_ends_and_each_corner_beyond_the_tolerance():
    line = np.array([[0, 0], [1, 0.05], [2, 0], [3, 0.3], [4, 0], [4, 1], [4, 2]], dtype=float)
    assert bx.simplify_line(line, 0.1).tolist() == [[0, 0], [2, 0], [3, 0.3], [4, 0], [4, 2]]
    assert bx.simplify_line(line, 0.5).tolist() == [[0, 0], [4, 0], [4, 2]]
    ring = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], dtype=float)  # closed: its start is its end
    assert bx.simplify_line(ring, 0.1).tolist() == ring.tolist()


def test_cluster_anchors_are_each_named_clusters_member_nearest_its_median():
    """As cluster_map.anchors: the member nearest the median, not the mean (which the far point drags),
    in the order asked; a cluster not asked for (not named) plays no part."""
    coords = np.array([[0, 0], [1, 0], [2, 0], [3, 0], [100, 0], [0, 5], [0, 6.2], [0, 7], [50, 50]], dtype=float)
    codes = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2])
    assert bx.cluster_anchors(coords, codes, [1, 0]).tolist() == [[0, 6.2], [2, 0]]
    assert bx.cluster_anchors(coords, codes, [2]).tolist() == [[50, 50]]


def test_page_ships_the_sets_clusters_and_per_run_anchors_and_contours(sweep):
    data = read_page_data(sweep.html)
    (option,) = [o for o in data["colourings"] if o.get("key") == "cluster"]
    (colouring,) = option["sets"]
    assert colouring["categories"] == [f"{c}: {name}" for name, c in CLUSTERS.items()]
    assert from_b64(colouring["codes"], "<i4").tolist() == sweep_clusters(sweep.paths)
    assert data["sets"][0]["clusters"] == {"numbers": [0, 1, 2], "texts": list(CLUSTERS)}
    codes = np.array(sweep_clusters(sweep.paths))
    for run, key in zip(data["runs"], sorted(sweep.coords)):
        coords = sweep.coords[key]
        anchors = from_b64(run["anchors"], "<f4").reshape(-1, 2)
        assert np.allclose(anchors, bx.cluster_anchors(coords, codes, [0, 1, 2]))
        assert run["density"] == bx.density_lines(coords)


def test_a_subsample_names_only_the_clusters_it_shows_and_lists_every_cluster(capped):
    """Above max_images the page's clusters are those of its shown images: every cluster of clusters.csv
    in the legend (numbers are the table's), names only for clusters with shown images."""
    data = read_page_data(capped.html)
    keep = fixed_subsample(30, 10)
    (colouring,) = next(o for o in data["colourings"] if o.get("key") == "cluster")["sets"]
    assert colouring["categories"] == ["0: cluster 0", "1: cluster 1", "2: cluster 2", "3: stray"]
    assert from_b64(colouring["codes"], "<i4").tolist() == [capped.cluster_numbers[i] for i in keep]
    shown = np.bincount([capped.cluster_numbers[i] for i in keep], minlength=4)
    assert shown[3] == 0
    named = data["sets"][0]["clusters"]
    assert named["numbers"] == sorted(range(3), key=lambda c: (-shown[c], c))
    assert len(from_b64(data["runs"][0]["anchors"], "<f4")) == 2 * 3


def test_a_clusters_file_of_other_images_is_one_line_naming_it(sweep, tmp_path):
    other = write_cluster_file(
        tmp_path / "clusters.csv", sweep.paths[1:], sweep_clusters(sweep.paths)[1:], {0: "a", 1: "b", 2: "c"}
    )
    with pytest.raises(AtlasError, match=r"clusters.csv has no cluster for 1 image\(s\), e.g. .*; delete it and rerun"):
        build(sweep, tmp_path / "x.html", cluster_files={"net": other})
    gap = write_cluster_file(
        tmp_path / "gap.csv", sweep.paths, [0 if c == 0 else 2 for c in sweep_clusters(sweep.paths)], {0: "a", 2: "c"}
    )
    with pytest.raises(AtlasError, match=r"gap.csv: clusters are not numbered 0 to 1; delete it and rerun"):
        build(sweep, tmp_path / "x.html", cluster_files={"net": gap})
    assert not (tmp_path / "x.html").exists()


# --- two maps side by side, linked ---

RIGHT = bx.COMPARE_SUFFIX  # the right map's model names: points-2, plot-2, ...
# The second feature set's clusters: by the image's row in the sample (even, odd), unlike net's by label.
OTHER_CLUSTERS = {0: "even", 1: "odd"}
NET_P5, NET_P30, OTHER_P5, OTHER_P30 = (
    "net · t-SNE perplexity 5, seed 0 (KL 0.90)",
    "net · t-SNE perplexity 30, seed 1 (KL 0.40)",
    "other · t-SNE perplexity 5, seed 0 (KL 0.90)",
    "other · t-SNE perplexity 30, seed 1 (KL 0.40)",
)


@pytest.fixture(scope="module")
def linked(sweep) -> SimpleNamespace:
    """The sweep with a second feature set, ``other``: its two runs put the images in other cells of the
    grid (a fixed shuffle per run), and it has its own k-NN graph and clusters (even and odd rows) and no
    predictions; so the two maps differ in places, neighbours and clusters. Built with either backend."""
    folder = sweep.folder / "linked"
    folder.mkdir()
    labels = [p.split("/")[0] for p in sweep.paths]
    runs, coords = [], {"net": sweep.coords, "other": {}}
    for k, run in enumerate(RUNS):
        run_coords = grid(len(sweep.paths))[np.random.default_rng(10 + k).permutation(len(sweep.paths))]
        meta = {**run, "features": "other", "classes": sorted(set(labels)), "weights_random": True,
                "model": "resnet18", "n_images": len(sweep.paths), "implementation": "opentsne"}  # fmt: skip
        tsv, meta_json = folder / f"other-run{k}.tsv", folder / f"other-run{k}.json"
        write_embedding(str(tsv), str(meta_json), sweep.paths, labels, run_coords, meta, hostile_metadata(sweep.paths))
        runs.append((str(tsv), str(meta_json)))
        coords["other"][run["perplexity"], run["seed"]] = run_coords
    graph, _ = write_graph(folder / "k-4.npz", len(sweep.paths), seed=1)
    other_clusters = [i % 2 for i in range(len(sweep.paths))]
    linked = SimpleNamespace(
        paths=sweep.paths,
        coords=coords,
        graphs={"net": sweep.graph, "other": graph},
        clusters={**sweep.clusters, "other": write_cluster_file(folder / "clusters.csv", sweep.paths, other_clusters, OTHER_CLUSTERS)},
        pages={},
    )  # fmt: skip
    for backend in ("canvas", "webgl"):
        linked.pages[backend] = folder / f"explorer-{backend}.html"
        build(sweep, linked.pages[backend], runs=[*sweep.runs, *runs], order=["net", "other"], backend=backend,
              features_files={**sweep.features, "other": write_plain_features(folder / "none.h5", sweep.paths)},
              graph_files={**sweep.neighbors, "other": str(folder / "k-4.npz")}, cluster_files=linked.clusters)  # fmt: skip
    return linked


def selected_in(driver, side: int) -> list[int]:
    """The rows selected in the left (0) or right (1) map, sorted."""
    return sorted(
        model_value(driver, bx.POINTS_NAME + (RIGHT if side else ""), "Array.from(m.data_source.selected.indices)")
    )


def source_points(driver, name: str) -> list[list[float]]:
    """The (x, y) points of a named scatter's source (the ring, the clicked image), as the page set them."""
    return [list(p) for p in zip(*model_value(driver, name, "[Array.from(m.data.x), Array.from(m.data.y)]"))]


def drag(driver, plot: str, tool: str, corners: list) -> None:
    """Make ``tool`` (BoxSelectTool, LassoSelectTool) the active drag of the named plot and drag the pointer
    through ``corners`` (screen pixels) with the button held, as a user does."""
    driver.execute_script(
        "const plot = Bokeh.documents[0].get_model_by_name(arguments[0]);"
        "plot.toolbar.active_drag = plot.toolbar.tools.find((t) => t.constructor.__name__ === arguments[1]);",
        plot,
        tool,
    )
    actions = ActionChains(driver)
    pointer = actions.w3c_actions.pointer_action
    pointer.move_to_location(round(corners[0][0]), round(corners[0][1]))
    pointer.pointer_down()
    for x, y in corners[1:]:
        pointer.move_to_location(round(x), round(y))
    pointer.pointer_up()
    actions.perform()


def around(driver, indices: list[int], renderer: str, margin: float = 15) -> tuple[np.ndarray, np.ndarray]:
    """The screen box (top-left, bottom-right) around the given points of a renderer, ``margin`` wider."""
    corners = np.array([hb.point_position(driver, i, renderer) for i in indices])
    return corners.min(axis=0) - margin, corners.max(axis=0) + margin


def expected_makeup(cluster_file: str, paths: list[str], rows: list[int], shown: int = 4) -> list[list]:
    """The make-up box's rows for a selection, computed from clusters.csv: [cluster, count] per cluster of
    the selection, most images first (then by number), the first ``shown``, then [None, the rest's count]."""
    codes, _ = cluster_of_paths(cluster_file, paths)
    order = sorted(Counter(codes[i] for i in rows).items(), key=lambda item: (-item[1], item[0]))
    rest = sum(count for _, count in order[shown:])
    return [[code, count] for code, count in order[:shown]] + ([[None, rest]] if rest else [])


def makeup_rows(driver) -> dict[str, list[list]]:
    """The make-up box as shown: per feature set id, its rows [cluster number (None: the rest), count],
    checked against each row's text (``<share>% · <count>``)."""
    blocks = driver.execute_script(
        """return Array.from(document.querySelectorAll('#makeup .makeup-set')).map((block) => [
            tsneAtlas.data.sets[Number(block.dataset.set)].id,
            Array.from(block.querySelectorAll('.share')).map((row) => [
                row.dataset.cluster === undefined ? null : Number(row.dataset.cluster), Number(row.dataset.count),
                row.querySelector('.n').textContent])]);"""
    )
    total = None
    out = {}
    for set_id, rows in blocks:
        n = sum(count for _, count, _ in rows)
        total = total or n
        assert n == total  # every set accounts for every selected image
        for _, count, text in rows:
            assert text == f"{round(100 * count / n)}% · {count}"
        out[set_id] = [[cluster, count] for cluster, count, _ in rows]
    return out


def test_partner_runs_are_the_same_method_settings_and_seed_in_the_next_feature_set():
    def meta(features, method="tsne", perplexity=30.0, seed=0):
        return {"features": features, "method": method, "perplexity": perplexity, "seed": seed,
                "n_neighbors": 15, "min_dist": 0.1}  # fmt: skip

    metas = [meta("a", seed=0), meta("a", seed=1), meta("a", "umap"), meta("b", seed=1), meta("b", seed=0)]
    # a's seed 1 -> b's seed 1; a's UMAP (b has none) -> b's first run; b's -> a's, wrapping round.
    assert bx.partner_runs(metas, ["a", "b"]) == [4, 3, 3, 1, 0]
    assert bx.partner_runs(metas[:3], ["a"]) == [1, 2, 0]  # one set: the next run of the menu
    assert bx.partner_runs(metas[:1], ["a"]) == [0]


def test_compare_puts_the_next_sets_run_beside_each_coloured_by_its_own_sets_clusters(driver, linked):
    page = open_fresh(driver, linked.pages["canvas"])
    assert page.execute_script("return document.getElementById('compare-plot').hidden")
    assert not page.find_element("id", "compare-select").is_enabled()
    page.find_element("id", "compare-toggle").click()
    hb.wait_for_paint(page)
    # The partner: other's run of the same method, settings and seed, in the right map, laid out beside.
    assert Select(page.find_element("id", "compare-select")).first_selected_option.text == OTHER_P5
    right = np.column_stack(
        [points_column(page, "x", bx.POINTS_NAME + RIGHT), points_column(page, "y", bx.POINTS_NAME + RIGHT)]
    )
    assert np.array_equal(right, linked.coords["other"][5.0, 0].astype(np.float32))
    left_box, right_box = page.execute_script(
        """return ['plot', 'plot-2'].map((name) => {
            const r = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name(name)).canvas_view.el.getBoundingClientRect();
            return [r.left, r.right, r.width, r.height]; });"""
    )
    assert left_box[1] <= right_box[0] + 2 and right_box[2] > 300 and right_box[3] > 300  # side by side, full size
    assert "perplexity 5, seed 0" in model_value(page, bx.PLOT_NAME + RIGHT, "m.title.text")
    # Colour by cluster: each map by its own set's clusters, a legend for each.
    choose(page, "colour-select", "cluster")
    net, other = sweep_clusters(linked.paths), [i % 2 for i in range(len(linked.paths))]
    assert points_column(page, "c") == [c + 0.5 for c in net]
    assert points_column(page, "c", bx.POINTS_NAME + RIGHT) == [c + 0.5 for c in other]
    headings = page.execute_script(
        "return Array.from(document.querySelectorAll('#legend h3')).map((h) => h.textContent)"
    )
    assert headings == ["net (left map)", "other (right map)"]
    assert "1: odd\n4" in page.find_element("id", "legend").text
    assert model_value(page, "colour-mapper" + RIGHT, "m.palette") == [to_hex(c) for c in class_colours(2)]
    # Hiding "1: odd" in the right map's legend hides those points there only.
    page.execute_script('document.querySelector(\'#legend .entries[data-sides="1"] .entry[data-code="1"]\').click()')
    assert model_value(page, bx.POINTS_NAME + RIGHT, "m.view.filter.booleans") == [c != 1 for c in other]
    assert model_value(page, bx.POINTS_NAME, "m.view.filter.booleans") is None
    # The hover card names both sets' clusters.
    index = linked.paths.index("bee/bee_1.png")
    card = hb.hover_point(page, index)["text"]
    assert (
        "cluster (net): 1: bee" in card and f"cluster (other): {other[index]}: {OTHER_CLUSTERS[other[index]]}" in card
    )
    # Two runs of one set: one legend, as for one map; names drawn in both maps.
    choose(page, "compare-select", NET_P30)
    right = np.column_stack(
        [points_column(page, "x", bx.POINTS_NAME + RIGHT), points_column(page, "y", bx.POINTS_NAME + RIGHT)]
    )
    assert np.array_equal(right, linked.coords["net"][30.0, 1].astype(np.float32))
    assert page.execute_script("return document.querySelectorAll('#legend h3').length") == 0
    assert points_column(page, "c", bx.POINTS_NAME + RIGHT) == [c + 0.5 for c in net]
    right_names = page.execute_script(
        "return Array.from(document.querySelectorAll('#map-names-2 .map-name')).map((n) => n.textContent)"
    )
    assert right_names and set(right_names) <= set(CLUSTERS)  # names that would overlap are left out
    page.find_element("id", "compare-toggle").click()
    hb.wait_for_paint(page)
    assert page.execute_script("return document.getElementById('compare-plot').hidden")
    assert "compare=" not in page.current_url
    assert severe_console_messages(page) == []


@pytest.mark.parametrize("backend", ["canvas", "webgl"])
def test_a_selection_in_either_map_selects_the_same_images_in_both_with_their_clusters(driver, linked, backend):
    page = open_fresh(driver, linked.pages[backend])
    assert model_value(page, bx.PLOT_NAME + RIGHT, "m.output_backend") == backend
    page.find_element("id", "compare-toggle").click()
    hb.wait_for_paint(page)
    assert page.execute_script("return document.getElementById('makeup').hidden")
    # A box around the lowest row of the left map (4 images): the same 4 rows are selected on the right.
    left = linked.coords["net"][5.0, 0]
    row = [i for i in range(len(linked.paths)) if left[i, 1] == left[:, 1].min()]
    (x0, y0), (x1, y1) = around(page, row, bx.POINTS_NAME)
    drag(page, bx.PLOT_NAME, "BoxSelectTool", [(x0, y0), ((x0 + x1) / 2, (y0 + y1) / 2), (x1, y1)])
    WebDriverWait(page, 5).until(lambda d: d.find_element("id", "selection-count").text == "4 selected")
    assert selected_in(page, 0) == selected_in(page, 1) == sorted(row)
    assert makeup_rows(page) == {
        set_id: expected_makeup(linked.clusters[set_id], linked.paths, row) for set_id in ("net", "other")
    }
    assert page.find_element("css selector", "#makeup .makeup-set h3").text == "net (left map)"
    # A lasso around two images of the right map: those two, in both maps.
    right = linked.coords["other"][5.0, 0]
    two = sorted(range(len(linked.paths)), key=lambda i: (right[i, 1], right[i, 0]))[:2]
    (x0, y0), (x1, y1) = around(page, two, bx.POINTS_NAME + RIGHT)
    drag(page, bx.PLOT_NAME + RIGHT, "LassoSelectTool", [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0 + 1)])
    WebDriverWait(page, 5).until(lambda d: d.find_element("id", "selection-count").text == "2 selected")
    assert selected_in(page, 0) == selected_in(page, 1) == sorted(two)
    assert makeup_rows(page) == {
        set_id: expected_makeup(linked.clusters[set_id], linked.paths, two) for set_id in ("net", "other")
    }
    page.find_element("id", "clear-selection").click()
    assert selected_in(page, 1) == [] and page.execute_script("return document.getElementById('makeup').hidden")
    assert severe_console_messages(page) == []


def test_the_makeup_lists_the_largest_clusters_and_sums_the_rest(driver, linked):
    """Six clusters in a selection of nine: four rows, most images first (ties by number), and one for the
    other two; with one map, one set."""
    page = open_fresh(driver, linked.pages["canvas"])
    codes = [0, 0, 1, 2, 2, 2, 3, 4, 5]
    counts = page.execute_script("return tsneAtlas.makeupCounts(arguments[0], 0)", list(range(9)))
    assert counts == [{"code": c, "count": n} for c, n in ((0, 4), (1, 3), (2, 2))]  # net's: by label
    page.execute_script(
        """const clusters = tsneAtlas.data.colourings.find((o) => o.key === 'cluster').sets[0];
        const codes = new Int32Array(arguments[0]);
        clusters.codes = btoa(String.fromCharCode(...new Uint8Array(codes.buffer)));
        clusters.categories = ['0: a', '1: b', '2: c', '3: d', '4: e', '5: f'];
        clusters.colours = Array(6).fill('#000000');""",
        codes,
    )
    page.execute_script("tsneAtlas.panels[0].models.source.selected.indices = [0, 1, 2, 3, 4, 5, 6, 7, 8]")
    assert makeup_rows(page) == {"net": [[2, 3], [0, 2], [1, 1], [3, 1], [None, 2]]}
    assert page.find_element("css selector", "#makeup .rest").text == "2 more clusters\n22% · 2"


def test_hover_in_one_map_rings_the_same_image_in_the_other(driver, linked):
    page = open_fresh(driver, linked.pages["canvas"])
    index = linked.paths.index("ant/ant_1.png")
    hb.hover_point(page, index)
    assert source_points(page, bx.LINKED_NAME + "-source" + RIGHT) == []  # one map: nothing to ring
    page.find_element("id", "compare-toggle").click()
    hb.wait_for_paint(page)
    assert hb.hover_point(page, index)["thumb"] == index
    assert page.execute_script("return tsneAtlas.state.linked") == index
    assert source_points(page, bx.LINKED_NAME + "-source" + RIGHT) == [list(linked.coords["other"][5.0, 0][index])]
    assert source_points(page, bx.LINKED_NAME + "-source") == []
    # And the other way round: an image hovered on the right is ringed on the left.
    other = linked.paths.index("bee/bee_2.png")
    card = hb.hover_point(page, other, bx.POINTS_NAME + RIGHT)
    assert card["thumb"] == other and page.execute_script("return tsneAtlas.state.linked") == other
    assert source_points(page, bx.LINKED_NAME + "-source") == [list(linked.coords["net"][5.0, 0][other])]
    assert source_points(page, bx.LINKED_NAME + "-source" + RIGHT) == []
    # The pointer leaves the maps: no ring.
    ActionChains(page).move_to_element(page.find_element("tag name", "h1")).perform()
    WebDriverWait(page, 5).until(lambda d: d.execute_script("return tsneAtlas.state.linked") == -1)
    assert source_points(page, bx.LINKED_NAME + "-source") == []
    assert severe_console_messages(page) == []


def test_a_click_in_the_right_map_lists_its_sets_neighbours_and_marks_the_image_in_both(driver, linked):
    page = open_fresh(driver, linked.pages["canvas"])
    page.find_element("id", "compare-toggle").click()
    hb.wait_for_paint(page)
    index = linked.paths.index("ant/ant_2.png")
    hb.move_to_point(page, index, click=True, renderer=bx.POINTS_NAME + RIGHT)
    WebDriverWait(page, 5).until(
        lambda d: d.execute_script("return document.getElementById('neighbours').dataset.side") == "1"
    )
    features, on_map = panel_indices(page)
    assert features == list(linked.graphs["other"][index, :K])  # the right map's set's graph, not net's
    coords = linked.coords["other"][5.0, 0]
    distances = np.linalg.norm(coords - coords[index], axis=1)
    distances[index] = np.inf
    assert on_map == list(np.argsort(distances, kind="stable")[:K])
    assert "nearest on the right map" in page.find_element("id", "neighbours").text
    for suffix, run_coords in (("", linked.coords["net"][5.0, 0]), (RIGHT, coords)):
        assert source_points(page, f"{bx.FOCUS_NAME}-source{suffix}") == [list(run_coords[index])]
        ends = model_value(page, f"{bx.LINKS_NAME}-source{suffix}", "[Array.from(m.data.x1), Array.from(m.data.y1)]")
        assert np.allclose(np.array(ends).T, run_coords[features])
    assert severe_console_messages(page) == []


def test_the_address_keeps_the_compared_run_and_where_the_image_was_clicked(driver, linked):
    page = open_fresh(driver, linked.pages["canvas"])
    page.find_element("id", "compare-toggle").click()
    choose(page, "compare-select", OTHER_P30)
    index = linked.paths.index("bee/bee_0.png")
    hb.move_to_point(page, index, click=True, renderer=bx.POINTS_NAME + RIGHT)
    WebDriverWait(page, 5).until(lambda d: "panel=right" in d.current_url)
    fragment = urllib.parse.urlparse(page.current_url).fragment
    assert urllib.parse.parse_qs(fragment) == {"compare": ["3"], "image": ["bee/bee_0.png"], "panel": ["right"]}
    page.get("about:blank")
    hb.open_page(page, linked.pages["canvas"], fragment=fragment)
    assert page.find_element("id", "compare-toggle").is_selected()
    assert Select(page.find_element("id", "compare-select")).first_selected_option.text == OTHER_P30
    right = np.column_stack(
        [points_column(page, "x", bx.POINTS_NAME + RIGHT), points_column(page, "y", bx.POINTS_NAME + RIGHT)]
    )
    assert np.array_equal(right, linked.coords["other"][30.0, 1].astype(np.float32))
    panel = page.execute_script("const d = document.getElementById('neighbours').dataset; return [d.index, d.side]")
    assert panel == [str(index), "1"]
    assert panel_indices(page)[0] == list(linked.graphs["other"][index, :K])
    page.find_element("id", "compare-toggle").click()
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.current_url).fragment) == {"image": ["bee/bee_0.png"]}
    assert severe_console_messages(page) == []


# --- The query set's layer: new images placed on the sweep's maps (place_query), drawn apart from the
# reference on every map, hovered and clicked like it, their neighbours the nearest reference images. ---

# Each query image and the reference image it is a near copy of in feature space (so that one is its
# nearest): one of a class the reference lacks, one named as markup.
QUERY_TWINS = {
    "ant/ant_q.png": "ant/ant_0.png",
    "bee/bee_q.png": "bee/bee_1.png",
    f"wasp/{HOSTILE_FILE}": f"{HOSTILE_CLASS}/{HOSTILE_CLASS}_0.png",
    "wasp/wasp_0.png": "bee/bee_2.png",
}
QUERY_K = 5  # nearest reference images in neighbours.npz; the page lists K of them
QUERY_OFFSET = np.array([5.0, 4.0])  # each placed beside its twin: between the grid's cells, on no point


def write_query(folder: Path, paths: list[str], runs: list, features: dict[str, np.ndarray]) -> SimpleNamespace:
    """A query set as the workflow writes it, with its real writers: images in their own folder, the query's
    images.csv and manifest.csv (a metadata column), its thumbnails, each feature set's nearest reference
    images (an exact search of near copies of QUERY_TWINS among the set's reference ``features``) and its
    place on each of ``runs``: beside its twin, QUERY_OFFSET away."""
    from tsne_atlas.files.manifest import write_manifest
    from tsne_atlas.files.runs import read_embedding, read_meta, run_name, write_run

    root = folder / "query-data"
    query_paths = sorted(QUERY_TWINS)
    for i, path in enumerate(query_paths):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 36), (250, 30 + 60 * i, 200)).save(root / path)
    images, manifest = folder / "query-images.csv", folder / "query-manifest.csv"
    write_images(images, query_paths, ["0" * 64] * len(query_paths))
    labels = [path.split("/")[0] for path in query_paths]
    write_manifest(manifest, query_paths, labels, {"batch": [f"week {i}" for i in range(len(query_paths))]})
    explorer_thumbnails(str(images), str(root), str(folder / "query-explorer"), THUMB_SIZE, 5000, threads=1)
    twins = [paths.index(QUERY_TWINS[path]) for path in query_paths]
    neighbours, nearest = {}, {}
    for set_id, reference in features.items():
        near = reference[twins] + np.random.default_rng(5).normal(scale=0.01, size=(len(twins), reference.shape[1]))
        distances, indices = NearestNeighbors(n_neighbors=QUERY_K).fit(reference).kneighbors(near)
        assert indices[:, 0].tolist() == twins
        neighbours[set_id] = str(folder / f"{set_id}-query-neighbours.npz")
        write_neighbours(neighbours[set_id], indices, distances)
        nearest[set_id] = indices
    placed, coords = [], {}
    for tsv, meta_json in runs:
        meta = read_meta(meta_json)
        _, run_coords = read_embedding(tsv)
        record = {key: meta[key] for key in ("features", "method", "perplexity", "seed")}
        record |= {"placed_on": tsv, "n_reference": len(paths), "n_query": len(query_paths)}
        name = run_name(meta).replace("/", "-")
        out = (str(folder / f"{name}-placed.tsv"), str(folder / f"{name}-placed.json"))
        coords[meta["features"], meta["perplexity"], meta["seed"]] = run_coords[twins] + QUERY_OFFSET
        write_run(*out, query_paths, run_coords[twins] + QUERY_OFFSET, record)
        placed.append(out)
    return SimpleNamespace(
        inputs=bx.QueryInputs(placed[::-1], str(manifest), str(folder / "query-explorer"), neighbours, str(root)),
        root=root,
        paths=query_paths,
        labels=labels,
        twins=twins,
        nearest=nearest,
        coords=coords,
    )


@pytest.fixture(scope="module")
def queried(sweep) -> SimpleNamespace:
    """The sweep with a query set, its page built by the rule's entry point with the query's files, beside
    the same page without them."""
    folder = sweep.folder / "queried"
    folder.mkdir()
    query = write_query(folder, sweep.paths, sweep.runs, {"net": graph_features(len(sweep.paths))})
    inputs = {
        "embeddings": [tsv for tsv, _ in sweep.runs],
        "metas": [meta for _, meta in sweep.runs],
        "manifest": manifest_of(sweep.runs),
        "features": [sweep.features["net"]],
        "graphs": [sweep.neighbors["net"]],
        "clusters": [sweep.clusters["net"]],
        "outliers": [write_outlier_scores(folder / "outliers.csv", sweep.paths[:2], [3.0, 2.0])],
        "quality": write_problems(folder / "quality.csv", sweep.paths, {}),
        "thumbnails": str(sweep.thumbnails),
    }
    query_inputs = {
        "query_placed": [tsv for tsv, _ in query.inputs.placed],
        "query_placed_metas": [meta for _, meta in query.inputs.placed],
        "query_manifest": query.inputs.manifest,
        "query_thumbnails": query.inputs.thumbnails,
        "query_neighbours": [query.inputs.neighbours["net"]],
    }
    params = {
        "order": ["net"],
        "root": str(sweep.root),
        "inline_max_images": 5000,
        "neighbours": K,
        "backend": "canvas",
    }
    for name, extra, extra_params in (("query", query_inputs, {"query_root": str(query.root)}), ("plain", {}, {})):
        snakemake = rule_job(
            "explorer",
            input={**inputs, **extra},
            params={**params, **extra_params},
            output={"html": str(folder / f"{name}.html")},
            log=str(folder / "logs" / f"{name}.log"),
        )
        run_rule(snakemake, bx.explorer)
    query.html, query.plain, query.sweep = folder / "query.html", folder / "plain.html", sweep
    return query


def query_index(sweep, q: int) -> int:
    """How the page names query image ``q``: image N + q."""
    return len(sweep.paths) + q


def test_the_page_carries_the_query_on_each_run_and_its_nearest_reference_images(queried):
    data = read_page_data(queried.html)
    query, sweep = data["query"], queried.sweep
    assert query["paths"] == queried.paths and query["n"] == query["n_total"] == 4
    # Labels as the query's manifest has them: wasp, a class the reference lacks, is one of them.
    assert query["classes"] == ["ant", "bee", "wasp"] and "wasp" not in data["classes"]
    assert [query["classes"][c] for c in from_b64(query["label_codes"], "<i4")] == queried.labels
    assert query["metadata"] == {"columns": ["batch"], "values": [["week 0", "week 1", "week 2", "week 3"]]}
    # Each run (menu order: perplexity 5 first) carries the query's own place on it.
    for run, (perplexity, seed) in zip(query["runs"], [(5.0, 0), (30.0, 1)]):
        placed = np.column_stack([from_b64(run[axis], "<f4") for axis in "xy"])
        assert np.array_equal(placed, queried.coords["net", perplexity, seed].astype(np.float32))
    assert [run["label"] for run in data["runs"]] == [
        "net · t-SNE perplexity 5, seed 0 (KL 0.90)",
        "net · t-SNE perplexity 30, seed 1 (KL 0.40)",
    ]
    # Neighbours: the first K of neighbours.npz's, indices into the reference images of the page.
    (neighbours,) = query["sets"]
    assert neighbours["k"] == K
    listed = from_b64(neighbours["neighbours"], "<i4").reshape(4, K)
    assert [[data["paths"][j] for j in row] for row in listed] == [
        [sweep.paths[j] for j in row[:K]] for row in queried.nearest["net"]
    ]
    assert [data["paths"][row[0]] for row in listed] == [QUERY_TWINS[p] for p in queried.paths]
    assert query["image_base"] == "query-data/" and len(query["thumbs"]["atlases"]) == 1
    assert query["thumbs"]["inline"] and query["thumbs"]["atlases"][0].startswith("data:image/jpeg;base64,")
    assert data["title"] == "tsne-atlas explorer: net features, 9 images, 2 runs, 4 query images"
    # Everything else is the page without a query set.
    plain = read_page_data(queried.plain)
    assert {k: v for k, v in data.items() if k not in ("query", "title")} == {
        k: v for k, v in plain.items() if k != "title"
    }


def test_a_page_without_a_query_set_carries_none_of_its_code(queried):
    plain = queried.plain.read_text(encoding="utf-8")
    page_js = (bx.PAGE_FILES / "explorer.js").read_text(encoding="utf-8")
    page_css = (bx.PAGE_FILES / "explorer.css").read_text(encoding="utf-8")
    assert bx.page_code(False) == (page_js, page_css)
    assert f"<script>{page_js}</script>" in plain and f"<style>{page_css}</style>" in plain
    assert "query-toggle" not in plain and f'"name":"{bx.QUERY_NAME}' not in plain
    assert "query" not in read_page_data(queried.plain)
    # With one: query.js inside explorer.js's closure, before its exports, and the toggle.
    text = queried.html.read_text(encoding="utf-8")
    query_js = (bx.PAGE_FILES / "query.js").read_text(encoding="utf-8")
    assert page_js.replace(bx.QUERY_SPLICE, query_js + bx.QUERY_SPLICE) in text
    assert 'id="query-toggle" type="checkbox" checked>' in text and "query set (4)</label>" in text


def test_shown_neighbours_of_query_rows_index_the_shown_reference_images():
    # Three query images' nearest among five reference images, of which 0, 2 and 3 are shown.
    indices = np.array([[1, 2, 3], [4, 0, 2], [3, 1, 4]])
    distances = np.arange(9, dtype=float).reshape(3, 3)
    shown, shown_distances = bx.shown_neighbours(indices, distances, np.array([0, 2, 3]), 2, rows=np.arange(3))
    assert shown.tolist() == [[1, 2], [0, 1], [2, -1]]
    assert shown_distances[:, 0].tolist() == [1, 4, 6] and np.isnan(shown_distances[2, 1])
    # A subsample of the query images: its rows only.
    shown, _ = bx.shown_neighbours(indices, distances, np.arange(5), 3, rows=np.array([2]))
    assert shown.tolist() == [[3, 1, 4]]
    # Two query images whose neighbours are none of the last reference images shown (found on the demo).
    shown, _ = bx.shown_neighbours(np.array([[0, 1], [1, 0]]), distances[:2, :2], np.arange(6), 2, rows=np.arange(2))
    assert shown.tolist() == [[0, 1], [1, 0]]


def test_query_files_that_disagree_are_one_line_errors_naming_the_file(queried, tmp_path):
    sweep, inputs = queried.sweep, queried.inputs
    page = tmp_path / "x.html"
    with pytest.raises(
        AtlasError, match=r"placed.tsv: the query set has no placement on run net/tsne/perplexity-30_seed-1"
    ):
        build(sweep, page, query=bx.QueryInputs(inputs.placed[:1], inputs.manifest, inputs.thumbnails, inputs.neighbours, inputs.root))  # fmt: skip
    short = str(tmp_path / "short.npz")
    indices, distances = read_neighbours(inputs.neighbours["net"])
    write_neighbours(short, indices[:3], distances[:3])
    with pytest.raises(
        AtlasError, match=r"short.npz: nearest reference images of 3 query images, but the query set has 4; delete it"
    ):
        build(sweep, page, query=bx.QueryInputs(inputs.placed, inputs.manifest, inputs.thumbnails, {"net": short}, inputs.root))  # fmt: skip
    write_neighbours(short, indices + 9, distances)
    with pytest.raises(AtlasError, match=r"short.npz: indices outside the reference sample's 9 images; delete it"):
        build(sweep, page, query=bx.QueryInputs(inputs.placed, inputs.manifest, inputs.thumbnails, {"net": short}, inputs.root))  # fmt: skip
    other = tmp_path / "other-thumbnails"
    explorer_thumbnails(str(write_images_csv(tmp_path, queried.paths[::-1])), str(queried.root), str(other), THUMB_SIZE, 5000, 1)  # fmt: skip
    with pytest.raises(
        AtlasError, match=r"thumbnails.json: lists other images than .*placed.tsv; delete .*other-thumbnails"
    ):
        build(sweep, page, query=bx.QueryInputs(inputs.placed, inputs.manifest, str(other), inputs.neighbours, inputs.root))  # fmt: skip
    explorer_thumbnails(str(write_images_csv(tmp_path, queried.paths)), str(queried.root), str(other), 8, 5000, 1)
    with pytest.raises(AtlasError, match=r"8-pixel cells, 16 a row, but the reference's are 32 and 16; delete"):
        build(sweep, page, query=bx.QueryInputs(inputs.placed, inputs.manifest, str(other), inputs.neighbours, inputs.root))  # fmt: skip
    assert not page.exists()


def write_images_csv(folder: Path, paths: list[str]) -> Path:
    write_images(folder / "images.csv", paths, ["0" * 64] * len(paths))
    return folder / "images.csv"


def test_a_query_set_above_max_images_shows_a_fixed_subsample_and_says_so(queried, tmp_path):
    sweep, inputs = queried.sweep, queried.inputs
    capped = tmp_path / "capped"
    explorer_thumbnails(
        str(write_images_csv(tmp_path, queried.paths)), str(queried.root), str(capped), THUMB_SIZE, 2, 1
    )
    page = tmp_path / "x.html"
    build(
        sweep, page, query=bx.QueryInputs(inputs.placed, inputs.manifest, str(capped), inputs.neighbours, inputs.root)
    )
    query = read_page_data(page)["query"]
    keep = fixed_subsample(4, 2)
    assert (query["n"], query["n_total"]) == (2, 4) and query["paths"] == [queried.paths[i] for i in keep]
    placed = np.column_stack([from_b64(query["runs"][0][axis], "<f4") for axis in "xy"])
    assert np.array_equal(placed, queried.coords["net", 5.0, 0][keep].astype(np.float32))
    listed = from_b64(query["sets"][0]["neighbours"], "<i4").reshape(2, K)
    assert listed.tolist() == queried.nearest["net"][keep, :K].tolist()
    assert "query set (2)</label>" in page.read_text(encoding="utf-8")
    assert "(a random 2 of its 4 images, explorer.max_images)" in page.read_text(encoding="utf-8")


def query_points(driver, renderer: str = bx.QUERY_NAME) -> np.ndarray:
    return np.column_stack([points_column(driver, "x", renderer), points_column(driver, "y", renderer)])


def dark_pixels(driver) -> int:
    """How many pixels of the plot's frame are near black: the query's diamonds (no colouring has black)."""
    return int((plot_pixels(driver).max(axis=2) < 60).sum())


def test_the_query_layer_shows_each_runs_places_and_hides_with_its_toggle(driver, queried):
    page = open_fresh(driver, queried.html)
    page.find_element("id", "names-toggle").click()  # the cluster names are dark text over the map
    toggle = page.find_element("id", "query-toggle")
    assert toggle.is_selected() and toggle.find_element("xpath", "..").text == "query set (4)"
    assert model_value(page, bx.QUERY_NAME, "m.visible") is True
    assert np.array_equal(query_points(page), queried.coords["net", 5.0, 0].astype(np.float32))
    drawn = dark_pixels(page)
    assert drawn > 4 * 20  # four diamonds of some 40 dark pixels each
    # Another run: the query where it was placed on that run.
    choose(page, "run-select", "net · t-SNE perplexity 30, seed 1 (KL 0.40)")
    assert np.array_equal(query_points(page), queried.coords["net", 30.0, 1].astype(np.float32))
    # Search finds query images by path and label (the reference has no wasp).
    assert search(page, "wasp") == "0 of 9 match · 2 of 4 query images"
    assert source_points(page, bx.MATCHES_NAME + "-source") == [list(queried.coords["net", 30.0, 1][q]) for q in (2, 3)]
    # Hidden (from the keyboard, the pointer still on a query image): gone from the map, from the search's
    # rings and from under the pointer, a small move over it included; kept in the address.
    assert hb.hover_point(page, 0, renderer=bx.QUERY_NAME)["thumb"] == query_index(queried.sweep, 0)
    toggle.send_keys(Keys.SPACE)
    hb.wait_for_paint(page)
    assert model_value(page, bx.QUERY_NAME, "m.visible") is False
    assert page.execute_script("return [tsneAtlas.state.hovered, document.getElementById('hover-card').hidden]") == [
        -1,
        True,
    ]
    ActionChains(page).move_by_offset(1, 0).perform()
    hb.wait_for_paint(page)
    assert page.execute_script("return [tsneAtlas.state.hovered, document.getElementById('hover-card').hidden]") == [
        -1,
        True,
    ]
    assert dark_pixels(page) < drawn / 8
    assert source_points(page, bx.MATCHES_NAME + "-source") == []
    assert "query=0" in page.current_url
    toggle.click()
    hb.wait_for_paint(page)
    assert dark_pixels(page) > drawn / 2 and "query=0" not in page.current_url
    assert severe_console_messages(page) == []


def test_hovering_a_query_image_shows_its_thumbnail_path_label_and_that_it_is_one(driver, queried):
    page = open_fresh(driver, queried.html)
    q = queried.paths.index(f"wasp/{HOSTILE_FILE}")
    card = hb.hover_point(page, q, renderer=bx.QUERY_NAME)
    assert card["thumb"] == query_index(queried.sweep, q)
    assert card["text"].split("\n") == ["query image", f"wasp/{HOSTILE_FILE}", "class: wasp", "batch: week 2"]
    thumb = page.execute_script(
        "const t = document.querySelector('#hover-card .thumb'); return [t.className, getComputedStyle(t).backgroundImage.slice(5, 60)];"
    )
    assert (
        thumb[0] == "thumb query-atlas-0"
        and thumb[1] == read_page_data(queried.html)["query"]["thumbs"]["atlases"][0][:55]
    )
    assert_no_alert(page)  # the file name is text, not markup
    assert count_deep(page, "el.tagName === 'IMG'") == 0
    # The reference's images hover as before.
    assert "query image" not in hb.hover_point(page, queried.sweep.paths.index("bee/bee_1.png"))["text"]
    assert severe_console_messages(page) == []


def test_clicking_a_query_image_lists_its_nearest_reference_images_and_the_address_keeps_it(driver, queried):
    page = open_fresh(driver, queried.html)
    sweep, q = queried.sweep, queried.paths.index("bee/bee_q.png")
    hb.move_to_point(page, q, click=True, renderer=bx.QUERY_NAME)
    WebDriverWait(page, 5).until(
        lambda d: (
            d.execute_script("return document.getElementById('neighbours').dataset.index") == str(query_index(sweep, q))
        )
    )
    features, on_map = panel_indices(page)
    assert features == queried.nearest["net"][q, :K].tolist()  # reference images, nearest first
    placed = queried.coords["net", 5.0, 0][q]
    coords = sweep.coords[5.0, 0]
    assert on_map == np.argsort(np.linalg.norm(coords - placed, axis=1), kind="stable")[:K].tolist()
    titles = page.execute_script(
        "return Array.from(document.querySelectorAll('#neighbours .neighbour')).map((n) => n.title)"
    )
    assert titles == [sweep.paths[j] for j in features + on_map]
    text = page.find_element("id", "neighbours").text
    assert "query image\nbee/bee_q.png" in text and "nearest reference images in feature space" in text
    link = page.execute_script("return document.querySelector('#neighbours a.open').getAttribute('href')")
    assert link == "query-data/bee/bee_q.png"
    # Marked where it was placed; lines to its feature-space neighbours on the reference map.
    assert source_points(page, bx.FOCUS_NAME + "-source") == [list(placed)]
    ends = model_value(page, bx.LINKS_NAME + "-source", "[Array.from(m.data.x1), Array.from(m.data.y1)]")
    assert np.allclose(np.array(ends).T, coords[features])
    fragment = urllib.parse.urlparse(page.current_url).fragment
    assert urllib.parse.parse_qs(fragment) == {"query-image": ["bee/bee_q.png"]}
    # A link to the view opens the same query image; clicking a neighbour makes it the clicked image.
    page.get("about:blank")
    hb.open_page(page, queried.html, fragment=fragment)
    assert panel_indices(page)[0] == features
    page.execute_script("document.querySelector('#neighbours .neighbour').click()")
    assert page.execute_script("return document.getElementById('neighbours').dataset.index") == str(features[0])
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.current_url).fragment) == {
        "image": [sweep.paths[features[0]]]
    }
    assert severe_console_messages(page) == []


@pytest.fixture(scope="module")
def linked_query(linked, sweep) -> SimpleNamespace:
    """The two-set sweep (``linked``) with a query set placed on every run of both sets."""
    folder = sweep.folder / "linked-query"
    folder.mkdir()
    runs = [*sweep.runs, *[(str(sweep.folder / "linked" / f"other-run{k}.tsv"), str(sweep.folder / "linked" / f"other-run{k}.json")) for k in range(2)]]  # fmt: skip
    features = {"net": graph_features(len(sweep.paths)), "other": graph_features(len(sweep.paths), seed=1)}
    query = write_query(folder, sweep.paths, runs, features)
    query.html = folder / "explorer.html"
    build(sweep, query.html, runs=runs, order=["net", "other"], query=query.inputs,
          features_files={**sweep.features, "other": write_plain_features(folder / "none.h5", sweep.paths)},
          graph_files={**sweep.neighbors, "other": str(sweep.folder / "linked" / "k-4.npz")}, cluster_files=linked.clusters)  # fmt: skip
    return query


def test_compared_maps_show_the_query_layer_on_both_and_link_its_images(driver, linked_query, sweep):
    page = open_fresh(driver, linked_query.html)
    page.find_element("id", "compare-toggle").click()
    hb.wait_for_paint(page)
    # The right map shows its own run's placement of the query (other's, perplexity 5, seed 0).
    assert np.array_equal(
        query_points(page, bx.QUERY_NAME + RIGHT), linked_query.coords["other", 5.0, 0].astype(np.float32)
    )
    q = linked_query.paths.index("ant/ant_q.png")
    assert hb.hover_point(page, q, renderer=bx.QUERY_NAME)["thumb"] == query_index(sweep, q)
    assert source_points(page, bx.LINKED_NAME + "-source" + RIGHT) == [list(linked_query.coords["other", 5.0, 0][q])]
    # Clicked in the right map: the right set's nearest reference images, marked in both maps.
    hb.move_to_point(page, q, click=True, renderer=bx.QUERY_NAME + RIGHT)
    WebDriverWait(page, 5).until(
        lambda d: d.execute_script("return document.getElementById('neighbours').dataset.side") == "1"
    )
    assert panel_indices(page)[0] == linked_query.nearest["other"][q, :K].tolist()
    assert "reference, feature space (other)" in page.find_element("id", "neighbours").text
    for suffix, key in (("", ("net", 5.0, 0)), (RIGHT, ("other", 5.0, 0))):
        assert source_points(page, f"{bx.FOCUS_NAME}-source{suffix}") == [list(linked_query.coords[key][q])]
    # Hidden in both maps at once.
    page.find_element("id", "query-toggle").click()
    assert (
        model_value(page, bx.QUERY_NAME + RIGHT, "m.visible") is False is model_value(page, bx.QUERY_NAME, "m.visible")
    )
    assert page.execute_script("return document.getElementById('neighbours').dataset.index") is None
    assert severe_console_messages(page) == []


def test_the_explorer_rule_reads_the_query_sets_files_and_without_them_writes_the_page_as_before(
    finished_run, tmp_path
):
    """The finished tiny run places a query set (tests/tiny-query.csv, two of its images labelled parrot,
    a class the reference lacks): its page carries the query's sample, thumbnails, each run's placement
    and each feature set's nearest reference images. Removing the query set reruns the explorer alone,
    whose page then holds the same reference data and no query."""
    from tsne_atlas.files.runs import read_embedding, run_name

    workdir = tmp_path  # as deep as the finished run's folder: the page's links to the dataset are the same
    shutil.copytree(finished_run[0], workdir, symlinks=True, dirs_exist_ok=True)
    results = workdir / "results"
    data = read_page_data(results / "explorer.html")
    query_paths, _ = read_images(results / "query" / "sample" / "images.csv")
    query = data["query"]
    assert (
        query["paths"] == query_paths
        and query["n"] == 10
        and read_index(results / "query" / "explorer").paths == query_paths
    )
    assert "parrot" in query["classes"] and "parrot" not in data["classes"]
    runs = sorted(zip(*(sorted(map(str, (results / "embeddings").glob(f"*/*/*.{ext}"))) for ext in ("tsv", "json"))))
    _, _, metas = bx.load_runs(runs, str(results / "sample" / "manifest.csv"), list(TINY_IDS))
    assert len(query["runs"]) == len(metas) == 8
    for run, meta in zip(query["runs"], metas):
        shown = np.column_stack([from_b64(run[axis], "<f4") for axis in "xy"])
        placed = results / "query" / "maps" / f"{run_name(meta)}.tsv"
        assert np.array_equal(shown, read_embedding(placed)[1].astype(np.float32))
    for features_id, listed in zip(TINY_IDS, query["sets"]):
        indices, _ = read_neighbours(results / "query" / "embeddings" / features_id / "neighbours.npz")
        assert (
            listed["k"] == 10
            and from_b64(listed["neighbours"], "<i4").reshape(10, 10).tolist() == indices[:, :10].tolist()
        )
    # Without the query set: the explorer alone reruns (its inputs are fewer); its page has no query left.
    config = without_query(TINY)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))  # read before any --configfile: no query left
    assert planned_jobs(workdir, config) == {"explorer": 1, "all": 1}
    result = snakemake(workdir, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    plain = read_page_data(results / "explorer.html")
    assert "query" not in plain and plain.pop("title") + ", 10 query images" == data["title"]
    assert plain == {key: value for key, value in data.items() if key not in ("query", "title")}
