"""The CSV tables of named columns the stages write (suspects, clusters): UTF-8, written with the csv
module (so commas, quotes and newlines in paths and labels round-trip), one header row; read back only
with exactly that header, else one line naming the file and the fix. Each table's own module
(files/suspects.py, files/clusters.py) says what its columns hold and how a value is written."""

import csv
import os
from collections.abc import Callable

from ..jobs import AtlasError, atomic_path


def write_csv_table(
    path: str | os.PathLike, fields: tuple[str, ...], rows: list[dict], cell: Callable[[str, object], str]
) -> None:
    """``rows`` (dicts holding every field) as a table, each value written by ``cell(field, value)``."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(fields)
        writer.writerows([cell(name, row[name]) for name in fields] for row in rows)


def read_csv_table(path: str | os.PathLike, fields: tuple[str, ...], parse: Callable[[str, str], object]) -> list[dict]:
    """The rows of a table written with ``fields``, each cell read by ``parse(field, text)``."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(header) != fields:
            raise AtlasError(f"{path}: not a table with columns {', '.join(fields)}; delete it and rerun")
        return [{name: parse(name, text) for name, text in zip(fields, values)} for values in reader]
