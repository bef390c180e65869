"""The layers of a finished comparison as one Markdown table (``tools/layers_table.py``).

Read from ``compare/metrics.csv`` and ``compare/cka.csv`` only. The feature sets are grouped into
networks by their id: ``<set>.<node>`` is node ``<node>`` of config set ``<set>`` (set names hold no
dot; node names may), an id without a dot a network of one layer. Networks and their layers keep the
order of ``cka.csv``, which is the config's: a set's nodes as its ``nodes`` lists them, which the
compare-layers preset lists from shallow to deep. Per layer:

- k-NN label accuracy in the feature space (``knn_accuracy_features``: leave-one-out, on the features
  every map was given, z-scored and PCA-reduced; one value per set, the same in each of its runs);
- k-NN label accuracy in 2-D (``knn_accuracy_2d``), the mean over that set's runs of each method (a
  column per method; the line under the table lists the runs' settings);
- linear CKA to the next deeper layer of the same network, and to its deepest layer.

k is the run's ``metrics.knn_k`` (5 by default). Under the table, one verdict per network:

- **separability rises with depth**, in the features and in 2-D (each method): *yes* when no layer's
  accuracy is below the layer before it (ties allowed) and the deepest layer's is above the
  shallowest's; otherwise *no*, naming each step where it falls.
- **CKA adjacent > distant**: the mean linear CKA over the pairs of layers next to each other (depth
  positions i, i+1) against the mean over the pairs two or more apart; *yes* when the first is larger.
  Needs three layers or more (else n/a).
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files.compare import read_cka_table, read_compare_table
from .files.metrics import SETTING_FIELDS, SWEEP_FIELDS
from .files.runs import METHOD_NAMES, METHODS
from .jobs import AtlasError

# An empty cell: no deeper layer, or no value.
DASH = "–"


@dataclass
class Layer:
    feature_set: str  # the id in the CSVs
    network: str
    layer: str
    knn_features: float | None
    knn_2d: dict[str, float | None]  # method -> mean over its runs


def split_id(feature_set: str) -> tuple[str, str]:
    """``<set>.<node>`` -> (set, node); an id without a dot is a one-layer network (node '')."""
    network, _, node = feature_set.partition(".")
    return network, node


def _number(value: str | None, where: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise AtlasError(f"{where}: {value!r} is not a number; delete compare/metrics.csv and rerun") from None


def _mean(values: list[float | None]) -> float | None:
    """The mean, or None when any value is None (unlabelled images have no label accuracy)."""
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


def layers(rows: list[dict], ids: list[str]) -> list[Layer]:
    """One ``Layer`` per feature set of ``ids`` (cka.csv's order), from the metrics rows (metrics.csv)."""
    found = {r["features"] for r in rows}
    if found != set(ids):
        raise AtlasError(
            f"compare/metrics.csv has feature sets {sorted(found)}, compare/cka.csv {sorted(ids)}: not one "
            "comparison; delete compare/ and rerun the workflow"
        )
    out = []
    for set_id in ids:
        mine = [r for r in rows if r["features"] == set_id]
        where = f"compare/metrics.csv, feature set {set_id!r}"
        features = _mean([_number(r["knn_accuracy_features"], where) for r in mine])
        by_method = {
            method: _mean([_number(r["knn_accuracy_2d"], where) for r in mine if r["method"] == method])
            for method in methods_of(rows)
        }
        out.append(Layer(set_id, *split_id(set_id), features, by_method))
    return out


def methods_of(rows: list[dict]) -> list[str]:
    """The methods of the rows, in the workflow's order of methods."""
    return [m for m in METHODS if any(r["method"] == m for r in rows)]


def runs_text(rows: list[dict]) -> str:
    """Which runs the 2-D means are over, per method: e.g. 't-SNE: perplexity 10, 30; seed 0'."""
    parts = []
    for method in methods_of(rows):
        mine = [r for r in rows if r["method"] == method]
        settings = []
        for key in [f for f in SWEEP_FIELDS if f in SETTING_FIELDS]:  # the table's order
            values = {r.get(key) for r in mine} - {None}
            if values:
                ordered = sorted(float(v) for v in values)
                settings.append(f"{key.replace('_', ' ')} {', '.join(f'{v:g}' for v in ordered)}")
        parts.append(f"{METHOD_NAMES[method]}: {'; '.join(settings) or 'one run'}")
    return " · ".join(parts)


def rises(values: list[float | None], names: list[str]) -> str:
    """'yes' when no value is below the one before it and the last is above the first; else 'no' and
    where it falls; 'n/a' for fewer than two layers or a missing value."""
    if len(values) < 2 or any(v is None for v in values):
        return "n/a"
    falls = [f"{names[i]} → {names[i + 1]}" for i in range(len(values) - 1) if values[i + 1] < values[i]]
    if falls:
        return "no (falls " + ", ".join(falls) + ")"
    return "yes" if values[-1] > values[0] else "no (deepest not above shallowest)"


def adjacent_vs_distant(cka: np.ndarray) -> tuple[float, float] | None:
    """(mean CKA of pairs one apart, mean CKA of pairs two or more apart) of an L x L matrix in depth
    order; None for fewer than three layers."""
    n = len(cka)
    if n < 3:
        return None
    adjacent = [cka[i, i + 1] for i in range(n - 1)]
    distant = [cka[i, j] for i in range(n) for j in range(i + 2, n)]
    return float(np.mean(adjacent)), float(np.mean(distant))


def _cell(value: float | None, digits: int) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def layers_table(metrics_csv: str | os.PathLike, cka_csv: str | os.PathLike) -> str:
    """The table and verdicts (Markdown) of a finished comparison's metrics.csv and cka.csv."""
    rows = read_compare_table(metrics_csv)
    ids, cka = read_cka_table(cka_csv)
    table = layers(rows, ids)
    methods = methods_of(rows)
    position = {set_id: i for i, set_id in enumerate(ids)}
    networks = list(dict.fromkeys(layer.network for layer in table))
    head = [
        "network",
        "layer",
        "k-NN acc., features",
        *(f"k-NN acc., 2-D {METHOD_NAMES[m]}" for m in methods),
        "CKA to next deeper layer",
        "CKA to deepest layer",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    verdicts = []
    for network in networks:
        mine = [layer for layer in table if layer.network == network]
        at = [position[layer.feature_set] for layer in mine]
        sub = cka[np.ix_(at, at)]
        for i, layer in enumerate(mine):
            deeper = _cell(sub[i, i + 1], 2) if i + 1 < len(mine) else DASH
            deepest = _cell(sub[i, -1], 2) if i + 1 < len(mine) else DASH
            cells = [
                network,
                layer.layer or DASH,
                _cell(layer.knn_features, 3),
                *(_cell(layer.knn_2d[m], 3) for m in methods),
                deeper,
                deepest,
            ]
            lines.append("| " + " | ".join(cells) + " |")
        names = [layer.layer or layer.feature_set for layer in mine]
        separability = [f"features {rises([layer.knn_features for layer in mine], names)}"]
        separability += [f"2-D {METHOD_NAMES[m]} {rises([layer.knn_2d[m] for layer in mine], names)}" for m in methods]
        pairs = adjacent_vs_distant(sub)
        if pairs is None:
            cka_verdict = "n/a (fewer than three layers)"
        else:
            word = "yes" if pairs[0] > pairs[1] else "no"
            cka_verdict = f"{word} (adjacent {pairs[0]:.2f}, two or more apart {pairs[1]:.2f})"
        verdicts.append(
            f"- **{network}**: separability rises with depth: {'; '.join(separability)}. "
            f"CKA adjacent > distant: {cka_verdict}."
        )
    runs = runs_text(rows)
    note = f"2-D: the mean over each layer's runs ({runs})." if runs else ""
    return "\n".join([*lines, "", *verdicts, "", note]).rstrip() + "\n"


def main(argv: list[str]) -> int:
    """``layers_table.py RESULTS``: print the table of RESULTS/compare/{metrics,cka}.csv."""
    if len(argv) != 1:
        print(
            "usage: tools/layers_table.py RESULTS  (a finished run's results folder, e.g. results/compare-layers)",
            file=sys.stderr,
        )
        return 2
    compare = Path(argv[0]) / "compare"
    try:
        print(layers_table(compare / "metrics.csv", compare / "cka.csv"), end="")
    except AtlasError as err:
        print(f"tsne-atlas: {err}", file=sys.stderr)
        return 1
    return 0
