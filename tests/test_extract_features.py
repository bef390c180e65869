import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.models import get_model
from torchvision.models.feature_extraction import create_feature_extractor

from conftest import extraction_defaults
from tsne_atlas import extraction as ef
from tsne_atlas import sources
from tsne_atlas import weights as fw
from tsne_atlas.config import feature_set_settings
from tsne_atlas.files.features import read_features, write_features
from tsne_atlas.files.manifest import write_images
from tsne_atlas.files.weights_record import read_record
from tsne_atlas.jobs import AtlasError, file_sha256
from tsne_atlas.schema import SCHEMA_PATH, feature_set_defaults
from tsne_atlas.sources import network as nw
from tsne_atlas.sources import torchvision as tv

# The feature set every test extracts: its name appears in every message as features.r18.<key>.
SET = "r18"
KEY = f"features.{SET}"
EXTRACTION_KEYS = tuple(extraction_defaults())


@pytest.fixture
def manifest(image_folder, tmp_path):
    paths = [f"{c}/{c}_{i:03d}.png" for c in ("ant", "bee", "cat") for i in range(4)]
    write_images(tmp_path / "images.csv", paths, ["0" * 64] * len(paths))
    return tmp_path / "images.csv"


def set_settings(**given) -> dict:
    """Feature set ``r18`` (resnet18, random init unless told) with the schema's defaults filled in,
    as the workflow hands them to extract_features."""
    given = {"arch": "resnet18", "weights": "none", **given}
    return feature_set_settings({"features": {SET: given}}, feature_set_defaults(SCHEMA_PATH))[SET]


def run(manifest, root, out, resolved=None, config_hash="", **kwargs):
    """extract_features for set r18; ``kwargs`` are extraction settings or the set's own settings."""
    # fp32 NCHW: bitwise comparable with a plain loop over the model (the fast settings are tested apart).
    extraction = {
        **extraction_defaults(),
        "batch_size": 5,
        "num_workers": 0,
        "precision": "fp32",
        "channels_last": False,
        **{k: v for k, v in kwargs.items() if k in EXTRACTION_KEYS},
    }
    settings = set_settings(**{k: v for k, v in kwargs.items() if k not in EXTRACTION_KEYS})
    return ef.extract_features(
        images=str(manifest),
        root=str(root),
        feature_set=SET,
        settings=settings,
        features=str(out),
        resolved=resolved,
        config_hash=config_hash,
        progress=False,
        **extraction,
    )


def node_features(path, node="penultimate") -> np.ndarray:
    return read_features(path, node)["features"]


def test_penultimate_node_is_the_classifier_input():
    assert nw.penultimate_node(get_model("resnet18", weights=None)) == "flatten"
    # mobilenet_v3's classifier is Linear-Hardswish-Dropout-Linear: the feature is the 1024-d vector.
    assert nw.penultimate_node(get_model("mobilenet_v3_small", weights=None)) == "classifier.2"
    assert nw.penultimate_node(get_model("alexnet", weights=None)) == "classifier.5"
    assert nw.penultimate_node(get_model("vit_b_16", weights=None)) == "getitem_5"
    # SqueezeNet classifies with a convolution: its feature is the input of that convolution.
    assert nw.penultimate_node(get_model("squeezenet1_1", weights=None)) == "classifier.0"


@pytest.mark.parametrize(
    "arch, dim, graph_node", [("squeezenet1_1", 512, "classifier.0"), ("mobilenet_v3_small", 1024, "classifier.2")]
)
def test_other_architectures_extract(manifest, image_folder, tmp_path, arch, dim, graph_node):
    attrs = run(manifest, image_folder, tmp_path / "f.h5", arch=arch)
    assert attrs["feature_dims"] == {"penultimate": dim} and attrs["model"] == arch
    assert read_features(tmp_path / "f.h5")["attrs"]["graph_node"] == graph_node


def test_unknown_node_lists_valid_ones(manifest, image_folder, tmp_path):
    with pytest.raises(
        AtlasError,
        match=r"^features\.r18\.nodes: 'fc7' is not a node of this model; close matches: fc; use 'penultimate' "
        r"or one of its 70 nodes, the last being: .*, flatten, fc$",
    ):
        run(manifest, image_folder, tmp_path / "f.h5", nodes=["layer3", "fc7"])
    # A mistyped module name is matched to the module.
    with pytest.raises(
        AtlasError, match=r"^features\.r18\.nodes: 'layr3' is not a node of this model; close matches: layer3"
    ):
        run(manifest, image_folder, tmp_path / "f.h5", nodes=["layr3"])
    assert list(tmp_path.glob("*.h5")) == [] and not list(tmp_path.glob(".tmp-*"))


def test_unknown_arch_lists_models(manifest, image_folder, tmp_path):
    message = (
        r"^features\.r18\.arch 'resnet1O1' is not a torchvision classification model; "
        r"close matches: [a-z0-9_, ]*resnet101[a-z0-9_, ]*; torchvision\.models\.list_models\(\) lists them all$"
    )
    with pytest.raises(AtlasError, match=message):
        run(manifest, image_folder, tmp_path / "f.h5", arch="resnet1O1")  # in extraction, resolving in place
    with pytest.raises(AtlasError, match=message):
        fw.fetch_weights(SET, "torchvision", "resnet1O1", "auto", 0, str(tmp_path / "resolved.json"))
    with pytest.raises(
        AtlasError,
        match=r"^features\.r18\.arch 'qwertyuiop' is not a torchvision classification "
        r"model; torchvision\.models\.list_models\(\) lists them all$",
    ):
        tv.check_arch("qwertyuiop", f"{KEY}.arch")  # nothing close: no empty list of matches
    assert not list(tmp_path.glob("*.h5")) and not (tmp_path / "resolved.json").exists()


def test_random_init_is_seeded():
    record = tv.resolve_weights("resnet18", "none", 3, KEY)
    assert record["kind"] == "none" and record["weights_random"] is True
    assert record["weights_source"] == "random initialisation (weights: none, init_seed 3)"
    a = tv.torchvision_model(record, 3, f"{KEY}.weights")
    b = tv.torchvision_model(record, 3, f"{KEY}.weights")
    c = tv.torchvision_model(tv.resolve_weights("resnet18", "none", 4, KEY), 4, f"{KEY}.weights")
    assert torch.equal(a.conv1.weight, b.conv1.weight)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_hdf5_layout_and_attributes(manifest, image_folder, tmp_path):
    out = tmp_path / "features.h5"
    attrs = run(manifest, image_folder, out, config_hash="abc123")
    with h5py.File(out) as h5:
        assert list(h5["features"]) == ["penultimate"]
        features = h5["features"]["penultimate"]
        assert features.shape == (12, 512) and features.dtype == np.float32
        assert features.attrs["graph_node"] == "flatten"
        assert np.isfinite(features[:]).all()
        assert "labels" not in h5 and "classes" not in h5  # labels join later: relabelling extracts nothing
        assert h5["paths"][0].decode() == "ant/ant_000.png"
        for key in (
            "feature_set",
            "source",
            "model",
            "nodes",
            "weights",
            "weights_source",
            "weights_random",
            "preprocessing",
            "device",
            "precision",
            "precision_setting",
            "channels_last",
            "batch_size",
            "dataset_root",
            "n_images",
            "versions",
            "config_hash",
            "feature_dims",
        ):
            assert key in h5.attrs, key
        assert h5.attrs["feature_set"] == SET and h5.attrs["source"] == "torchvision"
        assert h5.attrs["model"] == "resnet18" and h5.attrs["weights"] == "none"
        assert json.loads(h5.attrs["nodes"]) == ["penultimate"]
        assert json.loads(h5.attrs["feature_dims"]) == {"penultimate": 512}
        assert h5.attrs["config_hash"] == "abc123" and int(h5.attrs["n_images"]) == 12
        assert bool(h5.attrs["weights_random"]) is True
        assert json.loads(h5.attrs["versions"])["torch"] == torch.__version__
    assert attrs["feature_dims"] == {"penultimate": 512} and attrs["nodes"] == ["penultimate"]
    read = read_features(out)  # one node: read without naming it
    assert read["shape"] == (12, 512) and read["attrs"]["node"] == "penultimate"
    assert read["attrs"]["nodes"] == ["penultimate"] and read["attrs"]["feature_dims"] == {"penultimate": 512}
    assert not list(tmp_path.glob(".tmp-*"))


def test_features_file_records_each_node_and_its_graph_node(manifest, image_folder, tmp_path):
    """The config's node names key the datasets; the network node each resolved to is recorded beside it."""
    out = tmp_path / "f.h5"
    attrs = run(manifest, image_folder, out, nodes=["layer3", "penultimate"])
    assert attrs["nodes"] == ["layer3", "penultimate"]
    assert attrs["feature_dims"] == {"layer3": 256, "penultimate": 512}
    with pytest.raises(AtlasError, match=r"holds nodes \['layer3', 'penultimate'\], not 'layer4'"):  # config order
        read_features(out, "layer4", with_features=False)
    assert {node: read_features(out, node, with_features=False)["attrs"]["graph_node"] for node in attrs["nodes"]} == {
        "layer3": "layer3",
        "penultimate": "flatten",
    }
    penultimate = read_features(out, "penultimate", with_features=False)
    assert penultimate["features"] is None and penultimate["shape"] == (12, 512)
    assert penultimate["attrs"]["node"] == "penultimate" and penultimate["attrs"]["graph_node"] == "flatten"
    assert penultimate["attrs"]["nodes"] == ["layer3", "penultimate"]
    assert read_features(out, "layer3")["attrs"]["graph_node"] == "layer3"
    with pytest.raises(AtlasError, match=r"holds nodes \['layer3', 'penultimate'\], not 'layer4'"):
        read_features(out, "layer4")
    with pytest.raises(AtlasError, match="not 'None'"):
        read_features(out)  # several nodes: the reader must name one


def test_several_nodes_come_from_one_forward_pass(manifest, image_folder, tmp_path, monkeypatch):
    """A set of three nodes runs the network once per batch, and each node's features are those a
    set of that node alone gives."""
    calls = []
    build = ef.build_network

    def counting_build(*args, **kwargs):
        network = build(*args, **kwargs)
        first_conv = next(m for m in network.module.modules() if isinstance(m, torch.nn.Conv2d))
        first_conv.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
        return network

    monkeypatch.setattr(ef, "build_network", counting_build)
    nodes = ["layer2", "layer3", "penultimate"]
    attrs = run(manifest, image_folder, tmp_path / "all.h5", nodes=nodes)
    assert calls == [5, 5, 2]  # 12 images, batch 5: three batches, each through the network once
    assert attrs["feature_dims"] == {"layer2": 128, "layer3": 256, "penultimate": 512}
    for node in nodes:
        calls.clear()
        run(manifest, image_folder, tmp_path / f"{node}.h5", nodes=[node])
        assert calls == [5, 5, 2]
        together, alone = node_features(tmp_path / "all.h5", node), node_features(tmp_path / f"{node}.h5", node)
        assert together.shape == alone.shape
        np.testing.assert_allclose(together, alone, rtol=1e-6, atol=1e-6)


def test_features_are_reproducible_and_follow_the_images(manifest, image_folder, tmp_path):
    run(manifest, image_folder, tmp_path / "a.h5")
    run(manifest, image_folder, tmp_path / "b.h5", batch_size=12)
    fa, fb = node_features(tmp_path / "a.h5"), node_features(tmp_path / "b.h5")
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
    stored = read_features(tmp_path / "f.h5", with_features=False)["attrs"]
    assert stored["precision"] == expected and stored["precision_setting"] == "auto"
    assert bool(stored["channels_last"]) is True
    assert attrs["precision"] == expected


@pytest.mark.slow
@pytest.mark.parametrize(
    "precision, channels_last, min_cosine", [("fp32", True, 0.99999), ("bf16", True, 0.999), ("fp16", False, 0.999)]
)
def test_faster_settings_keep_the_features(image_folder, tmp_path, precision, channels_last, min_cosine):
    """Reduced precision and NHWC layout change the arithmetic, not what the features say. Two images of
    each class, in a full and a short batch: each row is held to the bound, and fp16 on a CPU is slow."""
    paths = [f"{c}/{c}_{i:03d}.png" for c in ("ant", "bee", "cat") for i in range(2)]
    write_images(tmp_path / "images.csv", paths, ["0" * 64] * len(paths))
    manifest = tmp_path / "images.csv"
    run(manifest, image_folder, tmp_path / "ref.h5", precision="fp32", channels_last=False)
    run(manifest, image_folder, tmp_path / "fast.h5", precision=precision, channels_last=channels_last)
    reference, features = node_features(tmp_path / "ref.h5"), node_features(tmp_path / "fast.h5")
    assert features.dtype == np.float32
    assert cosine_rows(reference, features).min() > min_cosine
    # Still far apart for different images: the error is small next to the signal.
    assert cosine_rows(reference[:1], features[4:5]).max() < cosine_rows(reference[:1], features[:1]).min()


@pytest.mark.slow
def test_precision_overflow_is_an_error_not_nan_features(manifest, image_folder, tmp_path):
    """A random-init ResNet-101's activations exceed fp16's range: say so instead of writing NaNs. One image
    a batch: the first batch overflows already, and fp16 on a CPU is slow (half the time of two)."""
    with pytest.raises(
        AtlasError, match=r"^extraction\.precision 'fp16' gave inf/NaN features.*; use precision bf16, fp32 or auto$"
    ):
        run(manifest, image_folder, tmp_path / "f.h5", arch="resnet101", precision="fp16", batch_size=1)
    assert not (tmp_path / "f.h5").exists() and not list(tmp_path.glob(".tmp-*"))


def flatten_features(model, image_folder) -> np.ndarray:
    """The manifest fixture's 12 images through ``model`` up to its penultimate node, fp32 NCHW, with
    torchvision's own feature extractor (not the project's network builder)."""
    paths = [f"{c}/{c}_{i:03d}.png" for c in ("ant", "bee", "cat") for i in range(4)]
    transform = tv.torchvision_preprocessing("resnet18")
    loader = DataLoader(ef.ImageFiles(image_folder, paths, transform), batch_size=5)
    extractor = create_feature_extractor(model, return_nodes=["flatten"])
    batches = ef.iter_feature_batches(extractor, loader, torch.device("cpu"), "fp32", False, progress=False)
    return np.concatenate([batch["flatten"] for batch in batches])


def test_weights_file_gives_the_features_of_the_model_it_was_saved_from(manifest, image_folder, tmp_path):
    torch.manual_seed(123)
    model = get_model("resnet18", weights=None).eval()
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    expected = flatten_features(model, image_folder)
    attrs = run(manifest, image_folder, tmp_path / "f.h5", weights=str(tmp_path / "weights.pth"))
    np.testing.assert_array_equal(node_features(tmp_path / "f.h5"), expected)
    assert attrs["weights_random"] is False and attrs["weights_source"].startswith("file weights.pth (sha256 ")
    # ...and not the features of a different random model.
    run(manifest, image_folder, tmp_path / "other.h5", weights="none")
    assert not np.allclose(node_features(tmp_path / "other.h5"), expected)


def file_network(path):
    """Set r18's network with weights file ``path``, resolved and built as the workflow does."""
    record = tv.resolve_weights("resnet18", str(path), 0, KEY)
    return sources.build_network(set_settings(weights=str(path)), record, KEY)


def test_bad_weights_files_are_one_line_errors(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(
        AtlasError,
        match=r"^features\.r18\.weights file '.*list.pth' is not a state dict \(a mapping of names to "
        r"tensors\); save it with torch.save\(model.state_dict\(\), path\)$",
    ):
        file_network(tmp_path / "list.pth")
    torch.save(get_model("resnet34", weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(
        AtlasError,
        match=r"^features\.r18\.weights file '.*r34.pth' does not fit features\.r18\.arch 'resnet18' \(.*\); "
        r"use the arch the weights were saved from$",
    ):
        file_network(tmp_path / "r34.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(
        AtlasError, match=r"^features\.r18\.weights file '.*junk.pth' could not be loaded as a state dict \(\w+\); "
    ):
        file_network(tmp_path / "junk.pth")


def closed_port_download(hub_dir: Path):
    """ImageNet weights from a closed local port: a real failed download, whatever the network."""

    def download(arch):
        url = f"http://127.0.0.1:9/{arch}-00000000.pth"
        return None, torch.hub.load_state_dict_from_url(url, model_dir=str(hub_dir), progress=False)

    return download


@pytest.fixture
def unreachable_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(tv, "_imagenet_state_dict", closed_port_download(tmp_path / "hub"))


@pytest.mark.parametrize("weights", ["pretrained", "imagenet"])
def test_imagenet_weights_unavailable_is_a_clear_error(unreachable_weights, tmp_path, weights):
    with pytest.raises(
        AtlasError,
        match=rf"^features\.r18\.weights is '{weights}' but the resnet18 ImageNet weights could not "
        r"be had \(.*\); download http.* on a machine with internet and put it at .*resnet18-f37072fd\.pth, "
        r"or set features\.r18\.weights to the file's path$",
    ):
        fw.fetch_weights(SET, "torchvision", "resnet18", weights, 0, str(tmp_path / "resolved.json"))
    assert not (tmp_path / "resolved.json").exists()


def test_auto_weights_fall_back_to_random_loudly(unreachable_weights, caplog):
    record = tv.resolve_weights("resnet18", "auto", 0, KEY)
    assert record["kind"] == "random" and record["weights_random"] is True
    assert "ImageNet weights unavailable" in record["weights_source"]
    assert "RANDOM initialisation" in caplog.text and "set features.r18.weights to a state-dict file" in caplog.text


def test_interrupted_extraction_leaves_no_output(tmp_path):
    def batches():
        yield {"penultimate": np.zeros((2, 4), dtype=np.float32)}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_features(tmp_path / "f.h5", batches(), 4, ["p"] * 4, {}, {"penultimate": "flatten"})
    assert list(tmp_path.iterdir()) == []


def test_spatial_nodes_are_pooled(manifest, image_folder, tmp_path):
    run(manifest, image_folder, tmp_path / "f.h5", nodes=["layer3"])
    features = node_features(tmp_path / "f.h5", "layer3")
    assert features.shape == (12, 256)
    # The mean over the 14 x 14 positions of layer3's output, computed here by hand.
    torch.manual_seed(0)
    model = get_model("resnet18", weights=None).eval()
    paths = [f"{c}/{c}_{i:03d}.png" for c in ("ant", "bee", "cat") for i in range(4)]
    dataset = ef.ImageFiles(image_folder, paths, tv.torchvision_preprocessing("resnet18"))
    with torch.inference_mode():
        maps = create_feature_extractor(model, ["layer3"])(torch.stack([dataset[i] for i in range(12)]))["layer3"]
    assert maps.shape[2:] == (14, 14)
    np.testing.assert_allclose(features, maps.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)


def test_device_auto_uses_cuda_only_when_present():
    if torch.cuda.is_available():
        assert ef.resolve_device("auto").type == "cuda"
    else:
        assert ef.resolve_device("auto").type == "cpu"
        with pytest.raises(AtlasError, match=r"^extraction\.device is 'cuda' but no CUDA GPU is visible"):
            ef.resolve_device("cuda")


def test_identical_runs_give_byte_identical_files(manifest, image_folder, tmp_path):
    run(manifest, image_folder, tmp_path / "a.h5", config_hash="x", nodes=["layer2", "penultimate"])
    run(manifest, image_folder, tmp_path / "b.h5", config_hash="x", nodes=["layer2", "penultimate"])
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_random_weights_warning_reaches_the_terminal_too(unreachable_weights, manifest, image_folder, tmp_path, capfd):
    """Both when fetch_weights falls back (submitting host) and when extraction repeats it (compute node)."""
    from tsne_atlas.jobs import job_log

    resolved = str(tmp_path / "resolved.json")
    with job_log(tmp_path / "fetch.log"):
        fw.fetch_weights(SET, "torchvision", "resnet18", "auto", 0, resolved)
    assert "RANDOM initialisation" in (tmp_path / "fetch.log").read_text()
    assert "tsne-atlas: warning: !!! ImageNet weights for resnet18 could not be had" in capfd.readouterr().err
    with job_log(tmp_path / "extract.log"):
        run(manifest, image_folder, tmp_path / "f.h5", weights="auto", resolved=resolved)
    assert "RANDOM initialisation" in (tmp_path / "extract.log").read_text()
    assert "tsne-atlas: warning: !!! ImageNet weights for resnet18 could not be had" in capfd.readouterr().err


# --- weights resolved once (fetch_weights), then loaded from the recorded local file --------------


@pytest.fixture
def hub_cache(monkeypatch, tmp_path):
    """A torch hub cache ($TORCH_HOME) holding a 'resnet18 ImageNet' file: random weights saved under
    the file name torchvision's enum expects, so the real cache lookup finds it without a download."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    path = tv._imagenet_cache_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.manual_seed(7)
    model = get_model("resnet18", weights=None).eval()
    torch.save(model.state_dict(), path)
    return path, model


@pytest.mark.parametrize("weights", ["auto", "pretrained", "imagenet"])
def test_imagenet_weights_resolve_to_the_hub_cache_file(hub_cache, tmp_path, weights):
    path, _ = hub_cache
    record = fw.fetch_weights(SET, "torchvision", "resnet18", weights, 3, str(tmp_path / "resolved.json"))
    assert record == read_record(tmp_path / "resolved.json")
    assert record["kind"] == "pretrained" and record["path"] == str(path) and record["source"] == "torchvision"
    assert record["weights"] == weights and record["enum"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert record["weights_source"] == "imagenet (ResNet18_Weights.IMAGENET1K_V1)"
    assert record["weights_random"] is False and record["warning"] is None


def test_extraction_loads_the_recorded_file_without_resolving_again(
    hub_cache, manifest, image_folder, tmp_path, monkeypatch
):
    """Resolved where the hub cache is (the login node); then, as on a compute node without the cache
    and without network, extraction still loads the recorded file and gives that model's features."""
    _, model = hub_cache
    fw.fetch_weights(SET, "torchvision", "resnet18", "pretrained", 0, str(tmp_path / "resolved.json"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    monkeypatch.setattr(tv, "_imagenet_state_dict", closed_port_download(tmp_path / "hub"))
    with pytest.raises(AtlasError):
        tv.resolve_weights("resnet18", "pretrained", 0, KEY)  # resolving again here would fail...
    attrs = run(
        manifest, image_folder, tmp_path / "f.h5", weights="pretrained", resolved=str(tmp_path / "resolved.json")
    )
    assert attrs["weights_source"] == "imagenet (ResNet18_Weights.IMAGENET1K_V1)" and not attrs["weights_random"]
    expected = flatten_features(model, image_folder)
    np.testing.assert_array_equal(node_features(tmp_path / "f.h5"), expected)  # ...but the recorded weights were used


def test_recorded_file_missing_on_this_node_is_a_clear_error(hub_cache, tmp_path):
    path, _ = hub_cache
    record = tv.resolve_weights("resnet18", "auto", 0, KEY)
    path.unlink()
    with pytest.raises(
        AtlasError,
        match=r"^weights file .*resnet18-f37072fd\.pth \(features\.r18\.weights 'auto', resolved by fetch_weights "
        r"on the submitting host\) is not visible on .*\$TORCH_HOME.* or set features\.r18\.weights to a file there$",
    ):
        sources.build_network(set_settings(weights="auto"), record, KEY)


def test_record_for_other_settings_is_refused(manifest, image_folder, tmp_path):
    fw.fetch_weights(SET, "torchvision", "resnet18", "none", 0, str(tmp_path / "resolved.json"))
    with pytest.raises(
        AtlasError,
        match=r"resolved\.json was written for arch 'resnet18', weights 'none', not 'resnet34', 'none'; "
        r"delete it and rerun$",
    ):
        run(manifest, image_folder, tmp_path / "f.h5", arch="resnet34", resolved=str(tmp_path / "resolved.json"))
    assert not (tmp_path / "f.h5").exists()


def test_auto_fallback_is_recorded_and_repeated_by_extraction(
    unreachable_weights, manifest, image_folder, tmp_path, caplog
):
    record = fw.fetch_weights(SET, "torchvision", "resnet18", "auto", 2, str(tmp_path / "resolved.json"))
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
    np.testing.assert_array_equal(node_features(tmp_path / "f.h5"), node_features(tmp_path / "g.h5"))


def test_weights_file_record_names_the_file_and_its_hash(tmp_path):
    torch.save(get_model("resnet18", weights=None).state_dict(), tmp_path / "w.pth")
    record = tv.resolve_weights("resnet18", str(tmp_path / "w.pth"), 0, KEY)
    assert record["kind"] == "file" and record["path"] == str(tmp_path / "w.pth")
    assert record["weights_source"] == f"file w.pth (sha256 {file_sha256(tmp_path / 'w.pth')[:16]})"
    with pytest.raises(
        AtlasError,
        match=r"^features\.r18\.weights file '.*missing\.pth' does not exist; give the path of a saved state dict$",
    ):
        tv.resolve_weights("resnet18", str(tmp_path / "missing.pth"), 0, KEY)


def test_weights_record_is_sorted_indented_json_and_an_unknown_kind_is_one_line(tmp_path):
    """write_record and read_record (files/weights_record.py) byte for byte on a record written here."""
    from tsne_atlas.files.weights_record import read_record, write_record
    from tsne_atlas.jobs import AtlasError

    record = {"kind": "none", "arch": "resnet18", "warning": None}
    write_record(record, tmp_path / "w.json")
    text = '{\n "arch": "resnet18",\n "kind": "none",\n "warning": null\n}\n'
    assert (tmp_path / "w.json").read_text(encoding="utf-8") == text
    assert read_record(tmp_path / "w.json") == record
    (tmp_path / "old.json").write_text('{"kind": "imagenet"}', encoding="utf-8")
    with pytest.raises(AtlasError) as error:
        read_record(tmp_path / "old.json")
    expected = f"{tmp_path / 'old.json'}: not a weights record written by fetch_weights; delete it and rerun"
    assert str(error.value) == expected


def test_a_torchvision_sets_extraction_records_timms_version_without_importing_timm():
    """The features file records every library's version, timm's from its installed metadata: a torchvision
    set's extraction job never imports timm (~0.7 s of CPU in each job)."""
    code = "import sys, json; from tsne_atlas.extraction import library_versions as v; print(json.dumps([v(), 'timm' in sys.modules]))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(ef.__file__).parents[1]
    )
    versions, imported = json.loads(out.stdout)
    import timm

    assert versions["timm"] == timm.__version__ and not imported
    assert versions["torch"] == torch.__version__
