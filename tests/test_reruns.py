"""Which settings rerun what: for every key of the schema, a change planned by Snakemake's own dry run
reruns exactly the rules the schema declares for that key (``x-reruns``) and what depends on them."""

import re
import shutil

import pytest
import yaml

from conftest import SCHEMA, TINY, planned_jobs, snakemake, with_changes

pytestmark = pytest.mark.workflow

# A valid new value for each key whose change cannot be derived from its type alone (the tiny config's
# value, or the default, plus one step would not do). Lambdas get the test's tmp folder.
NEW_VALUES = {
    "results": lambda tmp: "elsewhere",
    "dataset.root": lambda tmp: str(tmp / "copy-of-demo"),
    "dataset.extensions": lambda tmp: [".png"],
    "dataset.label_map": lambda tmp: {"cat": "kitty"},
    "sample.n_images": lambda tmp: 36,
    "model.arch": lambda tmp: "resnet34",
    "model.weights": lambda tmp: str(tmp / "weights.pth"),
    "model.node": lambda tmp: "layer4",
    "model.device": lambda tmp: "cpu",
    "model.precision": lambda tmp: "fp32",
    # Raising the largest perplexity: adding a smaller one reuses the graph (tested in test_workflow).
    "tsne.perplexities": lambda tmp: [5, 12],
    "tsne.seeds": lambda tmp: [0, 1, 2],
    "tsne.implementation": lambda tmp: "sklearn",
    "tsne.negative_gradient": lambda tmp: "fft",
    "tsne.init": lambda tmp: "random",
    "mosaic.background": lambda tmp: "black",
    "grid_mosaic.background": lambda tmp: "black",
}


def schema_leaves() -> list[tuple[str, str, dict]]:
    schema = yaml.safe_load(SCHEMA.read_text())
    leaves = []
    for section, spec in schema["properties"].items():
        if "properties" in spec:
            leaves += [(section, key, leaf) for key, leaf in spec["properties"].items()]
        else:
            leaves.append((section, None, spec))
    return leaves


def new_value(section: str, key: str | None, leaf: dict, current, tmp):
    """A valid value other than ``current``."""
    name = f"{section}.{key}" if key else section
    if name in NEW_VALUES:
        return NEW_VALUES[name](tmp)
    if leaf.get("type") == "boolean":
        return not current
    if "enum" in leaf:
        return next(value for value in leaf["enum"] if value != current)
    if leaf.get("type") == "integer":
        return current + 1 if current + 1 <= leaf.get("maximum", current + 1) else current - 1
    if leaf.get("type") == "number":
        return current * 0.9 if "maximum" in leaf and current * 1.1 > leaf["maximum"] else current * 1.1
    raise AssertionError(f"{name}: add a new value to NEW_VALUES")


def downstream(rules: set[str], edges: set[tuple[str, str]]) -> set[str]:
    """``rules`` and every rule that depends on one of them, transitively."""
    found, todo = set(rules), list(rules)
    while todo:
        rule = todo.pop()
        for upstream, down in edges:
            if upstream == rule and down not in found:
                found.add(down)
                todo.append(down)
    return found


@pytest.fixture(scope="module")
def rule_graph(finished_run) -> set[tuple[str, str]]:
    """The workflow's rule dependencies (upstream, downstream), from Snakemake's --rulegraph."""
    workdir, _ = finished_run
    result = snakemake(workdir, "--rulegraph", config=TINY)
    assert result.returncode == 0, result.stderr[-2000:]
    names = dict(re.findall(r"^\s*(\d+)\[label = \"(\w+)\"", result.stdout, flags=re.M))
    return {(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)$", result.stdout, flags=re.M)}


def rerun_mismatches(workdir, rule_graph, tmp_path, leaves) -> list[str]:
    """For each (section, key, schema leaf): change the key in the tiny config and compare the rules of
    Snakemake's dry run with the leaf's ``x-reruns`` and everything downstream of them."""
    every_rule = {rule for edge in rule_graph for rule in edge}
    mismatches = []
    for section, key, leaf in leaves:
        name = f"{section}.{key}" if key else section
        current = TINY.get(section, {}).get(key, leaf.get("default")) if key else TINY[section]
        value = new_value(section, key, leaf, current, tmp_path)
        config = with_changes(TINY, section, **{key: value}) if key else {**TINY, section: value}
        declared = leaf["x-reruns"]
        expected = every_rule if declared == "all" else downstream(set(declared), rule_graph) if declared else set()
        planned = set(planned_jobs(workdir, config))
        if planned != expected:
            mismatches.append(f"{name}={value!r}: planned {sorted(planned)}, declared {sorted(expected)}")
    return mismatches


def test_every_setting_reruns_what_the_schema_declares(finished_run, rule_graph, tmp_path):
    workdir, _ = finished_run
    shutil.copytree(TINY["dataset"]["root"], tmp_path / "copy-of-demo")
    import torch
    from torchvision.models import get_model

    torch.save(get_model("resnet18", weights=None).state_dict(), tmp_path / "weights.pth")
    leaves = schema_leaves()
    assert len(leaves) > 40
    assert rerun_mismatches(workdir, rule_graph, tmp_path, leaves) == []
    # Run-only settings: how many workers and threads, never what comes out.
    run_only = {f"{section}.{key}" for section, key, leaf in leaves if leaf["x-reruns"] == []}
    assert {"model.num_workers", "model.threads", "tsne.threads"} <= run_only


def test_a_wrong_declaration_is_reported(finished_run, rule_graph, tmp_path):
    """The check above can fail: declared to rerun nothing, scatter.dpi is reported, with what it does rerun."""
    workdir, _ = finished_run
    dpi = {**schema_leaves_by_name()["scatter.dpi"], "x-reruns": []}
    [mismatch] = rerun_mismatches(workdir, rule_graph, tmp_path, [("scatter", "dpi", dpi)])
    assert mismatch.startswith("scatter.dpi=61: planned ['all', 'scatter'], declared []")


def schema_leaves_by_name() -> dict[str, dict]:
    return {f"{section}.{key}" if key else section: leaf for section, key, leaf in schema_leaves()}
