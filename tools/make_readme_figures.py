"""Copy the demo run's figures into docs/ for the README, downscaled for the page.

python tools/make_readme_figures.py results docs     (or: make readme-figures)
"""

import sys
from pathlib import Path

import cv2

RUN = "perplexity-30_seed-0"


def main(results: Path, docs: Path, width: int = 900) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    for source, target in (
        (results / "scatter" / f"{RUN}.png", docs / "demo-scatter.png"),
        (results / "mosaic" / f"{RUN}.png", docs / "demo-mosaic.png"),
        (results / "grid_mosaic" / f"{RUN}.png", docs / "demo-grid-mosaic.png"),
        (results / "overview" / "sweep.png", docs / "demo-overview.png"),
        (results / "metrics" / "sweep.png", docs / "demo-metrics.png"),
    ):
        image = cv2.imread(str(source))
        if image is None:
            raise SystemExit(f"{source} is missing: run 'make run' first")
        scale = min(1.0, width / image.shape[1])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(target), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"wrote {target} ({small.shape[1]}x{small.shape[0]}) from {source}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
