import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.models import get_model
from torchvision.models.feature_extraction import create_feature_extractor

from conftest import schema_defaults
from tsne_atlas import extraction as ef
from tsne_atlas import weights as fw
from tsne_atlas.files.features import write_features
from tsne_atlas.files.manifest import write_manifest
from tsne_atlas.files.weights_record import read_record
from tsne_atlas.jobs import AtlasError


@pytest.fixture
def manifest(image_folder, tmp_path):
    rows = [(f"{c}/{c}_{i:03d}.png", c) for c in ("ant", "bee", "cat") for i in range(4)]
    write_manifest(tmp_path / "manifest.csv", rows)
    return tmp_path / "manifest.csv"


def run(manifest, root, out, resolved=None, **kwargs):
    # fp32 NCHW: bitwise comparable with a plain loop over the model (the fast settings are tested apart).
    settings = {
        **schema_defaults("model"),
        "arch": "resnet18",
        "weights": "none",
        "batch_size": 5,
        "num_workers": 0,
        "precision": "fp32",
        "channels_last": False,
        **kwargs,
    }
    return ef.extract_features(
        manifest=str(manifest), resolved=resolved, root=str(root), features=str(out), progress=False, **settings
    )


def test_penultimate_node_is_the_classifier_input():
    assert ef.penultimate_node(get_model("resnet18", weights=None)) == "flatten"
    # mobilenet_v3's classifier is Linear-Hardswish-Dropout-Linear: the feature is the 1024-d vector.
    assert ef.penultimate_node(get_model("mobilenet_v3_small", weights=None)) == "classifier.2"
    assert ef.penultimate_node(get_model("alexnet", weights=None)) == "classifier.5"
    assert ef.penultimate_node(get_model("vit_b_16", weights=None)) == "getitem_5"
    # SqueezeNet classifies with a convolution: its feature is the input of that convolution.
    assert ef.penultimate_node(get_model("squeezenet1_1", weights=None)) == "classifier.0"


@pytest.mark.parametrize("arch, dim", [("squeezenet1_1", 512), ("mobilenet_v3_small", 1024)])
def test_other_architectures_extract(manifest, image_folder, tmp_path, arch, dim):
    attrs = run(manifest, image_folder, tmp_path / "f.h5", arch=arch)
    assert attrs["feature_dim"] == dim


def test_unknown_node_lists_valid_ones():
    with pytest.raises(
        AtlasError,
        match=r"^model.node 'fc7' is not a node of this model; use 'auto' \(penultimate\) "
        r"or one of its 70 nodes, the last being: .*, flatten, fc$",
    ):
        ef.resolve_node(get_model("resnet18", weights=None), "fc7")


def test_unknown_arch_lists_models():
    with pytest.raises(
        AtlasError,
        match=r"^model.arch 'resnet1O1' is not a torchvision classification model; "
        r"choose one of: .*resnet101",
    ):
        ef.check_arch("resnet1O1")


def test_random_init_is_seeded():
    a, source, is_random = ef.load_model("resnet18", "none", init_seed=3)
    b, _, _ = ef.load_model("resnet18", "none", init_seed=3)
    c, _, _ = ef.load_model("resnet18", "none", init_seed=4)
    assert is_random and "random" in source
    assert torch.equal(a.conv1.weight, b.conv1.weight)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_hdf5_layout_and_attributes(manifest, image_folder, tmp_path):
    out = tmp_path / "features.h5"
    attrs = run(manifest, image_folder, out, config_hash="abc123")
    with h5py.File(out) as h5:
        assert h5["features"].shape == (12, 512) and h5["features"].dtype == np.float32
        assert list(h5["labels"][:]) == [0] * 4 + [1] * 4 + [2] * 4
        assert [c.decode() for c in h5["classes"][:]] == ["ant", "bee", "cat"]
        assert h5["paths"][0].decode() == "ant/ant_000.png"
        assert np.isfinite(h5["features"][:]).all()
        for key in (
            "model",
            "node",
            "weights_source",
            "weights_random",
            "preprocessing",
            "device",
            "precision",
            "versions",
            "config_hash",
            "feature_dim",
        ):
            assert key in h5.attrs, key
        assert h5.attrs["node"] == "flatten" and h5.attrs["config_hash"] == "abc123"
        assert bool(h5.attrs["weights_random"]) is True
        assert json.loads(h5.attrs["versions"])["torch"] == torch.__version__
    assert attrs["feature_dim"] == 512
    assert not list(tmp_path.glob(".tmp-*"))


def test_features_are_reproducible_and_follow_the_images(manifest, image_folder, tmp_path):
    run(manifest, image_folder, tmp_path / "a.h5")
    run(manifest, image_folder, tmp_path / "b.h5", batch_size=12)
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        fa, fb = a["features"][:], b["features"][:]
    np.testing.assert_allclose(fa, fb, rtol=1e-4, atol=1e-5)
    assert not np.allclose(fa[0], fa[4])  # different images, different features


def cosine_rows(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_native_bf16_follows_the_cpu_flags():
    """bf16 counts as native only with AVX512-BF16 or AMX (PyTorch's own check also admits emulation)."""
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    assert ef.native_bf16(torch.device("cpu")) == bool(flags & {"avx512_bf16", "amx_bf16"})


def test_precision_auto_picks_native_bf16_or_fp32_and_is_recorded(manifest, image_folder, tmp_path):
    expected = "bf16" if ef.native_bf16(torch.device("cpu")) else "fp32"
    assert ef.resolve_precision("auto", torch.device("cpu")) == expected
    assert ef.resolve_precision("fp16", torch.device("cpu")) == "fp16"
    attrs = run(manifest, image_folder, tmp_path / "f.h5", precision="auto", channels_last=True)
    with h5py.File(tmp_path / "f.h5") as h5:
        assert h5.attrs["precision"] == expected and h5.attrs["precision_setting"] == "auto"
        assert bool(h5.attrs["channels_last"]) is True
    assert attrs["precision"] == expected


@pytest.mark.parametrize(
    "precision, channels_last, min_cosine", [("fp32", True, 0.99999), ("bf16", True, 0.999), ("fp16", False, 0.999)]
)
def test_faster_settings_keep_the_features(manifest, image_folder, tmp_path, precision, channels_last, min_cosine):
    """Reduced precision and NHWC layout change the arithmetic, not what the features say."""
    run(manifest, image_folder, tmp_path / "ref.h5", precision="fp32", channels_last=False)
    run(manifest, image_folder, tmp_path / "fast.h5", precision=precision, channels_last=channels_last)
    with h5py.File(tmp_path / "ref.h5") as ref, h5py.File(tmp_path / "fast.h5") as fast:
        reference, features = ref["features"][:], fast["features"][:]
    assert features.dtype == np.float32
    assert cosine_rows(reference, features).min() > min_cosine
    # Still far apart for different images: the error is small next to the signal.
    assert cosine_rows(reference[:1], features[4:5]).max() < cosine_rows(reference[:1], features[:1]).min()


def test_precision_overflow_is_an_error_not_nan_features(manifest, image_folder, tmp_path):
    """A random-init ResNet-101's activations exceed fp16's range: say so instead of writing NaNs."""
    with pytest.raises(AtlasError, match="model.precision 'fp16' gave inf/NaN features.*use precision bf16"):
        run(manifest, image_folder, tmp_path / "f.h5", arch="resnet101", precision="fp16", batch_size=2)
    assert not (tmp_path / "f.h5").exists() and not list(tmp_path.glob(".tmp-*"))


def flatten_features(model, image_folder) -> np.ndarray:
    """The manifest fixture's 12 images through ``model`` up to its penultimate node, fp32 NCHW."""
    paths = [f"{c}/{c}_{i:03d}.png" for c in ("ant", "bee", "cat") for i in range(4)]
    loader = DataLoader(ef.ImageFiles(image_folder, paths, ef.preprocessing_for("resnet18")), batch_size=5)
    extractor = create_feature_extractor(model, return_nodes=["flatten"])
    batches = ef.iter_feature_batches(extractor, "flatten", loader, torch.device("cpu"), "fp32", False, progress=False)
    return np.concatenate(list(batches))


def test_weights_file_gives_the_features_of_the_model_it_was_saved_from(manifest, image_folder, tmp_path):
    torch.manual_seed(123)
    model = get_model("resnet18", weights=None).eval()
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    expected = flatten_features(model, image_folder)
    attrs = run(
        manifest,
        image_folder,
        tmp_path / "f.h5",
        weights=str(tmp_path / "weights.pth"),
        precision="fp32",
        channels_last=False,
    )
    with h5py.File(tmp_path / "f.h5") as h5:
        np.testing.assert_array_equal(h5["features"][:], expected)
    assert attrs["weights_random"] is False and "weights.pth" in attrs["weights_source"]
    # ...and not the features of a different random model.
    run(manifest, image_folder, tmp_path / "other.h5", weights="none")
    with h5py.File(tmp_path / "other.h5") as h5:
        assert not np.allclose(h5["features"][:], expected)


def test_bad_weights_files_are_one_line_errors(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(
        AtlasError,
        match=r"^model.weights file '.*list.pth' is not a state dict \(a mapping of names to "
        r"tensors\); save it with torch.save\(model.state_dict\(\), path\)$",
    ):
        ef.load_model("resnet18", str(tmp_path / "list.pth"))
    torch.save(get_model("resnet34", weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(
        AtlasError,
        match=r"^model.weights file '.*r34.pth' does not fit model.arch 'resnet18' \(.*\); "
        r"use the arch the weights were saved from$",
    ):
        ef.load_model("resnet18", str(tmp_path / "r34.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(AtlasError, match="could not be loaded as a state dict"):
        ef.load_model("resnet18", str(tmp_path / "junk.pth"))


def closed_port_download(hub_dir: Path):
    """ImageNet weights from a closed local port: a real failed download, whatever the network."""

    def download(arch):
        url = f"http://127.0.0.1:9/{arch}-00000000.pth"
        return None, torch.hub.load_state_dict_from_url(url, model_dir=str(hub_dir), progress=False)

    return download


@pytest.fixture
def unreachable_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(fw, "_imagenet_state_dict", closed_port_download(tmp_path / "hub"))


def test_imagenet_weights_unavailable_is_a_clear_error(unreachable_weights):
    with pytest.raises(
        AtlasError,
        match=r"^model.weights is 'imagenet' but the resnet18 ImageNet weights could not "
        r"be had \(.* put it at .*set model.weights",
    ):
        ef.load_model("resnet18", "imagenet")


def test_auto_weights_fall_back_to_random_loudly(unreachable_weights, caplog):
    _, source, is_random = ef.load_model("resnet18", "auto")
    assert is_random and "ImageNet weights unavailable" in source
    assert "RANDOM initialisation" in caplog.text


def test_interrupted_extraction_leaves_no_output(tmp_path):
    def batches():
        yield np.zeros((2, 4), dtype=np.float32)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_features(tmp_path / "f.h5", batches(), 4, np.zeros(4), ["a"], ["p"] * 4, {})
    assert list(tmp_path.iterdir()) == []


def test_spatial_nodes_are_pooled(manifest, image_folder, tmp_path):
    run(manifest, image_folder, tmp_path / "f.h5", node="layer3")
    with h5py.File(tmp_path / "f.h5") as h5:
        assert h5["features"].shape == (12, 256)


def test_device_auto_uses_cuda_only_when_present():
    if torch.cuda.is_available():
        assert ef.resolve_device("auto").type == "cuda"
    else:
        assert ef.resolve_device("auto").type == "cpu"
        with pytest.raises(AtlasError, match="no CUDA GPU"):
            ef.resolve_device("cuda")


def test_identical_runs_give_byte_identical_files(manifest, image_folder, tmp_path):
    run(manifest, image_folder, tmp_path / "a.h5", config_hash="x")
    run(manifest, image_folder, tmp_path / "b.h5", config_hash="x")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_random_weights_warning_reaches_the_terminal_too(unreachable_weights, tmp_path, capfd):
    from tsne_atlas.jobs import job_log

    with job_log(tmp_path / "job.log"):
        ef.load_model("resnet18", "auto")
    assert "RANDOM initialisation" in (tmp_path / "job.log").read_text()
    assert "tsne-atlas: warning: !!! ImageNet weights for resnet18 could not be had" in capfd.readouterr().err


# --- weights resolved once (fetch_weights), then loaded from the recorded local file --------------


@pytest.fixture
def hub_cache(monkeypatch, tmp_path):
    """A torch hub cache ($TORCH_HOME) holding a 'resnet18 ImageNet' file: random weights saved under
    the file name torchvision's enum expects, so the real cache lookup finds it without a download."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    path = fw._imagenet_cache_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.manual_seed(7)
    model = get_model("resnet18", weights=None).eval()
    torch.save(model.state_dict(), path)
    return path, model


def test_imagenet_weights_resolve_to_the_hub_cache_file(hub_cache, tmp_path):
    path, _ = hub_cache
    record = fw.fetch_weights("resnet18", "auto", init_seed=3, resolved=str(tmp_path / "resolved.json"))
    assert record == read_record(tmp_path / "resolved.json")
    assert record["kind"] == "imagenet" and record["path"] == str(path)
    assert record["enum"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert record["weights_source"] == "imagenet (ResNet18_Weights.IMAGENET1K_V1)"
    assert record["weights_random"] is False and record["warning"] is None


def test_extraction_loads_the_recorded_file_without_resolving_again(
    hub_cache, manifest, image_folder, tmp_path, monkeypatch
):
    """Resolved where the hub cache is (the login node); then, as on a compute node without the cache
    and without network, extraction still loads the recorded file and gives that model's features."""
    _, model = hub_cache
    fw.fetch_weights("resnet18", "imagenet", init_seed=0, resolved=str(tmp_path / "resolved.json"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    monkeypatch.setattr(fw, "_imagenet_state_dict", closed_port_download(tmp_path / "hub"))
    with pytest.raises(AtlasError):
        fw.resolve_weights("resnet18", "imagenet")  # resolving again here would fail...
    attrs = run(manifest, image_folder, tmp_path / "f.h5", weights="imagenet", resolved=str(tmp_path / "resolved.json"))
    assert attrs["weights_source"] == "imagenet (ResNet18_Weights.IMAGENET1K_V1)" and not attrs["weights_random"]
    expected = flatten_features(model, image_folder)
    with h5py.File(tmp_path / "f.h5") as h5:
        np.testing.assert_array_equal(h5["features"][:], expected)  # ...but the recorded weights were used


def test_recorded_file_missing_on_this_node_is_a_clear_error(hub_cache, tmp_path):
    path, _ = hub_cache
    record = fw.resolve_weights("resnet18", "auto")
    path.unlink()
    with pytest.raises(AtlasError, match=r"is not visible on .*\$TORCH_HOME"):
        ef.model_from_record(record)


def test_record_for_other_settings_is_refused(manifest, image_folder, tmp_path):
    fw.fetch_weights("resnet18", "none", init_seed=0, resolved=str(tmp_path / "resolved.json"))
    with pytest.raises(AtlasError, match=r"written for model.arch 'resnet18', model.weights 'none', not 'resnet34'"):
        run(manifest, image_folder, tmp_path / "f.h5", arch="resnet34", resolved=str(tmp_path / "resolved.json"))


def test_auto_fallback_is_recorded_and_repeated_by_extraction(
    unreachable_weights, manifest, image_folder, tmp_path, caplog
):
    record = fw.fetch_weights("resnet18", "auto", init_seed=2, resolved=str(tmp_path / "resolved.json"))
    assert record["kind"] == "random" and record["path"] is None and "RANDOM initialisation" in record["warning"]
    caplog.clear()
    attrs = run(
        manifest, image_folder, tmp_path / "f.h5", weights="auto", init_seed=2, resolved=str(tmp_path / "resolved.json")
    )
    assert attrs["weights_random"] is True
    assert attrs["weights_source"] == "random initialisation (ImageNet weights unavailable, init_seed 2)"
    assert "RANDOM initialisation" in caplog.text  # the extraction's log says it too
    # Same features as random initialisation with that seed resolved in place.
    run(manifest, image_folder, tmp_path / "g.h5", weights="auto", init_seed=2)
    with h5py.File(tmp_path / "f.h5") as f, h5py.File(tmp_path / "g.h5") as g:
        np.testing.assert_array_equal(f["features"][:], g["features"][:])


def test_weights_file_record_names_the_file_and_its_hash(tmp_path):
    torch.save(get_model("resnet18", weights=None).state_dict(), tmp_path / "w.pth")
    record = fw.resolve_weights("resnet18", str(tmp_path / "w.pth"))
    assert record["kind"] == "file" and record["path"] == str(tmp_path / "w.pth")
    assert record["weights_source"] == f"file w.pth (sha256 {fw.file_sha256(tmp_path / 'w.pth')[:16]})"
    with pytest.raises(AtlasError, match="does not exist"):
        fw.resolve_weights("resnet18", str(tmp_path / "missing.pth"))
