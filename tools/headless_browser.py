"""Headless Chromium for the explorer: its browser tests and the README screenshot.

Debian's ``chromium`` and ``chromium-driver`` (``tools/install_system_deps.sh``) are used
by path, so Selenium Manager never tries to download a browser or a driver, and the
browser is told not to reach the network on its own. The helpers at the bottom find
Bokeh models and views through BokehJS, so they work with any page layout.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

from tsne_atlas.jobs import AtlasError

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",  # root in containers cannot use Chromium's sandbox
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
INSTALL_HINT = "run tools/install_system_deps.sh as root (it installs Debian's chromium and chromium-driver)"


def check_browser(browser: Path = CHROMIUM, driver: Path = CHROMEDRIVER) -> None:
    """Raise AtlasError naming the install script when Chromium or its driver is missing."""
    for path in (browser, driver):
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise AtlasError(f"{path} is missing; {INSTALL_HINT}")


def chromium_options(user_data_dir: str | os.PathLike, width: int = 1280, height: int = 900) -> webdriver.ChromeOptions:
    """Options for a fresh, offline headless Chromium that records the browser console."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Leave an alert open instead of dismissing it, so a test can see that one fired.
    options.unhandled_prompt_behavior = "ignore"
    return options


def start_chromium(user_data_dir: str | os.PathLike, width: int = 1280, height: int = 900) -> webdriver.Chrome:
    """A headless Chromium driven by Debian's chromedriver; the caller must ``quit()`` it."""
    check_browser()
    service = Service(executable_path=str(CHROMEDRIVER))
    return webdriver.Chrome(service=service, options=chromium_options(user_data_dir, width, height))


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a throw-away profile, always quit at the end."""
    with tempfile.TemporaryDirectory(prefix="tsne-atlas-chromium-") as profile:
        driver = start_chromium(profile, width, height)
        try:
            yield driver
        finally:
            driver.quit()


# Resolves when the explorer's own code has started (after BokehJS built the plot's views), or, on a
# page without it, when BokehJS has built the views of every root of the document.
_PAGE_READY_JS = """
const done = arguments[arguments.length - 1];
const bokehReady = () => window.Bokeh !== undefined && Bokeh.documents.length > 0
    && Bokeh.documents[0].roots().every((root) => Bokeh.index.find_one(root) != null);
const ready = () => window.tsneAtlas !== undefined ? window.tsneAtlas.ready : bokehReady();
const poll = () => ready() ? done(true) : setTimeout(poll, 20);
poll();
"""


def open_page(driver: webdriver.Chrome, html: str | os.PathLike, timeout: float = 60.0, fragment: str = "") -> None:
    """Load a local HTML file (with ``#fragment`` when given) and wait until its page (the explorer's code,
    or Bokeh) is ready and painted."""
    driver.set_script_timeout(timeout)
    driver.get(Path(html).resolve().as_uri() + (f"#{fragment}" if fragment else ""))
    driver.execute_async_script(_PAGE_READY_JS)
    wait_for_paint(driver)


def wait_for_paint(driver: webdriver.Chrome) -> None:
    """Wait two animation frames, so BokehJS has painted what the last change requested."""
    driver.execute_async_script(
        "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));"
    )


def allow_downloads(driver: webdriver.Chrome, folder: str | os.PathLike) -> None:
    """Let the page's downloads (the explorer's selection CSV) land in ``folder`` without a prompt."""
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})


# Viewport position (CSS pixels) of point `index` of the glyph renderer named `name`:
# the renderer view's own scales map data to canvas pixels; the canvas' client rect
# places the canvas in the viewport.
_POINT_POSITION_JS = """
const [name, index] = arguments;
const renderer = Bokeh.documents[0].get_model_by_name(name);
const view = Bokeh.index.find_one(renderer);
const data = renderer.data_source.data;
const sx = view.coordinates.x_scale.compute(data.x[index]);
const sy = view.coordinates.y_scale.compute(data.y[index]);
const rect = view.plot_view.canvas_view.el.getBoundingClientRect();
return [rect.left + sx, rect.top + sy];
"""


def point_position(driver: webdriver.Chrome, index: int, renderer: str = "points") -> tuple[float, float]:
    """Where point ``index`` of the named Bokeh glyph renderer is on the screen (CSS pixels)."""
    x, y = driver.execute_script(_POINT_POSITION_JS, renderer, index)
    return float(x), float(y)


def move_to_point(driver: webdriver.Chrome, index: int, click: bool = False, renderer: str = "points") -> None:
    """Move the mouse onto point ``index`` of the named glyph renderer as a user would (scrolling it into
    view first), and click it."""
    x, y = point_position(driver, index, renderer)
    width, height = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    if not (0 <= x < width and 0 <= y < height):
        # The pointer can only reach the viewport: scroll the point to its middle first.
        driver.execute_script("window.scrollBy(arguments[0], arguments[1])", x - width / 2, y - height / 2)
        wait_for_paint(driver)
        x, y = point_position(driver, index, renderer)
    actions = ActionChains(driver)
    actions.w3c_actions.pointer_action.move_to_location(round(x), round(y))
    if click:
        actions.w3c_actions.pointer_action.click()
    actions.perform()


def hover_point(driver: webdriver.Chrome, index: int, renderer: str = "points") -> dict:
    """Hover point ``index`` (of the named renderer: the explorer's right map's is ``points-2``) and return
    the explorer's hover card: its text and its thumbnail's image index."""
    move_to_point(driver, index, renderer=renderer)
    WebDriverWait(driver, 5).until(
        lambda d: d.execute_script("return !document.getElementById('hover-card').hidden"), "no hover card appeared"
    )
    wait_for_paint(driver)
    return hover_card(driver)


def hover_card(driver: webdriver.Chrome) -> dict:
    """The hover card as shown: ``text``, ``html`` and ``thumb`` (the image index of its thumbnail)."""
    return driver.execute_script(
        """const card = document.getElementById('hover-card');
        const thumb = card.querySelector('.thumb');
        return {text: card.innerText, html: card.innerHTML, hidden: card.hidden,
                thumb: thumb ? Number(thumb.dataset.index) : null};"""
    )


# Every element of the page, inside Bokeh's shadow roots too (document.querySelectorAll stops at them).
DEEP_ELEMENTS_JS = """
const all = [];
const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
        all.push(el);
        if (el.shadowRoot) walk(el.shadowRoot);
    }
};
walk(document);
"""


# The point nearest the middle of the plot's frame: a hover there shows a card with room on every side.
_CENTRAL_POINT_JS = """
const renderer = Bokeh.documents[0].get_model_by_name(arguments[0]);
const view = Bokeh.index.find_one(renderer);
const frame = view.plot_view.frame.bbox;
const {x, y} = renderer.data_source.data;
let best = null;
for (let i = 0; i < x.length; i++) {
    const dx = view.coordinates.x_scale.compute(x[i]) - frame.hcenter;
    const dy = view.coordinates.y_scale.compute(y[i]) - frame.vcenter;
    const distance = dx * dx + dy * dy;
    if (best == null || distance < best[1]) best = [i, distance];
}
return best;
"""


def central_point(driver: webdriver.Chrome, renderer: str = "points") -> int:
    """Index of the point nearest the plot's centre; AtlasError when the page has no such renderer."""
    try:
        best = driver.execute_script(_CENTRAL_POINT_JS, renderer)
    except Exception as err:  # JavaScript error: no such model
        raise AtlasError(
            f"the page has no glyph renderer named '{renderer}' to hover; is it an explorer page?"
        ) from err
    if best is None:
        raise AtlasError(f"the page's '{renderer}' renderer has no points to hover")
    return int(best[0])
