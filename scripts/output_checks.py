"""Startup check of finished-looking outputs: a features file that cannot be read is rebuilt.

Outputs are written under a temporary name and renamed when complete, so a crash of
this workflow cannot leave a half-written features file. A file copied in truncated,
or left by a crash of an older version or a full disk, still can; Snakemake would take
it for finished because it has the final name. The workflow therefore opens an existing
features file when it starts and, if it is not complete, removes it so it is rebuilt.
"""

import os
from pathlib import Path

import h5py

REQUIRED_DATASETS = ("features", "labels", "classes", "paths")


def features_file_problem(path: str | os.PathLike) -> str | None:
    """Why the features file at ``path`` is incomplete, or None when it is complete (or absent)."""
    if not Path(path).exists():
        return None
    try:
        with h5py.File(path, "r") as h5:
            missing = [name for name in REQUIRED_DATASETS if name not in h5]
            if missing:
                return f"datasets {missing} are missing"
            n_rows = {name: h5[name].shape[0] for name in REQUIRED_DATASETS if name != "classes"}
            if len(set(n_rows.values())) != 1:
                return f"datasets disagree on the number of images ({n_rows})"
            if "feature_dim" not in h5.attrs:  # written last
                return "attributes are missing"
    except OSError as err:
        return f"not readable as HDF5 ({' '.join(str(err).split())[:100]})"
    return None


def remove_if_incomplete(path: str | os.PathLike) -> str | None:
    """Remove an incomplete features file so it is rebuilt; return the reason, or None."""
    if not Path(path).exists():
        return None
    problem = features_file_problem(path)
    if problem:
        Path(path).unlink()
    return problem


def is_dry_run(workflow) -> bool:
    """Whether this Snakemake invocation is a dry run.

    While the Snakefile is parsed, Snakemake has not yet chosen its executor, so
    ``workflow.dryrun`` can still be False; the command line says it for sure.
    """
    if workflow.dryrun:
        return True
    import sys

    from snakemake.cli import get_argument_parser

    args, _ = get_argument_parser().parse_known_args(sys.argv[1:])
    return bool(getattr(args, "dryrun", False))
