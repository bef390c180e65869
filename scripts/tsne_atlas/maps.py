"""Stage map: one run of the sweep, of any method (rule map; the methods are declared in ``methods``).

Every method maps the same prepared input (``preparation``); this module reads it, starts the clock
after the method's warm-up, calls the method's ``compute`` and writes the run's record
(``files.runs``): a TSV of coordinates and a JSON sidecar with the run's method, settings, runtime,
the method's own figures (t-SNE's KL divergence, PCA's explained variance) and the provenance
copied from the features file. Free of torch imports: map jobs start fast and run anywhere.
"""

import logging
import time

from .files.features import read_features
from .files.map_inputs import read_input, read_map_input
from .files.runs import input_provenance, read_embedding, read_meta, run_label, write_run
from .jobs import AtlasError
from .methods import MAP_METHODS
from .preparation import nearest_reference

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


def place_query(
    features: str,
    prepared: str,
    embedding: str,
    meta: str,
    query_features: str,
    query_prepared: str,
    placed: str,
    placed_meta: str,
    method: str,
    features_id: str,
    node: str,
    settings: dict,
    options: dict,
    threads: int,
    affinities: str | None = None,
    graph: str | None = None,
) -> dict:
    """The query set placed on one run's map (rule place_query): the method's ``place`` with the run's
    coordinates, which it never changes, the reference's prepared input, the query prepared the same way
    and each query image's nearest reference images, as many as the method asks for this run (searched
    here, exactly: so no other setting's neighbour count reaches a placement). Writes the query's
    coordinates in a run's format (``files.runs``) with a record naming the run it was placed on."""
    declared = MAP_METHODS[method]
    data, X, _ = read_map_input(features, node, prepared)
    paths, coords = read_embedding(embedding)
    if paths != list(data["paths"]):
        raise AtlasError(f"{embedding} lists other images than {features}; delete {embedding} and rerun")
    run = read_meta(meta)
    query_paths = list(read_features(query_features, node, with_features=False)["paths"])
    Q, _ = read_input(query_prepared)
    if len(Q) != len(query_paths) or Q.shape[1] != X.shape[1]:
        raise AtlasError(
            f"{query_prepared} ({len(Q)} x {Q.shape[1]}) does not fit {query_features} ({len(query_paths)} images) "
            f"and {prepared} ({X.shape[1]} columns); delete {query_prepared} and rerun"
        )
    indices, distances = nearest_reference(X, Q, declared.place_neighbours(dict(settings)))
    shared = {name: path for name, path in (("affinities", affinities), ("graph", graph)) if path is not None}
    warm_up = declared.warm_up()
    start = time.perf_counter()
    query_coords, fields = declared.place(
        X, coords, Q, (indices, distances), dict(settings), dict(options), threads, shared
    )
    runtime = time.perf_counter() - start
    record = {
        "features": features_id,
        "method": method,
        **{axis.key: run[axis.key] for axis in declared.axes},
        "seed": run.get("seed"),
        "placed_on": str(embedding),
        "n_reference": len(X),
        "n_query": len(Q),
        **fields,
        **warm_up,
        "runtime_s": round(runtime, 3),
        "query_features_file": str(query_features),
    }
    write_run(placed, placed_meta, query_paths, query_coords, record)
    LOGGER.info("placed %d query images on %s of %s in %.1f s", len(Q), run_label(record), features_id, runtime)
    return record
