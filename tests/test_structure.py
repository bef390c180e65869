"""The layout's promises: scripts/ shows the rules, the package owns the code, envs fit the code,
the schema is the one home of every default, and nothing edits sys.path."""

import ast
import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

import yaml

import tsne_atlas
from tsne_atlas.methods import MAP_METHODS

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "scripts" / "tsne_atlas"
METHODS_FOLDER = PACKAGE / "methods"
# Conda/pip distribution name -> the module name it is imported as.
IMPORT_NAMES = {
    "opencv-python-headless": "cv2",
    "pillow": "PIL",
    "scikit-learn": "sklearn",
    "opentsne": "openTSNE",
    "umap-learn": "umap",
}
# Stage modules: one function per rule. Figure stages read run records and import no other stage.
STAGES = {
    "compare",
    "sampling",
    "weights",
    "extraction",
    "merge",
    "preparation",
    "maps",
    "metrics",
    "metrics_plot",
    "scatter",
    "mosaic",
    "grid_mosaic",
    "overview",
    "explorer",
    "projector",
}
FIGURE_STAGES = {"metrics_plot", "scatter", "mosaic", "grid_mosaic", "overview", "explorer", "compare"}


def rule_directives() -> dict[str, dict[str, str]]:
    """Each rule's ``script`` and ``conda`` file, read from rules/*.smk (snakefmt keeps the layout fixed)."""
    rules = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule \w+:)", smk.read_text(), flags=re.M)[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            found = {
                key: re.search(rf"^    {key}:\n\s+\"\.\./([^\"]+)\"", block, flags=re.M) for key in ("script", "conda")
            }
            rules[name] = {key: m.group(1) for key, m in found.items() if m}
    return rules


def test_every_script_is_the_entry_point_of_the_rule_it_is_named_after():
    rules = rule_directives()
    assert len(rules) == 25
    scripts = {p.stem for p in (REPO / "scripts").glob("*.py")} - {"__init__"}
    assert scripts == set(rules)
    for rule, directives in rules.items():
        assert directives["script"] == f"scripts/{rule}.py", rule
        source = (REPO / directives["script"]).read_text()
        # A thin adapter: the rule's named files and params go to one package function.
        assert "run_rule(" in source and len(source.splitlines()) < 20, rule


def test_nothing_edits_sys_path():
    offenders = []
    for path in [
        *REPO.glob("*.py"),
        *REPO.glob("Snakefile"),
        *(REPO / "rules").glob("*.smk"),
        *[
            p
            for folder in ("scripts", "tests", "tools", "benchmarks")
            for p in (REPO / folder).rglob("*.py")
            # Not the benchmarks' git-ignored work folders (Snakemake writes its own job scripts there).
            if not {"work", "data", ".snakemake"} & set(p.relative_to(REPO / folder).parts[:-1])
        ],
    ]:
        text = path.read_text(encoding="utf-8")
        if re.search(r"sys\.path\.(insert|append|extend)\(|sys\.path\[[^\]]*\]\s*=|sys\.path\s*=", text):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def module_level_nodes(tree: ast.AST):
    """The nodes of a module outside its functions' bodies."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            todo.extend(ast.iter_child_nodes(node))


def imported_modules(path: Path, package_parts: tuple[str, ...], lazy: bool = True) -> set[str]:
    """Absolute names of every module ``path`` imports (at any depth of the file, lazy imports included
    unless ``lazy`` is False)."""
    names = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree) if lazy else module_level_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module
            names.add(module)
            # ``from . import x`` / ``from .files import runs``: x may be a submodule.
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def module_file(name: str) -> Path | None:
    """The source file of a tsne_atlas module (None for names that are not modules, e.g. functions)."""
    parts = name.split(".")[1:]
    for candidate in (PACKAGE.joinpath(*parts).with_suffix(".py"), PACKAGE.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(script: Path) -> set[str]:
    """Top-level third-party modules a rule script needs: its imports, following the package's own."""
    seen, todo, third_party = set(), [(script, ())], set()
    while todo:
        path, parts = todo.pop()
        # A map method imports its library inside compute, declared in its ``requires`` (checked below):
        # the figure jobs that read the declarations need none of them.
        for name in imported_modules(path, parts, lazy=METHODS_FOLDER not in path.parents):
            top = name.split(".")[0]
            if top == "tsne_atlas":
                source = module_file(name)
                if source and source not in seen:
                    seen.add(source)
                    package = source.parent.relative_to(PACKAGE.parent).parts
                    todo.append((source, package))
            elif top not in sys.stdlib_module_names and top != "snakemake":  # Snakemake's preamble brings it
                third_party.add(top)
    return third_party


def env_modules(env_file: Path) -> set[str]:
    deps = yaml.safe_load(env_file.read_text())["dependencies"]
    names = [d for d in deps if isinstance(d, str)] + [p for d in deps if isinstance(d, dict) for p in d["pip"]]
    dists = {re.split(r"[=<>]", name)[0].lower() for name in names}
    return {IMPORT_NAMES.get(dist, dist) for dist in dists}


def test_every_rules_conda_env_provides_what_its_script_imports():
    checked = 0
    for rule, directives in rule_directives().items():
        needed = third_party_imports(REPO / directives["script"])
        provided = env_modules(REPO / directives["conda"])
        if rule == "map":
            needed |= {module for method in MAP_METHODS.values() for module in method.requires}
        assert needed <= provided, f"rule {rule}: {directives['conda']} lacks {sorted(needed - provided)}"
        checked += 1
    assert checked == 25
    # The check sees through the package: extraction needs torch, map jobs (t-SNE, UMAP, PCA) never do.
    assert "torch" in third_party_imports(REPO / "scripts" / "extract_features.py")
    assert "torch" not in third_party_imports(REPO / "scripts" / "map.py")
    assert {"openTSNE", "umap"}.isdisjoint(third_party_imports(REPO / "scripts" / "scatter.py"))


def test_each_map_method_declares_the_libraries_it_imports():
    """What a method module imports inside its functions is its declared ``requires`` (so the map rule's
    environment, which provides every method's, has it); at module level it imports only what every job has."""
    light = {"numpy"}
    for name, method in MAP_METHODS.items():
        path = METHODS_FOLDER / f"{name}.py"
        parts = ("tsne_atlas", "methods")
        outside = (
            {module.split(".")[0] for module in imported_modules(path, parts)}
            - {"tsne_atlas"}
            - set(sys.stdlib_module_names)
        )
        top = {module.split(".")[0] for module in imported_modules(path, parts, lazy=False)} - {"tsne_atlas"}
        assert outside - light == set(method.requires), name
        assert top - set(sys.stdlib_module_names) <= light, name
    assert "matplotlib" not in third_party_imports(REPO / "scripts" / "embedding_metrics.py")


def package_modules():
    return [
        importlib.import_module(info.name) for info in pkgutil.walk_packages(tsne_atlas.__path__, prefix="tsne_atlas.")
    ]


def schema_leaves() -> dict[str, list[tuple[str, object]]]:
    """Each leaf key name -> [(section.key, default)] over the sections that have it."""
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    leaves: dict[str, list] = {}
    for section, spec in schema["properties"].items():
        for key, leaf in spec.get("properties", {"": spec}).items():
            name = key or section
            leaves.setdefault(name, []).append((f"{section}.{key}".strip("."), leaf.get("default")))
    return leaves


def test_no_function_default_disagrees_with_the_schema():
    """A parameter named after a setting has no default, or the schema's: the schema is the one home."""
    leaves = schema_leaves()
    checked = []
    for module in package_modules():
        for _, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ != module.__name__:
                continue
            for name, parameter in inspect.signature(function).parameters.items():
                if name not in leaves or parameter.default is inspect.Parameter.empty:
                    continue
                where = f"{module.__name__}.{function.__name__}({name}={parameter.default!r})"
                checked.append(where)
                keys = leaves[name]
                assert len(keys) == 1, f"{where}: '{name}' is a setting of {[k for k, _ in keys]}; give no default"
                assert parameter.default == keys[0][1], f"{where} disagrees with {keys[0][0]}: {keys[0][1]!r}"
    assert len(checked) >= 3  # the check looks at real functions (embed's t-SNE settings, among others)


def test_figure_stages_read_run_records_and_import_no_other_stage():
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem not in STAGES:
            continue
        imported = {
            name.split(".")[1] for name in imported_modules(path, ("tsne_atlas",)) if name.startswith("tsne_atlas.")
        }
        other_stages = (imported & STAGES) - {path.stem}
        # extraction and weights share the sources (tsne_atlas.sources), not each other.
        assert other_stages == set(), f"{path.stem} imports stage(s) {sorted(other_stages)}"
        if path.stem in FIGURE_STAGES:
            assert "files" in imported, path.stem


def test_file_layouts_live_in_files_only():
    """Stages read and write the files passed between stages only through tsne_atlas.files."""
    io_calls = re.compile(
        r"h5py\.File\(|np\.savez|np\.load\(|sp\.(save|load)_npz|csv\.(reader|writer|DictWriter)"
        r"|json\.(dumps|loads)\("
    )
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem in STAGES:
            assert not io_calls.search(path.read_text(encoding="utf-8")), path.stem
    owners = {p.stem for p in (PACKAGE / "files").glob("*.py")} - {"__init__"}
    assert owners == {
        "manifest",
        "weights_record",
        "features",
        "feature_shards",
        "map_inputs",
        "runs",
        "metrics",
        "compare",
        "suspects",
        "thumbnails",
        "explorer_page",
        "projector",
    }


def test_the_sources_registry_lists_every_source_the_schema_allows_and_agrees_with_config():
    """tsne_atlas.sources.SOURCES is the one list of the sources: every ``features.<set>.source`` the schema
    allows has a module there; the network sources have a builder, those with weights a resolver too, and
    config's lists (which key applies to which source) name the same ones."""
    from tsne_atlas import config, sources

    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    allowed = schema["properties"]["features"]["additionalProperties"]["properties"]["source"]["enum"]
    assert sorted(sources.SOURCES) == sorted(allowed)
    for name, source in sources.SOURCES.items():
        assert source.module.__name__.startswith("tsne_atlas.sources."), name
        for function in (source.build, source.resolve_weights):
            assert function is None or function.__module__ == source.module.__name__, name
    with_weights = {name for name, source in sources.SOURCES.items() if source.resolve_weights}
    networks = {name for name, source in sources.SOURCES.items() if source.build}
    assert with_weights == set(config.NETWORK_SOURCES) == set(sources.RESOLVERS)
    assert networks - with_weights == set(config.OWN_NETWORK_SOURCES)
    assert networks == set(sources.BUILDERS) and set(allowed) - networks == {"precomputed"}
