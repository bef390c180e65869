"""Generate config.yaml and docs/configuration.md from schemas/config.schema.yaml.

The schema is the one home of every setting: its type, default, description and ``x-reruns``
(the rules whose jobs change directly when it changes). The demo config and the configuration
reference are written from it, so they cannot disagree with it or with each other.

    python tools/config_reference.py           rewrite both files
    python tools/config_reference.py --check   exit 1 if either differs from what would be written
"""

import argparse
import json
import sys
import textwrap
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "schemas" / "config.schema.yaml"
CONFIG = REPO / "config.yaml"
REFERENCE = REPO / "docs" / "configuration.md"

# The only values of the demo config that are not schema defaults (dataset.root has none: it is required).
DEMO_VALUES = {"dataset.root": "resources/animal-mnist"}
WIDTH = 100

CONFIG_HEADER = """\
# tsne-atlas demo configuration: the bundled Animal-MNIST images with every other key at its default.
# Generated from schemas/config.schema.yaml by tools/config_reference.py; edit the schema, not this
# file. docs/configuration.md describes every key and what changing it reruns. For your own data,
# give only the keys you change in a file of your own: snakemake --cores all --configfile my.yaml
"""

REFERENCE_HEADER = """\
# Configuration reference

<!-- Generated from schemas/config.schema.yaml by tools/config_reference.py: edit the schema and
run `python tools/config_reference.py`, not this file. -->

`config.yaml` is the demo configuration: the bundled Animal-MNIST images and every other key at the
default below. Values in a file given with `--configfile` override those of `config.yaml`; keys it
leaves out keep the defaults. `schemas/config.schema.yaml` (a JSON Schema) checks every config before
any job starts: unknown keys, wrong types and bad values are rejected, and a perplexity the sample size
cannot support, a missing dataset folder or a missing weights file stops the run with one line that
names the key.

The last column says which jobs a change of the key reruns: the rules named there and every job after
them (see [reruns](reruns.md)); "nothing" marks settings that change how a job runs but never its
result. The same schema holds each key's type and allowed values.
"""

# A mapping of named entries (``features``: one entry per feature set) documents its entries' keys
# under this placeholder name.
ENTRY_NAME = "<name>"
SECTION_TITLES = {"": "Top level", f"features.{ENTRY_NAME}": f"`features.{ENTRY_NAME}`: one feature set"}
# The commented example of a mapping left to its default in config.yaml.
EXAMPLES = {
    "features": """\
features:
  resnet18:
    source: torchvision
    arch: resnet18
    weights: auto
    nodes: [layer2, layer3, layer4, penultimate]
  resnet18-random:
    arch: resnet18
    weights: none""",
}


def load_schema(path: Path = SCHEMA) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def leaves(schema: dict, prefix: str = "") -> list[tuple[str, dict]]:
    """Every setting as (dotted key, its schema), in the schema's order; the keys of a mapping's
    entries as ``features.<name>.<key>`` after the mapping itself."""
    found = []
    for name, spec in schema.get("properties", {}).items():
        if spec.get("type") == "object" and "properties" in spec:
            found += leaves(spec, f"{prefix}{name}.")
            continue
        found.append((f"{prefix}{name}", spec))
        entries = spec.get("additionalProperties")
        if isinstance(entries, dict) and "properties" in entries:
            found += leaves(entries, f"{prefix}{name}.{ENTRY_NAME}.")
    return found


def demo_value(key: str, spec: dict):
    if key in DEMO_VALUES:
        return DEMO_VALUES[key]
    if "default" not in spec:
        raise SystemExit(f"config_reference: {key} has no default in {SCHEMA.name}")
    return spec["default"]


def yaml_value(value) -> str:
    """A value as one line of YAML: flow style for lists and mappings, as config.yaml always had."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        plain = value and yaml.safe_load(value) == value and ": " not in value and " #" not in value
        return value if plain else json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


def comment(text: str, indent: str) -> list[str]:
    """A description as YAML comment lines (Markdown backticks dropped)."""
    return textwrap.wrap(
        text.replace("`", ""),
        width=WIDTH,
        initial_indent=f"{indent}# ",
        subsequent_indent=f"{indent}# ",
        break_on_hyphens=False,
    )


def config_yaml(schema: dict) -> str:
    lines = CONFIG_HEADER.splitlines()
    for name, spec in schema["properties"].items():
        lines.append("")
        if "properties" in spec:
            lines.append(f"{name}:")
            for key, leaf in spec["properties"].items():
                lines += comment(leaf["description"], "  ")
                lines.append(f"  {key}: {yaml_value(demo_value(f'{name}.{key}', leaf))}")
        elif isinstance(spec.get("additionalProperties"), dict):
            # Left to the schema's default: Snakemake merges a --configfile's mapping with this
            # file's, so a set written here would be added to every user's own sets.
            lines += comment(spec["description"], "")
            lines += comment(
                f"Not set in this file, so that a --configfile's {name} replace the default "
                f"{yaml_value(spec['default'])}; docs/configuration.md lists each entry's keys. E.g.:",
                "",
            )
            lines += [f"# {line}" for line in EXAMPLES[name].splitlines()]
        else:
            lines += comment(spec["description"], "")
            lines.append(f"{name}: {yaml_value(demo_value(name, spec))}")
    return "\n".join(lines) + "\n"


def markdown_value(key: str, spec: dict) -> str:
    if "default" not in spec:
        return f"required (demo: `{DEMO_VALUES[key]}`)" if key in DEMO_VALUES else "none"
    return f"`{yaml_value(spec['default'])}`"


def reruns_text(reruns) -> str:
    if reruns == "all":
        return "everything"
    if reruns == "per-set":
        return "the added or changed sets' jobs and the explorer and `compare/` outputs; no other set's"
    if not reruns:
        return "nothing"
    return ", ".join(f"`{rule}`" for rule in reruns) + " and what follows"


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def configuration_md(schema: dict) -> str:
    parts = [REFERENCE_HEADER]
    sections: dict[str, list[tuple[str, dict]]] = {}
    for key, spec in leaves(schema):
        sections.setdefault(key.rpartition(".")[0], []).append((key, spec))
    for section, keys in sections.items():
        rows = ["| key | default | description | a change reruns |", "| --- | --- | --- | --- |"]
        for key, spec in keys:
            rows.append(
                f"| `{key}` | {cell(markdown_value(key, spec))} | {cell(spec['description'])} "
                f"| {reruns_text(spec['x-reruns'])} |"
            )
        title = SECTION_TITLES.get(section, f"`{section}`")
        parts.append(f"## {title}\n\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def generated(schema_path: Path = SCHEMA) -> dict[Path, str]:
    """What config.yaml and docs/configuration.md must contain, by path."""
    schema = load_schema(schema_path)
    return {CONFIG: config_yaml(schema), REFERENCE: configuration_md(schema)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(REPO))
        if not args.check:
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(
            f"config_reference: out of date: {', '.join(map(str, stale))}; run python tools/config_reference.py",
            file=sys.stderr,
        )
        return 1
    for path in stale:
        print(f"config_reference: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
