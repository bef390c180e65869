"""Sharded extraction (``extraction.shards``): K jobs over whole-batch slices of the sample, joined by one
merge into the features file one job writes, byte for byte; the merge refuses shards that do not fit
together in one line naming the shard file. The workflow's side (job counts, sizing, kills, Slurm) is
tested in test_cluster_resources, test_interruptions, test_reruns and test_slurm."""

import itertools
import json
import re
import shutil
from pathlib import Path

import h5py
import pytest
import torch
from torchvision.models import get_model

from conftest import extraction_defaults, make_image_folder
from tsne_atlas.config import feature_set_settings
from tsne_atlas.extraction import extract_features
from tsne_atlas.files.feature_shards import SHARD_ATTR, merge_shards, read_shard
from tsne_atlas.files.features import features_file_problem, read_features, read_predictions
from tsne_atlas.files.manifest import write_images
from tsne_atlas.jobs import AtlasError
from tsne_atlas.merge import merge_features
from tsne_atlas.schema import SCHEMA_PATH, feature_set_defaults
from tsne_atlas.shards import shard_count, shard_rows

SET = "net"
# 23 images in batches of 4: six batches, the last one short (3 images), as a real sample's may be.
COUNTS = {"ant": 8, "bee": 8, "cat": 7}
PATHS = [f"{name}/{name}_{i:03d}.png" for name, n in COUNTS.items() for i in range(n)]
BATCH = 4
K = 3
# The network only supplies the numbers that are split and merged: MobileNetV3-Small computes them about ten
# times faster than ResNet-18 at the same 224-pixel input, with a spatial node (pooled) and the penultimate
# one, and a 1000-class head for the stored top-5.
ARCH = "mobilenet_v3_small"
NODES = ["features.9", "penultimate"]


def test_shards_are_contiguous_whole_batches_that_cover_the_sample():
    for n_images in (1, 5, 23, 64, 1000, 1001):
        for batch_size in (1, 4, 16):
            batches = -(-n_images // batch_size)
            for count in range(1, min(batches, 9) + 1):
                rows = [shard_rows(n_images, batch_size, index, count) for index in range(1, count + 1)]
                assert rows[0][0] == 0 and rows[-1][1] == n_images
                assert all(stop == start for (_, stop), (start, _) in itertools.pairwise(rows))  # contiguous
                assert all(start % batch_size == 0 and stop > start for start, stop in rows)  # whole batches
                sizes = [-(-(stop - start) // batch_size) for start, stop in rows]
                assert max(sizes) - min(sizes) <= 1  # shared out evenly


def test_shard_count_is_the_setting_or_auto_and_at_most_one_per_batch():
    assert shard_count(1000, 16, 1, 100_000) == 1
    assert shard_count(1000, 16, 4, 100_000) == 4
    assert shard_count(1_000_000, 128, "auto", 100_000) == 10
    assert shard_count(1_000_001, 128, "auto", 100_000) == 11
    assert shard_count(500, 16, "auto", 100_000) == 1
    assert shard_count(40, 20, 8, 100_000) == 2  # 2 batches: 2 shards
    assert shard_count(40, 20, "auto", 1) == 2


def test_more_shards_than_the_sample_has_batches_is_one_line():
    # Only when fewer images were usable than the workflow counted (sample.n_images: all, files skipped).
    with pytest.raises(AtlasError) as error:
        shard_rows(10, 4, 1, 4)
    assert str(error.value) == (
        "extraction.shards: 4 shards, but the sample's 10 images make only 3 batches of extraction.batch_size 4 "
        "(fewer images were usable than counted); lower extraction.shards"
    )


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """(dataset root, sample/images.csv) of 23 small images in three classes."""
    tmp = tmp_path_factory.mktemp("sample")
    root = make_image_folder(tmp / "data", COUNTS, size=(40, 32))
    write_images(tmp / "images.csv", PATHS, ["0" * 64] * len(PATHS))
    return root, tmp / "images.csv"


def extract(sample, out, shard=None, precision="fp32", **given) -> dict:
    """extract_features for set ``net`` (ARCH, random weights, two nodes), one job or one shard."""
    root, images = sample
    settings = feature_set_settings(
        {"features": {SET: {"arch": ARCH, "weights": "none", "nodes": NODES, **given}}},
        feature_set_defaults(SCHEMA_PATH),
    )[SET]
    extraction = extraction_defaults()
    extraction.update(batch_size=BATCH, num_workers=0, precision=precision)
    return extract_features(
        images=str(images),
        root=str(root),
        feature_set=SET,
        settings=settings,
        features=str(out),
        progress=False,
        config_hash="abc",
        shard=shard,
        **extraction,
    )


def extract_shards(sample, folder, count=K, **given) -> list[str]:
    paths = [str(folder / f"{index}-of-{count}.h5") for index in range(1, count + 1)]
    for index, path in enumerate(paths, start=1):
        extract(sample, path, shard=(index, count), **given)
    return paths


# fp32, and the default precision (auto: bf16 on this CPU, which computes it natively; fp32 elsewhere).
@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_merged_shards_are_byte_identical_to_one_job(sample, tmp_path, precision):
    extract(sample, tmp_path / "one.h5", precision=precision)
    shards = extract_shards(sample, tmp_path, precision=precision)
    second = read_shard(shards[1])
    header = second.header
    assert len(second.paths) == 8 and second.attrs["n_images"] == len(PATHS)
    assert (header["index"], header["count"], header["start"], header["stop"]) == (2, 3, 8, 16)
    merge_shards(shards, sample[1], tmp_path / "merged.h5")
    assert (tmp_path / "merged.h5").read_bytes() == (tmp_path / "one.h5").read_bytes()
    merged = read_features(tmp_path / "merged.h5", "penultimate", with_features=False)["attrs"]
    assert merged["precision_setting"] == precision and SHARD_ATTR not in merged


def test_predictions_are_merged_too(sample, tmp_path):
    """A classifier with class names stores its top-5 per image: the merged file has them, byte-identical."""
    torch.manual_seed(3)
    weights = tmp_path / "r18.pth"
    torch.save(get_model(ARCH, weights=None).state_dict(), weights)
    names = tmp_path / "classes.txt"
    names.write_text("".join(f"class {i}\n" for i in range(1000)))
    given = {"weights": str(weights), "class_names": str(names)}
    extract(sample, tmp_path / "one.h5", **given)
    merge_shards(extract_shards(sample, tmp_path, count=2, **given), sample[1], tmp_path / "merged.h5")
    assert (tmp_path / "merged.h5").read_bytes() == (tmp_path / "one.h5").read_bytes()
    predictions, reason = read_predictions(tmp_path / "merged.h5")
    assert reason == "stored" and predictions.top_index.shape == (len(PATHS), 5)


@pytest.fixture(scope="module")
def shards(sample, tmp_path_factory) -> list[str]:
    """Three fp32 shards of the sample, to copy and spoil."""
    return extract_shards(sample, tmp_path_factory.mktemp("shards"))


def spoiled(shards, tmp_path, changes: dict) -> list[str]:
    """Copies of ``shards``, shard i (1-based) changed by ``changes[i](h5 file open r+)``."""
    copies = []
    for position, path in enumerate(shards, start=1):
        copy = tmp_path / f"{position}-of-{len(shards)}.h5"
        shutil.copyfile(path, copy)
        if position in changes:
            with h5py.File(copy, "r+") as h5:
                changes[position](h5)
        copies.append(str(copy))
    return copies


def set_header(**values):
    def change(h5):
        h5.attrs[SHARD_ATTR] = json.dumps({**json.loads(h5.attrs[SHARD_ATTR]), **values}, sort_keys=True)

    return change


def set_attr(key, value):
    def change(h5):
        h5.attrs[key] = value

    return change


def rename_row(h5):
    h5["paths"][1] = "cat/cat_000.png"


def refused(shard_files, sample, tmp_path) -> str:
    """The merge's error; nothing is written."""
    out = tmp_path / "merged.h5"
    with pytest.raises(AtlasError) as error:
        merge_shards(shard_files, sample[1], out)
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))
    message = str(error.value)
    assert "\n" not in message and message.endswith("rerun")
    return message


@pytest.mark.parametrize(
    ("index", "change", "expected"),
    [
        (
            2,
            set_header(start=4),
            r"2-of-3\.h5 starts at row 4, inside the shard before it \(up to row 7\): rows 4-7 are in two shards; "
            r"delete it and rerun$",
        ),
        (2, set_header(start=12, stop=16), r"2-of-3\.h5 starts at row 12: rows 8-11 of .*images\.csv are in no shard"),
        (3, set_header(stop=20), r"3-of-3\.h5 holds 7 rows, not rows 16-19"),
        (2, set_header(index=3), r"2-of-3\.h5 is shard 3 of 3, not 2 of 3"),
        (1, set_header(sample_sha256="f" * 64), r"1-of-3\.h5 was cut from another sample than .*images\.csv"),
        (3, set_attr("precision", "bf16"), r"3-of-3\.h5 was extracted with precision 'bf16', .*1-of-3\.h5 with 'fp32'"),
        (
            2,
            set_attr("versions", '{"torch": "2.0"}'),
            r"2-of-3\.h5 was extracted with versions '\{\"torch\": \"2\.0\"\}'",
        ),
        (2, rename_row, r"2-of-3\.h5: row 9 is 'cat/cat_000\.png' but 'bee/bee_001\.png' in .*images\.csv"),
        (2, lambda h5: h5.attrs.__delitem__(SHARD_ATTR), r"2-of-3\.h5 is not an extraction shard"),
        (3, lambda h5: h5.attrs.__delitem__("feature_dims"), r"3-of-3\.h5: not a complete shard \(attributes"),
    ],
    ids=[
        "overlap",
        "gap",
        "rows",
        "position",
        "sample",
        "precision",
        "versions",
        "paths",
        "not-a-shard",
        "incomplete",
    ],
)
def test_the_merge_refuses_shards_that_do_not_fit_in_one_line_naming_the_file(
    sample, shards, tmp_path, index, change, expected
):
    message = refused(spoiled(shards, tmp_path, {index: change}), sample, tmp_path)
    assert re.match(rf"^{re.escape(str(tmp_path))}/{expected}", message), message


def test_the_merge_refuses_a_missing_last_shard_and_a_truncated_file(sample, shards, tmp_path):
    two_of_two = spoiled(shards, tmp_path, {1: set_header(count=2), 2: set_header(count=2)})[:2]
    message = refused(two_of_two, sample, tmp_path)
    assert message == (
        f"rows 16-22 of {sample[1]} are in no shard (the last, {tmp_path}/2-of-3.h5, ends at row 15); "
        f"delete the shards and rerun"
    )
    copies = spoiled(shards, tmp_path, {})
    data = Path(copies[0]).read_bytes()
    Path(copies[0]).write_bytes(data[: len(data) // 2])
    assert features_file_problem(copies[0]).startswith("not readable as HDF5")
    assert refused(copies, sample, tmp_path).startswith(f"{copies[0]}: not a complete shard (not readable as HDF5")


def test_the_merge_job_refuses_shards_of_other_extraction_settings(sample, shards, tmp_path):
    arguments = {"feature_set": SET, "precision": "fp32", "channels_last": True, "batch_size": BATCH}
    merge_features(shards, str(sample[1]), str(tmp_path / "ok.h5"), **arguments)
    assert features_file_problem(tmp_path / "ok.h5") is None
    with pytest.raises(AtlasError) as error:
        merge_features(shards, str(sample[1]), str(tmp_path / "no.h5"), **{**arguments, "batch_size": 8})
    assert str(error.value) == (
        f"{shards[0]} was extracted with extraction.batch_size 4, the config has 8; delete it and rerun"
    )
    assert not (tmp_path / "no.h5").exists()


def test_the_merge_job_names_each_refused_setting_and_logs_what_it_merged(sample, shards, tmp_path, caplog):
    """Found untested by the mutation run: the names of the other settings in the refusal, and the log line."""
    arguments = {"feature_set": SET, "precision": "fp32", "channels_last": True, "batch_size": BATCH}
    for change, said in (
        ({"feature_set": "other"}, "feature_set 'net', the config has 'other'"),
        ({"precision": "bf16"}, "extraction.precision 'fp32', the config has 'bf16'"),
        ({"channels_last": False}, "extraction.channels_last True, the config has False"),
    ):
        with pytest.raises(AtlasError) as error:
            merge_features(shards, str(sample[1]), str(tmp_path / "no.h5"), **{**arguments, **change})
        assert str(error.value) == f"{shards[0]} was extracted with {said}; delete it and rerun"
    with caplog.at_level("INFO", logger="tsne_atlas.merge_features"):
        attrs = merge_features(shards, str(sample[1]), str(tmp_path / "ok.h5"), **arguments)
    assert attrs["n_images"] == len(PATHS)
    assert re.fullmatch(
        rf"features\.net \({ARCH}, fp32 on cpu\): merged 3 shards of 23 images into {re.escape(str(tmp_path))}"
        r"/ok\.h5 in \d+\.\d s",
        caplog.records[-1].getMessage(),
    ), caplog.records[-1].getMessage()
