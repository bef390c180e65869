"""The networks a feature set can come from (package ``sources``: ``timm``, ``torchvision``, ``own_network``,
``export_archive``) and timm's weights (``sources.timm``): real models, offline, no mocks. Inputs stay small (2 images, 64 px where the model allows it)."""

import contextlib
import hashlib
import http.server
import io
import json
import pickle
import socket
import threading
import time
import zipfile
from pathlib import Path
from typing import ClassVar

import pytest
import safetensors.torch
import timm
import torch
from PIL import Image

from tsne_atlas import sources
from tsne_atlas.jobs import AtlasError
from tsne_atlas.schema import SCHEMA_PATH, feature_set_defaults
from tsne_atlas.sources import network as nw
from tsne_atlas.sources import own_network
from tsne_atlas.sources import timm as timm_source
from tsne_atlas.sources import torchvision as tv

KEY = "features.test"
# An own network's normalisation as the schema gives it by default (features.<name>.mean and std).
MEAN_STD = {key: feature_set_defaults(SCHEMA_PATH)[key] for key in ("mean", "std")}


@pytest.fixture(autouse=True)
def offline(offline_hub):
    """Every test here runs offline (conftest.offline_hub)."""


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def images(n: int = 2, size: int = 80) -> list[Image.Image]:
    generator = torch.Generator().manual_seed(1)
    return [
        Image.fromarray(torch.randint(0, 256, (size, size + 7, 3), generator=generator, dtype=torch.uint8).numpy())
        for _ in range(n)
    ]


def batch(size: int, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(2))


def pre_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.forward_head(model.forward_features(x), pre_logits=True)


def features(network: nw.Network, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return network.module(x)


class Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


# --- timm: weights and networks --------------------------------------------------------------------


def test_timm_random_init_gives_features_with_the_models_own_preprocessing():
    record = timm_source.resolve_timm_weights("resnet18", "none", 3, KEY)
    assert record["kind"] == "none" and record["weights_random"] and "init_seed 3" in record["weights_source"]
    network = sources.build_network(
        {"source": "timm", "nodes": ["penultimate"], "init_seed": 3, "class_names": ""}, record, KEY
    )
    assert network.nodes == {"penultimate": "forward_head(pre_logits=True)"}
    assert network.weights_random and network.weights_source == record["weights_source"]
    x = torch.stack([network.transform(image) for image in images()])
    assert x.shape == (2, 3, 224, 224)  # resnet18's data config: resize 256 (bicubic), crop 224
    out = features(network, x)["penultimate"]
    assert out.shape == (2, 512) and torch.isfinite(out).all()
    # init_seed decides the random weights.
    again = timm_source.timm_model(record, 3, KEY).state_dict()
    other = timm_source.timm_model(record, 4, KEY).state_dict()
    assert all(torch.equal(again[k], v) for k, v in network.module.model.state_dict().items())
    assert not torch.equal(again["fc.weight"], other["fc.weight"])


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_timm_checkpoint_file_reloads_to_identical_features(tmp_path, suffix):
    torch.manual_seed(5)
    model = timm.create_model("resnet18", num_classes=10).eval()  # a fine-tuned model: 10 classes
    path = tmp_path / f"finetuned{suffix}"
    if suffix == ".safetensors":
        safetensors.torch.save_file(model.state_dict(), path)
    else:
        torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)  # a training checkpoint
    record = timm_source.resolve_timm_weights("resnet18", str(path), 0, KEY)
    assert record["kind"] == "file" and not record["weights_random"]
    assert record["path"] == str(path) and f"file {path.name} (sha256 " in record["weights_source"]
    network = timm_source.timm_network(record, ["penultimate"], 0, KEY)
    x = batch(64)
    assert torch.equal(features(network, x)["penultimate"], pre_logits(model, x))
    assert not network.weights_random


def test_timm_auto_offline_falls_back_to_random_within_seconds_and_pretrained_is_one_line(caplog):
    start = time.monotonic()
    record = timm_source.resolve_timm_weights("resnet18", "auto", 7, KEY)
    elapsed = time.monotonic() - start
    assert elapsed < 10, elapsed
    assert record["kind"] == "random" and record["weights_random"] and record["path"] is None
    assert "RANDOM" in record["warning"] and "HF_HUB_OFFLINE" in record["warning"]
    assert "RANDOM" in caplog.text
    network = sources.build_network(
        {"source": "timm", "nodes": ["penultimate"], "init_seed": 7, "class_names": ""}, record, KEY
    )
    assert network.weights_random and "init_seed 7" in network.weights_source
    for word in ("pretrained", "imagenet"):
        with pytest.raises(AtlasError) as error:
            timm_source.resolve_timm_weights("resnet18", word, 0, KEY)
        message = one_line(error)
        assert f"{KEY}.weights is '{word}'" in message and "timm/resnet18.a1_in1k" in message
        assert "model.safetensors" in message and "HF_HOME" in message


class LocalHub(http.server.BaseHTTPRequestHandler):
    """A stand-in for the Hugging Face hub on 127.0.0.1: serves ``files`` ({url path: bytes}) as the hub
    does (HEAD with commit and ETag, GET), answers 404 EntryNotFound for others, or 503 to everything."""

    files: ClassVar[dict[str, bytes]] = {}  # each test's server gets its own (see local_hub)
    broken = False
    requests: ClassVar[list[str]] = []

    def answer(self) -> bytes | None:
        self.requests.append(f"{self.command} {self.path}")
        content = self.files.get(self.path)
        self.send_response(503 if self.broken else 200 if content is not None else 404)
        if content is not None and not self.broken:
            self.send_header("X-Repo-Commit", "c0ffee" * 6 + "c0ff")
            self.send_header("ETag", f'"{hashlib.sha256(content).hexdigest()}"')
        elif not self.broken:
            self.send_header("X-Error-Code", "EntryNotFound")
        self.send_header("Content-Length", str(len(content) if content is not None and not self.broken else 0))
        self.end_headers()
        return None if self.broken else content

    def do_HEAD(self):
        self.answer()

    def do_GET(self):
        content = self.answer()
        if content is not None:
            self.wfile.write(content)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_hub(monkeypatch):
    """HF_ENDPOINT set to a LocalHub, HF_HUB_OFFLINE and proxies unset: the resolver's online path."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    handler = type("Hub", (LocalHub,), {"files": {}, "requests": [], "broken": False})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield handler
    server.shutdown()
    server.server_close()


def test_timm_weights_are_downloaded_into_the_hugging_face_cache_once(tmp_path, local_hub):
    torch.manual_seed(13)
    model = timm.create_model("test_vit").eval()  # timm's tiny ViT: hub repo timm/test_vit.r160_in1k
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)  # only the pickle-format file: model.safetensors is tried first
    local_hub.files["/timm/test_vit.r160_in1k/resolve/main/pytorch_model.bin"] = buffer.getvalue()
    record = timm_source.resolve_timm_weights("test_vit", "pretrained", 0, KEY)
    assert record["kind"] == "pretrained" and record["weights_source"].endswith("pytorch_model.bin, downloaded)")
    assert Path(record["path"]).is_relative_to(tmp_path / "hf-home" / "hub") and Path(record["path"]).is_file()
    asked = len(local_hub.requests)
    assert "HEAD /timm/test_vit.r160_in1k/resolve/main/model.safetensors" in local_hub.requests
    again = timm_source.resolve_timm_weights("test_vit", "auto", 0, KEY)
    assert again["path"] == record["path"] and "cached" in again["weights_source"]
    assert len(local_hub.requests) == asked  # from the cache: the hub is not asked again
    network = timm_source.timm_network(record, ["penultimate"], 0, KEY)
    x = batch(160)
    assert torch.equal(features(network, x)["penultimate"], pre_logits(model, x))


def test_timm_auto_with_an_unreachable_or_failing_hub_decides_quickly(monkeypatch, local_hub):
    """The hub is asked once, briefly (a closed port; a server answering 503), not retried for 46 s."""
    local_hub.broken = True
    start = time.monotonic()
    record = timm_source.resolve_timm_weights("convnext_atto", "auto", 0, KEY)
    assert time.monotonic() - start < 10
    assert record["kind"] == "random" and "503" in record["warning"]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    start = time.monotonic()
    record = timm_source.resolve_timm_weights("convnext_atto", "auto", 0, KEY)
    assert time.monotonic() - start < 10
    assert record["kind"] == "random" and "unreachable" in record["warning"]
    with pytest.raises(AtlasError, match="unreachable"):
        timm_source.resolve_timm_weights("convnext_atto", "pretrained", 0, KEY)


def test_timm_weights_in_the_local_hugging_face_cache_are_used_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")  # were the hub asked, it would fail
    torch.manual_seed(11)
    model = timm.create_model("resnet18").eval()
    repo = tmp_path / "hf-home" / "hub" / "models--timm--resnet18.a1_in1k"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    safetensors.torch.save_file(model.state_dict(), snapshot / "model.safetensors")
    for word in ("auto", "pretrained", "imagenet"):
        record = timm_source.resolve_timm_weights("resnet18", word, 0, KEY)
        assert record["kind"] == "pretrained" and not record["weights_random"] and record["warning"] is None
        assert record["path"] == str(snapshot / "model.safetensors")
        assert "resnet18.a1_in1k" in record["weights_source"] and "cached" in record["weights_source"]
    network = timm_source.timm_network(record, ["penultimate"], 0, KEY)
    x = batch(64)
    assert torch.equal(features(network, x)["penultimate"], pre_logits(model, x))


def test_an_unknown_timm_arch_is_one_line_with_close_matches():
    with pytest.raises(AtlasError) as error:
        timm_source.resolve_timm_weights("resnet181", "none", 0, KEY)
    message = one_line(error)
    assert message.startswith(f"{KEY}.arch 'resnet181' is not a timm model") and "resnet18" in message
    timm_source.check_timm_arch("resnet18.a1_in1k")  # a pretrained tag is an arch too


def test_timm_checkpoints_that_are_not_state_dicts_or_do_not_fit_are_refused_in_one_line(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not weights\n")
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(2)}, evil)  # a torch file, made to run code when unpickled:
    with zipfile.ZipFile(evil) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    data = next(name for name in entries if name.endswith("data.pkl"))
    entries[data] = pickle.dumps(Payload(marker), protocol=2)
    with zipfile.ZipFile(evil, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    for path, words in ((text, "is a text file"), (evil, "weights_only=True"), (broken, "not a readable .safetensors")):
        with pytest.raises(AtlasError) as error:
            timm_source.resolve_timm_weights("resnet18", str(path), 0, KEY)
        assert f"{KEY}.weights file '{path}'" in one_line(error) and words in str(error.value)
    assert not marker.exists()
    other = tmp_path / "resnet34.pth"
    torch.save(timm.create_model("resnet34").state_dict(), other)
    record = timm_source.resolve_timm_weights("resnet18", str(other), 0, KEY)
    with pytest.raises(AtlasError) as error:
        timm_source.timm_network(record, ["penultimate"], 0, KEY)
    assert "does not fit timm arch 'resnet18'" in one_line(error)


@pytest.mark.parametrize(
    ("arch", "node", "size"),
    [
        ("resnet18", "layer3", 64),
        ("convnext_atto", "stages.2", 64),
        ("test_vit", "blocks.1", 160),  # timm's own tiny VisionTransformer (vit_tiny_patch16_224 is 15x slower)
        ("mobilenetv3_small_050", "blocks.2", 64),  # its classifier is timm's Linear, traced through
    ],
)
def test_several_timm_nodes_come_from_one_pass_and_equal_single_node_extractions(arch, node, size):
    """The traced penultimate node (checked at build time too) equals forward_head(..., pre_logits=True)."""
    record = timm_source.resolve_timm_weights(arch, "none", 0, KEY)
    both = timm_source.timm_network(record, ["penultimate", node], 0, KEY)
    assert set(both.nodes) == {"penultimate", node} and both.nodes["penultimate"] != "forward_head(pre_logits=True)"
    x = batch(size)
    out = features(both, x)
    alone = timm_source.timm_network(record, ["penultimate"], 0, KEY)  # forward_head(pre_logits=True), no tracing
    torch.testing.assert_close(out["penultimate"], features(alone, x)["penultimate"], rtol=1e-5, atol=1e-6)
    if arch == "resnet18":
        assert both.nodes["penultimate"] == "global_pool.flatten"
        layer = timm_source.timm_network(record, [node], 0, KEY)
        assert torch.equal(out[node], features(layer, x)[node]) and out[node].shape == (2, 256, 4, 4)
        with pytest.raises(AtlasError) as error:
            timm_source.timm_network(record, ["penultimate", "no_such_layer"], 0, KEY)
        assert f"{KEY}.nodes: 'no_such_layer' is not a node" in one_line(error)


def test_a_timm_model_whose_penultimate_node_is_not_its_pre_logits_takes_penultimate_alone():
    """DeiT distilled averages two tokens before its two heads: no single graph node is the pre-logits."""
    record = timm_source.resolve_timm_weights("deit_tiny_distilled_patch16_224", "none", 0, KEY)
    with pytest.raises(AtlasError) as error:
        timm_source.timm_network(record, ["penultimate", "blocks.0"], 0, KEY)
    assert "nodes: [penultimate]" in one_line(error)


# --- torchvision -----------------------------------------------------------------------------------


def test_the_torchvision_builder_gives_two_nodes_in_one_pass():
    record = tv.resolve_weights("resnet18", "none", 0, KEY)
    settings = {"source": "torchvision", "nodes": ["penultimate", "layer3"], "init_seed": 0, "class_names": ""}
    network = sources.build_network(settings, record, KEY)
    assert network.nodes == {"penultimate": "flatten", "layer3": "layer3"}
    x = batch(64)
    out = features(network, x)
    assert out["penultimate"].shape == (2, 512) and out["layer3"].shape == (2, 256, 4, 4)
    alone = sources.build_network({**settings, "nodes": ["penultimate"]}, record, KEY)
    assert torch.equal(out["penultimate"], features(alone, x)["penultimate"])
    assert network.transform(images(1)[0]).shape == (3, 224, 224)


# --- your own network: TorchScript and torch.export ------------------------------------------------


class TinyCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 6)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


class TwoOutputs(TinyCNN):
    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3))), x.mean()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny CNN (eval mode, trained-looking BN statistics) saved as TorchScript and exported, dynamic
    batch and static (batch 2)."""
    folder = tmp_path_factory.mktemp("own")
    torch.manual_seed(0)
    model = TinyCNN()
    model.bn.running_mean.uniform_(-1, 1)
    model.bn.running_var.uniform_(0.5, 2)
    model.eval()
    example = batch(32)
    paths = {"model": model, "torchscript": folder / "tiny.pt", "export": folder / "tiny.pt2"}
    with pytest.warns(FutureWarning):  # torch 2.14 deprecates TorchScript, still loads it
        torch.jit.save(torch.jit.script(model), paths["torchscript"])
    dynamic = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(dynamic, paths["export"])
    paths["static"] = folder / "static.pt2"
    torch.export.save(torch.export.export(model, (example,)), paths["static"])
    paths["state_dict"] = folder / "state_dict.pt"
    torch.save(model.state_dict(), paths["state_dict"])
    paths["text"] = folder / "notes.txt"
    paths["text"].write_text("not a network\n")
    return paths


@pytest.mark.parametrize("source", ["torchscript", "export"])
def test_an_own_network_gives_the_eager_models_features_for_any_batch_size(saved, source):
    settings = {"source": source, "path": str(saved[source]), "nodes": ["penultimate"], "input_size": 32}
    settings |= {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    network = sources.build_network(settings, None, KEY)
    assert network.nodes == {"penultimate": "output"} and not network.weights_random
    assert network.weights_source.startswith(f"own network {saved[source].name} (sha256 ")
    for n in (1, 3, 5):
        x = batch(32, n)
        with torch.no_grad():
            expected = saved["model"](x)
        torch.testing.assert_close(features(network, x)["penultimate"], expected, rtol=1e-5, atol=1e-6)
    network.module.eval()  # what the extraction may do: an exported program would refuse it unwrapped
    image = network.transform(images(1, size=100)[0])
    assert image.shape == (3, 32, 32)  # shorter side to round(32 * 256 / 224) = 37, centre crop 32
    assert abs(float(image.mean())) < 2.5  # normalised with the given mean and std


def test_a_static_export_runs_its_batch_size_and_refuses_others_in_one_line(saved):
    network = own_network.own_network("export", str(saved["static"]), 32, **MEAN_STD, key=KEY)
    x = batch(32, 2)
    with torch.no_grad():
        torch.testing.assert_close(features(network, x)["penultimate"], saved["model"](x))
    with pytest.raises(AtlasError) as error:
        features(network, batch(32, 3))
    message = one_line(error)
    assert "batches of 2 images only, got 3" in message and "torch.export.Dim('batch')" in message


@pytest.mark.parametrize(
    ("source", "wrong", "words"),
    [
        ("torchscript", "text", "not a TorchScript file"),
        ("torchscript", "state_dict", "a torch.save file"),
        ("torchscript", "export", "a torch.export file, not TorchScript; set features.test.source: export"),
        ("export", "text", "not a torch.export file"),
        ("export", "state_dict", "a torch.save file"),
        ("export", "torchscript", "a TorchScript file, not torch.export; set features.test.source: torchscript"),
    ],
)
def test_a_file_that_is_not_the_sources_kind_of_network_is_refused_in_one_line(saved, source, wrong, words):
    with pytest.raises(AtlasError) as error:
        own_network.own_network(source, str(saved[wrong]), 32, **MEAN_STD, key=KEY)
    message = one_line(error)
    assert message.startswith(f"{KEY}.path '{saved[wrong]}'") and words in message
    if "source:" not in words:
        assert ("torch.jit.save(torch.jit.script" if source == "torchscript" else "torch.export.save(") in message


def test_an_own_network_with_a_tuple_output_or_the_wrong_input_size_is_refused_in_one_line(tmp_path, saved):
    path = tmp_path / "two.pt"
    with pytest.warns(FutureWarning):
        torch.jit.save(torch.jit.script(TwoOutputs().eval()), path)
    with pytest.raises(AtlasError) as error:
        own_network.own_network("torchscript", str(path), 32, **MEAN_STD, key=KEY)
    assert "returns a tuple, not one tensor" in one_line(error)
    with pytest.raises(AtlasError) as error:  # exported for 32-px images: other sizes fail its guards
        own_network.own_network("export", str(saved["export"]), 48, **MEAN_STD, key=KEY)
    assert f"set {KEY}.input_size" in one_line(error)


def rewritten(source: Path, target: Path, change) -> Path:
    """A copy of the archive ``source`` with ``change(inner name, bytes) -> bytes`` applied to each entry."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as copy:
        for name in archive.namelist():
            copy.writestr(name, change(name.split("/", 1)[1], archive.read(name)))
    return target


def test_an_exported_program_that_would_run_code_on_loading_is_refused_before_torch_export_load(tmp_path, saved):
    """Screened by export_archive.export_refusal: pickled payloads, shape expressions that are not plain sympy,
    compiled libraries. An exported program that passes still is code: load only networks you trust."""
    marker = tmp_path / "pwned"
    command = f"__import__('os').system('touch {marker}')"

    def pickled_inputs(name, content):
        # torch.export.load retries sample inputs with torch.load(weights_only=False)
        return pickle.dumps(Payload(marker), protocol=2) if name.startswith("data/sample_inputs/") else content

    def evaluated_shape(name, content):
        # torch.export.load hands shape expressions to sympy.sympify, which evaluates them
        return content.replace(b"Symbol(", command.encode() + b" or Symbol(") if name.startswith("models/") else content

    def pickled_weight(name, content):
        if name.endswith("_weights_config.json"):
            config = json.loads(content)
            next(iter(config["config"].values()))["use_pickle"] = True
            return json.dumps(config).encode()
        return content

    cases = {
        "inputs": (pickled_inputs, "sample inputs"),
        "shape": (evaluated_shape, "shape expression"),
        "weight": (pickled_weight, "pickled object"),
    }
    for case, (change, words) in cases.items():
        path = rewritten(saved["export"], tmp_path / f"{case}.pt2", change)
        with pytest.raises(AtlasError) as error:
            own_network.own_network("export", str(path), 32, **MEAN_STD, key=KEY)
        assert "is refused" in one_line(error) and words in str(error.value)
    aoti = tmp_path / "aoti.pt2"
    with zipfile.ZipFile(saved["export"]) as archive, zipfile.ZipFile(aoti, "w") as copy:
        for name in archive.namelist():
            copy.writestr(name, archive.read(name))
        copy.writestr("tiny/data/aotinductor/model/model.so", b"\x7fELF")
    with pytest.raises(AtlasError, match="data/aotinductor/model/model.so"):
        own_network.own_network("export", str(aoti), 32, **MEAN_STD, key=KEY)
    assert not marker.exists()
    # Why the screening is there: torch 2.14's own loader runs both (a harmless `touch` here).
    for case in ("inputs", "shape"):
        with contextlib.suppress(Exception):
            torch.export.load(tmp_path / f"{case}.pt2")
        assert marker.exists(), case
        marker.unlink()
