"""tools/make_digits.py: scikit-learn's digits as a class-per-folder PNG dataset with precomputed features."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

import make_digits
from tsne_atlas.collection import list_images
from tsne_atlas.sources.precomputed import read_precomputed

REPO = Path(__file__).resolve().parents[1]
DIGITS = load_digits()


def tool(*args: str) -> subprocess.CompletedProcess:
    """The tool as documented: PYTHONPATH=scripts python tools/make_digits.py ..."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "make_digits.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("digits")
    assert make_digits.main([str(out)]) == 0
    return out


def test_1797_pngs_in_ten_digit_folders_named_by_index(digits_dir):
    pngs = sorted((digits_dir / "images").rglob("*.png"))
    assert len(pngs) == 1797
    assert sorted(p.name for p in (digits_dir / "images").iterdir()) == [str(d) for d in range(10)]
    for png in pngs:
        index = int(png.stem.removeprefix("digit-"))
        assert png.name == f"digit-{index:04d}.png" and png.parent.name == str(DIGITS.target[index])
    assert sorted({int(p.stem[-4:]) for p in pngs}) == list(range(1797))
    assert sorted(p.name for p in digits_dir.iterdir()) == ["features.csv", "images"]


def test_each_png_is_its_digit_upscaled_4x_dark_on_white(digits_dir):
    for index, (pixels, digit) in enumerate(zip(DIGITS.data, DIGITS.target)):
        with Image.open(digits_dir / "images" / str(digit) / f"digit-{index:04d}.png") as image:
            assert image.mode == "L" and image.size == (32, 32)
            drawn = np.asarray(image)
        gray = 255 - np.array([round(v * 255 / 16) for v in pixels]).reshape(8, 8)
        # Nearest neighbour: every 4 × 4 block is one source pixel.
        np.testing.assert_array_equal(drawn, np.kron(gray, np.ones((4, 4), dtype=int)), err_msg=str(index))
    # White background (0 -> 255), black ink (16 -> 0), as in scikit-learn's gray_r figures.
    index = int(np.flatnonzero((DIGITS.data == 16).any(axis=1))[0])
    row, col = divmod(int(np.flatnonzero(DIGITS.data[index] == 16)[0]), 8)
    with Image.open(digits_dir / "images" / str(DIGITS.target[index]) / f"digit-{index:04d}.png") as image:
        drawn = np.asarray(image)
    assert DIGITS.data[index][0] == 0 and drawn[0, 0] == 255
    assert drawn[4 * row + 3, 4 * col + 3] == 0


def test_features_csv_gives_load_digits_data_through_read_precomputed(digits_dir):
    with open(digits_dir / "features.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["path"] + [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    assert rows[4] == ["3/digit-0003.png", *(str(int(v)) for v in DIGITS.data[3])]
    assert all(cell.isdigit() for row in rows[1:] for cell in row[1:])  # integers, not 3.0
    # The paths as the workflow's sampler lists them under OUT/images, ordered by index.
    listed = [p for paths in list_images(digits_dir / "images", [".png"]).values() for p in paths]
    assert len(listed) == 1797
    by_index = sorted(listed, key=lambda p: int(p[-8:-4]))
    got = read_precomputed(str(digits_dir / "features.csv"), by_index, "features.digits", root=str(digits_dir))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, DIGITS.data.astype(np.float32))


def test_a_second_run_writes_nothing(digits_dir):
    before = {p: p.stat().st_mtime_ns for p in digits_dir.rglob("*")}
    time.sleep(0.01)
    result = tool(str(digits_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and "nothing written" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in digits_dir.rglob("*")} == before


def test_another_run_writes_the_same_bytes(digits_dir, tmp_path, capsys):
    assert make_digits.main([str(tmp_path / "again")]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "wrote 1797 digit images" in line
    assert files_of(tmp_path / "again") == files_of(digits_dir)


def test_an_interrupted_run_leaves_no_half_file_and_the_next_run_completes_it(digits_dir, tmp_path):
    out = tmp_path / "digits"
    first = out / "images" / "0" / "digit-0000.png"
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}
    process = subprocess.Popen([sys.executable, str(REPO / "tools" / "make_digits.py"), str(out)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not first.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be interrupted"
    reference = files_of(digits_dir)
    written = files_of(out)
    final = {name: data for name, data in written.items() if not Path(name).name.startswith(".tmp-")}
    assert first.exists() and "features.csv" not in final
    # Every file under its final name is whole.
    assert final and all(data == reference[name] for name, data in final.items())
    # A killed run's half-written temporary file (one is left when the kill lands mid-write) goes on the next run.
    (out / "images" / "0" / ".tmp-99999-digit-0010.png").write_bytes(reference["images/0/digit-0010.png"][:40])
    assert make_digits.make_digits(out) is True
    assert files_of(out) == reference  # complete, byte-identical, temporary files gone


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path):
    make_digits.write_atomically(tmp_path / "a.png", b"first")
    blocker = tmp_path / "b.png"
    (blocker / "inside").mkdir(parents=True)  # a folder holding something: no file can be renamed onto it
    with pytest.raises(OSError):
        make_digits.write_atomically(blocker, b"second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"] and blocker.is_dir()
    assert (tmp_path / "a.png").read_bytes() == b"first"
