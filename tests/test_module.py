"""This workflow used as a Snakemake module (``module`` + ``use rule * from``, what snakedeploy writes)
from a wrapper workflow in another folder."""

import subprocess

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, TINY, TINY_IDS, TINY_SET, with_changes, without_query

pytestmark = pytest.mark.workflow

WRAPPER = f"""configfile: "config.yaml"


module tsne_atlas:
    snakefile:
        "{REPO / "Snakefile"}"
    config:
        config


use rule * from tsne_atlas
"""
# The tiny config, smaller still: one run of 12 images, no query set (its rules, `use rule` ones included,
# are parsed through the module all the same).
CONFIG = with_changes(
    with_changes(with_changes(without_query(TINY), "sample", n_images=12), "tsne", perplexities=[3], seeds=[0]),
    "extraction",
    batch_size=12,
)


def wrapper(folder, config) -> list[str]:
    folder.mkdir(exist_ok=True)
    (folder / "Snakefile").write_text(WRAPPER)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return [SNAKEMAKE, "--directory", str(folder), "-s", str(folder / "Snakefile"), "--cores", "2"]


def test_a_wrapper_workflow_runs_this_one_as_a_module(tmp_path):
    command = wrapper(tmp_path / "wrapper", CONFIG)
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    out = tmp_path / "wrapper" / "results"
    for name in (
        f"features/{TINY_SET}.h5",
        f"embeddings/{TINY_IDS[0]}/tsne/perplexity-3_seed-0.tsv",
        f"scatter/{TINY_IDS[1]}/tsne/perplexity-3_seed-0.png",
        f"grid_mosaic/{TINY_IDS[1]}/tsne/perplexity-3_seed-0.png",
        f"metrics/{TINY_IDS[0]}/sweep.csv",
        "explorer.html",
        "compare/cka.png",
    ):
        assert (out / name).stat().st_size > 0, name
    again = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_a_config_error_through_the_module_is_still_one_line(tmp_path):
    command = wrapper(tmp_path / "wrapper", with_changes(CONFIG, "mosaic", thumbsize=3))
    result = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "tsne-atlas: config error: mosaic: Additional properties are not allowed ('thumbsize' was unexpected); "
        "see docs/configuration.md"
    )
