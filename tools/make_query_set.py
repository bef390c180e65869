"""Assemble the demo's query set: new images to place on the demo's existing maps (``make query``).

    PYTHONPATH=scripts python tools/make_query_set.py SAMPLE ROOT OUT

reads the reference sample ``SAMPLE`` (``results/sample/images.csv``, paths relative to ``ROOT``, the
demo images) and writes a class-per-folder query set into ``OUT``:

* ``OUT/<class>/<image>``: the last 3 images of each demo class that the sample did not draw (held-out
  silhouettes: they should land among their own class);
* ``OUT/horse/skimage-horse.png``: scikit-image's horse silhouette (``skimage/data/horse.png``), a horse
  drawn by another hand;
* ``OUT/photo-<name>/<name>.png``: four photos scikit-image ships (chelsea the cat, coffee, the rocket,
  the astronaut): no silhouette at all, so far from the reference (out of distribution);
* ``OUT/<class>/copy-of-<image>``: a byte-for-byte copy of the sample's first image (a leak between the
  reference and the query: leaks.csv lists it).

Deterministic: the same sample gives the same files. Existing files are overwritten.
"""

import argparse
import shutil
from pathlib import Path, PurePosixPath

import skimage
from PIL import Image

from tsne_atlas.files.manifest import read_images

HELD_OUT_PER_CLASS = 3
PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png")


def make_query_set(sample: str, root: str, out: str) -> list[str]:
    """Write the query set (see the module docstring); returns the written paths relative to ``out``."""
    sampled, _ = read_images(sample)
    taken, root, out = set(sampled), Path(root), Path(out)
    written = []

    def put(source: Path, relative: str) -> None:
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(relative)

    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        unsampled = [p for p in sorted(folder.glob("*.png")) if f"{folder.name}/{p.name}" not in taken]
        for image in unsampled[-HELD_OUT_PER_CLASS:]:
            put(image, f"{folder.name}/{image.name}")
    data = Path(skimage.__file__).parent / "data"
    put(data / "horse.png", "horse/skimage-horse.png")
    for name in PHOTOS:
        stem = name.rsplit(".", 1)[0]
        target = out / f"photo-{stem}" / f"{stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(data / name).convert("RGB").save(target)
        written.append(f"photo-{stem}/{stem}.png")
    first = PurePosixPath(sampled[0])
    put(root / first, f"{first.parts[0]}/copy-of-{first.name}")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sample", help="the reference sample's images.csv")
    parser.add_argument("root", help="the folder its paths are relative to")
    parser.add_argument("out", help="the query set's folder")
    args = parser.parse_args()
    written = make_query_set(args.sample, args.root, args.out)
    print(f"make_query_set: {len(written)} images in {args.out}")


if __name__ == "__main__":
    main()
