"""The layout's promises: scripts/ shows the rules, the package owns the code, envs fit the code,
the schema is the one home of every default, and nothing edits sys.path."""

import ast
import importlib
import inspect
import json
import pkgutil
import re
import sys
import textwrap
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
# The schema: the one home of every setting's default.
SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
NO_DEFAULT = object()


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


def rule_stage_functions() -> dict[str, tuple[str, str]]:
    """Each rule -> (package module, function) of the stage it runs: the function its script hands to
    ``run_rule``, imported by the script's ``from tsne_atlas.<module> import <function>`` line."""
    stages = {}
    for rule, directives in rule_directives().items():
        text = (REPO / directives["script"]).read_text(encoding="utf-8")
        function = re.search(r"run_rule\(snakemake, (\w+)", text).group(1)
        module = re.search(rf"^from tsne_atlas\.([\w.]+) import .*\b{function}\b", text, flags=re.M).group(1)
        stages[rule] = (module, function)
    return stages


# Stage modules: the modules whose functions the rules run (one function per rule), read from the
# rules. Figure stages read run records; no stage imports another.
STAGES = {module for module, _ in rule_stage_functions().values()}
FIGURE_STAGES = {
    "metrics_plot",
    "query_figure",
    "scatter",
    "mosaic",
    "grid_mosaic",
    "overview",
    "explorer",
    "compare",
    "suspects_figure",
    "quality_figure",
}


# The stages that use another's code: the explorer colours points by the suspects' label
# disagreement, suspects.label_disagreement, a pure numpy function of the k-NN graph (no file, no job);
# the clusters' comparison figure shares the comparison's heatmap text colour, note wrapping and set check;
# the query set's placement tables find near copies with the suspects' unit rows and chunked cosines; a
# placement finds each query image's nearest reference images with the preparation's exact search.
SHARED_STAGE_FUNCTIONS = {
    "explorer": {"suspects"},
    "cluster_compare": {"compare"},
    "placement": {"suspects"},
    "maps": {"preparation"},
}


def test_the_stages_are_read_from_the_rules():
    """STAGES is derived: a new rule's module is held to the stage rules below with no list to edit."""
    assert {"suspects", "suspects_figure", "thumbnails", "sampling", "maps", "weights"} <= STAGES
    assert FIGURE_STAGES <= STAGES
    for module in STAGES:
        assert (PACKAGE / f"{module}.py").is_file(), f"stage module tsne_atlas.{module} is not a top-level file"


def test_every_script_is_the_entry_point_of_the_rule_it_is_named_after():
    rules = rule_directives()
    assert len(rules) == 35
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
        if rule in ("map", "place_query"):
            needed |= {module for method in MAP_METHODS.values() for module in method.requires}
        assert needed <= provided, f"rule {rule}: {directives['conda']} lacks {sorted(needed - provided)}"
        checked += 1
    assert checked == 35
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


def nested_settings(spec: dict) -> dict[str, dict]:
    """The settings one level below ``spec``: its properties, and ``<name>`` for a section of named
    entries (``features``: its additionalProperties)."""
    nested = dict(spec.get("properties", {}))
    per_name = spec.get("additionalProperties")
    if isinstance(per_name, dict) and "properties" in per_name:
        nested["<name>"] = per_name
    return nested


def schema_settings(spec: dict = SCHEMA, prefix: str = "") -> dict[str, object]:
    """Every setting of the schema at every level -> its default (NO_DEFAULT where it has none): the
    sections' keys (``tsne.perplexities``), top-level keys (``methods``) and each feature set's keys
    (``features.<name>.input_size``, from the section's additionalProperties)."""
    found = {}
    for key, child in nested_settings(spec).items():
        if nested_settings(child):
            found.update(schema_settings(child, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = child.get("default", NO_DEFAULT)
    return found


def leaf_name(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def as_schema_value(value):
    """A Python default as YAML would hold it (tuples are lists), to compare with the schema's."""
    if isinstance(value, (tuple, list)):
        return [as_schema_value(item) for item in value]
    return value


# Param functions of rules/common.smk that read one setting: <helper>("key") -> the section holding key.
SETTING_HELPERS = {
    "set_setting": "features.<name>",
    "network_setting": "extraction",
    "manifest_setting": "dataset",
}


def rule_settings() -> dict[str, dict[str, str]]:
    """Each rule -> {param: the setting it carries}, read from the rule's ``params:`` block: a param
    whose value is ``config["section"]["key"]`` or one of SETTING_HELPERS' ``helper("key")``."""
    found = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule \w+:)", smk.read_text(), flags=re.M)[1:]:
            rule = re.match(r"rule (\w+):", block).group(1)
            params = re.search(r"^    params:\n((?:        .*\n|\s*\n)*)", block, flags=re.M)
            found[rule] = {}
            for line in params.group(1).splitlines() if params else []:
                param = re.match(r"        (\w+)=(.*)", line)
                if not param:
                    continue
                name, value = param.groups()
                reads = re.findall(r'config\["(\w+)"\]\["(\w+)"\]', value)
                helpers = re.findall(r'(\w+_setting)\("(\w+)"\)', value)
                assert len(reads) + len(helpers) <= 1, f"rule {rule}: param {name} reads several settings: {value}"
                assert "config[" not in value or reads, f"rule {rule}: param {name} reads config unlike the others"
                assert all(helper in SETTING_HELPERS for helper, _ in helpers), f"rule {rule}: {value}"
                if reads:
                    found[rule][name] = ".".join(reads[0])
                elif helpers:
                    found[rule][name] = f"{SETTING_HELPERS[helpers[0][0]]}.{helpers[0][1]}"
    return found


def test_every_rule_param_that_carries_a_setting_is_named_as_its_key():
    """``trustworthiness_k=config["metrics"]["trustworthiness_k"]``, never ``trust_k=``: the param, and so
    the stage function's parameter it fills, has the setting's name, which the checks below follow."""
    settings = schema_settings()
    carried = 0
    for rule, params in rule_settings().items():
        for param, key in params.items():
            assert key in settings, f"rule {rule}: param {param} reads {key}, which the schema does not have"
            assert param == leaf_name(key), (
                f"rule {rule}: param '{param}' carries {key}; name it '{leaf_name(key)}' (and the parameter of the "
                f"stage function it fills)"
            )
            carried += 1
    assert carried >= 60  # the parse sees the rules' params (and the helpers' per-set and extraction keys)
    assert rule_settings()["fetch_weights"]["init_seed"] == "features.<name>.init_seed"


def module_of(function) -> object:
    return importlib.import_module(function.__module__)


def local_imports(function) -> dict[str, object]:
    """The names a function imports in its body (``from .files.manifest import read_images``)."""
    names = {}
    package = function.__module__.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            module = importlib.import_module(base, package if node.level else None)
            for alias in node.names:
                target = getattr(module, alias.name, None)
                if target is None:
                    target = importlib.import_module(f"{module.__name__}.{alias.name}")
                names[alias.asname or alias.name] = target
    return names


def settings_passed_on(function, carried: dict[str, str]):
    """(callee, its parameter, setting) for each call in ``function``'s body that hands one of the
    ``carried`` parameters (parameter -> the setting it holds) on as it is to a tsne_atlas function."""
    scope = {**vars(module_of(function)), **local_imports(function)}
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name):
            callee = scope.get(node.func.id)
        elif isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            callee = getattr(scope.get(node.func.value.id), node.func.attr, None)
        else:
            continue
        if not inspect.isfunction(callee) or not callee.__module__.startswith("tsne_atlas."):
            continue
        parameters = list(inspect.signature(callee).parameters)
        for index, argument in enumerate(node.args):
            if isinstance(argument, ast.Starred):
                break
            if isinstance(argument, ast.Name) and argument.id in carried and index < len(parameters):
                yield callee, parameters[index], carried[argument.id]
        for keyword in node.keywords:
            if keyword.arg and isinstance(keyword.value, ast.Name) and keyword.value.id in carried:
                yield callee, keyword.arg, carried[keyword.value.id]


def test_each_setting_reaches_its_functions_with_the_schemas_default_or_none():
    """Follow every setting a rule passes, from the rule's stage function (its parameter of the same name)
    down every tsne_atlas function it is handed to as it is: wherever the parameter receiving it has a
    default (other than None for "off"), that default is the schema's, and it is named as the setting
    (so the name check below sees it too)."""
    settings = schema_settings()
    stages = rule_stage_functions()
    followed, todo, seen = [], [], set()
    for rule, params in rule_settings().items():
        module, name = stages[rule]
        function = getattr(importlib.import_module(f"tsne_atlas.{module}"), name)
        for param, key in params.items():
            assert param in inspect.signature(function).parameters, f"rule {rule}: {name}() takes no '{param}'"
            todo.append((function, param, key))
    while todo:
        function, param, key = todo.pop()
        if (function, param) in seen:
            continue
        seen.add((function, param))
        where = f"{function.__module__}.{function.__name__}({param})"
        followed.append(where)
        default = inspect.signature(function).parameters[param].default
        # None on a parameter of another name is "off" (``load_rgb(at_least=None)``), not a setting's value.
        if default is not inspect.Parameter.empty and not (default is None and param != leaf_name(key)):
            assert param == leaf_name(key), f"{where} receives {key} and has a default: name it '{leaf_name(key)}'"
            if settings[key] is NO_DEFAULT:  # a key the user must give (dataset.root): None is "not given"
                assert default is None, f"{where}={default!r}: {key} has no default in the schema; give none here"
            else:
                assert as_schema_value(default) == settings[key], (
                    f"{where}={default!r} disagrees with the schema's {key}: {settings[key]!r}"
                )
        todo.extend(settings_passed_on(function, {param: key}))
    # The walk goes past the stage functions: metrics' ks reach embedding_metrics, the suspects'
    # neighbours and threshold reach suspect_tables, the sample's seed reaches sample_manifest.
    for inner in (
        "tsne_atlas.metrics.embedding_metrics(trustworthiness_k)",
        "tsne_atlas.suspects.suspect_tables(near_duplicate_cosine)",
        "tsne_atlas.sampling.sample_manifest(seed)",
        "tsne_atlas.sampling.sample_manifest(stratified)",
    ):
        assert inner in followed, inner


def test_no_function_default_disagrees_with_the_schema():
    """A parameter named after a setting of any level (a section's key, a top-level key, a feature set's
    ``features.<name>.*`` key) has no default, or the schema's: the schema is the one home. A name that
    several settings share (``max_images``, ``thumb_size``) takes no default at all."""
    by_name: dict[str, list[tuple[str, object]]] = {}
    for key, default in schema_settings().items():
        by_name.setdefault(leaf_name(key), []).append((key, default))
    checked = []
    for module in package_modules():
        for _, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ != module.__name__:
                continue
            for name, parameter in inspect.signature(function).parameters.items():
                if name not in by_name or parameter.default is inspect.Parameter.empty:
                    continue
                where = f"{module.__name__}.{function.__name__}({name}={parameter.default!r})"
                checked.append(where)
                keys = by_name[name]
                assert len(keys) == 1, f"{where}: '{name}' is a setting of {[k for k, _ in keys]}; give no default"
                ((key, default),) = keys
                if default is NO_DEFAULT:  # an optional key: None stands for "not given"
                    assert parameter.default is None, f"{where}: {key} has no default in the schema; give none here"
                else:
                    assert as_schema_value(parameter.default) == default, f"{where} disagrees with {key}: {default!r}"
    assert len(checked) >= 3  # the check looks at real functions (embed's t-SNE settings, among others)
    # It reads every level: per-set keys are settings too.
    assert {"features.<name>.input_size", "features.<name>.mean", "methods", "tsne.bh_theta"} <= set(schema_settings())


def test_no_get_fallback_or_constant_restates_a_schema_default():
    """The config reaching the package is validated with the schema's defaults filled in (feature sets by
    config.feature_set_settings): ``d.get("layout", "folders")`` would state a default twice, and a
    module constant holding a list default (``IMAGENET_MEAN``) a second home for it."""
    defaults = {key: default for key, default in schema_settings().items() if default is not NO_DEFAULT}
    names = {leaf_name(key) for key in defaults}
    listed = {json.dumps(default): key for key, default in defaults.items() if isinstance(default, list) and default}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(PACKAGE)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and len(node.args) == 2
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in names
            ):
                offenders.append(f"{where}:{node.lineno}: .get({node.args[0].value!r}, ...) restates a default")
        for node in module_level_nodes(tree):
            if isinstance(node, ast.Assign):
                try:
                    value = json.dumps(as_schema_value(ast.literal_eval(node.value)))
                except (ValueError, TypeError, SyntaxError):
                    continue
                if value in listed:
                    offenders.append(f"{where}:{node.lineno}: a constant restates {listed[value]}'s default")
    assert not offenders, "; ".join(offenders)


def test_figure_stages_read_run_records_and_import_no_other_stage():
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem not in STAGES:
            continue
        imported = {
            name.split(".")[1] for name in imported_modules(path, ("tsne_atlas",)) if name.startswith("tsne_atlas.")
        }
        other_stages = (imported & STAGES) - {path.stem} - SHARED_STAGE_FUNCTIONS.get(path.stem, set())
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
        "clusters",
        "csv_table",
        "thumbnails",
        "explorer_page",
        "projector",
        "quality",
        "placement",
    }


def test_the_sources_registry_lists_every_source_the_schema_allows_and_agrees_with_config():
    """tsne_atlas.sources.SOURCES is the one list of the sources: every ``features.<set>.source`` the schema
    allows has a module there; the network sources have a builder, those with weights a resolver too, and
    config's lists (which key applies to which source) name the same ones."""
    from tsne_atlas import config, sources

    allowed = SCHEMA["properties"]["features"]["additionalProperties"]["properties"]["source"]["enum"]
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
