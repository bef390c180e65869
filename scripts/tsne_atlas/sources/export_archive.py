"""The screening of an exported archive (``source: export``) before ``torch.export.load`` reads it:
``export_refusal`` says why loading it would run more than the program's graph, or nothing.
"""

import io
import json
import re
import zipfile

import torch

# What an exported program may hold for this workflow to load it (paths inside the archive, after its
# root folder). Anything else (AOTInductor's compiled libraries above all) is refused before loading.
EXPORT_ENTRIES = re.compile(
    r"(archive_format|archive_version|byteorder|version|\.data/.*|models/[^/]+\.json|extra/.*"
    r"|data/weights/[^/]+|data/constants/[^/]+|data/sample_inputs/[^/]+\.pt)"
)
# sympy names a shape expression may use (torch writes them as ``Symbol('s77', positive=True, integer=True)``);
# torch.export.load passes each expression to sympy.sympify, which runs it as Python.
_SYMPY_WORDS = (
    "Symbol Integer Rational Float Add Mul Pow Max Min Abs Eq Ne Lt Le Gt Ge And Or Not oo zoo nan true "
    "false True False positive negative integer nonnegative "
    "nonpositive real finite infinite even odd zero nonzero commutative precision "
    "FloorDiv ModularIndexing Where PythonMod Mod CleanDiv CeilToInt FloorToInt CeilDiv LShift RShift "
    "PowByNatural FloatPow FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator TruncToFloat TruncToInt "
    "RoundToInt RoundDecimal ToFloat Identity"
)
SYMPY_NAMES = frozenset(_SYMPY_WORDS.split())
SYMBOL_NAME = re.compile(r"[a-z]{1,3}\d+")
EXPRESSION_CHARACTERS = re.compile(r"[A-Za-z0-9_ ()+\-*/%,.'=<>!]*")
# Callables a graph node may name: operators (torch.ops.<namespace>.<op>[.<overload>]), plain arithmetic.
NODE_TARGET = re.compile(
    r"torch\.ops\.[A-Za-z]\w*\.[A-Za-z]\w*(\.[A-Za-z]\w*)?|torch\._?sym_[a-z_]+"
    r"|_operator\.(add|sub|mul|truediv|floordiv|mod|pow|neg|pos|abs|eq|ne|lt|le|gt|ge|and_|or_|xor|not_|"
    r"invert|lshift|rshift|getitem|matmul)|math\.[a-z]\w*"
)


def _json_strings(value, keys: tuple[str, ...]):
    """Every string under one of ``keys`` anywhere in a JSON document."""
    if isinstance(value, dict):
        for name, item in value.items():
            if name in keys and isinstance(item, str):
                yield name, item
            else:
                yield from _json_strings(item, keys)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item, keys)


def export_refusal(path: str) -> str | None:
    """Why torch.export.load would run more than the program's graph for this file; None when it would not.

    torch 2.14's torch.export.load (torch/export/pt2_archive/_package.py, torch/_export/serde/serialize.py)
    reads tensors as raw bytes and the program as JSON, but it also: unpickles tensor-subclass payloads
    (``use_pickle``) with torch.load with weights_only=False, opaque objects with pickle.loads and custom
    objects with TorchScript's unpickler; retries sample inputs and legacy weights with
    torch.load with weights_only=False when weights_only=True fails; loads AOTInductor shared libraries
    found in the archive; and passes every shape expression to sympy.sympify, which evaluates it as
    Python. So those are checked here first, and a program calling anything but operators is refused.
    """
    with zipfile.ZipFile(path) as archive:
        if len({name.split("/", 1)[0] for name in archive.namelist()}) != 1 or not all(
            "/" in name for name in archive.namelist()
        ):
            return "its entries are not all in one folder, as torch.export.save writes them"
        names = {name.split("/", 1)[1]: name for name in archive.namelist()}
        unexpected = sorted(
            name for name in names if name and not name.endswith("/") and not EXPORT_ENTRIES.fullmatch(name)
        )
        if unexpected:
            return f"it holds {unexpected[0]}, which is not part of a plain exported program (compiled code?)"
        models = [name[len("models/") : -len(".json")] for name in names if name.startswith("models/")]
        if not models:
            return "it holds no exported program"
        for model in models:
            if f"data/weights/{model}.pt" in names or f"data/constants/{model}.pt" in names:
                return "it uses the legacy weights format, which is unpickled; save it again with this torch"
            for config in (
                f"data/weights/{model}_weights_config.json",
                f"data/constants/{model}_constants_config.json",
            ):
                entries = json.loads(archive.read(names[config])).get("config", {}) if config in names else {}
                for name, entry in entries.items():
                    if entry.get("use_pickle") or not str(entry.get("path_name", "")).startswith(
                        ("weight_", "tensor_")
                    ):
                        return f"'{name}' is a pickled object (tensor subclass or custom object), not a plain tensor"
            sample = names.get(f"data/sample_inputs/{model}.pt")
            if sample:
                buffer = io.BytesIO(archive.read(sample))
                try:
                    torch.load(buffer, weights_only=True)
                except Exception:
                    return "its sample inputs are not plain tensors (torch.export.load would unpickle them)"
            text = archive.read(names[f"models/{model}.json"]).decode("utf-8")
            if "default_factory_module" in text or '"__enum__"' in text:
                return "its input or output structure names a Python module to import"
            program = json.loads(text)
            for _, expression in _json_strings(program, ("expr_str",)):
                words = set(re.findall(r"[A-Za-z_]\w*", expression))
                odd = sorted(w for w in words if w not in SYMPY_NAMES and not SYMBOL_NAME.fullmatch(w))
                if odd or not EXPRESSION_CHARACTERS.fullmatch(expression):
                    return f"a shape expression is not a plain sympy expression ({expression[:60]!r})"
            for _, target in _json_strings(program, ("target",)):
                if not NODE_TARGET.fullmatch(target) or "__" in target:
                    return f"a node calls '{target[:80]}', which is not an operator"
    return None
