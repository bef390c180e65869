"""The project's own promises: documented config keys, consistent pins, demo data."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def schema_keys(schema: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, spec in schema.get("properties", {}).items():
        if spec.get("type") == "object" and "properties" in spec:
            keys += schema_keys(spec, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_every_config_key_is_documented_in_the_readme():
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    readme = (REPO / "README.md").read_text()
    documented = set(re.findall(r"^\| `([\w.]+)` \|", readme, flags=re.M))
    keys = set(schema_keys(schema))
    assert len(keys) > 25
    assert keys <= documented, f"undocumented: {sorted(keys - documented)}"


def test_conda_envs_pin_what_requirements_pin():
    pins = dict(
        line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    pins = {name.lower(): version for name, version in pins.items()}
    for env in (REPO / "envs").glob("*.yaml"):
        deps = yaml.safe_load(env.read_text())["dependencies"]
        pip = next(d["pip"] for d in deps if isinstance(d, dict))
        for requirement in pip:
            name, version = requirement.split("==")
            assert pins.get(name.lower()) == version, f"{env.name}: {requirement} vs requirements.txt"
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_demo_data_is_100_pngs_per_class():
    root = REPO / "resources" / "animal-mnist"
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert classes == ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
    assert all(len(list((root / c).glob("*.png"))) == 100 for c in classes)
    assert (root / "LICENSE").read_text().startswith("MIT License")


def test_every_test_named_in_the_reliability_table_exists():
    table = (REPO / "docs" / "reliability.md").read_text()
    named = set(re.findall(r"`(test_\w+\.py)::(test_\w+)`", table))
    assert len(named) > 25
    for file, function in sorted(named):
        source = (REPO / "tests" / file).read_text()
        assert re.search(rf"^def {function}\(", source, flags=re.M), f"{file}::{function} is not a test"
    for file in set(re.findall(r"`(test_\w+\.py)`", table)):
        assert (REPO / "tests" / file).exists(), file


def test_benchmark_scripts_start_and_stay_out_of_the_test_run():
    """Benchmarks are not tests (nothing timed runs in `make test`), but they must not rot:
    each script parses its options, and its imports of the project's modules still resolve."""
    import subprocess
    import sys

    scripts = sorted((REPO / "benchmarks").glob("*.py"))
    assert {p.name for p in scripts} >= {"extraction.py", "sweep.py", "overhead.py", "scale.py", "datasets.py"}
    for script in scripts:
        if script.name in ("common.py",):
            continue
        result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                                cwd=REPO, timeout=120)
        assert result.returncode == 0 and "usage:" in result.stdout, script.name + result.stderr[-500:]
    result = subprocess.run(["bash", "-n", str(REPO / "benchmarks" / "gpu.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    gitignore = (REPO / ".gitignore").read_text().splitlines()
    assert "benchmarks/data/" in gitignore and "benchmarks/work/" in gitignore


def reliability_rows() -> list[tuple[str, str, str, list[tuple[str, str]]]]:
    """(section, case, outcome, tests) for every row of the tables in docs/reliability.md; 'same' is the row above's tests."""
    rows, previous, section = [], [], ""
    for line in (REPO / "docs" / "reliability.md").read_text().splitlines():
        section = line[3:] if line.startswith("## ") else section
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or cells[0] in ("case", "---"):
            continue
        named = re.findall(r"`(test_\w+\.py)(?:::(test_\w+))?`", cells[2])
        tests = previous if cells[2].startswith("same") and not named else named
        rows.append((section, cells[0], cells[1], tests))
        previous = tests
    return rows


def source_of(file: str, function: str) -> str:
    """A test function's source, decorators (parametrised cases) included, and its module's constants."""
    import ast

    source = (REPO / "tests" / file).read_text()
    lines = source.splitlines()
    parts = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            parts.append("\n".join(lines[first - 1 : node.end_lineno]))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            parts.append("\n".join(lines[node.lineno - 1 : node.end_lineno]))
    return "\n".join(parts)


def test_every_reliability_row_names_a_test_that_checks_its_message():
    """Each row names at least one test; where a row quotes what the user sees (`...` or "..."), the
    first stretch of the quotation between elisions (… or <placeholder>) appears in a named test
    (or its module's constants)."""
    rows = reliability_rows()
    assert len(rows) > 35
    for section, case, outcome, tests in rows:
        if outcome.startswith("Snakemake's own"):
            continue  # malformed YAML: Snakemake's message, not ours
        assert tests, f"no test named for: {case}"
        if section == "Security":
            continue  # its quotations are code (torch.load(...)), not messages
        sources = " ".join(source_of(f, t) for f, t in tests if t).replace("\\", "")
        sources = re.sub(r"\"\s*\n\s*[rf]?\"", "", sources)  # adjacent string literals, as Python joins them
        for quoted in re.findall(r"`([^`]+)`|\"([^\"]+)\"", outcome):
            pieces = [p.strip(" '(:;") for p in re.split(r"…|<\w+>", quoted[0] or quoted[1])]
            text = next((p for p in pieces if len(p) >= 12 and " " in p), None)
            if text and not text.startswith("snakemake "):  # commands the user runs are not messages
                assert text in sources, f"{case}: '{text}' is not in {tests}"
