"""The explorer's points page (explorer.backend points, auto above 100,000 images): its data folder, the
switch, and the page driven in a real headless Chromium from ``file://``.

The small sweep is test_explorer.py's (its helpers: hostile names, metadata and predictions, two runs on a
grid, a k-NN graph, clusters); a second page of 2,500 images on a grid tests the thumbnails a zoom shows.
"""

import csv
import io
import json
import re
import shutil
import time
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.colors import to_hex
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

import headless_browser as hb
from conftest import rule_job, schema_defaults, write_embedding
from test_explorer import (
    CLUSTERS,
    HOSTILE_CLASS,
    HOSTILE_COLUMN,
    HOSTILE_FILE,
    HOSTILE_PREDICTION,
    K,
    assert_no_alert,
    count_deep,
    hostile_metadata,
    manifest_of,
    open_fresh,
    severe_console_messages,
    sweep_clusters,
    write_cluster_file,
    write_dataset,
    write_graph,
    write_outlier_scores,
    write_predictions,
    write_problems,
    write_runs,
)
from tsne_atlas import explorer as bx
from tsne_atlas import explorer_points as bp
from tsne_atlas.config import POINTS_ABOVE, explorer_backend, explorer_thumbnail_params
from tsne_atlas.figure_style import class_colours
from tsne_atlas.files.explorer_page import from_b64, read_page_data
from tsne_atlas.files.manifest import write_images
from tsne_atlas.files.map_inputs import write_neighbours
from tsne_atlas.jobs import AtlasError, run_rule
from tsne_atlas.thumbnails import explorer_thumbnails

THUMB_SIZE = 32


def write_points_thumbnails(folder: Path, root: Path, paths: list[str], max_images: int = 5000) -> Path:
    """The thumbnails a points page reads: every image, in atlases of 8 x 8 cells."""
    images = folder / "images.csv"
    write_images(images, paths, ["0" * 64] * len(paths))
    explorer_thumbnails(
        str(images), str(root), str(folder / "explorer"), THUMB_SIZE, max_images, 1, every_image=True, columns=8
    )
    return folder / "explorer"


def build_points(sweep, page: Path, **changes) -> None:
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
        backend="points",
        data_folder=page.with_name(f"{page.stem}-data"),
    )
    bx.build_explorer(**{**arguments, **changes})


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("points")
    paths = write_dataset(folder / "data")
    runs, coords = write_runs(folder, paths)
    graph, distances = write_graph(folder / "k-4.npz", len(paths))
    sweep = SimpleNamespace(
        folder=folder,
        root=folder / "data",
        paths=paths,
        runs=runs,
        coords=coords,
        graph=graph,
        distances=distances,
        thumbnails=write_points_thumbnails(folder, folder / "data", paths),
        features={"net": str(write_predictions(folder / "net.h5", paths))},
        neighbors={"net": str(folder / "k-4.npz")},
        clusters={"net": write_cluster_file(folder / "clusters.csv", paths, sweep_clusters(paths), {v: k for k, v in CLUSTERS.items()})},
        html=folder / "explorer.html",
    )  # fmt: skip
    build_points(sweep, sweep.html)
    return sweep


def read_data_file(path: Path) -> tuple[str, object]:
    """(key, value) of one explorer-data script: ``tsneAtlasData("<key>",<JSON>);``."""
    match = re.fullmatch(r'tsneAtlasData\(("[^"]*"),(.*)\);\n', path.read_text(encoding="utf-8"), flags=re.S)
    assert match, path
    return json.loads(match.group(1)), json.loads(match.group(2))


def data_array(value: dict) -> np.ndarray:
    return from_b64(value["data"], value["dtype"])


# --- the switch and the data folder (no browser) ---


def test_auto_is_the_canvas_page_up_to_100000_images_as_before_and_the_points_page_above(sweep, tmp_path):
    assert POINTS_ABOVE == 100_000
    assert [explorer_backend("auto", n) for n in (2, POINTS_ABOVE, POINTS_ABOVE + 1, 10**7)] == [
        "canvas",
        "canvas",
        "points",
        "points",
    ]
    for given in ("canvas", "webgl", "points"):
        assert explorer_backend(given, 2) == explorer_backend(given, 10**7) == given
    explorer = schema_defaults("explorer")
    assert explorer["backend"] == "auto"
    # At or below the threshold the thumbnails' params are what they were (so a finished run reruns nothing).
    assert explorer_thumbnail_params(explorer, POINTS_ABOVE) == {"thumb_size": 96, "max_images": 100_000}
    assert explorer_thumbnail_params({**explorer, "backend": "points"}, 10) == {
        "thumb_size": 48,
        "max_images": 100_000,
        "every_image": True,
        "columns": 8,
    }
    assert explorer_thumbnail_params({**explorer, "thumb_size": 24}, POINTS_ABOVE + 1)["thumb_size"] == 24
    # The page auto gives at the tiny size, thumbnails and all, is byte for byte the canvas page.
    small = {**explorer, "thumb_size": THUMB_SIZE}
    pages = {}
    for name, backend, params in (
        ("before", "canvas", {"thumb_size": THUMB_SIZE, "max_images": 100_000}),
        ("auto", explorer_backend("auto", len(sweep.paths)), explorer_thumbnail_params(small, len(sweep.paths))),
    ):
        folder = tmp_path / name
        write_images(folder / "images.csv", sweep.paths, ["0" * 64] * len(sweep.paths))
        explorer_thumbnails(str(folder / "images.csv"), str(sweep.root), str(folder / "explorer"), threads=1, **params)
        build_points(sweep, folder / "explorer.html", thumbnails=folder / "explorer", backend=backend)
        pages[name] = [(folder / name).read_bytes() for name in ("explorer.html", "explorer/thumbnails.json")]
        assert not (folder / "explorer-data").exists()
    assert pages["auto"] == pages["before"]
    # The index as before points pages: its keys then, no cap kept for the projector.
    assert list(json.loads(pages["auto"][1])) == ["format", "cell", "columns", "quality", "atlases", "paths", "n_total"]
    assert b"Bokeh" in pages["auto"][0] and b"reglScatterplot" not in pages["auto"][0]


def test_the_data_folder_holds_every_image_in_chunks_the_page_names(sweep, tmp_path, monkeypatch):
    """Coordinates per run, each colouring's codes in the smallest dtype, paths, metadata and predictions
    and the neighbour lists in chunks (4 images each here), all read back to what the inputs hold; the page
    itself carries no per-image array, and the index the digest the page has."""
    monkeypatch.setattr(bp, "ROWS_PER_CHUNK", 4)
    page = tmp_path / "explorer.html"
    build_points(sweep, page)
    files = {read_data_file(path)[0]: read_data_file(path)[1] for path in (tmp_path / "explorer-data").iterdir()}
    n = len(sweep.paths)
    assert sorted(files) == sorted(
        ["index", "run-0", "run-1", "colour-0", "colour-1", "colour-2-0", "colour-3-0", "colour-4-0"]
        + [f"rows-{c}" for c in range(3)]
        + [f"neighbours-0-{c}" for c in range(3)]
    )
    data = read_page_data(page)
    assert data["n"] == n and data["chunk"] == 4 and data["data"] == "explorer-data/"
    assert files["index"] == {"format": bp.DATA_FORMAT, "token": data["token"], "files": len(files) - 1}
    assert "paths" not in data and all("codes" not in option for option in data["colourings"])
    for k, key in enumerate(sorted(sweep.coords)):  # the menu's order: (perplexity, seed)
        xy = np.column_stack([data_array(files[f"run-{k}"][axis]) for axis in "xy"])
        assert np.array_equal(xy, sweep.coords[key].astype(np.float32))
    label = files["colour-0"]
    assert label["dtype"] == "<u1" and data["colourings"][0]["file"] == "colour-0"
    assert list(data_array(label)) == [data["classes"].index(p.split("/")[0]) for p in sweep.paths]
    assert data["colourings"][2]["sets"][0]["file"] == "colour-2-0"  # the cluster colouring, per set
    assert list(data_array(files["colour-2-0"])) == sweep_clusters(sweep.paths)
    disagreement = files["colour-4-0"]
    assert disagreement["dtype"] == "<f4" and len(data_array(disagreement)) == n
    rows = [files[f"rows-{c}"] for c in range(3)]
    assert [p for row in rows for p in row["paths"]] == sweep.paths
    assert [v for row in rows for v in row["metadata"][0]] == hostile_metadata(sweep.paths)[HOSTILE_COLUMN]
    assert [v for row in rows for v in row["predicted"][0]] == [f"{HOSTILE_PREDICTION} (90%)"] * n
    neighbours = np.vstack([data_array(files[f"neighbours-0-{c}"]["neighbours"]).reshape(-1, K) for c in range(3)])
    distances = np.vstack([data_array(files[f"neighbours-0-{c}"]["distances"]).reshape(-1, K) for c in range(3)])
    assert np.array_equal(neighbours, sweep.graph[:, :K]) and np.allclose(distances, sweep.distances[:, :K])
    # A second build writes the same bytes: the page and every file.
    first = {path.name: path.read_bytes() for path in [page, *(tmp_path / "explorer-data").iterdir()]}
    build_points(sweep, page)
    assert {path.name: path.read_bytes() for path in [page, *(tmp_path / "explorer-data").iterdir()]} == first


def test_the_page_names_in_one_line_what_only_the_canvas_page_shows_of_this_sweep():
    note = bp.canvas_only_note([{}], [None], None)
    assert note == (
        "This page draws every image with WebGL; density contours are on the canvas page only "
        "(explorer.backend: canvas, which shows at most explorer.max_images images)."
    )
    query = object()  # a query set's files: only whether there is one matters
    note = bp.canvas_only_note([{}, {}], [{"codes": []}], query)
    assert note.startswith(
        "This page draws every image with WebGL; two runs compared side by side, the clusters' names on the map, "
        "density contours, the query set's layer are on the canvas page only"
    )


def test_a_points_page_needs_thumbnails_of_every_image_and_its_data_folder(sweep, tmp_path):
    capped = tmp_path / "capped"
    write_images(tmp_path / "images.csv", sweep.paths, ["0" * 64] * len(sweep.paths))
    explorer_thumbnails(str(tmp_path / "images.csv"), str(sweep.root), str(capped), THUMB_SIZE, 5, threads=1)
    with pytest.raises(AtlasError) as err:
        build_points(sweep, tmp_path / "explorer.html", thumbnails=capped)
    assert str(err.value) == (
        f"{capped / 'thumbnails.json'}: lists 5 images, not the runs' {len(sweep.paths)} (a points page shows "
        f"every image); delete {capped} and rerun"
    )
    with pytest.raises(AtlasError, match="^explorer.backend points: the page needs its data folder"):
        build_points(sweep, tmp_path / "explorer.html", data_folder=None)
    assert not (tmp_path / "explorer.html").exists()


def test_the_rule_writes_the_points_page_and_its_data_through_its_outputs(sweep, tmp_path):
    """Through the rule adapter, as Snakemake calls it: the ``data`` output (rules/common.smk's
    explorer_outputs) receives the data, outliers and image problems are colourings too, the log says what
    was written."""
    pairs = sweep.runs
    snakemake = rule_job(
        "explorer",
        input={
            "embeddings": [tsv for tsv, _ in pairs],
            "metas": [meta for _, meta in pairs],
            "manifest": manifest_of(pairs),
            "features": [sweep.features["net"]],
            "graphs": [sweep.neighbors["net"]],
            "clusters": [sweep.clusters["net"]],
            "outliers": [write_outlier_scores(tmp_path / "outliers.csv", sweep.paths[:3], [4.0, 2.0, 1.5])],
            "quality": write_problems(tmp_path / "quality.csv", sweep.paths, {sweep.paths[0]: ["dark"]}),
            "thumbnails": str(sweep.thumbnails),
        },
        output={"html": str(tmp_path / "out" / "explorer.html"), "data": str(tmp_path / "out" / "explorer-data")},
        params={
            "order": ["net"],
            "root": str(sweep.root),
            "inline_max_images": 5000,
            "neighbours": K,
            "backend": "points",
        },
        log=str(tmp_path / "logs" / "explorer.log"),
    )
    run_rule(snakemake, bx.explorer)
    data = read_page_data(snakemake.output.html)
    assert [c["name"] for c in data["colourings"]][-2:] == ["outlier score", "image problem"]
    assert data["colourings"][-2]["sets"][0]["file"] == "colour-5-0" and data["colourings"][-1]["file"] == "colour-6"
    assert (tmp_path / "out" / "explorer-data" / "colour-6.js").is_file()
    assert "points page: 9 images" in Path(snakemake.log[0]).read_text(encoding="utf-8")


# --- the page in Chromium ---


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


def screen_position(driver, index: int) -> tuple[float, float]:
    """Where point ``index`` is on the screen (CSS pixels), by the renderer's own view: its scales map the
    run's coordinates to the canvas, whose client rect places it in the viewport."""
    x, y = driver.execute_script(
        """const wrap = document.getElementById('canvas-wrap').getBoundingClientRect();
        const [sx, sy] = tsneAtlas.screenPosition(arguments[0]);
        return [wrap.left + sx, wrap.top + sy];""",
        index,
    )
    return float(x), float(y)


def move_to(driver, index: int, click: bool = False) -> None:
    x, y = screen_position(driver, index)
    actions = ActionChains(driver)
    actions.w3c_actions.pointer_action.move_to_location(round(x), round(y))
    if click:
        actions.w3c_actions.pointer_action.click()
    actions.perform()


def hover(driver, index: int) -> dict:
    """Hover point ``index`` as a user would; the card's text, markup and thumbnail's image index."""
    driver.execute_script("tsneAtlas.hover(-1)")  # the pointer may rest on it already: start afresh
    move_to(driver, index)
    WebDriverWait(driver, 5).until(
        lambda d: d.execute_script("return document.getElementById('hover-card').dataset.index") == str(index),
        f"no hover card for image {index}",
    )
    return hb.hover_card(driver)


def drag(driver, points: list[tuple[float, float]]) -> None:
    """Press at the first point, move through the others, release at the last: a box or lasso. The
    renderer starts its path at the first move (as a hand's first few pixels): one just by the press."""
    actions = ActionChains(driver)
    pointer = actions.w3c_actions.pointer_action
    pointer.move_to_location(round(points[0][0]), round(points[0][1]))
    pointer.pointer_down()
    for x, y in [(points[0][0] + 3, points[0][1] + 3), *points[1:]]:
        pointer.move_to_location(round(x), round(y))
    pointer.pointer_up()
    actions.perform()


def renderer_colours(driver) -> list[str]:
    """Each point's colour as the renderer holds it: its palette entry for the point's code."""
    rgba = driver.execute_script(
        """const sp = tsneAtlas.scatterplot, palette = sp.get('pointColor');
        return sp.get('points').map((p) => palette[p[2]]);"""
    )
    return [to_hex(colour[:3]) for colour in rgba]


def held_coordinates(driver) -> np.ndarray:
    """The points as the renderer holds them (its [-1, 1] space)."""
    return np.array(
        driver.execute_script("return Array.from(tsneAtlas.scatterplot.get('points'), (p) => [p[0], p[1]])")
    )


def renderer_space(coords: np.ndarray) -> np.ndarray:
    """A run's coordinates in the renderer's [-1, 1]: centred, one scale for both axes, 5 % margin."""
    low, high = coords.min(axis=0), coords.max(axis=0)
    return (coords - (low + high) / 2) / ((high - low).max() / 2 * 1.05)


def wait_state(driver, expression: str, expected, message: str = "") -> None:
    WebDriverWait(driver, 10).until(lambda d: d.execute_script(f"return {expression}") == expected, message)


@pytest.fixture
def page(driver, sweep):
    return open_fresh(driver, sweep.html)


def test_the_page_opens_offline_hovers_and_lists_a_clicked_images_neighbours(page, sweep):
    """From file://, data in its folder: every point drawn by the renderer; a hover shows the image's own
    thumbnail and fields, markup in them as text; a click lists its k nearest in feature space (the graph's,
    in order) beside its k nearest on the map."""
    assert page.execute_script("return tsneAtlas.scatterplot.get('points').length") == len(sweep.paths)
    note = page.find_element("id", "canvas-only-note")
    assert note.is_displayed() and note.text == bp.canvas_only_note([{}, {}], [{}], None)
    assert page.execute_script("return document.querySelectorAll('.thumb, .neighbour').length") == 0
    hostile = sweep.paths.index(f"ant/{HOSTILE_FILE}")
    card = hover(page, hostile)
    assert card["thumb"] == hostile and f"ant/{HOSTILE_FILE}" in card["text"]
    assert f"{HOSTILE_COLUMN}: <script>window.pwned = {hostile}</script>" in card["text"]
    assert f"predicted: {HOSTILE_PREDICTION} (90%)" in card["text"] and "cluster: 0: ant" in card["text"]
    thumb = page.execute_script("return document.querySelector('#hover-card .thumb').style.backgroundImage")
    assert thumb == 'url("explorer/atlas-0000.jpg")'
    owl = sweep.paths.index(f"{HOSTILE_CLASS}/{HOSTILE_CLASS}_0.png")
    move_to(page, owl, click=True)
    wait_state(page, "document.getElementById('neighbours').dataset.index", str(owl), "no neighbours panel")
    lists = page.execute_script(
        """return Array.from(document.querySelectorAll('#neighbours .list'))
            .map((list) => Array.from(list.querySelectorAll('.neighbour')).map((n) => Number(n.dataset.index)));"""
    )
    coords = sweep.coords[min(sweep.coords)]
    on_map = np.argsort(np.hypot(*(coords - coords[owl]).T), kind="stable")[1 : K + 1]
    assert lists == [list(sweep.graph[owl, :K]), sorted(on_map, key=lambda j: np.hypot(*(coords[j] - coords[owl])))]
    assert f"class: {HOSTILE_CLASS}" in page.find_element("id", "neighbours").text
    assert count_deep(page, "el.tagName === 'IMG' && el.getAttribute('src') === 'x'") == 0
    assert count_deep(page, "el.tagName === 'U' || el.tagName === 'B' && el.textContent === 'source'") == 0
    assert page.execute_script("return window.pwned === undefined")
    assert_no_alert(page)
    assert severe_console_messages(page) == []


def test_search_colour_by_and_the_legend_read_back_from_the_renderer(page, sweep):
    """Search finds paths, labels and metadata (markup as text) and selects its matches; colour by label,
    cluster or a number gives each point the colour of its category or bin, as the renderer holds it; a
    legend entry hides its points from the renderer."""
    classes = sorted({p.split("/")[0] for p in sweep.paths})
    label_colours = [to_hex(c) for c in class_colours(len(classes))]
    assert renderer_colours(page) == [label_colours[classes.index(p.split("/")[0])] for p in sweep.paths]
    bees = [i for i, p in enumerate(sweep.paths) if p.startswith("bee/")]
    assert page.execute_script("return tsneAtlas.search('BEE')") == 3
    assert page.find_element("id", "search-count").text == "3 of 9 match"
    assert page.execute_script("return tsneAtlas.state.matches") == bees
    assert page.execute_script("return tsneAtlas.search('window.pwned = 4<')") == 1  # metadata
    assert page.execute_script("return tsneAtlas.state.matches") == [4]
    assert page.execute_script("return tsneAtlas.search(arguments[0])", "<img src=x onerror=alert(1)>") == 1
    assert page.execute_script("return tsneAtlas.search('bee')") == 3
    page.find_element("id", "select-matches").click()
    wait_state(page, "document.getElementById('selection-count').textContent", "3 selected")
    csv_text = page.execute_async_script("tsneAtlas.selectionCsv().then(arguments[arguments.length - 1])")
    assert [row[0] for row in csv.reader(csv_text.splitlines()[1:])] == [sweep.paths[i] for i in bees]
    options = [o.text for o in page.find_elements("css selector", "#colour-select option")]
    assert options == ["label", f"metadata: {HOSTILE_COLUMN}", "cluster", "predicted class", "label disagreement"]
    page.execute_async_script("tsneAtlas.showColouring(2).then(arguments[arguments.length - 1])")
    cluster_colours = [to_hex(c) for c in class_colours(len(CLUSTERS))]
    assert renderer_colours(page) == [cluster_colours[c] for c in sweep_clusters(sweep.paths)]
    assert f"2: {HOSTILE_CLASS}" in page.find_element("id", "legend").text
    page.execute_async_script("tsneAtlas.showColouring(4).then(arguments[arguments.length - 1])")
    data = read_page_data(sweep.html)
    option = data["colourings"][4]["sets"][0]
    values = data_array(read_data_file(sweep.folder / "explorer-data" / "colour-4-0.js")[1])
    bins = np.clip(np.floor((values - option["low"]) / (option["high"] - option["low"]) * 256), 0, 255).astype(int)
    assert renderer_colours(page) == [option["colours"][b] for b in bins]
    page.execute_async_script("tsneAtlas.showColouring(0).then(arguments[arguments.length - 1])")
    ant = classes.index("ant")
    page.execute_script(f"document.querySelector('#legend .entry[data-code=\"{ant}\"]').click()")
    shown = page.execute_script("return tsneAtlas.scatterplot.get('filteredPoints')")
    assert sorted(shown) == [i for i, p in enumerate(sweep.paths) if not p.startswith("ant/")]
    assert page.find_element("id", "legend").get_attribute("data-shown") == str(len(sweep.paths) - 4)
    assert severe_console_messages(page) == []


def test_box_and_lasso_select_what_they_enclose_and_the_csv_holds_those_rows(page, sweep, tmp_path):
    hb.allow_downloads(page, tmp_path)
    coords = sweep.coords[min(sweep.coords)]
    lowest = sorted(
        (i for i in range(len(sweep.paths)) if coords[i, 1] == coords[:, 1].min()), key=lambda i: coords[i, 0]
    )
    page.find_element("id", "mode-box").click()
    corners = np.array([screen_position(page, i) for i in lowest])
    (left, top), (right, bottom) = corners.min(axis=0) - 15, corners.max(axis=0) + 15
    drag(page, [(left, top), ((left + right) / 2, (top + bottom) / 2), (right, bottom)])
    wait_state(page, "document.getElementById('selection-count').textContent", f"{len(lowest)} selected")
    page.find_element("id", "export-selection").click()
    target = tmp_path / "tsne-atlas-selection.csv"
    deadline = time.monotonic() + 10
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(target, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["path", "label", "x", "y", "predicted", HOSTILE_COLUMN]
    in_order = sorted(lowest)
    assert [row[0] for row in rows[1:]] == [sweep.paths[i] for i in in_order]
    for row, i in zip(rows[1:], in_order):
        assert row[1] == sweep.paths[i].split("/")[0] and np.allclose([float(row[2]), float(row[3])], coords[i])
        assert row[4:] == [f"{HOSTILE_PREDICTION} (90%)", hostile_metadata(sweep.paths)[HOSTILE_COLUMN][i]]
    page.find_element("id", "clear-selection").click()
    wait_state(page, "tsneAtlas.state.selected.length", 0)
    # The lasso: around the two leftmost points of the lowest row.
    page.find_element("id", "mode-lasso").click()
    inside = lowest[:2]
    corners = np.array([screen_position(page, i) for i in inside])
    (left, top), (right, bottom) = corners.min(axis=0) - 15, corners.max(axis=0) + 15
    drag(page, [(left, top), (right, top), (right, bottom), (left, bottom), (left, top + 1)])
    wait_state(page, "tsneAtlas.state.selected", sorted(inside))
    assert page.execute_script("return tsneAtlas.scatterplot.get('selectedPoints')") == sorted(inside)
    assert severe_console_messages(page) == []


def test_the_address_keeps_run_colouring_search_and_image_and_opens_them_again(driver, sweep):
    page = open_fresh(driver, sweep.html)
    page.execute_async_script("tsneAtlas.showRun(1).then(arguments[arguments.length - 1])")
    page.execute_async_script("tsneAtlas.showColouring(2).then(arguments[arguments.length - 1])")
    page.execute_script("return tsneAtlas.search('bee')")
    wait_state(page, "tsneAtlas.state.matches.length", 3)
    image = sweep.paths.index(f"ant/{HOSTILE_FILE}")
    page.execute_async_script("tsneAtlas.focus(arguments[0]).then(arguments[arguments.length - 1])", image)
    fragment = urllib.parse.urlparse(page.current_url).fragment
    assert urllib.parse.parse_qs(fragment) == {
        "run": ["1"],
        "colour": ["2"],
        "find": ["bee"],
        "image": [f"ant/{HOSTILE_FILE}"],
    }
    page.get("about:blank")
    hb.open_page(page, sweep.html, fragment=fragment)
    assert page.find_element("id", "run-select").get_attribute("value") == "1"
    assert page.find_element("id", "colour-select").get_attribute("value") == "2"
    assert page.find_element("id", "search-count").text == "3 of 9 match"
    assert page.execute_script("return document.getElementById('neighbours').dataset.index") == str(image)
    assert np.allclose(held_coordinates(page), renderer_space(sweep.coords[max(sweep.coords)]))  # perplexity 30
    cluster_colours = [to_hex(c) for c in class_colours(len(CLUSTERS))]
    assert renderer_colours(page) == [cluster_colours[c] for c in sweep_clusters(sweep.paths)]
    assert severe_console_messages(page) == []


def flat_colour(i: int) -> tuple[int, int, int]:
    """Image i's one colour: far from its neighbours' in index (and so in atlas cell)."""
    return (i * 97) % 256, (i * 57 + 40) % 256, (i * 151 + 80) % 256


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> SimpleNamespace:
    """2,500 images on a 50 x 50 grid (more than the 2,000 shown as thumbnails), each a flat colour of its
    own, in 40 atlases of 64 cells; one run, a random k-NN graph, no clusters."""
    folder = tmp_path_factory.mktemp("points-many")
    n, side = 2500, 50
    root = folder / "data"
    paths = []
    for i in range(n):
        name = f"c{i % 5}/img_{i:04d}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), flat_colour(i)).save(root / name)
        paths.append(name)
    coords = np.array([[i % side, i // side] for i in range(n)], dtype=np.float64)
    labels = [p.split("/")[0] for p in paths]
    meta = {"features": "net", "method": "tsne", "perplexity": 30.0, "seed": 0, "kl_divergence": 1.0,
            "classes": sorted(set(labels)), "weights_random": False, "model": "m", "n_images": n,
            "implementation": "opentsne"}  # fmt: skip
    tsv, meta_json = folder / "run.tsv", folder / "run.json"
    write_embedding(str(tsv), str(meta_json), paths, labels, coords, meta)
    indices = np.random.default_rng(0).integers(0, n, size=(n, 4))
    write_neighbours(folder / "graph.npz", indices, np.ones((n, 4)))
    features = write_predictions(folder / "net.h5", paths)
    many = SimpleNamespace(folder=folder, paths=paths, coords=coords, html=folder / "explorer.html")
    many.build = lambda html, data_folder: bx.build_explorer(
        runs=[(str(tsv), str(meta_json))], manifest=str(folder / "manifest.csv"), root=root, output=html,
        thumbnails=folder / "explorer", features_files={"net": str(features)},
        graph_files={"net": str(folder / "graph.npz")}, inline_max_images=0, neighbours=3, backend="points",
        data_folder=data_folder,
    )  # fmt: skip
    write_points_thumbnails(folder, root, paths)
    many.build(many.html, folder / "explorer-data")
    return many


def test_zoomed_in_until_few_images_are_in_view_the_points_become_their_thumbnails(driver, many):
    """All 2,500 in view: points only. Zoomed in with the wheel until 2,000 or fewer are in view: each image
    in view drawn as its own cell of its atlas, centred on its point (checked on the overlay's pixels)."""
    page = open_fresh(driver, many.html)
    assert page.execute_script("return tsneAtlas.state.thumbs") == {
        "shown": 0,
        "inView": -1,
        "indices": [],
        "size": 0,
        "atlases": 0,
        "pending": 0,
    }
    assert "zoom in" in page.find_element("id", "status").text
    box = page.find_element("id", "canvas-wrap").rect
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(12):
        actions = ActionChains(page)
        actions.w3c_actions.wheel_action.scroll(round(centre[0]), round(centre[1]), 0, -240)
        actions.perform()
        hb.wait_for_paint(page)
        if page.execute_script("return tsneAtlas.state.thumbs.inView") > 0:
            break
    WebDriverWait(page, 10).until(
        lambda d: d.execute_script("const t = tsneAtlas.state.thumbs; return t.shown > 0 && t.pending === 0"),
        "no thumbnails drawn after zooming in",
    )
    thumbs = page.execute_script("return tsneAtlas.state.thumbs")
    in_view = page.execute_script(
        """const w = document.getElementById('canvas-wrap').getBoundingClientRect();
        const out = [];
        for (let i = 0; i < tsneAtlas.data.n; i++) {
            const [x, y] = tsneAtlas.screenPosition(i);
            if (x >= 0 && y >= 0 && x <= w.width && y <= w.height) out.push(i);
        }
        return out;"""
    )
    assert 0 < thumbs["inView"] <= 2000 and sorted(thumbs["indices"]) == in_view
    # On the screen, at a shown image's point, is that image's colour (a flat 8-pixel image, scaled).
    screenshot = np.asarray(Image.open(io.BytesIO(page.get_screenshot_as_png())).convert("RGB"), dtype=np.int64)
    for i in (in_view[0], in_view[len(in_view) // 2], in_view[-1]):
        x, y = screen_position(page, i)
        expected = flat_colour(i)
        assert np.abs(screenshot[round(y), round(x)] - expected).max() <= 12, (
            i,
            screenshot[round(y), round(x)],
            expected,
        )
    assert severe_console_messages(page) == []


# Every frame the renderer draws from now on: whether it drew a subset, and which.
WATCH_FRAMES_JS = """
window.__frames = [];
tsneAtlas.scatterplot.subscribe('draw', () => {
  const sp = tsneAtlas.scatterplot;
  window.__frames.push({moving: tsneAtlas.state.moving, filtered: sp.get('isPointsFiltered'),
                        points: sp.get('isPointsFiltered') ? sp.get('filteredPoints').sort((a, b) => a - b) : null});
});
"""


def test_while_the_view_moves_a_large_page_draws_an_even_subsample_and_then_every_image_again(
    driver, many, tmp_path, monkeypatch
):
    """Above ``MOTION_POINTS`` images (lowered here to 1,000 of 2,500) a wheel step draws every third image
    from its first frame on, the hidden class left out; at rest every image not hidden is drawn again and
    the selection is whole. At or below it (the fixture's page) no frame is thinned."""
    monkeypatch.setattr(bp, "MOTION_POINTS", 1000)
    many.build(tmp_path / "explorer.html", tmp_path / "explorer-data")
    n, hidden_class = len(many.paths), "c1"
    for html, stride in ((tmp_path / "explorer.html", 3), (many.html, 1)):
        page = open_fresh(driver, html)
        page.find_element("css selector", "#legend .entry[data-code='1']").click()  # hide c1 (codes: c0 .. c4)
        shown = [i for i in range(n) if many.paths[i].split("/")[0] != hidden_class]
        chosen = shown[10:400:7]
        page.execute_script("tsneAtlas.scatterplot.select(arguments[0])", chosen)
        wait_state(page, "tsneAtlas.state.selected.length", len(chosen))
        hb.wait_for_paint(page)
        page.execute_script(WATCH_FRAMES_JS)
        box = page.find_element("id", "canvas-wrap").rect
        actions = ActionChains(page)
        actions.w3c_actions.wheel_action.scroll(round(box["x"] + box["width"] / 2), round(box["y"] + 100), 0, -120)
        actions.perform()
        WebDriverWait(page, 10).until(
            lambda d: d.execute_script("return !tsneAtlas.state.moving && window.__frames.length > 0"), "no rest"
        )
        hb.wait_for_paint(page)
        frames = page.execute_script("return window.__frames")
        if stride > 1:
            thinned = [i for i in range(0, n, stride) if i in set(shown)]
            assert frames[0] == {"moving": True, "filtered": True, "points": thinned}, frames[0]
        else:
            assert all(not f["moving"] for f in frames), frames
        # At rest: every image but the hidden class, and the whole selection.
        assert page.execute_script("return tsneAtlas.scatterplot.get('filteredPoints').sort((a, b) => a - b)") == shown
        assert sorted(page.execute_script("return tsneAtlas.scatterplot.get('selectedPoints')")) == chosen
        assert severe_console_messages(page) == []


def test_a_page_without_its_data_folder_or_with_another_builds_says_so_in_one_line(driver, sweep, many, tmp_path):
    alone = tmp_path / "explorer.html"
    shutil.copy(sweep.html, alone)
    for folder, message in (
        (None, "explorer-data/index.js could not be read: keep the folder explorer-data/ beside the page"),
        (many.folder / "explorer-data", "explorer-data/ belongs to another build of this page: rebuild both (the explorer rule)"),
    ):  # fmt: skip
        if folder is not None:
            shutil.copytree(folder, tmp_path / "explorer-data")
        driver.get(alone.resolve().as_uri())
        wait_state(driver, "document.getElementById('status').classList.contains('error')", True)
        assert driver.find_element("id", "status").text == message
        assert driver.execute_script("return tsneAtlas.ready") is False
