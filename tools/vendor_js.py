"""Vendor the explorer's WebGL point renderer: regl-scatterplot, bundled into one classic script.

The points page (``scripts/tsne_atlas/explorer_points.py``) inlines
``scripts/tsne_atlas/explorer_page/vendor/regl-scatterplot.js``, a bundle committed to the repository so
that neither CI nor a user needs npm: run this only to change the renderer's version.

What it does: copies ``tools/vendor_js/`` (package.json and package-lock.json, which pin
regl-scatterplot, every package it pulls in and esbuild, with their registry checksums; entry.js) to a
temporary folder, ``npm ci`` there (the npm registry, nothing else), bundles entry.js with esbuild into one
IIFE (a classic script: ES modules do not load from ``file://`` pages) that sets
``window.reglScatterplot = {createScatterplot, version}``, and writes into the vendor folder the bundle,
``LICENSES.txt`` (the licence of every package the bundle holds) and
``README.md`` (versions, sha256, the command).

    .venv/bin/python tools/vendor_js.py          # rewrite the vendor folder
    .venv/bin/python tools/vendor_js.py --check  # bundle again and compare with the committed files

Identifiers are not minified: regl-scatterplot builds its spatial-index worker from the text of its own
functions (``Function.toString``), which refer to a module-level name (``KDBush``) that a renaming
minifier would change.
"""

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tools" / "vendor_js"
VENDOR = REPO / "scripts" / "tsne_atlas" / "explorer_page" / "vendor"
BUNDLE = "regl-scatterplot.js"
ESBUILD_ARGS = (
    "--bundle",
    "--format=iife",
    "--target=es2020",
    "--minify-whitespace",
    "--minify-syntax",
    "--legal-comments=none",
    "--charset=utf8",
)
LICENSE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "license", "LICENSE-MIT")


def run(command: list[str], cwd: Path) -> None:
    subprocess.run(command, cwd=cwd, check=True)


def shipped_packages(lock: dict, node_modules: Path) -> list[Path]:
    """The folders of every package of the lockfile that is not a build tool (``dev``): regl-scatterplot and
    all it depends on, the packages its own dist file already holds (dom-2d-camera, gl-matrix, earcut, ...)
    and those esbuild adds (regl, pub-sub-es)."""
    return sorted(
        node_modules.parent / name for name, entry in lock["packages"].items() if name and not entry.get("dev")
    )


def licence_text(folder: Path) -> tuple[str, str, str]:
    """(name@version, licence id, licence file's text) of one installed package."""
    meta = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    text = next(
        ((folder / name).read_text(encoding="utf-8") for name in LICENSE_NAMES if (folder / name).is_file()), None
    )
    if text is None:
        raise SystemExit(f"{folder}: no licence file ({', '.join(LICENSE_NAMES)}); name it in LICENSE_NAMES")
    return f"{meta['name']}@{meta['version']}", str(meta.get("license", "?")), text.strip()


def build(out: Path) -> dict[str, str]:
    """Bundle into ``out`` (a folder); the text of each file written, by name."""
    with tempfile.TemporaryDirectory(prefix="tsne-atlas-vendor-") as tmp:
        work = Path(tmp)
        for name in ("package.json", "package-lock.json", "entry.js"):
            shutil.copy(SOURCE / name, work / name)
        run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], work)
        esbuild = work / "node_modules" / ".bin" / "esbuild"
        run([str(esbuild), "entry.js", *ESBUILD_ARGS, f"--outfile={out / BUNDLE}"], work)
        bundle = (out / BUNDLE).read_text(encoding="utf-8")
        if "new KDBush(" not in bundle:
            raise SystemExit(
                "the bundle lost regl-scatterplot's KDBush name its worker needs; do not rename identifiers"
            )
        lock = json.loads((work / "package-lock.json").read_text(encoding="utf-8"))
        packages = [licence_text(folder) for folder in shipped_packages(lock, work / "node_modules")]
    esbuild_version = lock["packages"]["node_modules/esbuild"]["version"]
    licences = "\n\n".join(f"==== {name} ({licence}) ====\n\n{text}" for name, licence, text in packages) + "\n"
    (out / "LICENSES.txt").write_text(licences, encoding="utf-8")
    digest = hashlib.sha256(bundle.encode("utf-8")).hexdigest()
    listed = "\n".join(f"- {name} ({licence})" for name, licence, _ in packages)
    readme = f"""# Vendored JavaScript

`{BUNDLE}` ({len(bundle.encode("utf-8")):,} bytes, sha256 `{digest}`) is
[regl-scatterplot](https://github.com/flekschas/regl-scatterplot) and what it pulls in, bundled by
esbuild {esbuild_version} into one classic script (an IIFE; ES modules do not load from `file://`) that sets
`window.reglScatterplot = {{createScatterplot, version}}`. The explorer's points page inlines it
(`explorer.backend: points`, docs/outputs.md).

It holds, each under the licence in `LICENSES.txt`:

{listed}

Made by `tools/vendor_js.py` from `tools/vendor_js/` (package.json and package-lock.json pin every version
and its registry checksum): `npm ci` in a temporary folder, then
`esbuild entry.js {" ".join(ESBUILD_ARGS)}`. `.venv/bin/python tools/vendor_js.py --check` bundles again
and compares.
"""
    (out / "README.md").write_text(readme, encoding="utf-8")
    return {name: (out / name).read_text(encoding="utf-8") for name in (BUNDLE, "LICENSES.txt", "README.md")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="bundle again and compare with the committed files")
    args = parser.parse_args()
    if not args.check:
        VENDOR.mkdir(parents=True, exist_ok=True)
        written = build(VENDOR)
        print(f"wrote {', '.join(written)} to {VENDOR}")
        return 0
    with tempfile.TemporaryDirectory(prefix="tsne-atlas-vendor-check-") as tmp:
        written = build(Path(tmp))
    differ = [name for name, text in written.items() if (VENDOR / name).read_text(encoding="utf-8") != text]
    if differ:
        print(f"{VENDOR}: {', '.join(differ)} differ from a fresh bundle; run tools/vendor_js.py", file=sys.stderr)
        return 1
    print(f"{VENDOR}: the same as a fresh bundle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
