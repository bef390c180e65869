import copy
import datetime
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from tsne_atlas import config as atlas_config
from tsne_atlas.collection import count_images as count_collection
from tsne_atlas.config import (
    feature_ids,
    feature_set_settings,
    features_config_hash,
    settings_hash,
)
from tsne_atlas.files.runs import wildcard_value
from tsne_atlas.jobs import AtlasError
from tsne_atlas.methods.tsne import check_perplexity, graph_neighbours_for, min_images_for_perplexity
from tsne_atlas.schema import feature_set_defaults

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "schemas" / "config.schema.yaml")
SET_DEFAULTS = feature_set_defaults(SCHEMA)


def count_images(root, extensions, layout="folders"):
    return count_collection({"layout": layout, "root": root, "extensions": extensions})


def check_config(config, count_images=None):
    return atlas_config.check_config(config, SET_DEFAULTS, count_images=count_images)


def validated(config):
    config = copy.deepcopy(config)
    validate(config, schema=SCHEMA)
    return config


@pytest.fixture
def minimal(demo_root):
    return {"dataset": {"root": str(demo_root)}}


def test_shipped_config_is_valid():
    config = validated(yaml.safe_load((REPO / "config.yaml").read_text()))
    assert config["sample"]["n_images"] == 500
    assert config["tsne"]["perplexities"] == [5, 30, 50] and config["tsne"]["seeds"] == [0, 1, 2]


def test_schema_fills_defaults(minimal):
    config = validated(minimal)
    # The demo's two sets, the trained one first; Snakemake fills the sets' defaults too.
    lite0 = {**SET_DEFAULTS, "source": "timm", "arch": "tf_efficientnet_lite0"}
    assert config["features"] == {"efficientnet-lite0": lite0, "resnet101": {**SET_DEFAULTS}}
    assert list(config["features"]) == ["efficientnet-lite0", "resnet101"]
    assert feature_set_settings(config, SET_DEFAULTS)["resnet101"]["arch"] == "resnet101"
    assert config["extraction"]["device"] == "auto" and config["extraction"]["batch_size"] == 16
    assert config["tsne"]["implementation"] == "opentsne" and config["mosaic"]["thumb_size"] == 64
    assert config["results"] == "results"


@pytest.mark.parametrize(
    "patch",
    [
        {"sample": {"n_imgs": 5}},  # unknown key
        {"colour": "red"},  # unknown top-level key
        {"sample": {"n_images": "many"}},  # wrong value
        {"sample": {"n_images": 2.5}},  # wrong type
        {"tsne": {"seeds": []}},  # empty sweep
        {"tsne": {"seeds": [1, 1]}},  # duplicate seeds
        {"tsne": {"perplexities": [-5]}},
        {"extraction": {"precision": "int8"}},
        {"extraction": {"device": "gpu"}},
        {"features": {}},  # no feature set
        {"features": {"a.b": {}}},  # a set name with a dot (dots join set and node)
        {"features": {"../up": {}}},  # not a file-name component
        {"features": {"x": {"source": "keras"}}},
        {"features": {"x": {"nodes": []}}},
        {"features": {"x": {"nodes": ["layer1/../x"]}}},
        {"features": {"x": {"colour": "red"}}},
        {"model": {"arch": "resnet18"}},  # the section before feature sets
        {"mosaic": {"background": "pink"}},
    ],
)
def test_schema_rejects_bad_values(minimal, patch):
    config = copy.deepcopy(minimal)
    for section, values in patch.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    with pytest.raises(WorkflowError):
        validate(config, schema=SCHEMA)


def test_check_config_catches_cross_key_problems(minimal, tmp_path):
    check_config(validated(minimal))
    missing = validated({"dataset": {"root": str(tmp_path / "nowhere")}})
    with pytest.raises(AtlasError, match=r"^dataset.root '.*nowhere' does not exist or is not a folder \(working "):
        check_config(missing)
    big = validated({**minimal, "sample": {"n_images": 40}, "tsne": {"perplexities": [5, 30]}})
    with pytest.raises(AtlasError, match="perplexity 30 needs at least 92 images"):
        check_config(big)
    weights = validated({**minimal, "features": {"net": {"weights": str(tmp_path / "missing.pth")}}})
    with pytest.raises(
        AtlasError,
        match=r"^features.net.weights '.*missing.pth' is neither one of \['auto', 'pretrained', 'imagenet', 'none'\] "
        r"nor an existing file; ",
    ):
        check_config(weights)


@pytest.mark.parametrize(
    "sets, expected",
    [
        ({"a": {"path": "x.pt"}}, "features.a.path is only used by sources torchscript, export, precomputed, not "),
        ({"a": {"source": "precomputed"}}, "features.a.path is missing: a 'precomputed' set reads its "),
        ({"a": {"source": "torchscript", "path": "nowhere.pt"}}, "features.a.path 'nowhere.pt' does not exist "),
        ({"a": {"source": "timm", "input_size": 299}}, "features.a.input_size is only used by sources torchscript"),
        ({"a": {"arch": "resnet18"}, "b": {"arch": "resnet18"}}, "features.a and features.b have identical settings"),
    ],
)
def test_feature_sets_are_checked_in_one_line_naming_the_set_and_key(minimal, sets, expected):
    with pytest.raises(AtlasError) as err:
        check_config(validated({**minimal, "features": sets}))
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


def test_own_networks_give_their_output_and_precomputed_npy_needs_its_paths(minimal, tmp_path):
    (tmp_path / "net.pt").write_bytes(b"x")
    (tmp_path / "f.npy").write_bytes(b"x")
    own = {"net": {"source": "torchscript", "path": str(tmp_path / "net.pt"), "nodes": ["layer3"]}}
    with pytest.raises(AtlasError, match=r"^features.net.nodes: a 'torchscript' network gives its output only"):
        check_config(validated({**minimal, "features": own}))
    npy = {"clip": {"source": "precomputed", "path": str(tmp_path / "f.npy")}}
    with pytest.raises(AtlasError, match=r"^features.clip.paths_file is missing or not a file"):
        check_config(validated({**minimal, "features": npy}))
    npy["clip"]["nodes"] = ["layer3"]
    with pytest.raises(AtlasError, match=r"^features.clip.nodes is only used by sources torchvision, timm, "):
        check_config(validated({**minimal, "features": npy}))


def test_feature_set_ids_name_a_one_node_set_as_given_and_each_node_of_a_set_of_several(minimal, tmp_path):
    (tmp_path / "f.csv").write_text("path,a\n")
    config = validated(
        {
            **minimal,
            "features": {
                "deep": {"arch": "resnet18", "nodes": ["layer2", "layer4.1", "penultimate"]},
                "random": {"arch": "resnet18", "weights": "none"},
                "clip": {"source": "precomputed", "path": str(tmp_path / "f.csv")},
            },
        }
    )
    sets = feature_set_settings(config, SET_DEFAULTS)
    assert feature_ids(sets) == {
        "deep.layer2": ("deep", "layer2"),
        "deep.layer4.1": ("deep", "layer4.1"),
        "deep.penultimate": ("deep", "penultimate"),
        "random": ("random", "penultimate"),
        "clip": ("clip", "precomputed"),
    }
    check_config(config)


def test_compare_reference_and_seed_must_be_the_sweeps(minimal):
    sets = {"deep": {"arch": "resnet18", "nodes": ["layer3", "penultimate"]}}
    check_config(validated({**minimal, "features": sets, "compare": {"reference": "deep.layer3", "seed": 2}}))
    with pytest.raises(
        AtlasError, match=r"^compare.reference 'deep' is not a feature set id; use one of: deep.layer3, "
    ):
        check_config(validated({**minimal, "features": sets, "compare": {"reference": "deep"}}))
    with pytest.raises(
        AtlasError, match=r"^compare.seed 7 is not a seed of the sweep's maps \[0, 1, 2\]; use one of them"
    ):
        check_config(validated({**minimal, "features": sets, "compare": {"seed": 7}}))


def test_perplexity_must_be_positive():
    for perplexity in (0, -5):
        with pytest.raises(AtlasError) as err:
            check_perplexity(perplexity, 1000)
        assert str(err.value) == f"tsne.perplexities: {perplexity} is not positive; use values such as 5, 30, 50"
    check_perplexity(0.5, 1000)


def test_fractional_perplexities_need_3_x_perplexity_neighbours():
    """openTSNE takes int(3 x perplexity) neighbours and needs one more point, plus the point itself."""
    assert min_images_for_perplexity(7.5) == 24 and min_images_for_perplexity(7.4) == 24
    check_perplexity(7.5, 24)
    with pytest.raises(
        AtlasError, match=r"perplexity 7.5 needs at least 24 images .* has 23; use perplexities below 7 or raise "
    ):
        check_perplexity(7.5, 23)
    assert graph_neighbours_for([2.9, "7.5", 1]) == 22 and graph_neighbours_for([10]) == 30


def test_settings_hash_is_stable_and_sees_every_setting():
    a = {"x": 1, "y": [1, 2], "z": {"p": "q"}}
    digest = settings_hash(a)
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert settings_hash(dict(reversed(a.items()))) == digest  # key order does not matter
    for changed in ({**a, "x": 2}, {**a, "y": [2, 1]}, {**a, "z": {"p": "r"}}, {**a, "w": None}):
        assert settings_hash(changed) != digest
    # Values JSON has no type for (a YAML date, a path) are hashed by their text instead of failing.
    assert settings_hash({"when": datetime.date(2024, 1, 2)}) == settings_hash({"when": "2024-01-02"})
    assert settings_hash({"root": Path("data/x")}) == settings_hash({"root": "data/x"})


RUN_ONLY_EXTRACTION = ("threads", "num_workers", "shards", "images_per_shard")


def test_features_config_hash_covers_dataset_sample_the_set_and_extraction_but_run_only_settings(minimal):
    config = validated({**minimal, "features": {"a": {"arch": "resnet18"}, "b": {"arch": "resnet34"}}})
    digest = features_config_hash(config, "a")
    assert digest == settings_hash(
        {
            "dataset": config["dataset"],
            "sample": config["sample"],
            "features": config["features"]["a"],
            "extraction": {k: v for k, v in config["extraction"].items() if k not in RUN_ONLY_EXTRACTION},
        }
    )
    # How fast and in how many jobs, never what: a sharded extraction gives the one-job file, byte for byte.
    for key in RUN_ONLY_EXTRACTION:
        assert features_config_hash({**config, "extraction": {**config["extraction"], key: 9}}, "a") == digest
    assert features_config_hash({**config, "tsne": {**config["tsne"], "seeds": [7]}}, "a") == digest
    assert features_config_hash({**config, "features": {**config["features"], "b": {"arch": "x"}}}, "a") == digest
    changes = (("dataset", "root", "elsewhere"), ("sample", "n_images", 7), ("extraction", "precision", "fp32"))
    for section, key, value in changes:
        assert features_config_hash({**config, section: {**config[section], key: value}}, "a") != digest
    assert features_config_hash({**config, "features": {**config["features"], "a": {"arch": "x"}}}, "a") != digest


def test_count_images_counts_listed_images_of_every_class(image_folder):
    assert count_images(str(image_folder), [".png"]) == 6 + 5 + 4
    # Case-insensitive extensions, hidden files and other extensions left out, as sampling lists them.
    (image_folder / "ant" / "UPPER.PNG").write_bytes((image_folder / "ant" / "ant_000.png").read_bytes())
    (image_folder / "ant" / ".hidden.png").write_bytes(b"x")
    (image_folder / "bee" / "notes.txt").write_text("x")
    (image_folder / "cat" / "deeper").mkdir()
    (image_folder / "cat" / "deeper" / "d.png").write_bytes((image_folder / "ant" / "ant_000.png").read_bytes())
    assert count_images(str(image_folder), [".png"]) == 17
    assert count_images(str(image_folder), ["png", ".txt"]) == 18
    assert count_images(str(image_folder), [".jpg"]) == 0


def test_n_images_all_counts_the_dataset(image_folder):
    def config_with(perplexity):
        return validated(
            {
                "dataset": {"root": str(image_folder)},
                "sample": {"n_images": "all"},
                "tsne": {"perplexities": [perplexity]},
            }
        )

    # The count reaches the check: 13 images are too few for perplexity 4, 15 are enough.
    with pytest.raises(AtlasError) as err:
        check_config(config_with(4), count_images=lambda dataset: 13)
    assert str(err.value).startswith(
        "tsne.perplexities: perplexity 4 needs at least 14 images "
        "(3 x perplexity neighbours per point) but the sample has 13; "
    )
    check_config(config_with(4), count_images=count_collection)  # the real count: 15 images
    check_config(config_with(50))  # no counter given: the count is unknown, so is the check (sampling says)
    # ...and the real count is the one the message quotes.
    with pytest.raises(AtlasError) as err:
        check_config(config_with(5), count_images=count_collection)
    assert str(err.value) == (
        "tsne.perplexities: perplexity 5 needs at least 17 images (3 x perplexity neighbours "
        "per point) but the sample has 15; use perplexities below 4.333 or raise sample.n_images"
    )


def test_wildcard_values():
    assert [wildcard_value(v) for v in (5, 30.0, 7.5, 0)] == ["5", "30", "7.5", "0"]


@pytest.mark.parametrize(
    "patch, expected",
    [
        ({"sample": {"n_imgs": 5}}, "sample: Additional properties are not allowed ('n_imgs' was unexpected)"),
        ({"tsne": {"seeds": [1, 1]}}, "tsne.seeds: [1, 1] has non-unique elements"),
        ({"extraction": {"batch_size": "big"}}, "extraction.batch_size: 'big' is not of type 'integer'"),
        ({"features": {"x": {"nodes": "layer3"}}}, "features.x.nodes: 'layer3' is not of type 'array'"),
        ({"features": {}}, "features: {} should be non-empty"),
        ({"features": {"a.b": {}}}, "features: 'a.b' is not allowed here (a feature set's name: letters, digits"),
        ({"features": {"x": {"source": "keras"}}}, "features.x.source: 'keras' is not one of ['torchvision', "),
        ({"tsne": {"seeds": []}}, "tsne.seeds: [] should be non-empty"),
        ({"tsne": {"perplexities": []}}, "tsne.perplexities: [] should be non-empty"),
        ({"tsne": {"perplexities": [5, 5]}}, "tsne.perplexities: [5, 5] has non-unique elements"),
    ],
)
def test_schema_errors_become_one_line_naming_the_key(minimal, patch, expected):
    from tsne_atlas.schema import schema_error_line

    line = schema_error_line({**minimal, **patch}, SCHEMA)
    assert line.startswith(expected) and "\n" not in line
    assert schema_error_line(minimal, SCHEMA) == ""


def test_an_old_model_section_says_where_its_settings_went(minimal):
    from tsne_atlas.schema import schema_error_line

    line = schema_error_line({**minimal, "model": {"arch": "resnet18"}}, SCHEMA)
    assert line.startswith("model: this section is gone: the network is now a feature set, features.<name> (arch")
    assert "extraction (device" in line and "\n" not in line


def test_keys_that_moved_to_prepare_say_where_they_went(minimal):
    """tsne.standardize and tsne.pca_components serve every method: they moved to prepare:, and a config
    that still has them stops in one line naming each and its new place."""
    from tsne_atlas.schema import schema_error_line

    both = schema_error_line({**minimal, "tsne": {"standardize": False, "pca_components": 10}}, SCHEMA)
    assert both == (
        "tsne.standardize is now prepare.standardize; tsne.pca_components is now prepare.pca_components: "
        "move them there (docs/configuration.md)"
    )
    one = schema_error_line({**minimal, "tsne": {"pca_components": 10}}, SCHEMA)
    assert one == "tsne.pca_components is now prepare.pca_components: move it there (docs/configuration.md)"
    assert schema_error_line({**minimal, "prepare": {"pca_components": 10}}, SCHEMA) == ""


def test_the_graph_holds_what_its_readers_need_and_a_given_size_too_small_for_tsne_is_refused(minimal):
    config = validated({**minimal, "tsne": {"perplexities": [5, 10]}})
    # auto: 3 x the largest perplexity with t-SNE among the methods ...
    assert atlas_config.graph_neighbours(config) == 30
    # ... else the most the suspects, the explorer and the clusters read.
    config = validated({**minimal, "methods": ["umap", "pca"], "suspects": {"neighbours": 12}})
    assert atlas_config.graph_neighbours(config) == 15  # clusters.neighbours' default
    config = validated({**config, "clusters": {"neighbours": 8}, "suspects": {"neighbours": 12}})
    assert atlas_config.graph_neighbours(config) == 12
    config = validated({**minimal, "tsne": {"perplexities": [10]}, "graph": {"neighbours": 45}})
    assert atlas_config.graph_neighbours(config) == 45
    atlas_config.check_config(config, SET_DEFAULTS)
    config["graph"]["neighbours"] = 29
    with pytest.raises(AtlasError) as err:
        atlas_config.check_config(config, SET_DEFAULTS)
    assert str(err.value) == (
        "graph.neighbours: 29 is fewer than the 30 neighbours t-SNE reads (tsne settings); use at least 30 or auto"
    )


@pytest.mark.parametrize("results", ["", "/", "//"])
def test_results_must_name_a_folder_other_than_the_root(minimal, results):
    """'' would send every output to the filesystem root (/sample/manifest.csv), as would '/'."""
    from tsne_atlas.schema import schema_error_line

    config = {**minimal, "results": results}
    line = schema_error_line(copy.deepcopy(config), SCHEMA)
    assert line.startswith("results: ") and "\n" not in line
    with pytest.raises(WorkflowError):
        validate(config, schema=SCHEMA)


@pytest.mark.parametrize(
    "section, key, value",
    [
        (None, "results", "/"),
        (None, "results", "//"),
        ("extraction", "device", "gpu"),
        ("extraction", "device", "cuda:x"),
    ],
)
def test_a_value_refused_by_a_pattern_is_explained_by_the_keys_description(minimal, section, key, value):
    """A pattern alone ('[^/]') says little: the line quotes the key's description instead."""
    from tsne_atlas.schema import schema_error_line

    properties = yaml.safe_load(Path(SCHEMA).read_text())["properties"]
    spec = properties[key] if section is None else properties[section]["properties"][key]
    config = {**minimal, key: value} if section is None else {**minimal, section: {key: value}}
    name = key if section is None else f"{section}.{key}"
    line = schema_error_line(config, SCHEMA)
    assert line == f"{name}: {value!r} is not allowed here ({spec['description']}); see docs/configuration.md"


def test_a_pattern_without_a_description_keeps_the_schemas_own_message(minimal):
    from tsne_atlas.schema import schema_error_line

    line = schema_error_line({"dataset": {**minimal["dataset"], "extensions": [".png", "p g"]}}, SCHEMA)
    assert line.startswith("dataset.extensions.1: 'p g' does not match ") and line.endswith(
        "; see docs/configuration.md"
    )


@pytest.mark.parametrize("results", ["results", "out/run-1", "./results", "results/", "/tmp/atlas", "r"])
def test_results_accepts_relative_and_absolute_folders(minimal, results):
    assert validated({**minimal, "results": results})["results"] == results


def load_tool(name):
    """A module of tools/ (dev tooling, not on the import path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RULES = {
    "compare_sheet",
    "compare_metrics",
    "compare_cka",
    "sample_images",
    "label_images",
    "fetch_weights",
    "extract_features",
    "prepare_input",
    "knn_graph",
    "tsne_affinities",
    "map",
    "embedding_metrics",
    "sweep_metrics",
    "scatter",
    "mosaic",
    "grid_mosaic",
    "sweep_overview",
    "explorer_thumbnails",
    "explorer",
    "find_suspects",
    "suspects_figures",
    "find_clusters",
    "compare_clusters",
    "projector_export",
    "projector_config",
    "image_quality",
    "sample_query",
    "label_query",
    "extract_query_features",
    "extract_query_features_shard",
    "merge_query_features",
    "prepare_query",
    "query_neighbours",
    "place_query",
    "placement_tables",
    "query_figures",
    "query_thumbnails",
}


def test_every_schema_key_has_a_default_a_description_and_its_reruns():
    """The schema is the one home of each setting: config.yaml and docs/configuration.md are made from it."""
    reference = load_tool("config_reference")
    keys = reference.leaves(reference.load_schema())
    assert len(keys) > 40
    # Without a default: the dataset (required) and the file a set of some sources needs.
    without_default = {"dataset.root", "features.<name>.path", "features.<name>.paths_file"}
    for key, spec in keys:
        assert ("default" in spec) == (key not in without_default), key
        assert spec.get("description") and "\n" not in spec["description"].strip(), key
        reruns = spec.get("x-reruns")
        expected = {"results": "all", "features": "per-set"}
        if key in expected:
            assert reruns == expected[key], key
        else:
            assert isinstance(reruns, list) and set(reruns) <= RULES, key
    run_only = {key for key, spec in keys if spec["x-reruns"] == []}
    assert run_only == {
        "extraction.num_workers",
        "extraction.threads",
        "extraction.images_per_shard",  # used only with shards: auto, whose shard count reruns (see shards)
        "tsne.threads",
    }


# Values of every JSON type, to throw at every key of the schema.
ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
SECTIONS = [
    "sample",
    "extraction",
    "tsne",
    "umap",
    "scatter",
    "mosaic",
    "grid_mosaic",
    "metrics",
    "compare",
    "overview",
    "explorer",
    "projector",
    "quality",
    "query",
]


def closed_objects(schema: dict, path: tuple = ()):
    """Paths of every object in the schema that refuses unknown keys (``additionalProperties: false``)."""
    if schema.get("additionalProperties") is False:
        yield path
    for name, spec in schema.get("properties", {}).items():
        yield from closed_objects(spec, (*path, name))
    entries = schema.get("additionalProperties")
    if isinstance(entries, dict):  # a mapping of named entries (feature sets): one entry, named "x"
        yield from closed_objects(entries, (*path, "x"))


def test_unknown_keys_are_refused_in_every_object_of_the_schema():
    from tsne_atlas.schema import schema_error_line

    schema = yaml.safe_load(Path(SCHEMA).read_text())
    paths = list(closed_objects(schema))
    # Every object the schema closes, found by walking it (the top level, its 15 sections and a feature set).
    assert len(paths) == Path(SCHEMA).read_text().count("additionalProperties: false") == 22
    for path in paths:
        config = {"dataset": {"root": "x"}}
        target = config
        for part in path:
            target = target.setdefault(part, {})
        validate(copy.deepcopy(config), schema=SCHEMA)  # the object itself, with no unknown key, is fine
        target["zz_unknown"] = 1
        with pytest.raises(WorkflowError):
            validate(copy.deepcopy(config), schema=SCHEMA)
        assert schema_error_line(config, SCHEMA) == (
            f"{'.'.join(path) or '(top level)'}: Additional properties are not allowed ('zz_unknown' was unexpected); "
            "see docs/configuration.md"
        ), path


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"  # JSON Schema counts 2.0 as an integer
    return {float: "number", str: "string", list: "array", dict: "object"}[type(value)]


def allowed_types(spec: dict) -> set[str]:
    types = {spec["type"]} if "type" in spec else {option["type"] for option in spec["oneOf"]}
    return types | ({"integer"} if "number" in types else set())


SCHEMA_DOCUMENT = yaml.safe_load(Path(SCHEMA).read_text())


@pytest.fixture(scope="module")
def schema_as_json(tmp_path_factory) -> str:
    """The schema as a JSON file: the same document, which Snakemake's validate reads as JSON first and so
    without parsing YAML again on every call (0.04 s of CPU each, most of the property test's time)."""
    path = tmp_path_factory.mktemp("schema") / "config.schema.json"
    path.write_text(json.dumps(SCHEMA_DOCUMENT))
    return str(path)


@settings(max_examples=200, deadline=None)
@given(
    section=st.sampled_from(SECTIONS),
    key=st.text(min_size=1, max_size=14)
    | st.sampled_from(
        [
            "n_images",
            "seed",
            "arch",
            "weights",
            "perplexities",
            "seeds",
            "thumb_size",
            "canvas_size",
            "knn_k",
            "dpi",
            "background",
            "precision",
            "device",
            "stratified",
            "init",
        ]
    ),
    value=ANY_VALUE,
)
def test_any_config_value_is_accepted_or_refused_in_one_line_naming_its_key(schema_as_json, section, key, value):
    """Snakemake's validation (which the workflow runs first) and the one-line message agree, and both
    follow the schema's declared keys and types: an unknown key is always refused by name, a value of
    the wrong JSON type is always refused naming section.key, and nothing is accepted against its type."""
    from tsne_atlas.schema import schema_error_line

    spec = SCHEMA_DOCUMENT["properties"][section]["properties"].get(key)
    config = {"dataset": {"root": "x"}, section: {key: value}}
    line = schema_error_line(copy.deepcopy(config), SCHEMA)
    try:
        validate(copy.deepcopy(config), schema=schema_as_json)
        accepted = True
    except WorkflowError:
        accepted = False
    assert accepted == (line == "")
    if not accepted:
        assert "\n" not in line and line.endswith("; see docs/configuration.md")
    if spec is None:
        assert line == (
            f"{section}: Additional properties are not allowed ({key!r} was unexpected); see docs/configuration.md"
        )
    elif json_type(value) not in allowed_types(spec):
        assert line.startswith(f"{section}.{key}: "), line
    elif not accepted:
        assert line.startswith(f"{section}.{key}"), line
