"""Explorer at scale: the explorer's stages and its page in headless Chromium at 10,000 and 100,000 images.

Per N (``--sizes``), in ``benchmarks/work/explorer-<N>/`` (the layout the workflow writes:
``results/explorer.html`` beside ``results/explorer/``):

1. images: ``datasets.synthetic(N)`` (48-px PNGs in 10 class folders, made once under
   benchmarks/data/), the sample list ``images.csv`` and a manifest with the class label and one
   metadata column (``batch``, numbers: a continuous colouring);
2. the real ``explorer_thumbnails`` stage (``--thumb-size``, 2 threads, every image shown) in a child
   process: wall time, that process' peak RSS (its own ``VmHWM``: ``ru_maxrss`` of a child also
   counts the parent's RSS at fork, Linux keeps it across exec; its RSS after the imports alone
   beside it), atlas count and folder size;
3. three runs (class blobs, perplexity 30, seeds 0-2) and a real k-NN graph, k = 90 (what perplexity
   30 gives, ``methods.tsne.graph_neighbours_for``), over 20-d class-blob features (scikit-learn, exact); a
   features file with top-5 predictions, so the page has a predicted-class colouring;
4. the real ``build_explorer`` in a child process (page above ``inline_max_images``: thumbnails stay
   in the folder): wall time, peak RSS, page size. For N = 10,000 also a page of the fixed 5,000
   subsample, whose thumbnails are inlined (the largest self-contained page the defaults make);
5. each page in a fresh headless Chromium (tools/headless_browser.py), as built with the default
   ``explorer.backend: canvas`` and, for the page of every image, again with ``webgl``
   (``explorer-webgl.html`` beside it): ``--repeats`` fresh browsers after one untimed
   warm-up load, medians reported.

Browser measures (in-page times, ``performance.now()``; an interaction is timed from its input
event to the later of the end of the plot's last paint it caused, waiting until the plot has not
painted for 0.8 s, and the page's own change, two animation frames after it happened):

- ready: navigation start to ``tsneAtlas.ready`` (BokehJS built the plot, the page's code ran);
- hover works: from ``driver.get`` until a hover on the plot's central point first shows its card
  (painted), the pointer wiggled on and off the point from the moment ``driver.get`` returns;
  ``hover ms``: that hover, from its pointer move to the card painted;
- click: pointer up on that point to the neighbours panel filled and the plot's focus ring and
  neighbour lines painted;
- search: the last keystroke of ``class3`` (a tenth of the images match; the page waits 120 ms
  after the last keystroke before it searches) to the count shown and the rings painted;
- run: choosing the second run in the menu to the new layout painted;
- zoom: one mouse-wheel step over the plot (wheel zoom): to its first frame / to the full frame
  (while a tool interacts, Bokeh draws a decimated canvas frame, every 10th point, and the full one
  500 ms later; its WebGL glyphs draw every point in both): what panning and zooming cost per frame;
- memory: the JS heap after a forced garbage collection (CDP ``Performance.getMetrics``), the
  renderer's and the GPU process' peak RSS (``VmHWM``; headless Chromium here draws WebGL in
  software, SwiftShader, in the GPU process), all after the interactions.

    PYTHONPATH=scripts python benchmarks/explorer.py
    PYTHONPATH=scripts python benchmarks/explorer.py --sizes 10000 --repeats 1 --reuse
"""

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.support.select import Select

from common import REPO, WORK, command_line, machine, markdown_table
from datasets import synthetic

# tools/ holds scripts, not a package: load the file by its path rather than editing the import path.
_spec = importlib.util.spec_from_file_location("headless_browser", REPO / "tools" / "headless_browser.py")
hb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hb)

N_CLASSES = 10
PERPLEXITY = 30.0
SEEDS = (0, 1, 2)
FEATURES_ID = "synthetic20"
FEATURE_DIM = 20
NEIGHBOURS = 10  # explorer.neighbours, the default
EXACT_GRAPH_MAX = 100_000  # above, a synthetic k-NN graph (write_graph_and_features)
INLINE_MAX_IMAGES = 5000  # explorer.inline_max_images, the default
SEARCH = "class3"
WIDTH, HEIGHT = 1400, 960
BACKENDS = ("canvas", "webgl", "points")
MEDIANS = ("ready_s", "hover_s", "hover_ms", "click_ms", "search_ms", "run_ms", "zoom_ms", "zoom_full_ms")
MEDIANS += ("js_heap_mib",)
MEDIANS += ("renderer_peak_mib", "renderer_rss_mib", "gpu_peak_mib", "gpu_rss_mib")
PHASES = ("response_end", "dom_content_loaded", "load", "first_paint", "first_contentful_paint", "ready")
STAGE_HEADER = ["images", "stage", "wall s", "CPU s", "RSS after imports MiB", "peak RSS MiB", "output"]
BROWSER_HEADER = ["images", "backend", "ready s", "hover works s", "hover ms", "click → neighbours ms"]
BROWSER_HEADER += [
    f"search `{SEARCH}` ms",
    "run switch ms",
    "zoom step ms: first / full frame",
    "JS heap MiB",
    "renderer peak RSS MiB",
]
BROWSER_HEADER += ["GPU process peak RSS MiB", "page + thumbnails MiB"]
PHASE_HEADER = ["images", "backend", "HTML received", "DOMContentLoaded", "load", "first contentful paint", "ready"]
PHASE_HEADER += ["JSON.parse"]

# A child process running one stage: its wall time and peak RSS. VmHWM, the high-water mark of this
# process' own memory (ru_maxrss would also count the parent's RSS at fork: Linux keeps it across exec).
CHILD = """
import importlib, json, resource, sys, time
def hwm():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
spec = json.loads(sys.argv[1])
function = getattr(importlib.import_module(spec["module"]), spec["function"])
imported = hwm()
start, cpu_start = time.perf_counter(), cpu()
function(**spec["kwargs"])
print(json.dumps({"s": time.perf_counter() - start, "cpu_s": cpu() - cpu_start, "imports_rss_mib": imported,
                  "peak_rss_mib": hwm()}))
"""


def child(module: str, function: str, **kwargs) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}
    spec = json.dumps({"module": module, "function": function, "kwargs": kwargs})
    result = subprocess.run([sys.executable, "-c", CHILD, spec], capture_output=True, text=True, env=env, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"{module}.{function} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


# --- inputs -----------------------------------------------------------------------------------------


def sample(n: int, work: Path) -> tuple[Path, list[str], list[str]]:
    """The images (made once), ``images.csv`` and ``manifest.csv``; (root, paths, labels)."""
    from tsne_atlas.files.manifest import write_images, write_manifest

    root = synthetic(n)
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    labels = [p.split("/")[0] for p in paths]
    work.mkdir(parents=True, exist_ok=True)
    write_images(work / "images.csv", paths, ["0" * 64] * n)  # no duplicate search here: dummy hashes
    batch = [f"{(i * 7919) % 1000 / 10:g}" for i in range(n)]
    write_manifest(work / "manifest.csv", paths, labels, {"batch": batch})
    return root, paths, labels


def write_runs(work: Path, paths: list[str], labels: list[str]) -> list[tuple[str, str]]:
    """Three runs of class blobs (perplexity 30, seeds 0-2), as the tsne rule records them."""
    from tsne_atlas.files.runs import write_run

    codes = np.searchsorted(sorted(set(labels)), labels)
    runs = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        centres = rng.normal(scale=40, size=(N_CLASSES, 2))
        coords = centres[codes] + rng.normal(scale=8, size=(len(paths), 2))
        meta = {
            "features": FEATURES_ID,
            "method": "tsne",
            "perplexity": PERPLEXITY,
            "seed": seed,
            "kl_divergence": 3.0 + seed / 10,
            "classes": sorted(set(labels)),
            "weights_random": False,
            "model": "synthetic",
            "n_images": len(paths),
            "implementation": "opentsne",
        }
        tsv, meta_json = work / f"run-seed{seed}.tsv", work / f"run-seed{seed}.json"
        write_run(tsv, meta_json, paths, coords, meta)
        runs.append((str(tsv), str(meta_json)))
    return runs


def write_graph_and_features(work: Path, paths: list[str], labels: list[str]) -> tuple[str, str, float, str]:
    """The k-NN graph (k = 90) of 20-d class-blob features and a features file with top-5 predictions;
    (graph, features file, seconds for the graph, how it was made). Up to EXACT_GRAPH_MAX images the graph
    is exact (scikit-learn); above, where that would take hours here, each image's neighbours are random
    images of its class at growing distances: what the explorer reads has the same shape and size."""
    from sklearn.neighbors import NearestNeighbors

    from tsne_atlas.files.features import TOP_INDEX, TOP_PROBABILITY, write_features
    from tsne_atlas.files.map_inputs import write_neighbours
    from tsne_atlas.methods.tsne import graph_neighbours_for

    n, k = len(paths), graph_neighbours_for([PERPLEXITY])
    rng = np.random.default_rng(1)
    codes = np.searchsorted(sorted(set(labels)), labels)
    features = (rng.normal(scale=2.0, size=(N_CLASSES, FEATURE_DIM))[codes] + rng.normal(size=(n, FEATURE_DIM))).astype(
        np.float32
    )
    start = time.perf_counter()
    if n <= EXACT_GRAPH_MAX:
        distances, indices = NearestNeighbors(n_neighbors=k + 1, n_jobs=2).fit(features).kneighbors(features)
        indices, distances, made = indices[:, 1:], distances[:, 1:], "exact (scikit-learn)"
    else:
        members = [np.flatnonzero(codes == c) for c in range(N_CLASSES)]
        indices = np.empty((n, k), dtype=np.int64)
        for rows in members:
            indices[rows] = rows[rng.integers(0, len(rows), size=(len(rows), k))]
        distances = np.sort(rng.uniform(1.0, 3.0, size=(n, k)), axis=1)
        made = "synthetic (random images of the same class)"
    seconds = time.perf_counter() - start
    graph = work / f"k-{k}.npz"
    write_neighbours(graph, indices, distances)
    # Predictions: the image's own class 80 % of the time, at 30-99 %.
    top = np.argsort(rng.random((n, N_CLASSES)), axis=1)[:, :5].astype(np.int32)
    right = rng.random(n) < 0.8
    top[right, 0] = codes[right]
    probability = np.sort(rng.dirichlet(np.ones(5), size=n), axis=1)[:, ::-1].astype(np.float32)
    probability[:, 0] = rng.uniform(0.3, 0.99, size=n)
    batch = {"penultimate": features, TOP_INDEX: top, TOP_PROBABILITY: probability}
    features_file = work / f"{FEATURES_ID}.h5"
    write_features(features_file, [batch], n, paths, {}, {"penultimate": "avgpool"}, sorted(set(labels)))
    return str(graph), str(features_file), seconds, made


def build(
    work: Path,
    root: Path,
    runs,
    graph: str,
    features: str,
    thumbnails: Path,
    page: Path,
    backend: str = "canvas",
    data: Path | None = None,
) -> dict:
    """The real build_explorer in a child process; a points page writes its data folder ``data``."""
    measured = child(
        "tsne_atlas.explorer",
        "build_explorer",
        runs=runs,
        manifest=str(work / "manifest.csv"),
        root=str(root),
        output=str(page),
        thumbnails=str(thumbnails),
        features_files={FEATURES_ID: features},
        graph_files={FEATURES_ID: graph},
        inline_max_images=INLINE_MAX_IMAGES,
        neighbours=NEIGHBOURS,
        backend=backend,
        **({"data_folder": str(data)} if data is not None else {}),
    )
    data_mib = folder_mib(data) if data is not None else 0.0
    return {**measured, "page_mib": page.stat().st_size / 2**20, "data_mib": data_mib}


def thumbnails(work: Path, root: Path, folder: Path, thumb_size: int, max_images: int, points: bool = False) -> dict:
    """The real explorer_thumbnails in a child process; for a points page, every image, at most
    POINTS_CELL pixels, POINTS_ATLAS_COLUMNS a row (config.explorer_thumbnail_params)."""
    from tsne_atlas.config import POINTS_ATLAS_COLUMNS, POINTS_CELL

    extra = {"every_image": True, "columns": POINTS_ATLAS_COLUMNS} if points else {}
    measured = child(
        "tsne_atlas.thumbnails",
        "explorer_thumbnails",
        images=str(work / "images.csv"),
        root=str(root),
        thumbnails=str(folder),
        thumb_size=min(thumb_size, POINTS_CELL) if points else thumb_size,
        max_images=max_images,
        threads=2,
        **extra,
    )
    atlases = len(json.loads((folder / "thumbnails.json").read_text())["atlases"])
    return {**measured, "atlases": atlases, "folder_mib": folder_mib(folder)}


def prepare(n: int, thumb_size: int, reuse: bool, backends: list[str] = BACKENDS) -> dict:
    """Everything but the browser for N images, for the pages ``backends`` need; the stages' measures
    (kept in stages.json: --reuse builds only what an earlier run has not, but the points page always)."""
    work = WORK / f"explorer-{n}"
    record = work / "stages.json"
    results = work / "results"
    stages = json.loads(record.read_text()) if reuse and record.exists() else None
    if stages is not None and "inputs" not in stages:
        print(f"{n}: reusing {work} (stage measures from its first run)", file=sys.stderr)
        return stages
    root = synthetic(n)
    if stages is None:
        print(f"{n}: images", file=sys.stderr)
        root, paths, labels = sample(n, work)
        print(f"{n}: runs, k-NN graph, features", file=sys.stderr)
        runs = write_runs(work, paths, labels)
        graph, features, graph_s, made = write_graph_and_features(work, paths, labels)
        stages = {"n": n, "root": str(root), "work": str(work), "pages": {}, "graph_s": graph_s, "graph": made}
        stages["inputs"] = {"runs": runs, "graph": graph, "features": features}
        record.write_text(json.dumps(stages, indent=1))  # kept at each step: a failure later redoes no earlier one
    else:
        print(f"{n}: reusing {work}'s inputs", file=sys.stderr)
    runs, graph, features = (stages["inputs"][key] for key in ("runs", "graph", "features"))
    if {"canvas", "webgl"} & set(backends) and "all" not in stages["pages"]:
        print(f"{n}: thumbnails", file=sys.stderr)
        stages["thumbnails"] = thumbnails(work, root, results / "explorer", thumb_size, n)
        print(f"{n}: page", file=sys.stderr)
        page = results / "explorer.html"
        stages["pages"]["all"] = {
            **build(work, root, runs, graph, features, results / "explorer", page),
            "html": str(page),
        }
        webgl = results / "explorer-webgl.html"  # the same page as explorer.backend: webgl builds it
        build(work, root, runs, graph, features, results / "explorer", webgl, backend="webgl")
        stages["pages"]["all"]["html_webgl"] = str(webgl)
        if n > INLINE_MAX_IMAGES and n <= 2 * INLINE_MAX_IMAGES:
            print(f"{n}: inline page of {INLINE_MAX_IMAGES}", file=sys.stderr)
            folder = results / f"explorer-{INLINE_MAX_IMAGES}"
            stages["inline_thumbnails"] = thumbnails(work, root, folder, thumb_size, INLINE_MAX_IMAGES)
            page = results / f"explorer-{INLINE_MAX_IMAGES}.html"
            stages["pages"]["inline"] = {**build(work, root, runs, graph, features, folder, page), "html": str(page)}
    if "points" in backends:
        folder = results / "explorer-points"
        if "points_thumbnails" not in stages:
            print(f"{n}: thumbnails of every image (points page)", file=sys.stderr)
            stages["points_thumbnails"] = thumbnails(work, root, folder, thumb_size, 100_000, points=True)
            record.write_text(json.dumps(stages, indent=1))
        # The page is built every time (a minute at 1,000,000 images): it holds the page's code as it is now.
        print(f"{n}: points page", file=sys.stderr)
        page, data = results / "explorer-points.html", results / "explorer-points-data"
        built = build(work, root, runs, graph, features, folder, page, backend="points", data=data)
        stages["pages"]["points"] = {**built, "html": str(page), "html_points": str(page)}
    record.write_text(json.dumps(stages, indent=1))
    return stages


# --- browser ----------------------------------------------------------------------------------------

# Injected (CDP Page.addScriptToEvaluateOnNewDocument) before any of the page's own scripts: marks the moment the explorer is ready, times every
# large JSON.parse (the explorer's data, Bokeh's document) and offers one-shot marks for interactions.
INSTRUMENT_JS = """
(() => {
  const bench = { parses: [], events: {}, marks: {} };
  window.__bench = bench;
  const parse = JSON.parse;
  JSON.parse = function (text, reviver) {
    const start = performance.now();
    const value = parse.call(this, text, reviver);
    if (typeof text === "string" && text.length > 100000) bench.parses.push([start, performance.now() - start, text.length]);
    return value;
  };
  new MutationObserver((records, observer) => {
    if (document.documentElement && document.documentElement.dataset.explorerReady === "true") {
      bench.ready = performance.now();
      observer.disconnect();
    }
  }).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-explorer-ready"] });
  // The hover card's first showing (whenever it happens, from the first load on), and the pointer
  // move it answered (its event time: when the browser took the input, however busy the page).
  window.addEventListener("pointermove", (event) => { bench.lastMove = event.timeStamp; }, true);
  const cardWatch = () => {
    const card = document.getElementById("hover-card");
    if (!card) return setTimeout(cardWatch, 5);
    new MutationObserver((records, observer) => {
      if (!card.hidden) {
        observer.disconnect();
        const move = bench.lastMove;
        bench.hoverIndex = Number(card.querySelector(".thumb")?.dataset.index);
        requestAnimationFrame(() => requestAnimationFrame(() => {
          bench.hoverLatency = performance.now() - move;
          bench.hoverShown = performance.now();
        }));
      }
    }).observe(card, { attributes: true, attributeFilter: ["hidden"] });
  };
  cardWatch();
  // arm(name, event type, condition): the last such event's time, and the time two frames after
  // the condition first holds.
  bench.arm = (name, type, condition) => {
    const entry = { event: null, done: null };
    bench.marks[name] = entry;
    const onEvent = (event) => { entry.event = event.timeStamp; };
    window.addEventListener(type, onEvent, true);
    const check = () => {
      if (entry.done !== null) return;
      if (entry.event !== null && condition()) {
        entry.met = performance.now();
        window.removeEventListener(type, onEvent, true);
        requestAnimationFrame(() => requestAnimationFrame(() => { entry.done = performance.now(); }));
      } else setTimeout(check, 2);
    };
    check();
  };
})();
"""

MARKS_JS = """
const nav = performance.getEntriesByType("navigation")[0];
const paint = Object.fromEntries(performance.getEntriesByType("paint").map((e) => [e.name, e.startTime]));
return {origin: performance.timeOrigin, ready: __bench.ready, hover: __bench.hoverShown,
        hoverLatency: __bench.hoverLatency, hoverIndex: __bench.hoverIndex, parses: __bench.parses,
        response_end: nav.responseEnd, dom_content_loaded: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
        first_paint: paint["first-paint"] ?? null, first_contentful_paint: paint["first-contentful-paint"] ?? null};
"""

# Every paint of the plot from now on, [start, end] (wraps PlotView._actual_paint, a BokehJS detail).
WATCH_PAINTS_JS = """
const view = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name("plot"));
const paint = view._actual_paint;
__bench.paints = [];
view._actual_paint = function (...args) {
  const start = performance.now();
  const result = paint.apply(this, args);
  __bench.paints.push([start, performance.now()]);
  return result;
};
"""

# Wait until the mark is done and the plot has not painted for SETTLE_MS (Bokeh draws a decimated frame
# while a tool interacts and the full one 500 ms later); the mark and the plot's paints since its event.
WAIT_MARK_JS = """
const [name, timeout, settle] = arguments;
const done = arguments[arguments.length - 1];
const start = performance.now();
const poll = () => {
  const entry = window.__bench.marks[name];
  const paints = __bench.paints.filter(([begin]) => entry.event !== null && begin >= entry.event);
  const last = Math.max(entry.done ?? 0, ...paints.map(([, end]) => end));
  if (entry.done !== null && performance.now() - last > settle) done({...entry, paints});
  else if (performance.now() - start > timeout) done(null);
  else setTimeout(poll, 5);
};
poll();
"""
SETTLE_MS = 800


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for kid in children.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


def process_memory(driver) -> dict:
    """Peak and current RSS (MiB) of this driver's largest renderer and its GPU process."""
    out = {}
    for pid in descendants(driver.service.process.pid):
        try:
            cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace")
            status = (Path("/proc") / str(pid) / "status").read_text()
        except OSError:
            continue
        kind = "renderer" if "--type=renderer" in cmdline else "gpu" if "--type=gpu-process" in cmdline else None
        if kind is None:
            continue
        fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Vm")}
        hwm, rss = int(fields.get("VmHWM", 0)) / 1024, int(fields.get("VmRSS", 0)) / 1024
        if hwm > out.get(f"{kind}_peak_mib", -1):
            out[f"{kind}_peak_mib"], out[f"{kind}_rss_mib"] = hwm, rss
    return out


def move(driver, x: float, y: float, click: bool = False) -> None:
    """The pointer straight to (x, y) in one move event (no interpolated moves on the way)."""
    actions = ActionChains(driver, duration=0)
    actions.w3c_actions.pointer_action.move_to_location(round(x), round(y))
    if click:
        actions.w3c_actions.pointer_action.click()
    actions.perform()


def open_instrumented(profile: str):
    driver = hb.start_chromium(profile, WIDTH, HEIGHT)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": INSTRUMENT_JS})
    driver.execute_cdp_cmd("Performance.enable", {})
    driver.set_script_timeout(300)
    return driver


def wait_ready(driver) -> None:
    driver.execute_async_script(
        "const done = arguments[0]; const poll = () => window.tsneAtlas?.ready ? done(true) : setTimeout(poll, 5); poll();"
    )


def warm_up(page: Path) -> dict:
    """An untimed load: the central point, where it is on the screen, and what the plot draws with."""
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        driver = open_instrumented(profile)
        try:
            driver.get(page.resolve().as_uri())
            wait_ready(driver)
            hb.wait_for_paint(driver)
            index = hb.central_point(driver)
            x, y = hb.point_position(driver, index)
            info = driver.execute_script(
                """const doc = Bokeh.documents[0];
                const plot = doc.get_model_by_name('plot');
                const view = Bokeh.index.find_one(doc.get_model_by_name('points'));
                return {n: tsneAtlas.data.n, backend: plot.output_backend, gl: view.glyph.has_webgl(),
                        renderer: (() => { const c = document.createElement('canvas').getContext('webgl');
                          if (!c) return 'no WebGL';
                          const ext = c.getExtension('WEBGL_debug_renderer_info');
                          return ext ? c.getParameter(ext.UNMASKED_RENDERER_WEBGL) : c.getParameter(c.RENDERER); })()};"""
            )
            console = driver.get_log("browser")
        finally:
            driver.quit()
    return {"index": index, "x": x, "y": y, **info, "console": console}


def load_and_hover(driver, page: Path, spot: dict, position=None) -> dict:
    """Load the page and wiggle the pointer onto the central point and off it, from the moment
    ``driver.get`` returns, until a hover card shows; the load's marks. ``position``: where an image is on
    the screen (a Bokeh page's by default)."""
    started = time.time()
    driver.get(page.resolve().as_uri())
    deadline = time.monotonic() + 120
    while not driver.execute_script("return window.__bench.hoverShown !== undefined"):
        if time.monotonic() > deadline:
            raise SystemExit(f"{page}: no hover card within 120 s")
        move(driver, spot["x"], spot["y"])
        time.sleep(0.02)
        if driver.execute_script("return window.__bench.hoverShown !== undefined"):
            break
        move(driver, 5, 5)  # off the plot, onto the page's heading
        time.sleep(0.02)
    wait_ready(driver)
    hb.wait_for_paint(driver)
    marks = driver.execute_script(MARKS_JS)
    offset = marks["origin"] / 1000 - started  # driver.get was issued this long before navigation start
    # The card is that of a point under the pointer (dense regions hold several).
    where = position(marks["hoverIndex"]) if position else hb.point_position(driver, marks["hoverIndex"])
    off = np.subtract(where, (spot["x"], spot["y"]))
    return {
        "ready_s": marks["ready"] / 1000,
        "hover_s": offset + marks["hover"] / 1000,
        "hover_ms": marks["hoverLatency"],
        "hover_off_px": float(np.hypot(*off)),
        "phases": marks,
    }


def interact(driver, spot: dict) -> dict:
    """Click, search, run switch and a zoom step, each from its input event until painted (ms)."""
    out = {}
    driver.execute_script(WATCH_PAINTS_JS)
    driver.execute_script(
        "__bench.arm('click', 'pointerup', () => document.getElementById('neighbours').dataset.index !== undefined);"
    )
    move(driver, spot["x"], spot["y"], click=True)
    out["click_ms"] = latency(driver, "click")[1]
    driver.execute_script(
        "__bench.arm('search', 'input', () => document.getElementById('search-count').textContent !== '');"
    )
    driver.find_element("id", "search").send_keys(SEARCH)
    out["search_ms"] = latency(driver, "search")[1]
    out["matches"] = driver.execute_script("return tsneAtlas.state.matches.length")
    driver.execute_script("__bench.arm('run', 'change', () => tsneAtlas.state.run === 1);")
    Select(driver.find_element("id", "run-select")).select_by_index(1)
    out["run_ms"] = latency(driver, "run")[1]
    # One wheel step over the plot (wheel zoom is its active scroll tool): the ranges change, all repaints.
    driver.execute_script(
        "const plot = Bokeh.documents[0].get_model_by_name('plot'); const start = plot.x_range.start;"
        "__bench.arm('zoom', 'wheel', () => plot.x_range.start !== start);"
    )
    origin = ScrollOrigin.from_viewport(round(spot["x"]), round(spot["y"]))
    ActionChains(driver).scroll_from_origin(origin, 0, -100).perform()
    out["zoom_ms"], out["zoom_full_ms"] = latency(driver, "zoom")
    return out


def measure_once(page: Path, spot: dict) -> dict:
    """One fresh browser: load, hover until a card shows, interactions, then memory and console."""
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        driver = open_instrumented(profile)
        try:
            out = load_and_hover(driver, page, spot)
            out.update(interact(driver, spot))
            hb.wait_for_paint(driver)
            driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
            metrics = {m["name"]: m["value"] for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
            out["js_heap_mib"] = metrics["JSHeapUsedSize"] / 2**20
            out.update(process_memory(driver))
            out["console"] = driver.get_log("browser")
        finally:
            driver.quit()
    return out


def latency(driver, name: str) -> tuple[float, float]:
    """(ms from the input event to the first paint of the plot or, without one, the mark; ms to the
    last paint or the mark, whichever is later)."""
    entry = driver.execute_async_script(WAIT_MARK_JS, name, 60000, SETTLE_MS)
    if entry is None:
        raise SystemExit(f"no '{name}' response within 60 s")
    ends = [end for _, end in entry["paints"]]
    first = ends[0] if ends else entry["done"]
    return first - entry["event"], max([entry["done"], *ends]) - entry["event"]


def browse(page: Path, repeats: int) -> dict:
    spot = warm_up(page)
    runs = [measure_once(page, spot) for _ in range(repeats)]
    median = {
        key: statistics.median(run[key] for run in runs if run.get(key) is not None)
        for key in MEDIANS
        if any(run.get(key) is not None for run in runs)
    }
    console = spot["console"] + [entry for run in runs for entry in run["console"]]
    phases = [run["phases"] for run in runs]
    return {
        **median,
        "spot": {k: v for k, v in spot.items() if k != "console"},
        "hover_off_px": max(run["hover_off_px"] for run in runs),
        "matches": runs[0]["matches"],
        "severe": sorted({e["message"] for e in console if e["level"] == "SEVERE"}),
        "warnings": sorted({e["message"] for e in console if e["level"] == "WARNING"}),
        "phases": {
            key: statistics.median(p[key] for p in phases if p[key] is not None)
            for key in PHASES
            if any(p[key] is not None for p in phases)
        },
        "parses_ms": [
            [round(statistics.median(p["parses"][i][1] for p in phases)), p0[2]]
            for i, p0 in enumerate(phases[0]["parses"])
        ],
    }


# --- the points page (explorer.backend: points) ---------------------------------------------------------

# The point nearest the middle of the renderer's canvas, where it is on the screen, and what draws it.
POINTS_SPOT_JS = """
const wrap = document.getElementById('canvas-wrap').getBoundingClientRect();
let best = -1, bestDistance = Infinity;
for (let i = 0; i < tsneAtlas.data.n; i++) {
  const [x, y] = tsneAtlas.screenPosition(i);
  const d = (x - wrap.width / 2) ** 2 + (y - wrap.height / 2) ** 2;
  if (d < bestDistance) { best = i; bestDistance = d; }
}
const [x, y] = tsneAtlas.screenPosition(best);
const gl = document.createElement('canvas').getContext('webgl');
const ext = gl && gl.getExtension('WEBGL_debug_renderer_info');
return {index: best, x: wrap.left + x, y: wrap.top + y, n: tsneAtlas.data.n, version: reglScatterplot.version,
        renderer: !gl ? 'no WebGL' : ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER)};
"""
# Every frame the renderer draws from now on (its 'draw' event), for the zoom steps.
WATCH_DRAWS_JS = """
__bench.paints = [];
__bench.draws = [];
__bench.wholeDraws = [];
tsneAtlas.scatterplot.subscribe('draw', () => {
  __bench.draws.push(performance.now());
  // A frame of every image (not the subsample a moving view of a large page draws).
  if (!tsneAtlas.state.moving) __bench.wholeDraws.push(performance.now());
});
"""
# Wait for a mark's done (two frames after its condition held); the mark and the frames drawn since its event.
WAIT_DRAWN_JS = """
const [name, timeout] = arguments;
const done = arguments[arguments.length - 1];
const start = performance.now();
const poll = () => {
  const entry = __bench.marks[name];
  if (entry.done !== null) done({...entry, draws: __bench.draws.filter((t) => t >= entry.event)});
  else if (performance.now() - start > timeout) done(null);
  else setTimeout(poll, 5);
};
poll();
"""
POINTS_POSITION_JS = """
const wrap = document.getElementById('canvas-wrap').getBoundingClientRect();
const [x, y] = tsneAtlas.screenPosition(arguments[0]);
return [wrap.left + x, wrap.top + y];
"""
ZOOM_STEPS = 3  # wheel steps timed, each from its event to its first frame
THUMB_STEPS_MAX = 80  # wheel steps at most to zoom in until images show as thumbnails


def points_spot(page: Path) -> dict:
    """An untimed load of a points page: the central point and where it is on the screen."""
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        driver = open_instrumented(profile)
        try:
            driver.get(page.resolve().as_uri())
            wait_ready(driver)
            hb.wait_for_paint(driver)
            spot = driver.execute_script(POINTS_SPOT_JS)
            console = driver.get_log("browser")
        finally:
            driver.quit()
    return {**spot, "gl": True, "console": console}


def drawn(driver, name: str, timeout_ms: float = 120000) -> dict:
    entry = driver.execute_async_script(WAIT_DRAWN_JS, name, timeout_ms)
    if entry is None:
        raise SystemExit(f"no '{name}' response within {timeout_ms / 1000:.0f} s")
    return entry


def interact_points(driver, spot: dict) -> dict:
    """Hover a second image, click, search, run switch, wheel steps (to the first frame drawn and two
    frames later), then zoom in until the images in view show as thumbnails (ms from the input event)."""
    out = {}
    driver.execute_script(WATCH_DRAWS_JS)
    # A second hover, on another image (in another chunk of rows at a large N): the page is warm.
    other = driver.execute_script(
        """const wrap = document.getElementById('canvas-wrap').getBoundingClientRect(), n = tsneAtlas.data.n;
        const far = (i) => i !== arguments[0] && (n <= tsneAtlas.data.chunk || Math.abs(i - arguments[0]) > tsneAtlas.data.chunk);
        for (let i = (arguments[0] + Math.floor(n / 2)) % n, tries = 0; tries < n; i = (i + 7919) % n, tries++) {
          const [x, y] = tsneAtlas.screenPosition(i);
          if (far(i) && x > 40 && y > 40 && x < wrap.width - 40 && y < wrap.height - 40) return i;
        }
        return -1;""",
        spot["index"],
    )
    if other >= 0:
        x, y = driver.execute_script(POINTS_POSITION_JS, other)
        move(driver, 5, 5)
        driver.execute_script("tsneAtlas.hover(-1); __bench.arm('hover2', 'pointermove', () => "
                              "document.getElementById('hover-card').dataset.index !== undefined);")  # fmt: skip
        move(driver, x, y)
        entry = drawn(driver, "hover2")
        out["hover2_ms"] = entry["done"] - entry["event"]
    driver.execute_script(
        "__bench.arm('click', 'pointerup', () => document.getElementById('neighbours').dataset.index !== undefined);"
    )
    move(driver, spot["x"], spot["y"], click=True)
    entry = drawn(driver, "click")
    out["click_ms"] = entry["done"] - entry["event"]
    driver.execute_script(
        "__bench.arm('search', 'input', () => document.getElementById('search-count').textContent.endsWith('match'));"
    )
    driver.find_element("id", "search").send_keys(SEARCH)
    entry = drawn(driver, "search")
    out["search_ms"] = entry["done"] - entry["event"]
    out["matches"] = driver.execute_script("return tsneAtlas.state.matches.length")
    if driver.execute_script("return tsneAtlas.data.runs.length") > 1:
        driver.execute_script("__bench.arm('run', 'change', () => tsneAtlas.state.drawn?.run === 1);")
        Select(driver.find_element("id", "run-select")).select_by_index(1)
        entry = drawn(driver, "run")
        out["run_ms"] = entry["done"] - entry["event"]
        hb.wait_for_paint(driver)
        spot = {**spot, **dict(zip("xy", driver.execute_script(POINTS_POSITION_JS, spot["index"])))}
    origin = ScrollOrigin.from_viewport(round(spot["x"]), round(spot["y"]))
    firsts, shown = [], []
    for _ in range(ZOOM_STEPS):
        driver.execute_script(
            "__bench.arm('zoom', 'wheel', () => __bench.draws.some((t) => t > __bench.marks.zoom.event));"
        )
        ActionChains(driver).scroll_from_origin(origin, 0, -100).perform()
        entry = drawn(driver, "zoom")
        firsts.append(entry["draws"][0] - entry["event"])
        shown.append(entry["done"] - entry["event"])
    out["zoom_ms"], out["zoom_full_ms"] = statistics.median(firsts), statistics.median(shown)
    out["zoom_steps_ms"] = firsts
    # One more step: to the first frame of every image again (above the page's motion_points a moving view
    # draws a subsample until it rests; at or below, the step's first frame).
    driver.execute_script(
        "__bench.arm('rest', 'wheel', () => __bench.wholeDraws.some((t) => t > __bench.marks.rest.event));"
    )
    ActionChains(driver).scroll_from_origin(origin, 0, -100).perform()
    entry = drawn(driver, "rest")
    out["zoom_rest_ms"] = (
        min(t for t in driver.execute_script("return __bench.wholeDraws") if t > entry["event"]) - entry["event"]
    )
    # Zoom in at the central point until the images in view are drawn as thumbnails: the last step's time.
    for step in range(THUMB_STEPS_MAX):
        driver.execute_script(
            "__bench.arm('thumbs', 'wheel', () => { const t = tsneAtlas.state.thumbs;"
            " return __bench.draws.some((d) => d > __bench.marks.thumbs.event) && t.pending === 0; });"
        )
        ActionChains(driver).scroll_from_origin(origin, 0, -300).perform()
        entry = drawn(driver, "thumbs")
        thumbs = driver.execute_script("return tsneAtlas.state.thumbs")
        if thumbs["shown"] > 0:
            out["thumbs_ms"], out["thumbs_in_view"], out["thumbs_steps"] = (
                entry["done"] - entry["event"],
                thumbs["shown"],
                step + 1,
            )
            out["thumbs_atlases"] = thumbs["atlases"]
            break
    return out


def measure_points_once(page: Path, spot: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        driver = open_instrumented(profile)
        try:
            out = load_and_hover(driver, page, spot, lambda index: driver.execute_script(POINTS_POSITION_JS, index))
            out.update(interact_points(driver, spot))
            hb.wait_for_paint(driver)
            driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
            metrics = {m["name"]: m["value"] for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
            out["js_heap_mib"] = metrics["JSHeapUsedSize"] / 2**20
            out.update(process_memory(driver))
            out["console"] = driver.get_log("browser")
        finally:
            driver.quit()
    return out


POINTS_MEDIANS = (
    *MEDIANS,
    "zoom_rest_ms",
    "hover2_ms",
    "thumbs_ms",
    "thumbs_in_view",
    "thumbs_atlases",
    "thumbs_steps",
)


def browse_points(page: Path, repeats: int) -> dict:
    spot = points_spot(page)
    runs = [measure_points_once(page, spot) for _ in range(repeats)]
    median = {
        key: statistics.median(run[key] for run in runs if run.get(key) is not None)
        for key in POINTS_MEDIANS
        if any(run.get(key) is not None for run in runs)
    }
    console = spot["console"] + [entry for run in runs for entry in run["console"]]
    return {
        **median,
        "spot": {k: v for k, v in spot.items() if k != "console"},
        "hover_off_px": max(run["hover_off_px"] for run in runs),
        "matches": runs[0]["matches"],
        "zoom_steps_ms": [run["zoom_steps_ms"] for run in runs],
        "severe": sorted({e["message"] for e in console if e["level"] == "SEVERE"}),
        "warnings": sorted({e["message"] for e in console if e["level"] == "WARNING"}),
        "phases": {
            key: statistics.median(run["phases"][key] for run in runs if run["phases"][key] is not None)
            for key in PHASES
            if any(run["phases"][key] is not None for run in runs)
        },
    }


# --- report -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--thumb-size", type=int, default=96, help="explorer.thumb_size (default 96)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh browsers per page (after one warm-up load)")
    parser.add_argument(
        "--backends",
        default="canvas,webgl",
        help=f"explorer.backend of the pages built and browsed, a comma list of {', '.join(BACKENDS)} (default canvas,webgl)",
    )
    parser.add_argument("--reuse", action="store_true", help="reuse a work folder's inputs, thumbnails and pages")
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument("--json", type=Path, help="write every measure here")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or set(backends) - set(BACKENDS):
        raise SystemExit(f"--backends: {args.backends!r}; give a comma list of {', '.join(BACKENDS)}")
    hb.check_browser()

    load = [os.getloadavg()[0]]
    everything = []
    for n in args.sizes:
        stages = prepare(n, args.thumb_size, args.reuse, backends)
        for name, page in stages["pages"].items():
            if name == "points":
                if "points" in backends:
                    print(f"{n}: points page: browser", file=sys.stderr)
                    page["points"] = browse_points(Path(page["html"]), args.repeats)
                continue
            for backend in [b for b in backends if b != "points" and (name == "all" or b == "canvas")]:
                target = Path(page["html"] if backend == "canvas" else page["html_webgl"])
                print(f"{n}: {name} page, {backend}: browser", file=sys.stderr)
                page[backend] = browse(target, args.repeats)
        everything.append(stages)
    load.append(os.getloadavg()[0])
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
    text = report(everything, args, load)
    print(text)
    if args.out:
        args.out.write_text(text)


def stage_row(label: str, stage: str, measured: dict, output: str) -> list[str]:
    cpu = f"{measured['cpu_s']:.1f}" if "cpu_s" in measured else "n/a"  # stages.json of an older run: no CPU
    return [label, stage, f"{measured['s']:.1f}", cpu, f"{measured['imports_rss_mib']:.0f}",
            f"{measured['peak_rss_mib']:.0f}", output]  # fmt: skip


def browser_row(label: str, backend: str, b: dict, folder_mib: float) -> list[str]:
    drawn = "WebGL" if b["spot"]["gl"] else "canvas"
    return [label, f"{backend} (draws with {drawn})", f"{b['ready_s']:.2f}", f"**{b['hover_s']:.2f}**",
            f"{b['hover_ms']:.0f}", f"{b['click_ms']:.0f}", f"{b['search_ms']:.0f}", f"{b['run_ms']:.0f}",
            f"{b['zoom_ms']:.0f} / {b['zoom_full_ms']:.0f}", f"{b['js_heap_mib']:.0f}", f"{b.get('renderer_peak_mib', float('nan')):.0f}",
            f"{b.get('gpu_peak_mib', float('nan')):.0f}", f"{folder_mib:.1f}"]  # fmt: skip


POINTS_HEADER = ["images", "ready s", "hover works s", "hover ms: first / another image", "click → neighbours ms"]
POINTS_HEADER += [
    f"search `{SEARCH}` ms",
    "run switch ms",
    "zoom step ms: first frame / shown / every image again",
    "thumbnails ms (in view)",
]
POINTS_HEADER += ["JS heap MiB", "renderer peak RSS MiB", "GPU process peak RSS MiB", "page + data + thumbnails MiB"]


def points_row(label: str, b: dict, folder_mib: float) -> list[str]:
    nan = float("nan")
    thumbs = (
        f"{b['thumbs_ms']:.0f} ({b['thumbs_in_view']:,.0f} images, {b['thumbs_atlases']:,.0f} atlases)"
        if "thumbs_ms" in b
        else "not reached"
    )
    return [label, f"{b['ready_s']:.2f}", f"**{b['hover_s']:.2f}**", f"{b['hover_ms']:.0f} / {b.get('hover2_ms', nan):.0f}",
            f"{b['click_ms']:.0f}", f"{b['search_ms']:.0f}", f"{b.get('run_ms', nan):.0f}",
            f"{b['zoom_ms']:.0f} / {b['zoom_full_ms']:.0f} / {b.get('zoom_rest_ms', nan):.0f}", thumbs, f"{b['js_heap_mib']:.0f}",
            f"{b.get('renderer_peak_mib', nan):.0f}", f"{b.get('gpu_peak_mib', nan):.0f}", f"{folder_mib:.1f}"]  # fmt: skip


def phase_row(label: str, backend: str, b: dict) -> list[str]:
    p = b["phases"]
    parses = ", ".join(f"{ms} ms ({size / 2**20:.1f} MiB)" for ms, size in b["parses_ms"])
    return [label, backend, *(f"{p.get(key, float('nan')):.0f}" for key in PHASES if key != "first_paint"), parses]


def console_text(message: str) -> str:
    """A console message's first sentence, without its page URL, context address and repeat note."""
    text = message.split(" - ", 1)[-1]
    text = re.sub(r"^\[[^\]]*\]", "", text).replace(" (this message will no longer repeat)", "")
    return text.split(". ")[0]


def report(everything: list[dict], args, load: list[float]) -> str:
    stage_rows, browser_rows, phase_rows, notes, warnings = [], [], [], [], set()
    points_rows = []
    for stages in everything:
        n, thumbs = stages["n"], stages.get("thumbnails")
        if thumbs:
            stage_rows.append(
                stage_row(
                    f"{n:,}",
                    "explorer_thumbnails",
                    thumbs,
                    f"{thumbs['atlases']} atlases, {thumbs['folder_mib']:.1f} MiB",
                )
            )
        for name, page in stages["pages"].items():
            if name == "points":
                t = stages["points_thumbnails"]
                stage_rows.append(stage_row(f"{n:,}", "explorer_thumbnails (points: every image)", t,
                                            f"{t['atlases']} atlases, {t['folder_mib']:.1f} MiB"))  # fmt: skip
                stage_rows.append(stage_row(f"{n:,}", "build_explorer (points)", page,
                                            f"explorer.html {page['page_mib']:.1f} MiB + data {page['data_mib']:.1f} MiB"))  # fmt: skip
                if "points" in page:
                    b = page["points"]
                    points_rows.append(points_row(f"{n:,}", b, page["page_mib"] + page["data_mib"] + t["folder_mib"]))
                    notes += [f"{n:,} points: SEVERE console message: {message[:300]}" for message in b["severe"]]
                    warnings.update(console_text(message) for message in b["warnings"])
                continue
            inline = name == "inline"
            label = f"{INLINE_MAX_IMAGES:,} of {n:,}" if inline else f"{n:,}"
            if inline:
                t = stages["inline_thumbnails"]
                stage_rows.append(
                    stage_row(label, "explorer_thumbnails", t, f"{t['atlases']} atlases, {t['folder_mib']:.1f} MiB")
                )
            where = "thumbnails inlined" if inline else "thumbnails in explorer/"
            stage_rows.append(
                stage_row(label, "build_explorer", page, f"explorer.html {page['page_mib']:.1f} MiB ({where})")
            )
            folder = page["page_mib"] + (0 if inline else thumbs["folder_mib"])
            for backend in (b for b in BACKENDS if b in page):
                b = page[backend]
                browser_rows.append(browser_row(label, backend, b, folder))
                phase_rows.append(phase_row(label, backend, b))
                if b["hover_off_px"] > 4:
                    notes.append(
                        f"{label} {backend}: a first hover card showed an image {b['hover_off_px']:.0f} px away"
                    )
                notes += [f"{label} {backend}: SEVERE console message: {message[:300]}" for message in b["severe"]]
                warnings.update(console_text(message) for message in b["warnings"])
    browsed = [page[b] for stages in everything for page in stages["pages"].values() for b in BACKENDS if b in page]
    renderer = browsed[0]["spot"].get("renderer", "not measured") if browsed else "not measured"
    graph = ", ".join(f"{s['n']:,}: {s.get('graph', 'exact (scikit-learn)')}, {s['graph_s']:.0f} s" for s in everything)
    lines = [
        f"Machine: {machine()}; {hb.CHROMIUM} (headless, window {WIDTH}x{HEIGHT}), WebGL renderer: {renderer}",
        "",
        f"Command: `{command_line()}` (1-minute load average {load[0]:.1f} at the start, {load[-1]:.1f} at the end)",
        "",
        f"Stages (child processes; thumbnails {args.thumb_size} px, 2 threads; 3 runs, k-NN graph k = 90, "
        f"top-5 predictions; the graph, not a stage here: {graph}):",
        "",
        markdown_table(STAGE_HEADER, stage_rows),
        "",
    ]
    if browser_rows:
        lines += [
            f"Browser (median of {args.repeats} fresh headless Chromiums after a warm-up load; `canvas`: the default "
            "`explorer.backend` up to 100,000 images, `webgl`: the same page built with `explorer.backend: webgl`):",
            "",
            markdown_table(BROWSER_HEADER, browser_rows),
            "",
            "Page load phases (ms from navigation start, medians; JSON.parse calls over 100 kB: time and text size):",
            "",
            markdown_table(PHASE_HEADER, phase_rows),
            "",
        ]
    lines.append("Console: " + ("; ".join(notes) if notes else "no SEVERE entries") + ".")
    if points_rows:
        lines[-1:-1] = [
            "Points page (`explorer.backend: points`, every image, WebGL by regl-scatterplot; median of "
            f"{args.repeats} fresh headless Chromiums after a warm-up load; ms from the input event; zoom: a wheel step "
            "to the renderer's first frame, two frames later, and to the first frame of every image again (above "
            "100,000 images a moving view draws an even subsample of 100,000 until it rests for 250 ms); "
            "thumbnails: the wheel step that brought 2,000 or "
            "fewer images into view, to all of them drawn as thumbnails):",
            "",
            markdown_table(POINTS_HEADER, points_rows),
            "",
        ]
    if warnings:
        lines += ["", "Console warnings (distinct): " + " | ".join(sorted(warnings))]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
