"""The TensorBoard Embedding Projector export: its files' formats, the sprite's size limit, row order,
one-line errors, and a real TensorBoard serving the export on loopback."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_image_folder
from tsne_atlas import projector as pj
from tsne_atlas.files import projector as pfile
from tsne_atlas.files.features import write_features
from tsne_atlas.files.manifest import write_images, write_manifest
from tsne_atlas.files.map_inputs import write_input
from tsne_atlas.files.thumbnails import read_index
from tsne_atlas.jobs import AtlasError
from tsne_atlas.thumbnails import explorer_thumbnails

TENSORBOARD = Path(sys.executable).parent / "tensorboard"
CELL = 24


def test_sprite_layout_stays_within_tensorboards_limit_at_any_sample_size():
    assert pj.sprite_layout(1, 96) == (1, 96)
    assert pj.sprite_layout(500, 96) == (23, 96)  # the demo: 2,208 pixels a side at the explorer's cell
    assert pj.sprite_layout(5_000, 96) == (71, 96)  # 6,816 pixels
    assert pj.sprite_layout(100_000, 96) == (317, 25)  # 7,925 pixels a side
    for n in (2, 3, 4, 5, 99, 100, 101, 10_000, 123_457, 1_000_000, 8192 * 8192):
        columns, dim = pj.sprite_layout(n, 96)
        assert (columns - 1) ** 2 < n <= columns**2  # the smallest square grid that holds n
        assert 1 <= dim <= 96 and columns * dim <= pj.SPRITE_LIMIT
        assert dim == min(96, pj.SPRITE_LIMIT // columns)
    with pytest.raises(AtlasError) as err:
        pj.sprite_layout(8192 * 8192 + 1, 96)
    assert str(err.value) == (
        "67108865 images do not fit TensorBoard's 8192 x 8192 pixel sprite even at one pixel each; "
        "lower explorer.max_images to 67108864 or less"
    )


def test_metadata_cells_never_break_a_row_and_keep_markup_as_text(tmp_path):
    hostile = ["<img src=x onerror=alert(1)>", "a\tb", "line\nbreak", "cr\r\nlf", "sep\u2028x", "", "ünï ✓"]
    columns = {
        "path": [f"cls/{i}.png" for i in range(len(hostile))],
        "label": ["<b>cat</b>", *["dog"] * (len(hostile) - 1)],
        "note\tname": hostile,
    }
    pfile.write_metadata(tmp_path / "m.tsv", columns)
    text = (tmp_path / "m.tsv").read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == len(hostile) + 2  # a header, a row per image, a final newline
    assert all(line.count("\t") == 2 for line in lines[:-1]) and "\r" not in text
    read = pfile.read_metadata(tmp_path / "m.tsv")
    assert list(read) == ["path", "label", "note name"]
    assert read["label"][0] == "<b>cat</b>"  # data, not markup: nothing escaped
    assert read["note name"] == ["<img src=x onerror=alert(1)>", "a b", "line break", "cr  lf", "sep x", "", "ünï ✓"]
    with pytest.raises(ValueError):
        pfile.write_metadata(tmp_path / "one.tsv", {"path": ["a"]})  # one column would need no header


def test_tensors_read_back_as_the_exact_float32_values(tmp_path):
    X = np.random.default_rng(0).normal(size=(300, 7)) * 10.0 ** np.arange(-30, 40, 10)
    pfile.write_tensors(tmp_path / "t.tsv", X)
    lines = (tmp_path / "t.tsv").read_text().splitlines()
    assert len(lines) == 300 and all(line.count("\t") == 6 for line in lines)
    assert np.array_equal(pfile.read_tensors(tmp_path / "t.tsv"), X.astype(np.float32))


def sample(tmp_path: Path, counts: dict[str, int], with_predictions: bool = True):
    """A small sample as the workflow leaves it before the export: images.csv and manifest.csv (with a
    metadata column), a prepared input whose first column is each image's row, and a features file."""
    root = make_image_folder(tmp_path / "data", counts, size=(30, 20))
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    n = len(paths)
    write_images(tmp_path / "images.csv", paths, ["0" * 64] * n)
    labels = [path.split("/")[0] for path in paths]
    notes = [f"note {i}\twith a tab" if i % 2 else f"<i>{i}</i>" for i in range(n)]
    write_manifest(tmp_path / "manifest.csv", paths, labels, {"site": notes})
    X = np.column_stack([np.arange(n, dtype=np.float64), np.random.default_rng(1).normal(size=(n, 4))])
    write_input(tmp_path / "input.h5", X, {"node": "penultimate", "feature_dim": 16, "pca_components": 5})
    if with_predictions:
        top = np.tile(np.array([[1, 0]], dtype=np.int32), (n, 1))
        batch = {"n": np.zeros((n, 16), np.float32), "@top_index": top}
        batch["@top_probability"] = np.tile(np.array([[0.75, 0.25]], np.float32), (n, 1))
        write_features(tmp_path / "f.h5", [batch], n, paths, {}, {"n": "n"}, ["zero", "one\tclass"])
    else:
        batch = {"n": np.zeros((n, 16), np.float32)}
        write_features(tmp_path / "f.h5", [batch], n, paths, {}, {"n": "n"}, None, "none: random weights")
    return root, paths, labels, notes, X


def export(tmp_path: Path, features_id: str, out: Path, thumbnails: Path | None = None) -> dict:
    folder = out / features_id
    return pj.projector_export(
        prepared=str(tmp_path / "input.h5"),
        images=str(tmp_path / "images.csv"),
        manifest=str(tmp_path / "manifest.csv"),
        features=str(tmp_path / "f.h5"),
        thumbnails=str(thumbnails or tmp_path / "explorer"),
        features_id=features_id,
        tensors=str(folder / "tensors.tsv"),
        metadata=str(folder / "metadata.tsv"),
        sprite=str(folder / "sprite.jpg"),
        record=str(folder / "embedding.json"),
    )


def sweep_config(out: Path, records: list[dict]) -> list[pfile.ProjectorEmbedding]:
    """Rule projector_config's function on the records of ``out``'s feature sets."""
    return pj.projector_config(
        [str(out / r["features"] / "embedding.json") for r in records],
        [r["features"] for r in records],
        str(out / pfile.CONFIG_NAME),
    )


def thumbnails(tmp_path: Path, root: Path, max_images: int) -> Path:
    folder = tmp_path / "explorer"
    explorer_thumbnails(str(tmp_path / "images.csv"), str(root), str(folder), CELL, max_images, threads=1)
    return folder


def test_the_export_holds_the_explorers_images_in_the_index_order(tmp_path):
    """Above explorer.max_images the index lists a fixed subsample: the export has exactly those images,
    each row of tensors.tsv, metadata.tsv and the sprite the same image's."""
    root, paths, labels, notes, X = sample(tmp_path, {"ant": 9, "bee": 8, "cat": 7})
    index = read_index(thumbnails(tmp_path, root, max_images=13))
    assert len(index.paths) == 13 and index.n_total == 24
    record = export(tmp_path, "set.penultimate", tmp_path / "projector")
    folder = tmp_path / "projector" / "set.penultimate"
    rows = [paths.index(path) for path in index.paths]
    tensors = pfile.read_tensors(folder / "tensors.tsv")
    assert np.array_equal(tensors, X[rows].astype(np.float32))
    assert list(tensors[:, 0]) == rows  # each row is the image the metadata names
    metadata = pfile.read_metadata(folder / "metadata.tsv")
    assert list(metadata) == ["path", "label", "predicted", "predicted_probability", "site"]
    assert metadata["path"] == index.paths
    assert metadata["label"] == [labels[i] for i in rows]
    assert metadata["site"] == [notes[i].replace("\t", " ") for i in rows]
    assert set(metadata["predicted"]) == {"one class"} and set(metadata["predicted_probability"]) == {"0.7500"}
    assert record["tensor_shape"] == [13, 5] and record["single_image_dim"] == [CELL, CELL]
    assert record["sprite_columns"] == 4 and record["n_total"] == 24 and record["predictions"] == "stored"
    assert pfile.read_record(folder / "embedding.json") == {"format": pfile.FORMAT, **record}
    # The sprite: 4 x 4 cells of 24 pixels, image i at cell i row by row, white after the last.
    sprite = np.asarray(pfile.read_sprite(folder / "sprite.jpg"), dtype=np.float64)
    assert sprite.shape == (4 * CELL, 4 * CELL, 3)
    for i in range(13):
        atlas, left, top = index.position(i)
        with Image.open(index.folder / atlas) as image:
            cell = np.asarray(image.convert("RGB").crop((left, top, left + CELL, top + CELL)), dtype=np.float64)
        row, column = divmod(i, 4)
        assert np.abs(sprite[row * CELL : (row + 1) * CELL, column * CELL : (column + 1) * CELL] - cell).mean() < 4
    assert sprite[3 * CELL :, 1 * CELL :].min() > 240  # cells 13-15: no image


def test_a_points_pages_index_of_every_image_exports_the_same_subsample_as_a_canvas_pages(tmp_path):
    """A points page's thumbnails list every image (and keep the cap): the export takes the explorer's
    fixed subsample of them, the same rows, in the same order, as from a canvas page's index of that
    subsample, with the same sprite layout."""
    root, paths, *_ = sample(tmp_path, {"ant": 9, "bee": 8, "cat": 7})
    canvas = thumbnails(tmp_path, root, max_images=13)
    points = tmp_path / "explorer-points"
    explorer_thumbnails(
        str(tmp_path / "images.csv"), str(root), str(points), CELL, 13, threads=1, every_image=True, columns=8
    )
    index = read_index(points)
    assert index.paths == paths and index.max_images == 13 and index.columns == 8
    assert read_index(canvas).max_images is None and "max_images" not in (canvas / "thumbnails.json").read_text()
    records = [export(tmp_path, name, tmp_path / name, folder) for name, folder in (("c", canvas), ("p", points))]
    assert {k: v for k, v in records[0].items() if k != "features"} == {
        k: v for k, v in records[1].items() if k != "features"
    }
    for name in ("tensors.tsv", "metadata.tsv"):
        assert (tmp_path / "c" / "c" / name).read_bytes() == (tmp_path / "p" / "p" / name).read_bytes()
    with Image.open(tmp_path / "c" / "c" / "sprite.jpg") as a, Image.open(tmp_path / "p" / "p" / "sprite.jpg") as b:
        assert a.size == b.size and np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean() < 4


def test_a_large_sample_gets_smaller_sprite_cells(tmp_path, monkeypatch):
    """What 100,000 images get (cells of 8192 // 317 = 25 px), shown at a 64-pixel limit on 24 images."""
    root, *_ = sample(tmp_path, {"ant": 12, "bee": 12}, with_predictions=False)
    thumbnails(tmp_path, root, max_images=100)
    monkeypatch.setattr(pj, "SPRITE_LIMIT", 64)
    record = export(tmp_path, "set", tmp_path / "projector")
    assert record["sprite_columns"] == 5 and record["single_image_dim"] == [12, 12]
    with Image.open(tmp_path / "projector" / "set" / "sprite.jpg") as sprite:
        assert sprite.size == (60, 60)
    metadata = pfile.read_metadata(tmp_path / "projector" / "set" / "metadata.tsv")
    assert list(metadata) == ["path", "label", "site"]  # no predictions: no predicted columns
    assert record["predictions"] == "none: random weights"


def test_thumbnails_of_another_sample_are_refused_in_one_line(tmp_path):
    root, paths, *_ = sample(tmp_path, {"ant": 4, "bee": 4})
    folder = thumbnails(tmp_path, root, max_images=100)
    # The sample changed after the thumbnails were made: one image fewer, one other image.
    write_images(tmp_path / "images.csv", paths[:-1], ["0" * 64] * (len(paths) - 1))
    write_manifest(tmp_path / "manifest.csv", paths[:-1], ["x"] * (len(paths) - 1))
    write_input(tmp_path / "input.h5", np.zeros((len(paths) - 1, 3)), {})
    with pytest.raises(AtlasError) as err:
        export(tmp_path, "set", tmp_path / "projector")
    assert str(err.value) == (
        f"{folder}/thumbnails.json was made for a sample of 8 images, {tmp_path}/images.csv lists 7: "
        f"the thumbnails are of another sample; delete {folder} and rerun"
    )
    renamed = [*paths[:-1], "bee/other.png"]
    write_images(tmp_path / "images.csv", renamed, ["0" * 64] * len(renamed))
    write_manifest(tmp_path / "manifest.csv", renamed, ["x"] * len(renamed))
    write_input(tmp_path / "input.h5", np.zeros((len(renamed), 3)), {})
    with pytest.raises(AtlasError) as err:
        export(tmp_path, "set", tmp_path / "projector")
    assert str(err.value) == (
        f"{folder}/thumbnails.json lists 1 image(s) that {tmp_path}/images.csv does not "
        f"(first: '{paths[-1]}'): the thumbnails are of another sample; delete {folder} and rerun"
    )
    assert not (tmp_path / "projector").exists()  # nothing half written


def test_a_manifest_of_another_sample_is_refused_in_one_line(tmp_path):
    root, paths, *_ = sample(tmp_path, {"ant": 3, "bee": 3})
    thumbnails(tmp_path, root, max_images=100)
    write_manifest(tmp_path / "manifest.csv", paths[::-1], ["x"] * len(paths))
    with pytest.raises(AtlasError, match=r"manifest.csv lists other images than .*images.csv .*; delete the results"):
        export(tmp_path, "set", tmp_path / "projector")


def test_config_lists_every_set_with_paths_inside_its_folder(tmp_path):
    root, *_ = sample(tmp_path, {"ant": 3, "bee": 3})
    thumbnails(tmp_path, root, max_images=100)
    out = tmp_path / "projector"
    records = [export(tmp_path, features_id, out) for features_id in ("net.layer3", "net.penultimate")]
    embeddings = sweep_config(out, records)
    assert pfile.read_config(out / "projector_config.pbtxt") == embeddings
    text = (out / "projector_config.pbtxt").read_text()
    assert text.startswith(
        "embeddings {\n"
        '  tensor_name: "net.layer3"\n'
        '  tensor_path: "net.layer3/tensors.tsv"\n'
        "  tensor_shape: 6\n"
        "  tensor_shape: 5\n"
        '  metadata_path: "net.layer3/metadata.tsv"\n'
        "  sprite {\n"
        '    image_path: "net.layer3/sprite.jpg"\n'
        f"    single_image_dim: {CELL}\n"
        f"    single_image_dim: {CELL}\n"
        "  }\n"
        "}\n"
        "embeddings {\n"
        '  tensor_name: "net.penultimate"\n'
    )
    # A record that is another set's export (a stale or copied folder) is refused, naming it and the fix.
    with pytest.raises(
        AtlasError,
        match=r"net.layer3/embedding.json: the export of 'net.layer3', not 'net.penultimate'; delete it and rerun",
    ):
        pj.projector_config(
            [str(out / "net.layer3" / "embedding.json")], ["net.penultimate"], str(tmp_path / "other.pbtxt")
        )
    assert not (tmp_path / "other.pbtxt").exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> tuple[bytes, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(), response.headers.get_content_type()


@pytest.mark.tensorboard
def test_a_real_tensorboard_serves_every_set_with_its_metadata_and_sprite(tmp_path):
    """`tensorboard --logdir results/projector` on loopback: its projector plugin is active, lists both sets
    under run '.' (a logdir without event files), with their shapes, and serves each set's rows, metadata
    and sprite."""
    if not TENSORBOARD.exists():
        pytest.fail(f"{TENSORBOARD} is missing: install the pinned requirements (make test does)")
    root, paths, labels, _, X = sample(tmp_path, {"ant": 5, "bee": 4, "cat": 3})
    thumbnails(tmp_path, root, max_images=10)
    out = tmp_path / "projector"
    ids = ("net.layer3", "net.penultimate")
    records = [export(tmp_path, features_id, out) for features_id in ids]
    sweep_config(out, records)
    index = read_index(tmp_path / "explorer")
    rows = [paths.index(path) for path in index.paths]
    port = free_port()
    base = f"http://127.0.0.1:{port}/data/plugin/projector"
    command = [str(TENSORBOARD), "--logdir", str(out), "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                runs, _ = get(f"{base}/runs")
                break
            except urllib.error.HTTPError:
                raise  # up, but the projector answered with an error
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    pytest.fail(f"tensorboard did not start: {server.communicate(timeout=10)[0][-2000:]}")
                time.sleep(0.3)
        assert json.loads(runs) == ["."]
        # The Projector tab is active: the plugin decides in a thread of its own, so the first answer may be no.
        while not json.loads(get(f"http://127.0.0.1:{port}/data/plugins_listing")[0])["projector"]["enabled"]:
            assert time.monotonic() < deadline, "the projector plugin never became active"
            time.sleep(0.3)
        info, _ = get(f"{base}/info?run=.")
        embeddings = json.loads(info)["embeddings"]
        assert [e["tensorName"] for e in embeddings] == list(ids)
        for embedding, features_id in zip(embeddings, ids):
            assert embedding["tensorShape"] == [10, 5]
            assert embedding["sprite"]["singleImageDim"] == [CELL, CELL]
            assert embedding["metadataPath"] == f"{features_id}/metadata.tsv"
            query = f"run=.&name={features_id}"
            tensor, kind = get(f"{base}/tensor?{query}")
            assert kind == "application/octet-stream"
            assert np.array_equal(np.frombuffer(tensor, np.float32).reshape(10, 5), X[rows].astype(np.float32))
            metadata, _ = get(f"{base}/metadata?{query}")
            assert metadata == (out / features_id / "metadata.tsv").read_bytes()
            lines = metadata.decode().splitlines()
            assert lines[0] == "path\tlabel\tpredicted\tpredicted_probability\tsite" and len(lines) == 11
            assert [line.split("\t")[:2] for line in lines[1:]] == [[paths[i], labels[i]] for i in rows]
            sprite, kind = get(f"{base}/sprite_image?{query}")
            assert kind == "image/jpeg" and sprite == (out / features_id / "sprite.jpg").read_bytes()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def test_config_strings_with_quotes_backslashes_and_line_breaks_round_trip_and_bad_files_are_one_line(tmp_path):
    """The protobuf string literals of projector_config.pbtxt (``_quoted`` and ``read_config``), the tensors
    and sprite readers on files they must refuse or convert (mutation testing of files/projector.py)."""
    name = 'a "b" \\ c\nd ü'
    embedding = pfile.ProjectorEmbedding(name, "x\\t.tsv", (3, 2), 'm"eta.tsv', "s\\n.jpg", (4, 5))
    pfile.write_config(tmp_path / "c.pbtxt", [embedding])
    text = (tmp_path / "c.pbtxt").read_text(encoding="utf-8")
    assert '  tensor_name: "a \\"b\\" \\\\ c\\nd ü"\n' in text
    assert '    image_path: "s\\\\n.jpg"\n' in text
    assert pfile.read_config(tmp_path / "c.pbtxt") == [embedding]
    (tmp_path / "bad.pbtxt").write_text(text.replace("  tensor_shape: 3", "  tensor_shape 3"), encoding="utf-8")
    with pytest.raises(AtlasError) as error:
        pfile.read_config(tmp_path / "bad.pbtxt")
    assert str(error.value) == f"{tmp_path / 'bad.pbtxt'}: unexpected line '  tensor_shape 3'; delete it and rerun"
    (tmp_path / "spaces.tsv").write_text("1.5 2\n3 4\n", encoding="ascii")
    with pytest.raises(AtlasError) as error:
        pfile.read_tensors(tmp_path / "spaces.tsv")
    assert str(error.value).startswith(f"{tmp_path / 'spaces.tsv'}: not a projector tensors file (")
    assert str(error.value).endswith("); delete it and rerun")
    Image.new("L", (8, 4), 200).save(tmp_path / "grey.jpg")
    sprite = pfile.read_sprite(tmp_path / "grey.jpg")
    assert sprite.mode == "RGB" and sprite.size == (8, 4)


def test_metadata_splits_on_line_feeds_only_and_bad_metadata_or_records_are_one_line(tmp_path):
    """read_metadata and read_record (files/projector.py) on files written by hand: a carriage return is
    data (TensorBoard splits on line feeds only), a last row without a line feed is kept, a header alone
    is no rows, and each bad file is one line naming it."""
    path = tmp_path / "m.tsv"
    path.write_bytes("path\tlabel\na.png\tcat\rdog\nb.png\tü".encode())
    assert pfile.read_metadata(path) == {"path": ["a.png", "b.png"], "label": ["cat\rdog", "ü"]}
    path.write_text("path\tlabel\n", encoding="utf-8")
    assert pfile.read_metadata(path) == {"path": [], "label": []}
    for text, problem in (
        ("", "not a projector metadata file (no header row)"),
        ("path\na.png\tcat\n", "not a projector metadata file (no header row)"),
        ("path\tlabel\na.png\n", "rows of another width than the header's 2"),
    ):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(AtlasError) as error:
            pfile.read_metadata(path)
        assert str(error.value) == f"{path}: {problem}; delete it and rerun"
    record = tmp_path / "record.json"
    pfile.write_record(record, {"name": "ü"})
    assert pfile.read_record(record) == {"format": pfile.FORMAT, "name": "ü"}
    record.write_text('{"format": 0}', encoding="utf-8")
    with pytest.raises(AtlasError) as error:
        pfile.read_record(record)
    expected = f"{record}: not a complete projector export record (format 0, expected {pfile.FORMAT}); delete its folder and rerun"
    assert str(error.value) == expected


def test_projector_writers_give_the_exact_files_tensorboard_and_the_readers_expect(tmp_path):
    """write_metadata, write_sprite, write_record and read_tensors (files/projector.py) byte for byte: two
    columns are enough, fewer or ragged ones are refused, the sprite is a quality-90 JPEG, the record is
    indented UTF-8 JSON, and a one-row tensors file is still a matrix."""
    import io

    pfile.write_metadata(tmp_path / "m.tsv", {"path": ["a.png", "b.png"], "label": ["ü", "x"]})
    assert (tmp_path / "m.tsv").read_bytes() == "path\tlabel\na.png\tü\nb.png\tx\n".encode()
    for columns, got in (({"path": ["a"]}, "1 of lengths {1}"), ({"path": ["a"], "label": []}, "2 of lengths {0, 1}")):
        with pytest.raises(ValueError) as error:
            pfile.write_metadata(tmp_path / "bad.tsv", columns)
        assert str(error.value) == f"metadata needs two or more columns of one length, got {got}"
    sprite = Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(16, 24, 3), dtype=np.uint8))
    pfile.write_sprite(tmp_path / "sprite.jpg", sprite)
    expected = io.BytesIO()
    sprite.save(expected, format="JPEG", quality=90)
    assert (tmp_path / "sprite.jpg").read_bytes() == expected.getvalue()
    pfile.write_record(tmp_path / "record.json", {"name": "ü"})
    assert (tmp_path / "record.json").read_bytes() == f'{{\n "format": {pfile.FORMAT},\n "name": "ü"\n}}'.encode()
    pfile.write_tensors(tmp_path / "one.tsv", np.array([[1.5, -2.0, 3.0]]))
    one = pfile.read_tensors(tmp_path / "one.tsv")
    assert one.shape == (1, 3) and one.dtype == np.float32 and one.tolist() == [[1.5, -2.0, 3.0]]
    assert (tmp_path / "one.tsv").read_bytes() == b"1.5\t-2\t3\n"  # %.9g: exact for float32, short


def test_thumbnail_cells_are_placed_by_column_and_row_in_pixels():
    """ThumbnailIndex.position (files/thumbnails.py): cell 5 of a 3-column atlas of 16-pixel cells is
    column 2, row 1 of the first atlas; cell 9 opens the second."""
    from tsne_atlas.files.thumbnails import ThumbnailIndex

    index = ThumbnailIndex(Path("t"), 16, 3, 90, ["a.jpg", "b.jpg"], [], 0)
    assert [index.position(i) for i in (0, 5, 9, 13)] == [
        ("a.jpg", 0, 0),
        ("a.jpg", 32, 16),
        ("b.jpg", 0, 0),
        ("b.jpg", 16, 16),
    ]


def test_thumbnail_index_is_utf8_json_with_names_as_they_are(tmp_path):
    """write_index (files/thumbnails.py) writes non-ASCII image paths as themselves, not as escapes."""
    from tsne_atlas.files.thumbnails import INDEX_NAME, write_index

    write_index(tmp_path, {"paths": ["ünï/✓.png"]})
    assert (tmp_path / INDEX_NAME).read_bytes() == '{"format": 1, "paths": ["ünï/✓.png"]}'.encode()


def test_thumbnail_index_reads_its_numbers_and_names_what_is_wrong_in_one_line(tmp_path):
    """read_index (files/thumbnails.py) on indexes written here: the numbers as ints, and a foreign format
    or missing atlases (the first three named) as one line."""
    from tsne_atlas.files.thumbnails import INDEX_NAME, write_index

    index = {"cell": 8, "columns": 1, "quality": "85", "atlases": [], "paths": [], "n_total": 0}
    write_index(tmp_path, index)
    assert read_index(tmp_path).quality == 85
    write_index(tmp_path, {**index, "atlases": [f"a{i}.jpg" for i in range(5)], "paths": list("vwxyz")})
    with pytest.raises(AtlasError) as error:
        read_index(tmp_path)
    path = tmp_path / INDEX_NAME
    missing = "['a0.jpg', 'a1.jpg', 'a2.jpg']"
    assert str(error.value) == f"{path}: atlas files missing or miscounted ({missing}); delete {tmp_path} and rerun"
    path.write_text('{"format": 7}', encoding="utf-8")
    with pytest.raises(AtlasError) as error:
        read_index(tmp_path)
    expected = f"{path}: not a complete thumbnails index (format 7, expected 1); delete {tmp_path} and rerun"
    assert str(error.value) == expected
