"""What every job shares: user-fixable errors, atomic output files, job logs, and the adapter that
calls a stage function with a rule's named inputs, outputs and params."""

import contextlib
import hashlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (images in the sample, weights and network files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class AtlasError(Exception):
    """A problem the user can fix; its message is one line naming the file or key and the fix."""


def available_memory_bytes() -> int:
    """Memory this job can still take: the kernel's MemAvailable, or less where a cgroup caps the job
    (Slurm's --mem, a container's limit): its limit minus what the group already uses."""
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    available = int(fields["MemAvailable"].split()[0]) * 1024
    group = Path("/sys/fs/cgroup")
    with contextlib.suppress(OSError, ValueError):
        limit = (group / "memory.max").read_text().strip()
        if limit != "max":
            available = min(available, int(limit) - int((group / "memory.current").read_text()))
    return max(available, 0)


def check_memory(stage: str, need_bytes: int, what: str, lower_with: str) -> None:
    """Refuse to start ``stage`` when it would need more memory than the job can take, in one line naming
    the stage, the need and the setting that lowers it (better than being killed half-way)."""
    available = available_memory_bytes()
    if need_bytes > available:
        raise AtlasError(
            f"{stage} needs about {need_bytes / 2**30:.1f} GiB for {what}, but only "
            f"{available / 2**30:.1f} GiB is available here; {lower_with}"
        )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success.

    A job killed half-way leaves a ``.tmp-`` file behind, never a file with the final
    name, so nobody (Snakemake included) can take a half-written output for a finished one.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Leftovers of a killed earlier attempt at this same output (Snakemake's lock rules out
    # a concurrent writer): remove them so they neither pile up nor get mistaken for results.
    for stale in final.parent.glob(f".tmp-*-{final.name}"):
        stale.unlink(missing_ok=True)
    tmp = final.with_name(f".tmp-{os.getpid()}-{final.name}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def job_log(path: str | os.PathLike | None) -> Iterator[logging.Logger]:
    """Send this job's logging, warnings, stdout and stderr (tqdm's bar included) to ``path``.

    Snakemake's ``script:`` directive does not redirect output to the rule's log,
    so every stage script runs its work inside this context.
    """
    logger = logging.getLogger("tsne_atlas")
    if path is None:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
        yield logger
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1, encoding="utf-8") as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        # Our own warnings (random weights, say) also reach the terminal, not only the log.
        terminal = logging.StreamHandler(sys.__stderr__)
        terminal.setLevel(logging.WARNING)
        terminal.setFormatter(logging.Formatter("tsne-atlas: warning: %(message)s"))
        logger.addHandler(terminal)
        logging.captureWarnings(True)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                try:
                    yield logger
                except AtlasError as err:
                    # A user-fixable problem: one line in the log and on the terminal.
                    logger.error("%s", err)
                    print(f"tsne-atlas: error: {err}", file=sys.__stderr__)
                    raise SystemExit(1) from None
                except Exception:
                    logger.exception("job failed")
                    raise
        finally:
            root.removeHandler(handler)
            logger.removeHandler(terminal)
            logging.captureWarnings(False)


def rule_arguments(snakemake, function: Callable, **extra) -> dict:
    """Keyword arguments of ``function`` for this job: the rule's named input, output and params.

    A rule's names are the function's parameter names (``input: manifest=...`` fills
    ``manifest``); ``threads`` is passed when the function takes it. ``extra`` adds values that
    are not rule params on purpose (run-only settings: changing them must rerun nothing).
    A name the function does not take, or a name given twice, is a programming error.
    """
    arguments: dict = {}
    for source in (snakemake.input, snakemake.output, snakemake.params, extra):
        for name, value in source.items():
            if name in arguments:
                raise TypeError(f"rule {snakemake.rule}: '{name}' is given twice (input, output, params)")
            # Snakemake hands named lists as its own list type: stage functions get plain lists.
            arguments[name] = list(value) if isinstance(value, list) else value
    parameters = inspect.signature(function).parameters
    if "threads" in parameters:
        arguments["threads"] = snakemake.threads
    unknown = sorted(set(arguments) - set(parameters))
    if unknown:
        raise TypeError(f"rule {snakemake.rule}: {function.__name__}() takes no argument(s) {unknown}")
    return arguments


def run_rule(snakemake, function: Callable, **extra):
    """The body of every rule's script: ``function(**rule_arguments(...))`` inside the job's log."""
    arguments = rule_arguments(snakemake, function, **extra)
    with job_log(snakemake.log[0]):
        return function(**arguments)


def is_dry_run(workflow) -> bool:
    """Whether this Snakemake invocation is a dry run.

    While the Snakefile is parsed, Snakemake has not yet chosen its executor, so
    ``workflow.dryrun`` can still be False; the command line says it for sure.
    """
    if workflow.dryrun:
        return True
    from snakemake.cli import get_argument_parser

    args, _ = get_argument_parser().parse_known_args(sys.argv[1:])
    return bool(getattr(args, "dryrun", False))
