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
from .files.map_inputs import read_input, read_map_input, read_neighbours
from .files.runs import input_provenance, read_embedding, read_meta, run_label, write_run
from .jobs import AtlasError
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


def place_query(
    features: str,
    prepared: str,
    embedding: str,
    meta: str,
    query_features: str,
    query_prepared: str,
    query_neighbours: str,
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
    and its nearest reference images. Writes the query's coordinates in a run's format (``files.runs``)
    with a record naming the run it was placed on."""
    declared = MAP_METHODS[method]
    data, X, _ = read_map_input(features, node, prepared)
    paths, coords = read_embedding(embedding)
    if paths != list(data["paths"]):
        raise AtlasError(f"{embedding} lists other images than {features}; delete {embedding} and rerun")
    run = read_meta(meta)
    query_paths = list(read_features(query_features, node, with_features=False)["paths"])
    Q, _ = read_input(query_prepared)
    indices, distances = read_neighbours(query_neighbours)
    if not len(Q) == len(query_paths) == len(indices):
        raise AtlasError(
            f"{query_prepared} ({len(Q)} rows), {query_neighbours} ({len(indices)}) and {query_features} "
            f"({len(query_paths)} images) disagree; delete the first two and rerun"
        )
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
