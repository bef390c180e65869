"""Snakemake calls without a fresh interpreter each: a fork server (multiprocessing's "forkserver") imports
Snakemake and the third-party modules this workflow's Snakefile needs once, then forks a new process for
every call. A dry run forked so takes about 0.5 s instead of 1.5 s here (most of a new one is imports), and
the tests make a few hundred of them. Each call still gets a process of its own, as a real command would: nothing Snakemake sets
up survives into the next call, and a real run's jobs are new processes as always.

Each call gets the caller's environment as it is at the call (a test may have changed it); what the
preloaded modules read of the environment on import, they read when the server started.
"""

import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import traceback
from concurrent.futures import ProcessPoolExecutor

# What a dry run of this workflow imports, but for its own scripts.tsne_atlas (importable once Snakemake has
# added the Snakefile's folder to the path): imported once in the server, before any fork.
PRELOAD = [
    "snakemake.cli",
    "snakemake.api",
    "snakemake.workflow",
    "snakemake.dag",
    "snakemake.report.html_reporter",
    "snakemake.storage",
    "snakemake.profiles",
    "numpy",
    "h5py",
    "yaml",
    "jsonschema",
    "requests",
    "docutils",
    "jinja2",
    "PIL.Image",
]

_pool = None
_pool_lock = threading.Lock()


def _run_cli(command: list[str], environ: dict[str, str]) -> tuple[int, str, str]:
    """In the forked process: Snakemake's command line ``command`` in the caller's environment ``environ``,
    its exit status and output."""
    os.environ.clear()
    os.environ.update(environ)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.argv = list(command)  # what the workflow reads of its command line (tsne_atlas.jobs.is_dry_run)
        from snakemake.cli import main

        try:
            main(command[1:])
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
            if exit.code is not None and not isinstance(exit.code, int):
                print(exit.code, file=sys.stderr)  # as the interpreter does with sys.exit("message")
        except BaseException:
            traceback.print_exc()  # as the interpreter does with an uncaught exception
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read()


def _server() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([*PRELOAD, __name__])
            # One task per process: every call a fresh fork of the server, none sharing Snakemake's state.
            _pool = ProcessPoolExecutor(max_workers=4, mp_context=context, max_tasks_per_child=1)
    return _pool


def run(command: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    """``command`` (a snakemake command line: the executable, then its arguments) run in a forked process,
    in this process's environment as it is now. Past ``timeout`` the call raises, but unlike subprocess.run
    it does not kill the forked process (the test fails either way)."""
    code, stdout, stderr = _server().submit(_run_cli, command, dict(os.environ)).result(timeout=timeout)
    return subprocess.CompletedProcess(command, code, stdout, stderr)
