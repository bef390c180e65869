"""Every source of features through the real workflow: a timm model, your own network as TorchScript and
as a torch.export program, and precomputed features; and what changing their keys reruns."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import TINY, planned_jobs, snakemake, with_changes
from test_reruns import rerun_mismatches, schema_leaves

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
    # Precomputed: 5 numbers for every demo image (more rows than the sample: a whole-dataset file).
    root = TINY["dataset"]["root"]
    paths = sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*.png"))
    rng = np.random.default_rng(0)
    with h5py.File(folder / "embeddings.h5", "w") as h5:
        h5["features"] = rng.normal(size=(len(paths), 5)).astype(np.float32)
        h5["paths"] = np.array(paths, dtype=object)
    return {
        "vit": {"source": "timm", "arch": "test_vit", "weights": "none"},
        "scripted": {"source": "torchscript", "path": str(folder / "net.pt"), "input_size": 32},
        "exported": {"source": "export", "path": str(folder / "net.pt2"), "input_size": 32},
        "clip": {"source": "precomputed", "path": str(folder / "embeddings.h5")},
    }


@pytest.fixture(scope="module")
def sources_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sources")
    config = {
        **with_changes(TINY, "sample", n_images=20),
        "features": own_sources(workdir),
        "tsne": {"perplexities": [3], "seeds": [0], "pca_components": 5},
    }
    result = snakemake(workdir, config=config)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, config


def test_every_source_gives_features_runs_and_the_comparison(sources_run):
    workdir, config = sources_run
    out = workdir / "results"
    dims = {"vit": None, "scripted": 8, "exported": 8, "clip": 5}
    for name, dim in dims.items():
        meta = json.loads((out / "embeddings" / name / "tsne" / "perplexity-3_seed-0.json").read_text())
        assert meta["source"] == config["features"][name]["source"] and meta["features"] == name
        if dim:
            assert meta["feature_dim"] == dim, name
        assert (out / "scatter" / name / "tsne" / "perplexity-3_seed-0.png").exists()
    # A script and an export of one network give the same features.
    with h5py.File(out / "features" / "scripted.h5") as a, h5py.File(out / "features" / "exported.h5") as b:
        np.testing.assert_allclose(a["features/penultimate"][:], b["features/penultimate"][:], rtol=1e-5, atol=1e-6)
    # The precomputed rows are the file's, matched to the sample by path.
    with h5py.File(out / "features" / "clip.h5") as imported, h5py.File(workdir / "embeddings.h5") as source:
        index = {p.decode() if isinstance(p, bytes) else p: i for i, p in enumerate(source["paths"][:])}
        rows = [index[p.decode() if isinstance(p, bytes) else p] for p in imported["paths"][:]]
        np.testing.assert_array_equal(imported["features/precomputed"][:], source["features"][:][rows])
    assert json.loads((out / "weights" / "vit.json").read_text())["source"] == "timm"
    assert sorted(p.stem for p in (out / "weights").iterdir()) == ["vit"]  # only sets with weights resolve
    assert (out / "compare" / "cka.png").exists()


def test_own_source_keys_rerun_what_the_schema_declares(sources_run, tmp_path):
    """The keys the torchvision set of the tiny run cannot take (path, input_size, mean, std, paths_file),
    changed on sets that use them."""
    workdir, config = sources_run
    (tmp_path / "other.pt").write_bytes((workdir / "net.pt").read_bytes())
    own_keys = ("path", "input_size", "mean", "std")
    leaves = [leaf for leaf in schema_leaves("torchscript", "scripted") if leaf[1] in own_keys]
    assert len(leaves) == 4
    new_values = {"path": str(tmp_path / "other.pt"), "input_size": 40, "mean": [0.5, 0.5, 0.5], "std": [0.2] * 3}
    mismatches = rerun_mismatches(workdir, None, tmp_path, leaves, base=config, values=new_values)
    assert mismatches == []
    # Replacing the precomputed file reruns that set only.
    with h5py.File(workdir / "embeddings.h5", "a") as h5:
        h5["features"][0, 0] += 1.0
    planned = planned_jobs(workdir, config)
    assert planned["extract_features"] == 1 and planned["tsne"] == 1
