from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

DEMO_ROOT = REPO / "resources" / "animal-mnist"


@pytest.fixture
def demo_root() -> Path:
    return DEMO_ROOT


def make_image_folder(root: Path, counts: dict[str, int], size=(20, 16), mode="RGB") -> Path:
    """A class-per-folder dataset of small synthetic images, distinct per class and index."""
    rng = np.random.default_rng(0)
    for class_index, (name, count) in enumerate(sorted(counts.items())):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            base = np.full((size[1], size[0], 3), 40 * class_index % 255, dtype=np.uint8)
            noise = rng.integers(0, 60, size=base.shape, dtype=np.uint8)
            Image.fromarray(base + noise).convert(mode).save(folder / f"{name}_{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "data", {"ant": 6, "bee": 5, "cat": 4})


SCHEMA = REPO / "schemas" / "config.schema.yaml"


def schema_defaults(section: str, *keys: str) -> dict:
    """The schema's defaults of ``section`` (all keys, or just ``keys``): the one home of defaults."""
    import yaml

    properties = yaml.safe_load(SCHEMA.read_text())["properties"][section]["properties"]
    wanted = keys or tuple(properties)
    return {key: properties[key]["default"] for key in wanted}


def rule_job(rule: str, input: dict, output: dict, params: dict, log: str, threads: int = 1):
    """What Snakemake's script directive hands a rule's script as ``snakemake``, with Snakemake's own
    named lists, so the rule adapter (tsne_atlas.jobs.run_rule) can be called without a workflow."""
    from types import SimpleNamespace

    from snakemake.iocontainers import Namedlist

    return SimpleNamespace(
        rule=rule, input=Namedlist(fromdict=input), output=Namedlist(fromdict=output),
        params=Namedlist(fromdict=params), log=Namedlist(toclone=[log]), threads=threads,
    )
