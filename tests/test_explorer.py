"""The explorer page, built from a small sweep and checked in a real headless Chromium.

The browser is Debian's chromium with its chromium-driver (tools/install_system_deps.sh);
when either is missing these tests fail and say so, they never skip.
"""

import base64
import contextlib
import html
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.support.select import Select

import headless_browser as hb
from conftest import rule_job, write_embedding
from tsne_atlas import explorer as bx
from tsne_atlas.figure_style import RANDOM_WEIGHTS_NOTE
from tsne_atlas.files.runs import read_embedding
from tsne_atlas.jobs import AtlasError, run_rule
from tsne_atlas.subsample import fixed_subsample

HOSTILE_FILE = "<img src=x onerror=alert(1)>.png"
HOSTILE_CLASS = "<u>owl"
# A metadata column and values, and a predicted class, that would be markup if a page let them.
HOSTILE_COLUMN = "<b>source</b>"
HOSTILE_PREDICTION = "<i>tench</i>"
COUNTS = {"ant": 3, "bee": 3, HOSTILE_CLASS: 2}
THUMB_SIZE = 32
# Two runs, given out of (perplexity, seed) order: the menu sorts them.
RUNS = (
    {"features": "net", "perplexity": 30.0, "seed": 1, "kl_divergence": 0.4},
    {"features": "net", "perplexity": 5.0, "seed": 0, "kl_divergence": 0.9},
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
    return {HOSTILE_COLUMN: [f"<script>window.pwned = {i}</script> & 'q'" for i in range(len(paths))]}


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


def write_runs(folder: Path, paths: list[str], weights_random: bool = True) -> tuple[list, dict]:
    """Embeddings on a well-spaced grid (one point per cell, so a hover hits one point).

    The second run puts every image in another cell. Returns the (tsv, json) pairs and
    each run's coordinates keyed by (perplexity, seed).
    """
    labels = [p.split("/")[0] for p in paths]
    grid = np.array([[i % 4 * 10.0, i // 4 * 10.0] for i in range(len(paths))])
    pairs, coords = [], {}
    for k, run in enumerate(RUNS):
        run_coords = grid[::-1] + k if k else grid  # run 1: reversed order, shifted
        meta = {
            **run,
            "classes": sorted(COUNTS),
            "weights_random": weights_random,
            "model": "resnet18",
            "n_images": len(paths),
            "implementation": "opentsne",
        }
        tsv, meta_json = folder / f"run{k}.tsv", folder / f"run{k}.json"
        write_embedding(str(tsv), str(meta_json), paths, labels, run_coords, meta, hostile_metadata(paths))
        pairs.append((str(tsv), str(meta_json)))
        coords[run["perplexity"], run["seed"]] = run_coords
    return pairs, coords


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("explorer")
    paths = write_dataset(folder / "data")
    runs, coords = write_runs(folder, paths)
    page = folder / "explorer.html"
    features = {"net": str(write_predictions(folder / "net.h5", paths))}
    bx.build_explorer(
        runs, manifest_of(runs), folder / "data", page, thumb_size=THUMB_SIZE, max_images=5000, features_files=features
    )
    return SimpleNamespace(
        folder=folder, root=folder / "data", paths=paths, runs=runs, coords=coords, html=page, features=features
    )


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    try:
        browser = hb.start_chromium(tmp_path_factory.mktemp("chromium-profile"), width=1280, height=960)
    except AtlasError as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def page(driver, sweep):
    """The explorer freshly loaded, with the browser console emptied beforehand."""
    with contextlib.suppress(NoAlertPresentException):
        driver.switch_to.alert.dismiss()  # left open by a failed test: it would block this one
    driver.get_log("browser")
    hb.open_page(driver, sweep.html)
    return driver


def severe_console_messages(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def model_value(driver, name: str, expression: str):
    """Evaluate ``expression`` on the Bokeh model called ``name`` (as ``m``) in the page."""
    return driver.execute_script(
        f"const m = Bokeh.documents[0].get_model_by_name(arguments[0]); return {expression};", name
    )


def column(driver, renderer: str, field: str) -> list:
    return model_value(driver, renderer, f"Array.from(m.data_source.data[{json.dumps(field)}])")


def find_point(driver, path: str) -> tuple[str, int]:
    """(renderer name, index in its source) of the image ``path``."""
    for class_index in range(len(COUNTS)):
        name = bx.renderer_name(class_index)
        paths = column(driver, name, "path")
        if path in paths:
            return name, paths.index(path)
    raise AssertionError(f"{path} is in no renderer")


def count_deep(driver, condition_js: str) -> int:
    """How many elements (shadow roots included) satisfy ``condition_js`` on ``el``."""
    return driver.execute_script(hb.DEEP_ELEMENTS_JS + f"return all.filter((el) => {condition_js}).length;")


def assert_no_alert(driver) -> None:
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert


def test_browser_check_names_the_install_script(tmp_path):
    with pytest.raises(AtlasError, match="tools/install_system_deps.sh"):
        hb.check_browser(tmp_path / "chromium", tmp_path / "chromedriver")


def test_page_is_self_contained_and_byte_reproducible(sweep, tmp_path):
    text = sweep.html.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=|<link[^>]*\bhref=", text), "the page loads an external resource"
    bx.build_explorer(
        sweep.runs,
        manifest_of(sweep.runs),
        sweep.root,
        tmp_path / "again.html",
        thumb_size=THUMB_SIZE,
        max_images=5000,
        features_files=sweep.features,
    )
    assert (tmp_path / "again.html").read_bytes() == sweep.html.read_bytes()


def test_page_loads_without_console_errors_and_holds_every_point(page, sweep):
    assert severe_console_messages(page) == []
    n_points = sum(model_value(page, bx.renderer_name(i), "m.data_source.data.x.length") for i in range(len(COUNTS)))
    assert n_points == len(sweep.paths) == 9
    assert model_value(page, bx.renderer_name(0), "m.data_source.data.label[0]") == HOSTILE_CLASS
    # One legend, beside the plot, whose entries hide their class when clicked.
    assert model_value(page, bx.PLOT_NAME, "m.right.filter((r) => r.type == 'Legend').map((r) => r.click_policy)") == [
        "hide"
    ]
    assert model_value(page, bx.PLOT_NAME, "m.match_aspect") is True


def test_hover_shows_thumbnail_path_and_class(page, sweep):
    name, index = find_point(page, "bee/bee_1.png")
    hb.hover_point(page, name, index)
    tooltips = hb.visible_tooltips(page)
    assert len(tooltips) == 1
    tip = tooltips[0]
    assert "bee/bee_1.png" in tip["text"] and "class: bee" in tip["text"]
    src = re.search(r'<img src="(data:image/png;base64,[^"]+)"', tip["html"]).group(1)
    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as thumb:
        assert thumb.format == "PNG" and thumb.mode == "RGB" and thumb.size == (THUMB_SIZE, 24)  # 40x30 image
    assert severe_console_messages(page) == []


def test_hostile_file_and_class_names_show_as_text_and_run_nothing(page):
    hostile_path = f"ant/{HOSTILE_FILE}"
    hb.hover_point(page, *find_point(page, hostile_path))
    tip = hb.visible_tooltips(page)[0]
    assert hostile_path in tip["text"]
    assert html.escape(hostile_path, quote=False) in tip["html"]
    assert "data:image/png;base64," in tip["html"]  # its own thumbnail is shown all the same
    owl = f"{HOSTILE_CLASS}/{HOSTILE_CLASS}_0.png"
    hb.hover_point(page, *find_point(page, owl))
    tip = hb.visible_tooltips(page)[0]
    assert owl in tip["text"] and f"class: {HOSTILE_CLASS}" in tip["text"]
    assert_no_alert(page)
    assert count_deep(page, "el.tagName === 'IMG' && el.getAttribute('src') === 'x'") == 0
    assert count_deep(page, "el.tagName === 'U'") == 0
    # Metadata (column name and value) and the network's prediction: text, never markup.
    assert f"{HOSTILE_COLUMN}: <script>window.pwned = " in tip["text"]
    assert f"predicted: {HOSTILE_PREDICTION} (90%)" in tip["text"]
    assert count_deep(page, "el.tagName === 'B' && el.textContent === 'source'") == 0
    assert count_deep(page, "el.tagName === 'I' && el.textContent === 'tench'") == 0
    assert count_deep(page, "el.tagName === 'SCRIPT' && el.textContent.startsWith('window.pwned')") == 0
    assert page.execute_script("return window.pwned === undefined")
    assert severe_console_messages(page) == []


def test_run_menu_switches_coordinates_title_and_hover(page, sweep):
    first, second = sorted(sweep.coords)  # the menu lists runs by (perplexity, seed)
    name, index = find_point(page, "bee/bee_0.png")
    row = sweep.paths.index("bee/bee_0.png")
    assert [column(page, name, "x")[index], column(page, name, "y")[index]] == list(sweep.coords[first][row])
    labels = model_value(page, bx.SELECT_NAME, "m.options.map(([value, label]) => label)")
    assert labels == ["net · perplexity 5, seed 0 (KL 0.90)", "net · perplexity 30, seed 1 (KL 0.40)"]
    # Choose the other run in the real <select>, as a user would.
    menu = page.execute_script(
        "return Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name(arguments[0]))"
        ".shadow_el.querySelector('select')",
        bx.SELECT_NAME,
    )
    Select(menu).select_by_visible_text(labels[1])
    hb.wait_for_paint(page)
    assert model_value(page, bx.SELECT_NAME, "m.value") == "1"
    assert [column(page, name, "x")[index], column(page, name, "y")[index]] == list(sweep.coords[second][row])
    assert "perplexity 30, seed 1" in model_value(page, bx.PLOT_NAME, "m.title.text")
    # The hover follows the point to its new place.
    hb.hover_point(page, name, index)
    assert "bee/bee_0.png" in hb.visible_tooltips(page)[0]["text"]
    assert severe_console_messages(page) == []


def test_random_weights_note_is_visible(page):
    shown = model_value(
        page,
        bx.NOTE_NAME,
        """(() => {
        const view = Bokeh.index.find_one(m);
        const box = view.el.getBoundingClientRect();
        return [view.markup_el.innerText, box.width > 0 && box.height > 0, getComputedStyle(view.markup_el).color];
    })()""",
    )
    assert shown == [RANDOM_WEIGHTS_NOTE, True, "rgb(189, 31, 1)"]


def test_no_note_with_trained_weights_and_rule_entry_point(sweep, tmp_path):
    runs, _ = write_runs(tmp_path, sweep.paths, weights_random=False)
    snakemake = rule_job(
        "explorer",
        input={
            "embeddings": [tsv for tsv, _ in runs],
            "metas": [meta for _, meta in runs],
            "manifest": manifest_of(runs),
            "features": [sweep.features["net"]],
        },
        params={"order": ["net"], "root": str(sweep.root), "thumb_size": 16, "max_images": 5000},
        output={"html": str(tmp_path / "out" / "explorer.html")},
        log=str(tmp_path / "logs" / "explorer.log"),
    )
    run_rule(snakemake, bx.explorer)
    text = Path(snakemake.output.html).read_text(encoding="utf-8")
    assert RANDOM_WEIGHTS_NOTE not in text and bx.NOTE_NAME not in text
    assert "wrote" in Path(snakemake.log[0]).read_text(encoding="utf-8")


def test_runs_of_several_feature_sets_are_listed_in_config_order(sweep, tmp_path):
    """The menu lists the feature sets as the config does (not alphabetically), then perplexity and seed."""
    runs = []
    for features_id in ("zeta", "alpha"):
        for tsv, meta_json in sweep.runs:
            meta = {**json.loads(Path(meta_json).read_text(encoding="utf-8")), "features": features_id}
            paths, coords = read_embedding(tsv)
            labels = [p.split("/")[0] for p in paths]
            stem = tmp_path / f"{features_id}-{Path(tsv).stem}"
            write_embedding(f"{stem}.tsv", f"{stem}.json", paths, labels, coords, meta)
            runs.append((f"{stem}.tsv", f"{stem}.json"))
    _, _, _, metas = bx.load_runs(runs, manifest_of(runs), order=["zeta", "alpha"])
    assert [(m["features"], m["perplexity"]) for m in metas] == [
        ("zeta", 5.0),
        ("zeta", 30.0),
        ("alpha", 5.0),
        ("alpha", 30.0),
    ]
    _, _, _, by_name = bx.load_runs(runs, manifest_of(runs))
    assert [m["features"] for m in by_name] == ["alpha", "alpha", "zeta", "zeta"]
    bx.build_explorer(
        runs, manifest_of(runs), sweep.root, tmp_path / "two.html", THUMB_SIZE, 5000, order=["zeta", "alpha"]
    )
    text = (tmp_path / "two.html").read_text(encoding="utf-8")
    assert "tsne-atlas explorer: zeta, alpha features" in text


def test_thumbnail_applies_exif_rotation_and_converts_to_rgb(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    Image.new("L", (40, 20), 128).save(tmp_path / "rotated.jpg", exif=exif)
    uri = bx.thumbnail_data_uri(tmp_path / "rotated.jpg", 64)
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as thumb:
        assert thumb.size == (32, 64) and thumb.mode == "RGB"


def test_mismatched_runs_and_missing_images_are_one_line_errors(sweep, tmp_path):
    paths, labels = sweep.paths[:-1], [p.split("/")[0] for p in sweep.paths[:-1]]
    meta = json.loads(Path(sweep.runs[0][1]).read_text(encoding="utf-8"))
    write_embedding(
        str(tmp_path / "short.tsv"), str(tmp_path / "short.json"), paths, labels, np.zeros((len(paths), 2)), meta
    )
    with pytest.raises(AtlasError, match="lists other images than .*short.tsv"):
        bx.build_explorer(
            [*sweep.runs, (str(tmp_path / "short.tsv"), str(tmp_path / "short.json"))],
            manifest_of(sweep.runs),
            sweep.root,
            tmp_path / "x.html",
            THUMB_SIZE,
            5000,
        )
    with pytest.raises(AtlasError, match="image listed in the embedding is missing; restore it"):
        bx.build_explorer(
            sweep.runs, manifest_of(sweep.runs), tmp_path / "elsewhere", tmp_path / "x.html", THUMB_SIZE, 5000
        )
    assert not (tmp_path / "x.html").exists()


def test_many_classes_get_marker_shapes_and_a_wrapped_legend():
    classes = [f"class{i:02d}" for i in range(30)]
    coords = [np.arange(60, dtype=float).reshape(30, 2)]
    sources = bx.class_sources([f"{c}/a.png" for c in classes], classes, classes, coords, ["data:,"] * 30)
    layout = bx.explorer_layout(sources, classes, [{**RUNS[0], "n_images": 30, "model": "m"}])
    plot = layout.select_one({"name": bx.PLOT_NAME})
    markers = [plot.select_one({"name": bx.renderer_name(i)}).glyph.marker for i in (0, 9, 10, 29)]
    assert markers[0] == markers[1] == "circle" and markers[2] != "circle" and markers[3] != markers[2]
    assert plot.right[0].ncols == 2 and len(plot.right[0].items) == 30


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
    labels = [p.split("/")[0] for p in paths]
    grid = np.array([[i % 6 * 10.0, i // 6 * 10.0] for i in range(30)])
    runs = []
    for k, run in enumerate(RUNS):
        meta = {
            **run,
            "classes": ["ant", "bee", "cat"],
            "weights_random": False,
            "model": "resnet18",
            "n_images": 30,
            "implementation": "opentsne",
        }
        tsv, meta_json = folder / f"run{k}.tsv", folder / f"run{k}.json"
        write_embedding(str(tsv), str(meta_json), paths, labels, grid + k, meta)
        runs.append((str(tsv), str(meta_json)))
    page = folder / "explorer.html"
    bx.build_explorer(runs, manifest_of(runs), folder / "data", page, thumb_size=8, max_images=10)
    return SimpleNamespace(folder=folder, root=folder / "data", paths=paths, runs=runs, html=page)


CAPPED_NOTE = "Showing a random 10 of 30 images (fixed subsample; explorer.max_images)"


def test_page_above_max_images_holds_a_fixed_subsample_says_so_and_is_byte_reproducible(capped, sweep, tmp_path):
    text = capped.html.read_text(encoding="utf-8")
    kept = {capped.paths[i] for i in fixed_subsample(30, 10)}
    assert len(kept) == 10
    assert {p for p in capped.paths if p in text} == kept  # the other 20 images are not in the page
    assert CAPPED_NOTE in text and bx.SUBSAMPLE_NAME in text
    assert "<title>tsne-atlas explorer: net features, 10 of 30 images (random subsample), 2 runs</title>" in text
    bx.build_explorer(
        capped.runs, manifest_of(capped.runs), capped.root, tmp_path / "again.html", thumb_size=8, max_images=10
    )
    assert (tmp_path / "again.html").read_bytes() == capped.html.read_bytes()
    # At or below the cap nothing changes and nothing is said.
    assert bx.SUBSAMPLE_NAME not in sweep.html.read_text(encoding="utf-8")
    bx.build_explorer(
        sweep.runs,
        manifest_of(sweep.runs),
        sweep.root,
        tmp_path / "at-cap.html",
        thumb_size=THUMB_SIZE,
        max_images=len(sweep.paths),
        features_files=sweep.features,
    )
    assert (tmp_path / "at-cap.html").read_bytes() == sweep.html.read_bytes()


def test_subsample_note_is_visible_and_every_run_shows_the_same_points(driver, capped):
    with contextlib.suppress(NoAlertPresentException):
        driver.switch_to.alert.dismiss()
    driver.get_log("browser")
    hb.open_page(driver, capped.html)
    shown = model_value(
        driver,
        bx.SUBSAMPLE_NAME,
        """(() => {
        const view = Bokeh.index.find_one(m);
        const box = view.el.getBoundingClientRect();
        return [view.markup_el.innerText, box.width > 0 && box.height > 0];
    })()""",
    )
    assert shown == [CAPPED_NOTE, True]
    keep = fixed_subsample(30, 10)
    grid = np.array([[i % 6 * 10.0, i // 6 * 10.0] for i in range(30)])
    # The page lists runs by (perplexity, seed); file run k has its points at grid + k.
    order = sorted(range(len(RUNS)), key=lambda k: (RUNS[k]["perplexity"], RUNS[k]["seed"]))
    for j, k in enumerate(order):
        points = {}
        for class_index in range(3):
            name = bx.renderer_name(class_index)
            for path, x, y in zip(
                column(driver, name, "path"), column(driver, name, f"x{j}"), column(driver, name, f"y{j}")
            ):
                points[path] = [x, y]
        assert points == {capped.paths[i]: list(grid[i] + k) for i in keep}
    assert severe_console_messages(driver) == []
