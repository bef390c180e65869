"""The project's own promises: generated config and docs, working links, consistent pins, demo data."""

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
            entries = spec.get("additionalProperties")
            if isinstance(entries, dict) and "properties" in entries:  # one feature set's keys
                keys += schema_keys(entries, f"{prefix}{name}.<name>.")
    return keys


def load_tool(name):
    """A module of tools/ (on pytest's pythonpath, see pyproject.toml)."""
    import importlib

    return importlib.import_module(name)


def test_config_yaml_and_the_configuration_reference_are_generated_from_the_schema():
    """One source of truth: both files are exactly what tools/config_reference.py makes of the schema."""
    reference = load_tool("config_reference")
    expected = reference.generated()
    assert set(expected) == {REPO / "config.yaml", REPO / "docs" / "configuration.md"}
    for path, text in expected.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(REPO)} is out of date: run python tools/config_reference.py"
        )
    assert reference.main(["--check"]) == 0


def test_shipped_config_holds_the_schema_defaults():
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    shipped = {}
    for section, values in config.items():
        if isinstance(values, dict):
            shipped.update({f"{section}.{key}": value for key, value in values.items()})
        else:
            shipped[section] = values
    defaults = dict(load_tool("config_reference").leaves(schema))
    # Mappings of named entries (feature sets) are left to the schema's default: a --configfile's
    # entries would be merged with the shipped ones instead of replacing them.
    entries = {
        key for key in defaults if "<name>" in key or "properties" in (defaults[key].get("additionalProperties") or {})
    }
    assert entries == {key for key in defaults if key.startswith("features")} and "features" not in config
    assert list(shipped) == [key for key in defaults if key not in entries]
    assert shipped.pop("dataset.root") == "resources/animal-mnist"
    for key, value in shipped.items():
        assert value == defaults[key]["default"], key


def test_every_config_key_is_documented_in_the_configuration_reference():
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    reference = (REPO / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([\w.<>]+)` \|", reference, flags=re.M))
    keys = set(schema_keys(schema))
    assert len(keys) > 25
    assert keys <= documented, f"undocumented: {sorted(keys - documented)}"


def markdown_links(path: Path) -> list[str]:
    """Targets of the Markdown links and images in ``path`` (code spans and blocks left out)."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_readme_is_short_and_links_every_docs_page():
    readme = REPO / "README.md"
    assert readme.stat().st_size <= 10_240, f"README.md is {readme.stat().st_size} bytes"
    linked = {(REPO / target.split("#")[0]).resolve() for target in markdown_links(readme)}
    pages = sorted((REPO / "docs").glob("*.md"))
    assert len(pages) >= 9
    for page in pages:
        assert page.resolve() in linked, f"docs/{page.name} is not linked from README.md"


def test_every_relative_link_in_the_docs_resolves():
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    checked = 0
    for file in files:
        for target in markdown_links(file):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (file.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{file.relative_to(REPO)}: broken link {target}"
            checked += 1
    assert checked > 20


def test_conda_envs_pin_what_requirements_pin():
    pins = dict(
        line.split("==")
        for line in (REPO / "requirements.txt").read_text().splitlines()
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


def test_benchmarks_stay_out_of_the_test_run_and_the_repository():
    """Benchmarks are not tests (nothing timed runs in `make test`; tests/test_benchmarks.py runs each
    one end to end at a tiny size, in a temporary folder), and what they make by default stays out of git."""
    from test_benchmarks import steps

    scripts = {p.name for p in (REPO / "benchmarks").glob("*.py")} - {"common.py"}
    assert scripts >= {"extraction.py", "layers.py", "sweep.py", "overhead.py", "scale.py", "datasets.py"}
    smoked = {name for chain in steps(Path("/tmp")).values() for name, _, _ in chain}
    assert scripts == smoked, f"benchmarks without a smoke run in tests/test_benchmarks.py: {sorted(scripts - smoked)}"
    gitignore = (REPO / ".gitignore").read_text().splitlines()
    assert "benchmarks/data/" in gitignore and "benchmarks/work/" in gitignore


def test_million_benchmark_names_every_rules_benchmark_file(monkeypatch):
    """benchmarks/million.py reports per rule from the benchmark files' paths: every rule's ``benchmark:``
    path (wildcards filled in) must give back that rule's name (a map: ``map <method>``)."""
    import importlib.util

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # its imports, as PYTHONPATH=scripts python benchmarks/...
    spec = importlib.util.spec_from_file_location("million", REPO / "benchmarks" / "million.py")
    million = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(million)
    found = 0
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for rule, path in re.findall(
            r'^(?:use )?rule (\w+)[^\n]*\n(?:(?!^(?:use )?rule )[^\n]*\n)*?\s+benchmark:\s*\n\s+f?"([^"]+)"',
            smk.read_text(),
            re.M,
        ):
            if "/query/" in path:
                continue  # the query set's jobs: not part of the million run
            filled = path.split("benchmarks/", 1)[1].replace("{RUN}", "s/tsne/perplexity-30_seed-0")
            filled = re.sub(r"\{+(\w+)\}+", r"x-\1", filled)
            expected = "map tsne" if rule == "map" else rule
            assert million.rule_of(Path(filled)) == expected, (smk.name, rule, path)
            found += 1
    assert found >= 20


def reliability_rows() -> list[tuple[str, str, str, list[tuple[str, str]]]]:
    """(section, case, outcome, tests) for every row of the tables in docs/reliability.md; 'same' is the row above's tests."""
    rows, previous, section = [], [], ""
    for line in (REPO / "docs" / "reliability.md").read_text().splitlines():
        section = line[3:] if line.startswith("## ") else section
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or cells[0] in ("case", "---"):
            continue
        named = re.findall(r"`(test_\w+\.py)(?:::(test_\w+))?`", cells[2])
        # "same" is the row above's tests; "same, and X" those and X.
        tests = [*previous, *named] if cells[2].startswith("same") else named
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


def quoted_texts(outcome: str) -> list[tuple[str, bool]]:
    """What a row's outcome quotes (`...` or "..."): for each quotation, the text a named test must hold and
    whether it is a message. A message's text is the first stretch between elisions (… or <placeholder>)
    of at least 12 characters with a space; any other quotation (a value: a file name, a number, an
    assertion) stands for its longest stretch, if that has 3 characters or more."""
    texts = []
    for quoted in re.findall(r"`([^`]+)`|\"([^\"]+)\"", outcome):
        pieces = [p.strip(" '(:;") for p in re.split(r"…|<\w+>", quoted[0] or quoted[1])]
        message = next((p for p in pieces if len(p) >= 12 and " " in p), None)
        if message:
            texts.append((message, True))
        elif len(value := max(pieces, key=len)) >= 3:
            texts.append((value, False))
    return texts


def test_every_reliability_row_names_a_test_that_checks_its_message():
    """Each row names at least one test and quotes (`...` or "...") the message or value that test asserts:
    every message a row quotes appears in a named test (or its module's constants), and every row quotes at
    least one message or value that does."""
    rows = reliability_rows()
    assert len(rows) > 35
    for section, case, outcome, tests in rows:
        if outcome.startswith("Snakemake's own"):
            continue  # malformed YAML: Snakemake's message, not ours
        assert tests, f"no test named for: {case}"
        sources = " ".join(source_of(f, t) for f, t in tests if t).replace("\\", "")
        sources = re.sub(r"\"\s*\n\s*[rf]?\"", "", sources)  # adjacent string literals, as Python joins them
        texts = quoted_texts(outcome)
        assert any(text in sources for text, _ in texts), (
            f'{case}: quotes no message or value that {tests} assert; quote what the test checks, in `...` or "..."'
        )
        if section == "Security":
            continue  # its other quotations are code (torch.load(...)), not messages
        for text, message in texts:
            if message and not text.startswith("snakemake "):  # commands the user runs are not messages
                assert text in sources, f"{case}: '{text}' is not in {tests}"
