"""Stage map: one run of the sweep, of any method (rule map; the methods are declared in ``methods``).

Every method maps the same prepared input (``preparation``); this module reads it, starts the clock
after the method's warm-up, calls the method's ``compute`` and writes the run's record
(``files.runs``): a TSV of coordinates and a JSON sidecar with the run's method, settings, runtime,
the method's own figures (t-SNE's KL divergence, PCA's explained variance) and the provenance
copied from the features file. Free of torch imports: map jobs start fast and run anywhere.
"""

import logging
import time

from .files.map_inputs import read_map_input
from .files.runs import input_provenance, run_label, write_run
from .methods import MAP_METHODS

LOGGER = logging.getLogger("tsne_atlas.maps")


def run_map(
    features: str,
    prepared: str,
    embedding: str,
    meta: str,
    method: str,
    features_id: str,
    node: str,
    settings: dict,
    options: dict,
    threads: int,
    affinities: str | None = None,
    graph: str | None = None,
) -> dict:
    """One run: ``method`` with ``settings`` (its axes' values) and ``options`` (its section's keys every
    run reads) on the prepared input of feature set id ``features_id`` (node ``node`` of ``features``).
    ``affinities``, ``graph``: the shared files the method's declaration asks for."""
    declared = MAP_METHODS[method]
    data, X, input_attrs = read_map_input(features, node, prepared)
    shared = {name: path for name, path in (("affinities", affinities), ("graph", graph)) if path is not None}
    warm_up = declared.warm_up()
    start = time.perf_counter()
    coords, fields = declared.compute(X, dict(settings), dict(options), threads, shared)
    runtime = time.perf_counter() - start
    record = {
        "features": features_id,
        "method": method,
        **{axis.key: axis.type(settings[axis.key]) for axis in declared.axes},
        **({} if declared.stochastic else {"seed": None}),
        "kl_divergence": None,
        **fields,
        **warm_up,
        "runtime_s": round(runtime, 3),
        **input_provenance(features, data, input_attrs, len(coords)),
    }
    write_run(embedding, meta, data["paths"], coords, record)
    LOGGER.info("%s of %s in %.1f s", run_label(record), features_id, runtime)
    return record
