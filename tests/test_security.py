"""No code runs from data: restricted unpickling, weights-only torch loading, no stray pickle."""

import gzip
import io
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import make_demo_data
from tsne_atlas.jobs import AtlasError

REPO = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_demo_converter_admits_numpy_arrays_and_nothing_else(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    loaded = make_demo_data.load_numpy_pickle(gzip.compress(pickle.dumps(array)))
    np.testing.assert_array_equal(loaded, array)
    marker = tmp_path / "pwned"
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle posix.system"):
        make_demo_data.load_numpy_pickle(gzip.compress(pickle.dumps(Payload(marker))))
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match="expected a numpy array"):
        make_demo_data.load_numpy_pickle(gzip.compress(pickle.dumps({"a": 1})))


def test_a_weights_file_that_runs_code_is_refused(tmp_path):
    from tsne_atlas.sources.torchvision import load_state_dict_file

    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pth", "wb") as handle:
        pickle.dump(Payload(marker), handle)
    with pytest.raises(
        AtlasError, match=r"^features\.r18\.weights file '.*evil\.pth' could not be loaded as a state dict \(\w+\); "
    ):
        load_state_dict_file(tmp_path / "evil.pth", "features.r18.weights")
    assert not marker.exists()
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    (tmp_path / "ok.pth").write_bytes(buffer.getvalue())
    assert set(load_state_dict_file(tmp_path / "ok.pth", "features.r18.weights")) == {"w"}


def test_workflow_code_never_unpickles_or_loads_torch_files_unsafely():
    sources = {p: p.read_text() for p in sorted((REPO / "scripts").rglob("*.py"))}
    for path, text in sources.items():
        if path.name != "make_demo_data.py":
            assert not re.search(r"\bimport pickle\b|\bpickle\.loads?\(", text), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
    assert any("torch.load(" in text for text in sources.values())
