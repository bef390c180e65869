"""The network's own view: each image's top-5 predicted classes and their probabilities, stored in the
features file from the same forward pass as the features when the weights come with class names (a
``class_names`` file, or the ImageNet weights' own). Offline: random weights saved to local files."""

import h5py
import numpy as np
import pytest
import timm
import torch
from torchvision.models import ResNet18_Weights, get_model

from conftest import extraction_defaults, make_image_folder
from tsne_atlas import extraction as ef
from tsne_atlas import sources
from tsne_atlas.config import feature_set_settings
from tsne_atlas.files.features import features_file_problem, read_features, read_predictions
from tsne_atlas.files.manifest import write_images
from tsne_atlas.jobs import AtlasError
from tsne_atlas.schema import SCHEMA_PATH, feature_set_defaults
from tsne_atlas.sources import network as nw
from tsne_atlas.sources import timm as timm_source
from tsne_atlas.sources import torchvision as tv

SET = "net"
KEY = f"features.{SET}"
N_IMAGES = 7
PATHS = [f"{c}/{c}_{i:03d}.png" for c, n in (("ant", 4), ("bee", 3)) for i in range(n)]


@pytest.fixture(autouse=True)
def offline(offline_hub):
    """Every test here runs offline (conftest.offline_hub)."""


@pytest.fixture
def sample(tmp_path):
    """(dataset root, sample/images.csv) of 7 small images."""
    root = make_image_folder(tmp_path / "data", {"ant": 4, "bee": 3}, size=(40, 32))
    write_images(tmp_path / "images.csv", PATHS, ["0" * 64] * len(PATHS))
    return root, tmp_path / "images.csv"


@pytest.fixture
def class_file(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("".join(f"class {i}\n" for i in range(1000)))
    return path


def checkpoint(tmp_path, source: str, arch: str = "resnet18", seed: int = 5) -> str:
    """A random-init model of ``arch`` saved as a local state-dict file (stands for trained weights)."""
    torch.manual_seed(seed)
    model = get_model(arch, weights=None) if source == "torchvision" else timm.create_model(arch)
    path = tmp_path / f"{source}-{arch}.pth"
    torch.save(model.state_dict(), path)
    return str(path)


def extract(sample, out, source="torchvision", **given) -> dict:
    """extract_features for set ``net`` (resnet18 by default), fp32 NCHW, weights resolved in place."""
    root, images = sample
    settings = feature_set_settings(
        {"features": {SET: {"source": source, "arch": "resnet18", "weights": "none", **given}}},
        feature_set_defaults(SCHEMA_PATH),
    )[SET]
    extraction = {
        **extraction_defaults(),
        "batch_size": 3,
        "num_workers": 0,
        "precision": "fp32",
        "channels_last": False,
    }
    return ef.extract_features(
        images=str(images),
        root=str(root),
        feature_set=SET,
        settings=settings,
        features=str(out),
        progress=False,
        **extraction,
    )


def check_stored(out, classes: list[str]) -> None:
    predictions, reason = read_predictions(out)
    assert reason == "stored" and predictions is not None
    assert predictions.classes == classes
    index, probability = predictions.top_index, predictions.top_probability
    assert index.shape == probability.shape == (N_IMAGES, 5)
    assert index.dtype == np.int32 and probability.dtype == np.float32
    assert ((index >= 0) & (index < len(classes))).all()
    assert all(len(set(row)) == 5 for row in index.tolist())  # five different classes per image
    assert (np.diff(probability, axis=1) <= 0).all()  # most probable first
    assert (probability > 0).all() and (probability.sum(axis=1) <= 1 + 1e-6).all()
    names, top1 = predictions.top1()
    assert names == [classes[i] for i in index[:, 0]] and np.array_equal(top1, probability[:, 0])
    assert features_file_problem(out) is None
    with h5py.File(out) as h5:
        assert list(h5.attrs)[-2:] == ["predictions", "feature_dims"]  # feature_dims still written last


@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_weights_with_class_names_store_the_top5_from_the_same_pass(sample, tmp_path, class_file, source):
    weights = checkpoint(tmp_path, source)
    attrs = extract(sample, tmp_path / "p.h5", source, weights=weights, class_names=str(class_file))
    assert attrs["predictions"] == "stored"
    check_stored(tmp_path / "p.h5", class_file.read_text().splitlines())
    # The features are those of the same run without class names.
    without = extract(sample, tmp_path / "f.h5", source, weights=weights)
    assert without["predictions"] == f"none: no class names (give {KEY}.class_names)"
    assert read_predictions(tmp_path / "f.h5") == (None, without["predictions"])
    with_names, plain = read_features(tmp_path / "p.h5"), read_features(tmp_path / "f.h5")
    np.testing.assert_array_equal(with_names["features"], plain["features"])
    assert read_predictions(tmp_path / "f.h5") == (None, without["predictions"])


@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_the_logits_are_the_models_own_output(tmp_path, class_file, source):
    """What is ranked is the classifier's output for the image, for the one-node and the traced networks."""
    weights = checkpoint(tmp_path, source)
    resolve = sources.RESOLVERS[source]
    record = resolve("resnet18", weights, 0, KEY)
    model = tv.torchvision_model(record, 0, KEY) if source == "torchvision" else timm_source.timm_model(record, 0, KEY)
    build = tv.torchvision_network if source == "torchvision" else timm_source.timm_network
    batch = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for nodes in (["penultimate"], ["layer3", "penultimate"]):
        network = build(record, nodes, 0, KEY, str(class_file))
        assert network.predictions_reason == "stored" and len(network.class_names) == 1000
        assert list(network.nodes) == nodes  # the logits are no node
        with torch.no_grad():
            outputs = network.module(batch)
            expected = model(batch)
        assert set(outputs) == {*nodes, nw.LOGITS}
        torch.testing.assert_close(outputs[nw.LOGITS], expected, rtol=1e-5, atol=1e-5)


def softmax_top5_one_image_at_a_time(root, weights: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(N x 1000 softmax, N x 5 top classes) of each sampled image fed alone (a batch of one) to the model
    built here from the checkpoint, with no code of the package: the stored top-5 must be these."""
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    if source == "torchvision":
        model = get_model("resnet18", weights=None)
        transform = ResNet18_Weights.DEFAULT.transforms()
    else:
        model = timm.create_model("resnet18", pretrained=False)
        transform = create_transform(**resolve_data_config({}, model=model), is_training=False)
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()
    softmax = []
    with torch.no_grad():
        for path in PATHS:
            with Image.open(root / path) as image:
                batch = transform(image.convert("RGB")).unsqueeze(0)
            softmax.append(torch.softmax(model(batch).float(), dim=1)[0])
    probabilities = torch.stack(softmax)
    return probabilities.numpy(), torch.topk(probabilities, k=5, dim=1).indices.numpy()


@pytest.fixture
def varied_sample(tmp_path):
    """(dataset root, sample/images.csv) of 7 small images of full-range noise, each with its own colour
    balance: a random network scores them clearly apart (``sample``'s images of one class nearly alike)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "varied"
    for path in PATHS:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(32, 40, 3)) * rng.uniform(0.2, 1.0, size=3)
        Image.fromarray(pixels.astype(np.uint8)).save(root / path)
    write_images(tmp_path / "varied.csv", PATHS, ["0" * 64] * len(PATHS))
    return root, tmp_path / "varied.csv"


@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_each_images_stored_top5_is_the_models_softmax_top5_for_that_image(varied_sample, tmp_path, class_file, source):
    """Stored row i is image i's own top-5 (classes and softmax probabilities), in batches of 3 images
    (rows 0-2, 3-5, 6), checked against the model run on each image alone."""
    weights = checkpoint(tmp_path, source)
    extract(varied_sample, tmp_path / "p.h5", source, weights=weights, class_names=str(class_file))
    predictions, _ = read_predictions(tmp_path / "p.h5")
    assert predictions.classes == class_file.read_text().splitlines()
    assert read_features(tmp_path / "p.h5")["paths"] == PATHS
    softmax, expected_top = softmax_top5_one_image_at_a_time(varied_sample[0], weights, source)
    # The images' scores differ, so a row given to the wrong image shows: every two images' top-5
    # differ in their classes or by far more than the tolerance below in their probabilities.
    expected_probability = np.take_along_axis(softmax, expected_top, axis=1)
    for i in range(N_IMAGES):
        for j in range(i):
            assert not np.array_equal(expected_top[i], expected_top[j]) or (
                np.abs(expected_probability[i] - expected_probability[j]).max() > 1e-4
            ), (PATHS[i], PATHS[j])
    index, probability = predictions.top_index, predictions.top_probability
    # Classes compared through their probabilities: two near-tied classes may rank either way in a batch.
    np.testing.assert_allclose(probability, expected_probability, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.take_along_axis(softmax, index.astype(np.int64), axis=1), probability, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_random_weights_store_no_predictions_and_say_why(sample, tmp_path, class_file, source):
    attrs = extract(sample, tmp_path / "f.h5", source, weights="none", class_names=str(class_file))
    assert attrs["predictions"] == "none: random weights"
    assert read_predictions(tmp_path / "f.h5") == (None, "none: random weights")
    with h5py.File(tmp_path / "f.h5") as h5:
        assert "predictions" not in h5


def test_a_class_names_file_of_the_wrong_length_is_one_line(sample, tmp_path):
    (tmp_path / "ten.txt").write_text("".join(f"c{i}\n" for i in range(10)))
    weights = checkpoint(tmp_path, "torchvision")
    for given_weights in (weights, "none"):  # checked whatever the weights
        with pytest.raises(AtlasError) as error:
            extract(sample, tmp_path / "f.h5", weights=given_weights, class_names=str(tmp_path / "ten.txt"))
        message = str(error.value)
        assert "\n" not in message
        assert message == (
            f"{KEY}.class_names file '{tmp_path / 'ten.txt'}' has 10 lines but the network's classifier has 1000 "
            f"outputs; give one class name per line, one line per output, in the order of the outputs"
        )
    assert not (tmp_path / "f.h5").exists()


def test_a_timm_checkpoint_of_another_head_takes_names_of_its_width(tmp_path):
    """A fine-tuned timm model (10 classes): the class_names file has one line per class, top-5 of 10."""
    torch.manual_seed(0)
    path = tmp_path / "ft.pth"
    torch.save(timm.create_model("resnet18", num_classes=10).state_dict(), path)
    (tmp_path / "ten.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n\n")  # trailing blank lines
    record = timm_source.resolve_timm_weights("resnet18", str(path), 0, KEY)
    network = timm_source.timm_network(record, ["penultimate"], 0, KEY, str(tmp_path / "ten.txt"))
    assert network.class_names == [f"c{i}" for i in range(10)] and network.predictions_reason == "stored"
    with pytest.raises(AtlasError, match=r"has 1000 lines but the network's classifier has 10 outputs"):
        (tmp_path / "thousand.txt").write_text("x\n" * 1000)
        timm_source.timm_network(record, ["penultimate"], 0, KEY, str(tmp_path / "thousand.txt"))


def test_torchvision_imagenet_weights_name_their_classes_without_a_download(monkeypatch):
    """A record of resolved ImageNet weights takes its class names from the enum's meta['categories']."""
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("downloads"))
    record = {
        **nw.blank_record("resnet18", "imagenet"),
        "kind": "pretrained",
        "enum": "ResNet18_Weights.IMAGENET1K_V1",
        "weights_random": False,
    }
    categories = tv.torchvision_categories(record)
    assert categories == ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert len(categories) == 1000 and categories[0] == "tench"
    names, reason = nw.prediction_classes(record, 1000, None, categories, KEY)
    assert names == categories and reason == "stored"
    # Other weights have no built-in names; a class_names file is then the way.
    for kind in ("file", "none", "random"):
        assert tv.torchvision_categories({**record, "kind": kind, "enum": None}) is None
    assert nw.prediction_classes({**record, "kind": "file"}, 1000, None, None, KEY) == (
        None,
        f"none: no class names (give {KEY}.class_names)",
    )


def test_timm_pretrained_imagenet_heads_take_timms_imagenet_names(tmp_path):
    """Loaded pretrained weights of an ImageNet-1k head name their classes as timm ships them; random
    weights and other heads do not."""
    model = timm.create_model("resnet18")
    names = timm_source.timm_imagenet_names(model, {"kind": "pretrained"})
    assert names is not None and len(names) == 1000 and names[0] == "tench"
    assert timm_source.timm_imagenet_names(model, {"kind": "none"}) is None
    assert timm_source.timm_imagenet_names(model, {"kind": "file"}) is None
    assert (
        timm_source.timm_imagenet_names(timm.create_model("resnet18", num_classes=10), {"kind": "pretrained"}) is None
    )


def test_own_networks_and_precomputed_sets_say_why_they_predict_nothing():
    network = nw.Network(torch.nn.Identity(), {"penultimate": "output"}, lambda x: x, "own", False)
    assert network.class_names is None and network.predictions_reason.startswith("none: own network")
    assert ef.NO_PREDICTIONS_PRECOMPUTED == "none: precomputed features"


def test_class_names_is_a_key_of_network_sources_only():
    from tsne_atlas.config import SOURCE_KEYS

    assert SOURCE_KEYS["class_names"] == ("torchvision", "timm")
    assert feature_set_defaults(SCHEMA_PATH)["class_names"] == ""


def test_the_config_check_refuses_a_missing_file_and_other_sources(tmp_path):
    from tsne_atlas.config import check_feature_sets

    defaults = feature_set_defaults(SCHEMA_PATH)

    def check(given: dict) -> None:
        config = {"features": {SET: given}}
        check_feature_sets(config["features"], feature_set_settings(config, defaults), defaults)

    check({"arch": "resnet18", "weights": "none"})  # the default: no file
    with pytest.raises(AtlasError, match=rf"^{KEY}\.class_names '.*missing\.txt' does not exist or is not a file; "):
        check({"arch": "resnet18", "weights": "none", "class_names": str(tmp_path / "missing.txt")})
    (tmp_path / "net.pt").write_bytes(b"")
    (tmp_path / "c.txt").write_text("a\n")
    with pytest.raises(AtlasError, match=rf"^{KEY}\.class_names is only used by sources torchvision, timm, not "):
        check({"source": "torchscript", "path": str(tmp_path / "net.pt"), "class_names": str(tmp_path / "c.txt")})


def test_a_class_names_file_that_is_not_utf8_text_is_one_line(tmp_path):
    from tsne_atlas.sources.network import read_class_names

    (tmp_path / "latin.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(AtlasError) as err:
        read_class_names(str(tmp_path / "latin.txt"), "features.r18.class_names")
    assert str(err.value) == (
        f"features.r18.class_names file '{tmp_path / 'latin.txt'}' could not be read (UnicodeDecodeError); "
        "give a UTF-8 text file with one class name per line"
    )
    (tmp_path / "names.txt").write_text("tench\n goldfish \n\n\n", encoding="utf-8")
    assert read_class_names(str(tmp_path / "names.txt"), "k") == ["tench", "goldfish"]  # trailing blanks dropped


# --- the top-5 and the class names on their own (found untested by the mutation run, docs/development.md) ---


def test_top_classes_are_the_softmax_top5_in_order_of_each_row():
    """Each row's five most probable classes, most probable first, with their float32 softmax probabilities;
    fewer classes than five give all of them; logits of another width or rank are one line."""
    from tsne_atlas.files.features import TOP_INDEX, TOP_PROBABILITY

    logits = torch.from_numpy(np.random.default_rng(14).normal(scale=3.0, size=(6, 9)).astype(np.float32))
    rows = ef.top_classes(logits, 9, "fp32")
    probabilities = np.exp(logits.float().numpy())
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    expected = np.argsort(-probabilities, axis=1, kind="stable")[:, :5]
    assert rows[TOP_INDEX].dtype == np.int32 and rows[TOP_PROBABILITY].dtype == np.float32
    np.testing.assert_array_equal(rows[TOP_INDEX], expected)
    np.testing.assert_allclose(rows[TOP_PROBABILITY], np.take_along_axis(probabilities, expected, axis=1), rtol=1e-5)
    three = ef.top_classes(torch.tensor([[0.0, 2.0, 1.0]]), None, "fp32")
    assert three[TOP_INDEX].tolist() == [[1, 2, 0]] and three[TOP_PROBABILITY].shape == (1, 3)
    for bad in (torch.zeros(2, 8), torch.zeros(2, 9, 1)):
        with pytest.raises(AtlasError) as err:
            ef.top_classes(bad, 9, "fp32")
        assert str(err.value) == (
            f"the network's output has shape {tuple(bad.shape)}, not (batch, 9) logits of its 9 class names; "
            "remove the set's class_names or use a classifier with that many outputs"
        )
    with pytest.raises(AtlasError, match=r"^extraction\.precision 'fp16' gave inf/NaN logits .*; use precision bf16"):
        ef.top_classes(torch.tensor([[0.0, float("nan")]]), 2, "fp16")


def test_head_width_is_timms_num_classes_else_the_last_linear_else_the_last_conv():
    assert nw.head_width(timm.create_model("resnet18", num_classes=7)) == 7
    linear = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 1), torch.nn.Flatten(), torch.nn.Linear(4, 6), torch.nn.Linear(6, 11)
    )
    assert nw.head_width(linear) == 11
    assert nw.head_width(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.Conv2d(8, 5, 1))) == 5
    assert nw.head_width(torch.nn.Sequential(torch.nn.ReLU())) == 0


def test_prediction_classes_take_the_file_then_the_builtin_names_and_say_why_there_are_none(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\n")
    record = {"weights_random": False}
    assert nw.prediction_classes(record, 3, str(names), ["x", "y", "z"], KEY) == (["a", "b", "c"], "stored")
    assert nw.prediction_classes(record, 3, None, ["x", "y", "z"], KEY) == (["x", "y", "z"], "stored")
    assert nw.prediction_classes(record, 4, None, ["x", "y", "z"], KEY) == (None, nw.no_class_names(KEY))
    random = {"weights_random": True}
    assert nw.prediction_classes(random, 3, str(names), None, KEY) == (None, "none: random weights")
    with pytest.raises(AtlasError) as err:
        nw.prediction_classes(record, 0, str(names), None, KEY)
    assert str(err.value) == (
        f"{KEY}.class_names '{names}' is given but the network has no classifier (its weights have none); "
        f"remove {KEY}.class_names"
    )
    with pytest.raises(AtlasError) as err:
        nw.prediction_classes(record, 4, str(names), None, KEY)
    assert str(err.value).startswith(
        f"{KEY}.class_names file '{names}' has 3 lines but the network's classifier has 4 "
    )
    missing = tmp_path / "missing.txt"
    with pytest.raises(AtlasError) as err:
        nw.prediction_classes(record, 3, str(missing), None, KEY)
    assert str(err.value) == (
        f"{KEY}.class_names file '{missing}' could not be read (FileNotFoundError); give a UTF-8 text file "
        f"with one class name per line"
    )


def test_a_features_file_of_an_older_version_reads_as_no_predictions_recorded(tmp_path):
    """A file written before predictions were recorded has no ``predictions`` attribute: read_predictions
    says so (mutation testing: the default of that attribute)."""
    from tsne_atlas.files.features import NO_PREDICTIONS_OLD_FILE, write_features

    path = tmp_path / "old.h5"
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)
    write_features(path, [{"n": rows}], 3, ["a.png", "b.png", "c.png"], {"feature_set": SET}, {"n": "n"})
    with h5py.File(path, "a") as h5:
        del h5.attrs["predictions"]
    assert read_predictions(path) == (None, NO_PREDICTIONS_OLD_FILE)
    assert NO_PREDICTIONS_OLD_FILE == "none: not recorded (a features file of an older version)"
