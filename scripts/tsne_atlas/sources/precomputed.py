"""Precomputed features (``features.<set>.source: precomputed``): read a features file made elsewhere
(CLIP embeddings, say) and match its rows to the sampled images by path.

Formats, by suffix:

* HDF5 (``.h5``, ``.hdf5``): datasets ``features`` (N × D numbers) and ``paths`` (N strings);
* NPY (``.npy``): an N × D array of numbers, with ``paths_file``, a UTF-8 text file of one path per line;
* CSV (``.csv``) or TSV (``.tsv``, ``.txt``): a header row with a ``path`` column and one number column
  per dimension.

Paths are relative to the dataset root like the sample manifest (``cat/cat_001.png``); ``./``-prefixed
paths and absolute paths under the dataset root are accepted too. The file may hold more rows than the
sample (a whole dataset, for a sample of it): only the sample's rows are read (HDF5 and NPY read them
from disk in bounded blocks, so a big file is never loaded whole) and checked for NaN and infinity.

Nothing is unpickled: ``.npy`` files are loaded with ``allow_pickle=False``, so an object array is
refused with a one-line error instead of running whatever its pickle says.
"""

import csv
import itertools
import os
import posixpath
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..jobs import AtlasError

HDF5_SUFFIXES = (".h5", ".hdf5")
NPY_SUFFIXES = (".npy",)
TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
PATH_COLUMN = "path"
# Rows read from disk at a time (HDF5, NPY): bounds the memory used beside the returned array.
BLOCK_BYTES = 8 * 2**20
# Sampled rows handed on at a time (HDF5, NPY): 200 MiB of float32 at 256 dimensions, 1.6 GiB at 2,048.
SAMPLE_BLOCK_ROWS = 200_000
FORMATS_HINT = (
    "use .h5/.hdf5 (datasets 'features' and 'paths'), .npy (with paths_file) or .csv/.tsv/.txt (a 'path' column)"
)


def _quote(text) -> str:
    """``'text'`` for a message; repr() when the text holds control characters, so a message stays one line."""
    text = str(text)
    if text.isprintable():
        return f"'{text}'"
    return repr(text)


def _one_line(err) -> str:
    """A library's error message, on one line."""
    return " ".join(str(err).split())


def _describe(paths: Sequence[str], limit: int = 3) -> str:
    return ", ".join(_quote(p) for p in paths[:limit])


class _Names:
    """Normalise a file's paths to the manifest's form: relative, POSIX, no ``./``; absolute paths under
    ``root`` (as given, or with its links resolved) are made relative to it."""

    def __init__(self, root: str | os.PathLike | None):
        self.roots: list[str] = []
        if root is not None:
            for candidate in (os.path.abspath(root), os.path.realpath(root)):
                candidate = candidate.rstrip("/") + "/"
                if candidate not in self.roots:
                    self.roots.append(candidate)

    def __call__(self, path: str) -> str:
        if path.startswith("/"):
            path = posixpath.normpath(path)
            for root in self.roots:
                if path.startswith(root):
                    return path[len(root) :]
            # Outside the dataset root: kept as it is; it matches no sample path.
            return path
        if path.startswith("./") or "/./" in path or "//" in path or path.endswith("/."):
            parts = [part for part in path.split("/") if part not in ("", ".")]
            return "/".join(parts)
        return path


def _index_paths(paths: Sequence[str], where: str) -> dict[str, int]:
    """Map each path to its row, refusing duplicates (after normalisation)."""
    index: dict[str, int] = {}
    duplicates: dict[str, list[int]] = {}
    for row, path in enumerate(paths):
        first = index.setdefault(path, row)
        if first != row:
            duplicates.setdefault(path, [first]).append(row)
    if duplicates:
        path, rows = next(iter(duplicates.items()))
        raise AtlasError(
            f"{where}: {len(duplicates)} path(s) appear more than once, first {_quote(path)} "
            f"({len(rows)} times: rows {', '.join(str(r + 1) for r in rows[:3])}, counting from 1); "
            f"give each image one row"
        )
    return index


def _is_numeric(dtype: np.dtype) -> bool:
    """Integers and real floats; bool, complex, strings, objects and records are not features."""
    return dtype.kind in "iuf"


def _gather(read: Callable[[object], np.ndarray], rows: np.ndarray, itemsize: int, out: np.ndarray) -> None:
    """Fill ``out[i]`` with the file's row ``rows[i]``, reading the needed rows in increasing order one window
    of at most BLOCK_BYTES at a time (a slice where they lie densely, else a sorted list of indices), so the
    memory used beside ``out`` stays bounded however big the file is."""
    unique, inverse = np.unique(rows, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    sorted_inverse = inverse[order]
    window = max(1, BLOCK_BYTES // max(1, out.shape[1] * itemsize))
    windows = unique // window
    edges = [0, *(np.flatnonzero(np.diff(windows)) + 1).tolist(), len(unique)]
    for start, stop in itertools.pairwise(edges):
        wanted = unique[start:stop]
        low, high = int(wanted[0]), int(wanted[-1]) + 1
        begin, end = np.searchsorted(sorted_inverse, [start, stop])
        targets = order[begin:end]
        if 2 * len(wanted) >= high - low:
            values, picks = read(slice(low, high)), wanted[inverse[targets] - start] - low
        else:
            values, picks = read(wanted), inverse[targets] - start
        with np.errstate(over="ignore"):  # float64 values beyond float32 become inf: _check_finite names them
            out[targets] = values[picks]


def _blocks(read: Callable[[object], np.ndarray], rows: np.ndarray, itemsize: int, dim: int) -> Iterator[np.ndarray]:
    """The sample's rows as float32 blocks of at most SAMPLE_BLOCK_ROWS, in sample order: the features are
    written on while the next block is read, so at 1,000,000 x 2,048 they are never whole in memory."""
    for start in range(0, max(len(rows), 1), SAMPLE_BLOCK_ROWS):
        block = rows[start : start + SAMPLE_BLOCK_ROWS]
        out = np.empty((len(block), dim), dtype=np.float32)
        if len(block):
            _gather(read, block, itemsize, out)
        yield out


def _not_finite(block: np.ndarray) -> np.ndarray:
    """Rows of ``block`` with NaN or infinity (values too large for float32 included), a window at a time."""
    bad: list[int] = []
    step = max(1, BLOCK_BYTES // max(1, block.shape[1] * 4))
    for start in range(0, len(block), step):
        finite = np.isfinite(block[start : start + step]).all(axis=1)
        bad.extend(int(i) + start for i in np.flatnonzero(~finite))
    return np.asarray(bad, dtype=np.int64)


def _match(file_paths: Sequence[str], sample_paths: Sequence[str], where: str, names: _Names, root) -> np.ndarray:
    """The file row of each sample path; every sample path must be in the file."""
    index = _index_paths([names(p) for p in file_paths], where)
    rows = np.empty(len(sample_paths), dtype=np.int64)
    missing = []
    for i, path in enumerate(sample_paths):
        row = index.get(names(path))
        if row is None:
            missing.append(path)
        else:
            rows[i] = row
    if missing:
        example = f"; its paths look like {_quote(file_paths[0])}" if file_paths else ""
        relative_to = f"dataset.root '{root}'" if root is not None else "dataset.root"
        raise AtlasError(
            f"{where}: {len(missing)} of {len(sample_paths)} sampled image(s) have no row, e.g. "
            f"{_describe(missing)}{example}; give features for every image, with paths relative to "
            f"{relative_to} as in sample/manifest.csv"
        )
    return rows


def _decode_paths(values, where: str) -> list[str]:
    out = []
    for value in values:
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise AtlasError(
                    f"{where}: path {value[:60]!r} is not UTF-8 text; store the paths as UTF-8 strings"
                ) from None
        out.append(str(value))
    return out


def _read_hdf5(path, sample_paths, where, names, root) -> Iterator[np.ndarray]:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise AtlasError(
            f"{where}: not a readable HDF5 file ({_one_line(err)}); write it with h5py (datasets 'features' and 'paths')"
        ) from None
    with handle:
        found = sorted(handle.keys())
        for name in ("features", "paths"):
            problem = None
            if name not in handle:
                problem = f"has no dataset '{name}' (it holds {found})"
            elif not isinstance(handle[name], h5py.Dataset):
                problem = f"'{name}' is a group, not a dataset"
            if problem:
                raise AtlasError(
                    f"{where}: {problem}; store the N × D features as 'features' and the N image paths as 'paths'"
                )
        features, paths = handle["features"], handle["paths"]
        _check_array(features.shape, features.dtype, where, "dataset 'features'")
        if h5py.check_string_dtype(paths.dtype) is None or len(paths.shape) != 1:
            raise AtlasError(
                f"{where}: dataset 'paths' has shape {paths.shape} and dtype {paths.dtype}, not a list of strings; "
                f"store the N image paths as a 1-D string dataset"
            )
        if paths.shape[0] != features.shape[0]:
            raise AtlasError(
                f"{where}: dataset 'paths' has {paths.shape[0]} entries but 'features' has {features.shape[0]} rows; "
                f"give one path per row"
            )
        file_paths = _decode_paths(paths[()], where)
        rows = _match(file_paths, sample_paths, where, names, root)
        yield from _blocks(lambda selection: features[selection], rows, features.dtype.itemsize, features.shape[1])


def _check_array(shape, dtype, where: str, what: str) -> None:
    if len(shape) != 2:
        raise AtlasError(f"{where}: {what} has shape {tuple(shape)}, not 2-D; store an N images × D features array")
    if shape[0] == 0:
        raise AtlasError(f"{where}: {what} is empty (shape {tuple(shape)}); store one row per image")
    if shape[1] == 0:
        raise AtlasError(f"{where}: {what} has zero columns (shape {tuple(shape)}); store at least one feature")
    if not _is_numeric(np.dtype(dtype)):
        raise AtlasError(
            f"{where}: {what} has dtype {dtype}, not numbers; store the features as floats (float32) or integers"
        )


def _read_paths_file(paths_file, where_paths: str) -> list[str]:
    try:
        text = Path(paths_file).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AtlasError(f"{where_paths}: does not exist; give the text file of the .npy rows' image paths") from None
    except UnicodeDecodeError as err:
        raise AtlasError(
            f"{where_paths}: is not UTF-8 text ({_one_line(err)}); save it as UTF-8, one path per line"
        ) from None
    except OSError as err:
        raise AtlasError(f"{where_paths}: cannot be read ({_one_line(err.strerror or err)}); fix the path") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise AtlasError(f"{where_paths}: is empty; give one image path per line, one line per row of the .npy")
    blank = next((i for i, line in enumerate(lines) if not line.strip()), None)
    if blank is not None:
        raise AtlasError(f"{where_paths}: line {blank + 1} is blank; give one image path per line, no blank lines")
    return lines


def _read_npy(path, paths_file, key, sample_paths, where, names, root) -> Iterator[np.ndarray]:
    if paths_file is None:
        raise AtlasError(
            f"{key}.paths_file is not set: the .npy features {_quote(path)} need a text file of their rows' "
            f"image paths, one per line"
        )
    where_paths = f"{key}.paths_file {_quote(paths_file)}"
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic != b"\x93NUMPY":
        if magic.startswith(b"PK"):
            problem = "is an .npz archive, not one .npy array; save one array with np.save"
        elif magic.startswith(b"\x80"):
            problem = (
                "is a pickle, which is never loaded since unpickling can run code; save a numeric array with np.save"
            )
        else:
            problem = "is not a .npy file (no NumPy header); write it with np.save"
        raise AtlasError(f"{where}: {problem}")
    try:
        # Memory-mapped: only the sample's rows are read from disk. Never unpickled (allow_pickle=False).
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        if "Python objects" in str(err) or "allow_pickle" in str(err):
            raise AtlasError(
                f"{where}: holds Python objects (an object array, stored as a pickle), which are never loaded since "
                f"unpickling can run code; save numbers instead, e.g. np.save(path, features.astype('float32'))"
            ) from None
        raise AtlasError(f"{where}: not a readable .npy file ({_one_line(err)}); write it again with np.save") from None
    except (OSError, EOFError) as err:
        raise AtlasError(f"{where}: not a readable .npy file ({_one_line(err)}); write it again with np.save") from None
    _check_array(array.shape, array.dtype, where, "the array")
    file_paths = _read_paths_file(paths_file, where_paths)
    if len(file_paths) != array.shape[0]:
        raise AtlasError(
            f"{where}: has {array.shape[0]} rows but {key}.paths_file {_quote(paths_file)} lists "
            f"{len(file_paths)} paths; give exactly one path per row, in the array's order"
        )
    rows = _match(file_paths, sample_paths, where, names, root)
    yield from _blocks(lambda selection: np.asarray(array[selection]), rows, array.dtype.itemsize, array.shape[1])


def _read_table(path, delimiter, sample_paths, where, names, root) -> np.ndarray:
    sep = "comma" if delimiter == "," else "tab"
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            if not header:
                raise AtlasError(
                    f"{where}: has no header row; start it with a {sep}-separated header naming a "
                    f"'{PATH_COLUMN}' column and one column per feature"
                )
            if header.count(PATH_COLUMN) != 1:
                problem = "no" if PATH_COLUMN not in header else "more than one"
                shown = ", ".join(_quote(name) for name in header[:5]) + (", …" if len(header) > 5 else "")
                raise AtlasError(
                    f"{where}: has {problem} '{PATH_COLUMN}' column (header: {shown}); give the header exactly "
                    f"one column named '{PATH_COLUMN}' ({sep}-separated) and one column per feature"
                )
            if len(header) == 1:
                raise AtlasError(f"{where}: has zero feature columns besides '{PATH_COLUMN}'; add one per feature")
            at = header.index(PATH_COLUMN)
            # Every path is kept (duplicates are refused), the values of the sample's rows only.
            wanted = {names(p) for p in sample_paths}
            file_paths: list[str] = []
            cells: dict[int, list[str]] = {}
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise AtlasError(
                        f"{where}: line {reader.line_num} has {len(row)} fields but the header has {len(header)}; "
                        f"give every row a path and one value per feature column ({sep}-separated)"
                    )
                if names(row[at]) in wanted:
                    cells[len(file_paths)] = row
                file_paths.append(row[at])
    except UnicodeDecodeError as err:
        raise AtlasError(f"{where}: is not UTF-8 text ({_one_line(err)}); save it as UTF-8") from None
    except csv.Error as err:
        raise AtlasError(f"{where}: is not a readable {sep}-separated table ({_one_line(err)}); fix the file") from None
    except OSError as err:
        raise AtlasError(f"{where}: cannot be read ({_one_line(err.strerror or err)}); fix the path") from None
    if not file_paths:
        raise AtlasError(f"{where}: has a header but no rows; give one row per image")
    rows = _match(file_paths, sample_paths, where, names, root)
    columns = [name for i, name in enumerate(header) if i != at]
    out = np.empty((len(sample_paths), len(columns)), dtype=np.float32)
    for i, row in enumerate(rows):
        values = cells[row][:at] + cells[row][at + 1 :]
        try:
            with np.errstate(over="ignore"):
                out[i] = np.array([float(value) for value in values])
        except ValueError:
            column, value = next((c, v) for c, v in zip(columns, values) if not _is_number(v))
            raise AtlasError(
                f"{where}: column {_quote(column)} of {_quote(file_paths[row])} holds {_quote(value)}, not a number; "
                f"give numbers only in the feature columns"
            ) from None
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def iter_precomputed(
    path: str,
    sample_paths: Sequence[str],
    key: str,
    paths_file: str | None = None,
    root: str | None = None,
) -> Iterator[np.ndarray]:
    """The features of ``sample_paths`` from the file ``path``: float32, one row per sample path, in order,
    in blocks of at most SAMPLE_BLOCK_ROWS rows (a table's in one). Checks run as the blocks are read: a
    problem is raised before the first block or, for NaN and infinity, after the last (a writer fed these
    blocks must discard what it wrote when iterating raises, as ``files.features.write_features`` does).

    ``key`` names the setting in messages (``features.clip``); ``paths_file`` is the text file of a
    ``.npy`` file's row paths; ``root`` (the dataset root) lets absolute paths under it match.
    Raises AtlasError, one line naming the setting, the file and the fix, on any problem with the file.
    """
    where = f"{key}.path {_quote(path)}"
    suffix = Path(path).suffix.lower()
    if suffix not in HDF5_SUFFIXES + NPY_SUFFIXES + tuple(TABLE_DELIMITERS):
        raise AtlasError(f"{where}: unknown features format {_quote(suffix or '(no suffix)')}; {FORMATS_HINT}")
    if paths_file is not None and suffix not in NPY_SUFFIXES:
        raise AtlasError(
            f"{key}.paths_file is only used with .npy features, and {_quote(path)} names its paths itself; remove it"
        )
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise AtlasError(f"{where}: does not exist; fix the path") from None
    except OSError as err:
        raise AtlasError(f"{where}: cannot be read ({_one_line(err.strerror or err)}); fix the path") from None
    if not Path(path).is_file():
        raise AtlasError(f"{where}: is not a file; give the path of the features file")
    if size == 0:
        raise AtlasError(f"{where}: is empty (0 bytes); write the features again")
    names = _Names(root)
    if suffix in HDF5_SUFFIXES:
        blocks = _read_hdf5(path, sample_paths, where, names, root)
    elif suffix in NPY_SUFFIXES:
        blocks = _read_npy(path, paths_file, key, sample_paths, where, names, root)
    else:
        blocks = iter([_read_table(path, TABLE_DELIMITERS[suffix], sample_paths, where, names, root)])
    bad, first = 0, None
    try:
        start = 0
        for block in blocks:
            bad_rows = _not_finite(block)
            if len(bad_rows) and first is None:
                first = start + int(bad_rows[0])
            bad += len(bad_rows)
            start += len(block)
            if not bad:
                yield block
    except OSError as err:
        raise AtlasError(
            f"{where}: could not be read ({_one_line(err)}); the file may be damaged, write it again"
        ) from None
    if bad:
        raise AtlasError(
            f"{where}: {bad} sampled image(s) have NaN or infinite features (or values too large for "
            f"float32), first {_quote(sample_paths[first])}; fix those rows or leave the images out of the dataset"
        )


def read_precomputed(
    path: str,
    sample_paths: Sequence[str],
    key: str,
    paths_file: str | None = None,
    root: str | None = None,
) -> np.ndarray:
    """``iter_precomputed``'s blocks as one array: the sample's features, float32, in sample order (one block
    is returned as it is; more are copied into place one at a time, never all held twice)."""
    out, start = None, 0
    for block in iter_precomputed(path, sample_paths, key, paths_file, root):
        if start == 0 and len(block) == len(sample_paths):
            return block
        if out is None:
            out = np.empty((len(sample_paths), block.shape[1]), dtype=np.float32)
        out[start : start + len(block)] = block
        start += len(block)
    return out
