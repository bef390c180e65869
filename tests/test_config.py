import copy
import datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from tsne_atlas.config import (
    check_config,
    check_perplexity,
    features_config_hash,
    graph_neighbors,
    min_images_for_perplexity,
    settings_hash,
)
from tsne_atlas.files.runs import wildcard_value
from tsne_atlas.jobs import AtlasError
from tsne_atlas.sampling import count_images

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "schemas" / "config.schema.yaml")


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
    assert config["model"]["arch"] == "resnet101" and config["model"]["weights"] == "auto"
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
        {"model": {"precision": "int8"}},
        {"model": {"device": "gpu"}},
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
    weights = validated({**minimal, "model": {"weights": str(tmp_path / "missing.pth")}})
    with pytest.raises(
        AtlasError,
        match=r"^model.weights '.*missing.pth' is neither one of \['auto', 'imagenet', 'none'\] "
        r"nor an existing file; ",
    ):
        check_config(weights)


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
    assert graph_neighbors([2.9, "7.5", 1]) == 22 and graph_neighbors([10]) == 30


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


def test_features_config_hash_covers_dataset_sample_and_model_but_threads(minimal):
    config = validated(minimal)
    digest = features_config_hash(config)
    assert digest == settings_hash(
        {
            "dataset": config["dataset"],
            "sample": config["sample"],
            "model": {k: v for k, v in config["model"].items() if k != "threads"},
        }
    )
    assert features_config_hash({**config, "model": {**config["model"], "threads": 99}}) == digest
    assert features_config_hash({**config, "tsne": {**config["tsne"], "seeds": [7]}}) == digest
    for section, key, value in (("dataset", "root", "elsewhere"), ("sample", "n_images", 7), ("model", "arch", "x")):
        assert features_config_hash({**config, section: {**config[section], key: value}}) != digest


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
        check_config(config_with(4), count_images=lambda root, ext: 13)
    assert str(err.value).startswith(
        "tsne.perplexities: perplexity 4 needs at least 14 images "
        "(3 x perplexity neighbours per point) but the sample has 13; "
    )
    check_config(config_with(4), count_images=count_images)  # the real count: 15 images
    check_config(config_with(50))  # no counter given: the count is unknown, so is the check (sampling says)
    # ...and the real count is the one the message quotes.
    with pytest.raises(AtlasError) as err:
        check_config(config_with(5), count_images=count_images)
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
        ({"model": {"batch_size": "big"}}, "model.batch_size: 'big' is not of type 'integer'"),
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
    [(None, "results", "/"), (None, "results", "//"), ("model", "device", "gpu"), ("model", "device", "cuda:x")],
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
    "sample_images",
    "fetch_weights",
    "extract_features",
    "tsne_input",
    "tsne_neighbors",
    "tsne_affinities",
    "tsne",
    "embedding_metrics",
    "sweep_metrics",
    "scatter",
    "mosaic",
    "grid_mosaic",
    "sweep_overview",
    "explorer",
}


def test_every_schema_key_has_a_default_a_description_and_its_reruns():
    """The schema is the one home of each setting: config.yaml and docs/configuration.md are made from it."""
    reference = load_tool("config_reference")
    keys = reference.leaves(reference.load_schema())
    assert len(keys) > 40
    for key, spec in keys:
        assert ("default" in spec) == (key != "dataset.root"), key
        assert spec.get("description") and "\n" not in spec["description"].strip(), key
        reruns = spec.get("x-reruns")
        assert reruns == "all" if key == "results" else (isinstance(reruns, list) and set(reruns) <= RULES), key
    run_only = {key for key, spec in keys if spec["x-reruns"] == []}
    assert run_only == {"model.num_workers", "model.threads", "tsne.threads"}


# Values of every JSON type, to throw at every key of the schema.
ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
SECTIONS = ["sample", "model", "tsne", "scatter", "mosaic", "grid_mosaic", "metrics", "overview", "explorer"]


def closed_objects(schema: dict, path: tuple = ()):
    """Paths of every object in the schema that refuses unknown keys (``additionalProperties: false``)."""
    if schema.get("additionalProperties") is False:
        yield path
    for name, spec in schema.get("properties", {}).items():
        yield from closed_objects(spec, (*path, name))


def test_unknown_keys_are_refused_in_every_object_of_the_schema():
    from tsne_atlas.schema import schema_error_line

    schema = yaml.safe_load(Path(SCHEMA).read_text())
    paths = list(closed_objects(schema))
    # Every object the schema closes, found by walking it (the top level and its 10 sections).
    assert len(paths) == Path(SCHEMA).read_text().count("additionalProperties: false") == 11
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
def test_any_config_value_is_accepted_or_refused_in_one_line_naming_its_key(section, key, value):
    """Snakemake's validation (which the workflow runs first) and the one-line message agree, and both
    follow the schema's declared keys and types: an unknown key is always refused by name, a value of
    the wrong JSON type is always refused naming section.key, and nothing is accepted against its type."""
    from tsne_atlas.schema import schema_error_line

    spec = yaml.safe_load(Path(SCHEMA).read_text())["properties"][section]["properties"].get(key)
    config = {"dataset": {"root": "x"}, section: {key: value}}
    line = schema_error_line(copy.deepcopy(config), SCHEMA)
    try:
        validate(copy.deepcopy(config), schema=SCHEMA)
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
