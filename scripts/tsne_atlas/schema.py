"""The config schema (schemas/config.schema.yaml), read when the workflow loads.

Only the Snakefile, tools and tests use this module: it needs PyYAML and jsonschema, which the
jobs' environments do not.
"""

import functools
import os
from pathlib import Path

# Found from this file, not from Snakemake's workflow.basedir: used as a module, the workflow's
# basedir is the wrapper's folder.
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


@functools.lru_cache
def load_schema(schema_path: str) -> dict:
    import yaml

    # libyaml's loader where PyYAML has it: read by every Snakemake call, a tenth of the pure-Python time.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(Path(schema_path).read_text(encoding="utf-8"), Loader=loader)


# Sections of older configs, and where their settings live now.
MOVED_SECTIONS = {
    "model": "this section is gone: the network is now a feature set, features.<name> (arch, weights, "
    "init_seed; node became the list nodes, auto became penultimate), and how it runs is extraction (device, "
    "precision, channels_last, batch_size, num_workers, threads)",
}


# Keys of older configs that moved to another section: (old section, key) -> new section.
MOVED_KEYS = {
    ("tsne", "standardize"): "prepare",
    ("tsne", "pca_components"): "prepare",
}


def moved_keys_line(config: dict) -> str:
    """One line saying where each moved key of ``config`` lives now, or '' if it has none."""
    moved = [
        f"{section}.{key} is now {new}.{key}"
        for (section, key), new in MOVED_KEYS.items()
        if isinstance(config.get(section), dict) and key in config[section]
    ]
    return f"{'; '.join(moved)}: move {'them' if len(moved) > 1 else 'it'} there" if moved else ""


def schema_error_line(config: dict, schema_path: str | os.PathLike) -> str:
    """The schema's first complaint about ``config`` as one line naming the key, or '' if none.

    A value refused by a pattern gets the key's description too: the pattern alone says little.
    """
    import jsonschema

    for section, where in MOVED_SECTIONS.items():
        if section in config:
            return f"{section}: {where}; see docs/configuration.md"
    if moved := moved_keys_line(config):
        return f"{moved} (docs/configuration.md)"
    schema = load_schema(str(schema_path))
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return ""
    key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    message = error.message
    if error.validator == "pattern" and error.schema.get("description"):
        message = f"{error.instance!r} is not allowed here ({error.schema['description']})"
    return f"{key}: {message}; see docs/configuration.md"


def feature_set_defaults(schema_path: str | os.PathLike) -> dict:
    """The default of every key of a feature set (``features.<name>.<key>``) that has one."""
    per_set = load_schema(str(schema_path))["properties"]["features"]["additionalProperties"]["properties"]
    return {key: spec["default"] for key, spec in per_set.items() if "default" in spec}
