"""Make one virtual environment see another's packages: ``python link_venv.py MAIN_VENV``, run with the
interpreter of the environment that should see them, writes a ``.pth`` file (a path relative to its
own site-packages) naming MAIN_VENV's site-packages. Its own packages still come first on sys.path.

`make slurm-env` uses it so .venv-slurm gets the SLURM plugin without a second copy of torch.
"""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

PTH_NAME = "tsne_atlas_main_venv.pth"


def site_packages(python: str | os.PathLike) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def link(main_venv: str | os.PathLike) -> Path:
    target = site_packages(Path(main_venv) / "bin" / "python")
    if not target.is_dir():
        raise SystemExit(f"tsne-atlas: {target} is not a folder; create {main_venv} first (make)")
    here = Path(sysconfig.get_path("purelib"))
    pth = here / PTH_NAME
    pth.write_text(os.path.relpath(target, here) + "\n", encoding="utf-8")
    return pth


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tools/link_venv.py MAIN_VENV")
    print(f"tsne-atlas: {link(sys.argv[1])} -> {sys.argv[1]}")
