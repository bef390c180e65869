"""Messy image folders: every case of the hardening table, sampled for real from files on disk."""

import csv
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import sample_and_label
from tsne_atlas.collection import list_images
from tsne_atlas.files.manifest import read_manifest
from tsne_atlas.images import image_problem, load_rgb, path_problem
from tsne_atlas.jobs import AtlasError
from tsne_atlas.sampling import sample_manifest

GOOD_KINDS = [
    "rgb.jpg",
    "cmyk.jpg",
    "gray.png",
    "palette.png",
    "rgba.png",
    "sixteen_bit.png",
    "exif_rotated.jpg",
    "chat été <b>&'\".png",
    "symlink_inside.png",
]
BAD_KINDS = {
    "empty.jpg": "empty file",
    "text.jpg": "not an image",
    "truncated.jpg": "truncated or corrupt",
    "truncated.png": "truncated or corrupt",
    "corrupt.png": "truncated or corrupt",
    "bomb.png": "too large",
    "symlink_outside.png": "symlink points outside dataset.root",
    "loop_a.png": "broken or looping symlink",
    "dangling.png": "broken or looping symlink",
}


def jpeg_bytes(image, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """One class of 4 plain images, one class mixing every awkward case, an empty class."""
    base = tmp_path_factory.mktemp("zoo")
    root = base / "data"
    plain, mixed = root / "plain", root / "mixed"
    plain.mkdir(parents=True)
    mixed.mkdir()
    (root / "empty_class").mkdir()
    rng = np.random.default_rng(0)
    # A smooth picture, so that JPEG (RGB or CMYK) keeps it close to the original.
    yy, xx = np.mgrid[0:24, 0:32]
    photo = Image.fromarray(np.stack([xx * 8, yy * 10, 255 - xx * 8], axis=2).astype(np.uint8))
    for i in range(4):
        photo.save(plain / f"p{i}.png")
    photo.save(mixed / "rgb.jpg")
    photo.convert("CMYK").save(mixed / "cmyk.jpg")
    photo.convert("L").save(mixed / "gray.png")
    photo.convert("P", palette=Image.Palette.ADAPTIVE).save(mixed / "palette.png")
    rgba = photo.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: must come out white
    rgba.save(mixed / "rgba.png")
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(mixed / "sixteen_bit.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), "red").save(mixed / "exif_rotated.jpg", exif=exif)
    photo.save(mixed / "chat été <b>&'\".png")
    os.symlink(plain / "p0.png", mixed / "symlink_inside.png")
    (mixed / "empty.jpg").write_bytes(b"")
    (mixed / "text.jpg").write_text("this is not a picture")
    full = jpeg_bytes(photo)
    (mixed / "truncated.jpg").write_bytes(full[: len(full) // 2])
    png = (plain / "p1.png").read_bytes()
    (mixed / "truncated.png").write_bytes(png[: len(png) // 2])
    (mixed / "corrupt.png").write_bytes(png[:60] + bytes(rng.integers(0, 255, size=len(png) - 60, dtype=np.uint8)))
    Image.new("1", (10_000, 10_000)).save(mixed / "bomb.png")  # 100 megapixels, a few kB on disk
    outside = base / "outside.png"
    photo.save(outside)
    os.symlink(outside, mixed / "symlink_outside.png")
    os.symlink(mixed / "loop_b.png", mixed / "loop_a.png")
    os.symlink(mixed / "loop_a.png", mixed / "loop_b.jpeg")  # .jpeg is not listed: only loop_a is a candidate
    os.symlink(mixed / "missing.png", mixed / "dangling.png")
    (mixed / ".DS_Store").write_bytes(b"\0\1")
    (mixed / "._rgb.jpg").write_bytes(b"\0\1")
    return root


def run_sampling(root, tmp_path, n_images="all", on_bad_image="skip", stratified=True):
    rows = sample_and_label(
        root,
        tmp_path,
        extensions=[".png", ".jpg"],
        n_images=n_images,
        stratified=stratified,
        on_bad_image=on_bad_image,
    )
    with open(tmp_path / "skipped.csv", newline="") as handle:
        skipped = {row["path"].split("/")[-1]: row["reason"] for row in csv.DictReader(handle)}
    return rows, skipped


def test_all_samples_every_usable_image_and_lists_every_bad_one(zoo, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    rows, skipped = run_sampling(zoo, tmp_path)  # logs through the module logger, tsne_atlas.sampling
    names = sorted(path.split("/")[-1] for path, label in rows if label == "mixed")
    assert names == sorted(GOOD_KINDS)
    assert set(skipped) == set(BAD_KINDS)
    for name, reason in BAD_KINDS.items():
        assert skipped[name].startswith(reason), (name, skipped[name])
    assert {label for _, label in rows} == {"plain", "mixed"}  # the empty class folder is left out...
    assert caplog.messages == [  # ...with a warning (in the job's log, results/logs/sample_images.log)
        "class folder 'empty_class' holds no images with extensions ['.png', '.jpg']; it is left out",
        f"skipped 9 unusable file(s), listed with reasons in {tmp_path / 'skipped.csv'}",
    ]
    labels = read_manifest(tmp_path / "manifest.csv")  # odd names survive the CSV round trip
    assert list(zip(labels.paths, labels.labels)) == rows


def test_bad_picks_are_replaced_so_the_sample_keeps_its_size(zoo, tmp_path):
    images = list_images(zoo, [".png", ".jpg"])
    for stratified in (True, False):
        # What the same seed picks when nothing is checked: some of it is bad...
        unchecked = sample_manifest(images, 12, seed=0, stratified=stratified)
        bad_picks = {path.split("/")[-1] for path, _ in unchecked} & set(BAD_KINDS)
        assert bad_picks, stratified
        # ...and checked sampling skips exactly such files, with their reasons, and draws good ones instead.
        rows, skipped = run_sampling(zoo, tmp_path, n_images=12, stratified=stratified)
        assert len(rows) == 12
        assert bad_picks <= set(skipped) and set(skipped) <= set(BAD_KINDS)
        assert all(skipped[name].startswith(BAD_KINDS[name]) for name in skipped)
        names = [path.split("/")[-1] for path, label in rows if label == "mixed"]
        assert set(names) <= set(GOOD_KINDS) and len(set(names)) == len(names)
        if stratified:
            assert [label for _, label in rows].count("plain") == 4  # all it has; 'mixed' makes up the rest


def test_asking_for_more_than_the_usable_images_says_how_many_were_skipped(zoo, tmp_path):
    with pytest.raises(AtlasError, match=r"only 13 usable images \(9 unusable skipped\)"):
        run_sampling(zoo, tmp_path, n_images=14)


def test_fail_policy_names_the_file(zoo, tmp_path):
    with pytest.raises(AtlasError, match=r"mixed/\S+: .*; fix or remove the file, or set dataset.on_bad_image: skip"):
        run_sampling(zoo, tmp_path, on_bad_image="fail")


def test_odd_formats_load_as_8_bit_rgb(zoo):
    mixed = zoo / "mixed"
    for name in GOOD_KINDS:
        image = load_rgb(mixed / name)
        assert image.mode == "RGB", name
    assert load_rgb(mixed / "exif_rotated.jpg").size == (20, 40)
    assert np.asarray(load_rgb(mixed / "rgba.png")).min() == 255  # transparent -> white background
    assert np.asarray(load_rgb(mixed / "sixteen_bit.png"))[0, 0].tolist() == [128, 128, 128]  # scaled, not clipped
    original = np.asarray(load_rgb(zoo / "plain" / "p0.png"), dtype=int)
    for name in ("cmyk.jpg", "rgb.jpg"):
        assert np.abs(np.asarray(load_rgb(mixed / name), dtype=int) - original).mean() < 12, name


def test_manifest_paths_must_stay_under_the_root(tmp_path):
    for bad in ("../secret.png", "/etc/passwd"):
        (tmp_path / "m.csv").write_text(f"path,label\n{bad},x\n")
        with pytest.raises(AtlasError, match="image path '.*' leaves the dataset root"):
            read_manifest(tmp_path / "m.csv")
    assert path_problem(tmp_path, "../x.png") == "path leaves dataset.root"


def test_a_decompression_bomb_is_refused_without_being_decoded(tmp_path):
    """A 100-megapixel greyscale PNG is 100 MB once decoded: the check must refuse it from its header."""
    Image.new("L", (10_000, 10_000)).save(tmp_path / "bomb.png")
    Image.new("L", (10, 10)).save(tmp_path / "small.png")
    # The child's own peak memory: VmHWM belongs to the process's address space, which exec makes
    # afresh. (getrusage's ru_maxrss does not: a child starts at its parent's peak, pytest's, which
    # would hide a 100 MB decode.)
    code = (
        "import sys; from tsne_atlas.images import image_problem; print(image_problem(sys.argv[1])); "
        "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))"
    )  # kB
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    peak = {}
    for name in ("bomb.png", "small.png"):
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / name)], capture_output=True, text=True, cwd=scripts, check=True
        ).stdout.splitlines()
        peak[name] = int(out[1])
        if name == "bomb.png":
            assert out[0] == "too large (over 89478485 pixels, PIL's decompression-bomb limit)"
        else:
            assert out[0] == "None"
    # Decoding would have raised the checker's peak memory by 100 MB over checking a tiny image.
    assert peak["bomb.png"] - peak["small.png"] < 30_000, peak


# A child process that runs sample_images and prints every file it opened (Python's audit hook sees
# each open(), PIL's included), then the sample and the skipped files it wrote.
OPENS_OF_SAMPLING = """
import csv, json, os, sys
opened = []
def record(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        opened.append(os.fsdecode(args[0]))
sys.addaudithook(record)
from tsne_atlas.files.manifest import read_images
from tsne_atlas.sampling import sample_images
root, out, stratified = sys.argv[1], sys.argv[2], sys.argv[3] == "stratified"
sample_images(layout="folders", root=root, extensions=[".png"], label_column="label", missing_label="fail",
              n_images=9, seed=0, stratified=stratified, on_bad_image="skip",
              images=os.path.join(out, "images.csv"), skipped=os.path.join(out, "skipped.csv"))
with open(os.path.join(out, "skipped.csv"), newline="") as handle:
    skipped = [row["path"] for row in csv.DictReader(handle)]
print(json.dumps({"opened": opened, "sample": read_images(os.path.join(out, "images.csv"))[0], "skipped": skipped}))
"""


@pytest.mark.parametrize("stratified", ["stratified", "pooled"])
def test_only_the_drawn_candidates_are_opened_never_the_whole_dataset(tmp_path, stratified):
    """150 files, a third of them not pictures, a sample of 9: sampling opens the 9 it takes and the bad picks
    they replaced, and no other file of the dataset."""
    root = tmp_path / "data"
    for label in ("ant", "bee", "cat"):
        (root / label).mkdir(parents=True)
        for i in range(50):
            if i % 3 == 0:
                (root / label / f"{i:02d}.png").write_text("not a picture")
            else:
                Image.new("L", (4, 4), i).save(root / label / f"{i:02d}.png")
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    result = subprocess.run(
        [sys.executable, "-c", OPENS_OF_SAMPLING, str(root), str(tmp_path), stratified],
        capture_output=True,
        text=True,
        cwd=scripts,
        check=True,
    )
    found = json.loads(result.stdout.splitlines()[-1])
    opened = {os.path.relpath(path, root) for path in found["opened"] if Path(path).is_relative_to(root)}
    assert len(found["sample"]) == 9 and found["skipped"]  # some picks were bad and replaced
    assert opened == set(found["sample"]) | set(found["skipped"])
    assert len(opened) < 30  # of 150


REASONS = ("empty file", "not an image", "truncated or corrupt", "too large", "image has no pixels")


def valid_image_files() -> dict[str, bytes]:
    """One small valid picture in each format Pillow writes that a dataset may hold."""
    rng = np.random.default_rng(2)
    picture = Image.fromarray(rng.integers(0, 255, size=(12, 16, 3), dtype=np.uint8))
    files = {}
    for fmt, mode in (
        ("PNG", "RGB"),
        ("JPEG", "RGB"),
        ("BMP", "RGB"),
        ("GIF", "P"),
        ("TIFF", "RGB"),
        ("WEBP", "RGB"),
        ("PNG", "L"),
    ):
        buffer = io.BytesIO()
        picture.convert(mode).save(buffer, format=fmt)
        files[f"{fmt}-{mode}"] = buffer.getvalue()
    return files


VALID_FILES = valid_image_files()
# A valid file, then damaged: cut short, and some bytes overwritten.
MUTATED = st.builds(
    lambda name, cut, changes: (name, cut, changes),
    st.sampled_from(sorted(VALID_FILES)),
    st.none() | st.floats(min_value=0.0, max_value=1.0),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=4),
)


def damaged(name, cut, changes) -> bytes:
    data = bytearray(VALID_FILES[name])
    if cut is not None:
        data = data[: int(len(data) * cut)]
    for position, value in changes:
        if data:
            data[position % len(data)] = value
    return bytes(data)


def check_candidate(path) -> str:
    """image_problem's verdict on ``path``, held to its contract; 'loads' or 'rejected'."""
    problem = image_problem(path)
    if problem is None:
        image = load_rgb(path)
        assert image.mode == "RGB" and image.width > 0 and image.height > 0
        np.asarray(image)  # fully decodable
        return "loads"
    assert isinstance(problem, str) and "\n" not in problem and problem.startswith(REASONS), problem
    return "rejected"


def test_any_byte_string_is_either_rejected_with_a_reason_or_loads(tmp_path):
    """Arbitrary bytes, and valid images of 7 formats damaged at random (cut, bytes changed). Random bytes
    alone practically never decode; damaged images reach both outcomes, and the test checks they do."""
    outcomes = {"loads": 0, "rejected": 0}

    @settings(max_examples=150, deadline=None)
    @given(candidate=st.binary(max_size=2048) | MUTATED)
    def check(candidate):
        path = tmp_path / "candidate.png"
        path.write_bytes(candidate if isinstance(candidate, bytes) else damaged(*candidate))
        outcomes[check_candidate(path)] += 1

    check()
    assert outcomes["loads"] >= 5 and outcomes["rejected"] >= 5, outcomes


def test_damaged_real_images_never_crash_the_checker(tmp_path):
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 255, size=(16, 16, 3), dtype=np.uint8))
    full = jpeg_bytes(photo)
    outcomes = {"loads": 0, "rejected": 0}

    @settings(max_examples=60, deadline=None)
    @given(cut=st.none() | st.floats(min_value=0.0, max_value=1.0), flip=st.integers(min_value=0, max_value=10_000))
    def check(cut, flip):
        data = bytearray(full)
        data = data if cut is None else data[: max(1, int(len(data) * cut))]
        data[flip % len(data)] ^= 0xFF
        path = tmp_path / "damaged.jpg"
        path.write_bytes(bytes(data))
        outcomes[check_candidate(path)] += 1

    check()
    assert outcomes["loads"] >= 1 and outcomes["rejected"] >= 1, outcomes
