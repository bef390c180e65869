"""Screenshot a local HTML page (the explorer) in headless Chromium, optionally with a point clicked.

    python tools/screenshot_page.py page.html out.png [--click] [--width 1280 --height 960] [--fragment 'run=3&compare=12']

``--click`` first clicks the point nearest the plot's centre and leaves the mouse on it, so the
picture shows the neighbours panel and the hover card with its thumbnail. ``--fragment`` opens the page
at a saved view (the explorer keeps its runs, colouring, toggles and clicked image in the address). Needs Debian's chromium and chromium-driver
(``tools/install_system_deps.sh``).
"""

import argparse
import sys
from pathlib import Path

from headless_browser import central_point, chromium, hover_point, move_to_point, open_page
from tsne_atlas.jobs import AtlasError, atomic_path


def screenshot_page(
    html: str, png: str, click: bool = False, width: int = 1280, height: int = 960, fragment: str = ""
) -> None:
    """Write a PNG of what a ``width`` x ``height`` browser window shows of ``html`` (at ``#fragment``)."""
    if not Path(html).is_file():
        raise AtlasError(f"{html}: no such page; build the explorer first")
    with chromium(width, height) as driver:
        open_page(driver, html, fragment=fragment)
        if click:
            index = central_point(driver)
            move_to_point(driver, index, click=True)
            hover_point(driver, index)
        image = driver.get_screenshot_as_png()
    with atomic_path(png) as tmp:
        Path(tmp).write_bytes(image)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", help="local HTML file")
    parser.add_argument("png", help="screenshot to write")
    parser.add_argument("--click", action="store_true", help="click the point nearest the plot's centre first")
    parser.add_argument("--width", type=int, default=1280, help="window width in CSS pixels")
    parser.add_argument("--height", type=int, default=960, help="window height in CSS pixels")
    parser.add_argument("--fragment", default="", help="the page's address fragment (a saved view), without #")
    args = parser.parse_args(argv)
    try:
        screenshot_page(args.html, args.png, args.click, args.width, args.height, args.fragment)
    except AtlasError as err:
        print(f"tsne-atlas: error: {err}", file=sys.stderr)
        return 1
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
