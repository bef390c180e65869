"""Precomputed features: every format read from real files, rows matched to the sample by path, and every
bad file refused in one line naming the setting, the file and the fix."""

import csv
import pickle
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from tsne_atlas.jobs import AtlasError
from tsne_atlas.sources.precomputed import read_precomputed

KEY = "features.clip"
# The file holds more images than the sample (a whole dataset), in another order; one name is not ASCII.
FILE_PATHS = [f"{label}/{label}_{i:03d}.png" for label in ("cat", "dog", "owl") for i in range(4)] + ["owl/été.png"]
SAMPLE = ["owl/été.png", "cat/cat_002.png", "dog/dog_000.png", "cat/cat_000.png", "owl/owl_003.png"]


def features_for(paths, dim=6, dtype=np.float64) -> np.ndarray:
    """Distinct values per path, so a row given to the wrong image shows."""
    rows = [[FILE_PATHS.index(p) * 10 + j + 0.25 for j in range(dim)] for p in paths]
    return np.asarray(rows, dtype=dtype)


def expected(sample=SAMPLE, dim=6) -> np.ndarray:
    return features_for(sample, dim).astype(np.float32)


def shuffled_file():
    order = np.random.default_rng(3).permutation(len(FILE_PATHS))
    paths = [FILE_PATHS[i] for i in order]
    return paths, features_for(paths)


def write_hdf5(path: Path, paths, features, string="utf-8") -> Path:
    with h5py.File(path, "w") as handle:
        handle["features"] = features
        if string == "utf-8":
            handle.create_dataset("paths", data=paths, dtype=h5py.string_dtype("utf-8"))
        else:  # fixed-length bytes, as older tools write them
            handle["paths"] = np.array([p.encode("utf-8") for p in paths])
    return path


def write_npy(path: Path, paths, features, paths_file: Path | None = None) -> tuple[Path, Path]:
    paths_file = paths_file or path.with_suffix(".txt")
    np.save(path, features)
    paths_file.write_text("\n".join(paths) + "\n\n", encoding="utf-8")  # a blank trailing line is fine
    return path, paths_file


def write_table(path: Path, paths, features, delimiter=None, path_at=0) -> Path:
    delimiter = delimiter or ("," if path.suffix == ".csv" else "\t")
    dims = [f"d{j}" for j in range(features.shape[1])]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow([*dims[:path_at], "path", *dims[path_at:]])
        for p, row in zip(paths, features):
            cells = [repr(float(v)) if isinstance(v, float | np.floating) else str(v) for v in row]
            writer.writerow([*cells[:path_at], p, *cells[path_at:]])
    return path


def write_any(tmp_path: Path, suffix: str, paths, features) -> dict:
    """Keyword arguments of read_precomputed for a file of this format."""
    target = tmp_path / f"feats{suffix}"
    if suffix in (".h5", ".hdf5"):
        return {"path": str(write_hdf5(target, paths, features))}
    if suffix == ".npy":
        npy, listing = write_npy(target, paths, features, tmp_path / "paths.txt")
        return {"path": str(npy), "paths_file": str(listing)}
    return {"path": str(write_table(target, paths, features))}


def refused(match: str, path, sample=SAMPLE, named=None, **kwargs) -> str:
    """The one-line message read_precomputed refuses ``path`` with; it names the key and the file at fault
    (``named``, when that is not ``path``)."""
    with pytest.raises(AtlasError, match=match) as caught:
        read_precomputed(str(path), sample, KEY, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    assert KEY in message and Path(named or path).name in message, message
    return message


ALL_SUFFIXES = (".h5", ".hdf5", ".npy", ".csv", ".tsv", ".txt")


@pytest.mark.parametrize("suffix", ALL_SUFFIXES)
def test_each_format_gives_the_sample_rows_in_sample_order(tmp_path, suffix):
    paths, features = shuffled_file()
    assert paths != FILE_PATHS
    got = read_precomputed(sample_paths=SAMPLE, key=KEY, **write_any(tmp_path, suffix, paths, features))
    assert got.dtype == np.float32 and got.shape == (len(SAMPLE), 6)
    np.testing.assert_array_equal(got, expected())


def test_hdf5_paths_as_fixed_length_bytes(tmp_path):
    paths, features = shuffled_file()
    got = read_precomputed(str(write_hdf5(tmp_path / "f.h5", paths, features, string="bytes")), SAMPLE, KEY)
    np.testing.assert_array_equal(got, expected())


@pytest.mark.parametrize("suffix", (".h5", ".npy", ".csv"))
@pytest.mark.parametrize("dtype", (np.float64, np.int32, np.uint8, np.float16))
def test_numbers_of_any_real_dtype_become_equal_float32(tmp_path, suffix, dtype):
    features = (np.arange(len(FILE_PATHS) * 3).reshape(-1, 3) * 7 % 200).astype(dtype)
    got = read_precomputed(sample_paths=SAMPLE, key=KEY, **write_any(tmp_path, suffix, FILE_PATHS, features))
    rows = [FILE_PATHS.index(p) for p in SAMPLE]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, features[rows].astype(np.float32))


def test_the_path_column_may_be_anywhere_and_tabs_separate_a_txt(tmp_path):
    paths, features = shuffled_file()
    table = write_table(tmp_path / "f.txt", paths, features, delimiter="\t", path_at=4)
    assert (tmp_path / "f.txt").read_text(encoding="utf-8").splitlines()[0] == "d0\td1\td2\td3\tpath\td4\td5"
    np.testing.assert_array_equal(read_precomputed(str(table), SAMPLE, KEY), expected())


def test_dot_prefixed_and_absolute_paths_under_the_root_match(tmp_path):
    root = tmp_path / "dataset"
    root.mkdir()
    written = [f"./{p}" if i % 3 == 0 else str(root / p) if i % 3 == 1 else p for i, p in enumerate(FILE_PATHS)]
    features = features_for(FILE_PATHS)
    table = write_table(tmp_path / "f.csv", written, features)
    np.testing.assert_array_equal(read_precomputed(str(table), SAMPLE, KEY, root=str(root)), expected())
    # Without the root, an absolute path names no sampled image.
    message = refused("have no row", table)
    assert "1 of 5 sampled image(s) have no row, e.g. 'dog/dog_000.png';" in message


def test_absolute_paths_outside_the_root_do_not_match(tmp_path):
    root = tmp_path / "dataset"
    elsewhere = tmp_path / "dataset-old"
    table = write_table(tmp_path / "f.csv", [str(elsewhere / p) for p in FILE_PATHS], features_for(FILE_PATHS))
    message = refused("5 of 5 sampled image", table, root=str(root))
    examples = message.split(";")[0]
    assert examples.endswith("e.g. 'owl/été.png', 'cat/cat_002.png', 'dog/dog_000.png'"), examples
    assert f"its paths look like '{elsewhere}/cat/cat_000.png'" in message


def test_an_empty_sample_gives_an_empty_array_of_the_file_width(tmp_path):
    got = read_precomputed(sample_paths=[], key=KEY, **write_any(tmp_path, ".h5", FILE_PATHS, features_for(FILE_PATHS)))
    assert got.shape == (0, 6) and got.dtype == np.float32


@pytest.mark.parametrize("suffix", (".h5", ".npy", ".csv"))
def test_nan_or_inf_in_rows_the_sample_does_not_use_is_fine(tmp_path, suffix):
    features = features_for(FILE_PATHS)
    features[FILE_PATHS.index("dog/dog_003.png"), 2] = np.nan
    features[FILE_PATHS.index("cat/cat_001.png"), 0] = np.inf
    got = read_precomputed(sample_paths=SAMPLE, key=KEY, **write_any(tmp_path, suffix, FILE_PATHS, features))
    np.testing.assert_array_equal(got, expected())


@pytest.mark.parametrize("suffix", (".h5", ".npy", ".csv"))
def test_nan_inf_and_values_beyond_float32_in_sampled_rows_are_refused(tmp_path, suffix):
    features = features_for(FILE_PATHS)
    features[FILE_PATHS.index("cat/cat_002.png"), 1] = np.nan
    features[FILE_PATHS.index("dog/dog_000.png"), 5] = -np.inf
    features[FILE_PATHS.index("owl/owl_003.png"), 0] = 1e300  # finite in float64, inf in float32
    kwargs = write_any(tmp_path, suffix, FILE_PATHS, features)
    message = refused("3 sampled image", kwargs.pop("path"), **kwargs)
    assert "NaN or infinite" in message and "first 'cat/cat_002.png'" in message


def test_reading_a_big_hdf5_file_keeps_less_than_half_a_copy_beside_the_result(tmp_path):
    """A 10,000 × 1,024 float64 file (80 MiB) whose every row is sampled, shuffled: the rows are read a block
    at a time, so the memory beside the float32 result is well under the file's array (read it whole, or
    reorder it whole, and the peak is one full copy more)."""
    n, dim = 10_000, 1024
    paths = [f"c{i % 7}/img_{i:05d}.png" for i in range(n)]
    features = np.random.default_rng(0).standard_normal((n, dim))
    with h5py.File(tmp_path / "big.h5", "w") as handle:
        handle["features"] = features
        handle.create_dataset("paths", data=paths, dtype=h5py.string_dtype("utf-8"))
    order = np.random.default_rng(1).permutation(n)
    sample = [paths[i] for i in order]
    file_bytes = features.nbytes
    expected_rows = features[order[:100]].astype(np.float32)
    del features
    tracemalloc.start()
    try:
        got = read_precomputed(str(tmp_path / "big.h5"), sample, KEY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got[:100], expected_rows)
    assert peak < got.nbytes + file_bytes / 2, (peak / 2**20, got.nbytes / 2**20)


class MarkerPayload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_object_npy_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    array = np.empty((len(FILE_PATHS), 2), dtype=object)
    array[:] = MarkerPayload(marker)
    np.save(tmp_path / "evil.npy", array, allow_pickle=True)
    (tmp_path / "paths.txt").write_text("\n".join(FILE_PATHS), encoding="utf-8")
    message = refused("Python objects", tmp_path / "evil.npy", paths_file=str(tmp_path / "paths.txt"))
    assert "never loaded" in message
    assert not marker.exists()
    # A plain pickle given a .npy name is refused just the same.
    (tmp_path / "plain.npy").write_bytes(pickle.dumps(MarkerPayload(marker)))
    refused("is a pickle", tmp_path / "plain.npy", paths_file=str(tmp_path / "paths.txt"))
    assert not marker.exists()


# Bad files. Each case writes a file into tmp_path and returns (path, extra keyword arguments).


def _h5(tmp_path, **datasets):
    with h5py.File(tmp_path / "bad.h5", "w") as handle:
        for name, value in datasets.items():
            if name == "group":
                handle.create_group(value)
            else:
                handle[name] = value
    return tmp_path / "bad.h5", {}


def _npy(tmp_path, array, paths=FILE_PATHS):
    np.save(tmp_path / "bad.npy", array)
    (tmp_path / "bad-paths.txt").write_text("\n".join(paths) + "\n", encoding="utf-8")
    return tmp_path / "bad.npy", {"paths_file": str(tmp_path / "bad-paths.txt")}


def _text(tmp_path, name, text, encoding="utf-8"):
    (tmp_path / name).write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return tmp_path / name, {}


def _csv(tmp_path, paths=FILE_PATHS, features=None, name="bad.csv"):
    return write_table(tmp_path / name, paths, features_for(paths) if features is None else features), {}


STRINGS = np.array(FILE_PATHS, dtype=object).astype(h5py.string_dtype())
GOOD = features_for(FILE_PATHS)


def _npy_bytes(tmp_path, data: bytes):
    """A .npy name (and a good paths file) on bytes that are no .npy array."""
    path, kwargs = _npy(tmp_path, GOOD)
    path.write_bytes(data)
    return path, kwargs


def _truncated_npy(tmp_path):
    path, kwargs = _npy(tmp_path, GOOD)
    path.write_bytes(path.read_bytes()[:-100])
    return path, kwargs


def _corrupt_hdf5(tmp_path):
    return _text(tmp_path, "bad.h5", b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)


def _npz_named_npy(tmp_path):
    np.savez(tmp_path / "bad.npz", features=GOOD)
    (tmp_path / "bad.npz").rename(tmp_path / "bad.npy")
    (tmp_path / "p.txt").write_text("\n".join(FILE_PATHS), encoding="utf-8")
    return tmp_path / "bad.npy", {"paths_file": str(tmp_path / "p.txt")}


BAD_FILES = {
    "unknown suffix": (lambda t: _text(t, "feats.parquet", "x"), r"unknown features format '\.parquet'; use \.h5"),
    "no suffix": (lambda t: _text(t, "feats", "x"), r"unknown features format '\(no suffix\)'"),
    "missing file": (lambda t: (t / "absent.csv", {}), "does not exist; fix the path"),
    "a folder": (lambda t: (t.joinpath("dir.h5").mkdir() or t / "dir.h5", {}), "is not a file"),
    "empty h5": (lambda t: _text(t, "empty.h5", b""), r"is empty \(0 bytes\)"),
    "empty npy": (lambda t: _text(t, "empty.npy", b""), r"is empty \(0 bytes\)"),
    "empty csv": (lambda t: _text(t, "empty.csv", b""), r"is empty \(0 bytes\)"),
    "corrupt hdf5": (_corrupt_hdf5, "not a readable HDF5 file"),
    "text named h5": (lambda t: _text(t, "bad.hdf5", "path,a\nx,1\n"), "not a readable HDF5 file"),
    "no features dataset": (lambda t: _h5(t, paths=STRINGS), r"has no dataset 'features' \(it holds \['paths'\]\)"),
    "no paths dataset": (lambda t: _h5(t, features=GOOD), "has no dataset 'paths'"),
    "features is a group": (lambda t: _h5(t, group="features", paths=STRINGS), "'features' is a group, not a dataset"),
    "h5 1-D": (lambda t: _h5(t, features=GOOD[:, 0], paths=STRINGS), r"shape \(13,\), not 2-D"),
    "h5 zero columns": (lambda t: _h5(t, features=GOOD[:, :0], paths=STRINGS), "has zero columns"),
    "h5 no rows": (lambda t: _h5(t, features=GOOD[:0], paths=STRINGS[:0]), r"is empty \(shape \(0, 6\)\)"),
    "h5 bool": (lambda t: _h5(t, features=GOOD > 50, paths=STRINGS), "has dtype bool, not numbers"),
    "h5 strings": (lambda t: _h5(t, features=STRINGS.reshape(-1, 1), paths=STRINGS), "has dtype object, not numbers"),
    "h5 paths not strings": (lambda t: _h5(t, features=GOOD, paths=np.arange(13)), "not a list of strings"),
    "h5 paths count": (
        lambda t: _h5(t, features=GOOD, paths=STRINGS[:-2]),
        "'paths' has 11 entries but 'features' has 13",
    ),
    "npy 3-D": (lambda t: _npy(t, GOOD.reshape(13, 3, 2)), r"shape \(13, 3, 2\), not 2-D"),
    "npy zero columns": (lambda t: _npy(t, GOOD[:, :0]), "has zero columns"),
    "npy no rows": (lambda t: _npy(t, GOOD[:0], paths=[]), "is empty"),
    "npy complex": (lambda t: _npy(t, GOOD.astype(complex)), "has dtype complex128, not numbers"),
    "npy unicode": (lambda t: _npy(t, np.array(FILE_PATHS).reshape(-1, 1)), "has dtype <U15, not numbers"),
    "npy bool": (lambda t: _npy(t, GOOD > 3), "has dtype bool, not numbers"),
    "npy record": (lambda t: _npy(t, np.zeros((13, 2), dtype=[("a", "f4")])), "not numbers"),
    "npy truncated": (_truncated_npy, "not a readable .npy file"),
    "npy is text": (lambda t: _npy_bytes(t, b"1,2,3\n"), r"is not a \.npy file \(no NumPy header\)"),
    "npz named npy": (_npz_named_npy, r"is an \.npz archive"),
    "npy rows vs paths_file": (
        lambda t: _npy(t, GOOD, paths=FILE_PATHS[:-1]),
        "has 13 rows but features.clip.paths_file",
    ),
    "csv no path column": (
        lambda t: _text(t, "bad.csv", "Path,a,b\ncat/cat_000.png,1,2\n"),
        r"has no 'path' column \(header: 'Path', 'a', 'b'\)",
    ),
    "csv two path columns": (lambda t: _text(t, "bad.csv", "path,a,path\nx,1,y\n"), "more than one 'path' column"),
    "csv zero columns": (lambda t: _text(t, "bad.csv", "path\ncat/cat_000.png\n"), "has zero feature columns"),
    "csv header only": (lambda t: _text(t, "bad.csv", "path,a,b\n"), "has a header but no rows"),
    "csv blank first line": (lambda t: _text(t, "bad.csv", "\npath,a\n"), "has no header row"),
    "csv ragged row": (
        lambda t: _text(t, "bad.tsv", "path\ta\tb\nx.png\t1\n"),
        "line 2 has 2 fields but the header has 3",
    ),
    "csv text value": (
        lambda t: _csv(t, features=np.where(np.arange(6) == 4, "abc", GOOD.astype(str))),
        "column 'd4' of 'owl/été.png' holds 'abc', not a number",
    ),
    "csv bool value": (
        lambda t: _csv(t, features=np.where(GOOD > 50, "True", "False")),
        "column 'd0' of 'owl/été.png' holds 'True', not a number",
    ),
    "csv empty value": (lambda t: _csv(t, features=np.where(GOOD > 50, "", "1")), "holds '', not a number"),
    "csv not utf-8": (
        lambda t: _text(t, "bad.csv", "path,a\ncat/ch\xe2t.png,1\n", encoding="latin-1"),
        "is not UTF-8 text",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_file_is_refused_in_one_line(tmp_path, case):
    build, match = BAD_FILES[case]
    path, kwargs = build(tmp_path)
    message = refused(match, path, **kwargs)
    assert "; " in message  # the problem, then the fix


@pytest.mark.parametrize("suffix", (".h5", ".npy", ".csv", ".tsv"))
def test_duplicate_paths_name_the_first_and_the_count(tmp_path, suffix):
    # cat/cat_001.png twice (once ./-prefixed: the same image), dog/dog_002.png three times.
    paths = [*FILE_PATHS, "./cat/cat_001.png", "dog/dog_002.png", "dog/dog_002.png"]
    features = np.vstack([features_for(FILE_PATHS), np.ones((3, 6))])
    kwargs = write_any(tmp_path, suffix, paths, features)
    message = refused("2 path\\(s\\) appear more than once", kwargs.pop("path"), **kwargs)
    assert "first 'cat/cat_001.png' (2 times: rows 2, 14, counting from 1)" in message


@pytest.mark.parametrize("suffix", (".hdf5", ".npy", ".txt"))
def test_sample_paths_missing_from_the_file_are_counted_with_three_examples(tmp_path, suffix):
    kept = [p for p in FILE_PATHS if p not in ("owl/été.png", "dog/dog_000.png", "cat/cat_000.png", "owl/owl_003.png")]
    kwargs = write_any(tmp_path, suffix, kept, features_for(kept))
    message = refused("4 of 5 sampled image", kwargs.pop("path"), root="/data/pets", **kwargs)
    assert "e.g. 'owl/été.png', 'dog/dog_000.png', 'cat/cat_000.png';" in message
    assert "owl/owl_003.png" not in message.split(";")[0]
    assert "relative to dataset.root '/data/pets'" in message


def test_npy_needs_a_good_paths_file(tmp_path):
    npy, listing = write_npy(tmp_path / "f.npy", FILE_PATHS, features_for(FILE_PATHS))
    message = refused("paths_file is not set", npy)
    assert message.startswith("features.clip.paths_file")
    absent = tmp_path / "absent.txt"
    refused(r"paths_file '.*absent.txt': does not exist", npy, named=absent, paths_file=str(absent))
    listing.write_text("\n".join(FILE_PATHS[:3]) + "\n\n" + "\n".join(FILE_PATHS[3:]), encoding="utf-8")
    refused("line 4 is blank", npy, named=listing, paths_file=str(listing))
    listing.write_text("\n\n", encoding="utf-8")
    refused(r"paths_file '.*f\.txt': is empty", npy, named=listing, paths_file=str(listing))
    listing.write_bytes("\n".join(FILE_PATHS).encode("latin-1"))
    refused("is not UTF-8 text", npy, named=listing, paths_file=str(listing))
    # Windows line endings are fine.
    listing.write_bytes("\r\n".join(FILE_PATHS).encode("utf-8"))
    np.testing.assert_array_equal(read_precomputed(str(npy), SAMPLE, KEY, paths_file=str(listing)), expected())


def test_a_paths_file_beside_a_file_that_names_its_paths_is_a_mistake(tmp_path):
    table = write_table(tmp_path / "f.csv", FILE_PATHS, features_for(FILE_PATHS))
    (tmp_path / "p.txt").write_text("\n".join(FILE_PATHS), encoding="utf-8")
    message = refused("paths_file is only used with .npy features", table, paths_file=str(tmp_path / "p.txt"))
    assert message.endswith("remove it")


def import_set(tmp_path, source: Path, sample, name: str) -> Path:
    """The workflow's import of a precomputed set (extract_features' path for it) into ``name``."""
    from tsne_atlas.extraction import import_precomputed

    out = tmp_path / name
    settings = {"path": str(source)}
    if source.suffix == ".npy":
        settings["paths_file"] = str(source.with_suffix(".txt"))
    import_precomputed(settings, KEY, list(sample), None, str(out), {"feature_set": "clip"})
    return out


@pytest.mark.parametrize("suffix", (".h5", ".npy"))
def test_a_set_is_imported_block_by_block_into_the_same_file_with_a_bounded_memory(tmp_path, suffix, monkeypatch):
    """The sample's rows go to the features file a block at a time (SAMPLE_BLOCK_ROWS; at 1,000,000 x 2,048
    the import would otherwise hold 8 GB): the file is byte for byte the one a single block writes, and the
    memory beside it stays within a few blocks (all rows held at once: a full copy)."""
    import tsne_atlas.sources.precomputed as precomputed

    n, dim = 20_000, 256
    paths = [f"c{i % 7}/img_{i:05d}.png" for i in range(n)]
    features = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    if suffix == ".h5":
        source = write_hdf5(tmp_path / "big.h5", paths, features)
    else:
        source, _ = write_npy(tmp_path / "big.npy", paths, features)
    sample = [paths[i] for i in np.random.default_rng(1).permutation(n)]
    whole = import_set(tmp_path, source, sample, "one-block.h5")
    monkeypatch.setattr(precomputed, "SAMPLE_BLOCK_ROWS", 1_500)  # 14 blocks, the last one short
    tracemalloc.start()
    try:
        blocks = import_set(tmp_path, source, sample, "blocks.h5")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    from tsne_atlas.files.features import read_features

    got = read_features(blocks)
    np.testing.assert_array_equal(got["features"], features[[int(p[-9:-4]) for p in sample]])
    assert got["paths"] == sample
    assert whole.read_bytes() == blocks.read_bytes()
    assert peak < features.nbytes / 2, (peak / 2**20, features.nbytes / 2**20)


def test_nan_in_a_later_block_is_refused_and_nothing_is_left_written(tmp_path, monkeypatch):
    import tsne_atlas.sources.precomputed as precomputed

    monkeypatch.setattr(precomputed, "SAMPLE_BLOCK_ROWS", 4)
    sample = sorted(FILE_PATHS)
    features = features_for(FILE_PATHS)
    features[FILE_PATHS.index(sample[9]), 2] = np.nan  # the third block
    features[FILE_PATHS.index(sample[11]), 0] = np.inf
    source = write_hdf5(tmp_path / "f.h5", FILE_PATHS, features)
    with pytest.raises(AtlasError) as refused_import:
        import_set(tmp_path, source, sample, "features.h5")
    assert "2 sampled image(s) have NaN or infinite features" in str(refused_import.value)
    assert f"first '{sample[9]}'" in str(refused_import.value)
    assert not any(tmp_path.glob("*features.h5")), "a half-written features file was left behind"
