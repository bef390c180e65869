"""What a map method declares: its config section, the settings a sweep varies (its axes, in file-stem
order, a stochastic method's seed last), its display name and colour, the shared files its runs read,
the checks the schema cannot make, how one run is computed, and how new (query) points are placed on a
run's map without moving it (``place``; docs/placement.md). Everything else that knows about methods
(run names, sweep.csv columns, figure colours, the sweep, the map rule) derives from these declarations
(``methods.MAP_METHODS``).

Kept free of heavy imports: Snakemake imports the declarations on every invocation; a method imports
its library inside ``compute`` and ``place``.
"""

from dataclasses import dataclass
from itertools import product

import numpy as np

from ..jobs import AtlasError


@dataclass(frozen=True)
class Axis:
    """One setting of a method's runs: ``key`` names it in run names, records and sweep.csv;
    ``config_key`` is the list in the method's config section giving its values (None: one fixed
    ``value``); ``type`` converts it; ``short`` abbreviates it in small panel titles."""

    key: str
    type: type
    short: str
    config_key: str | None = None
    value: float | int | None = None

    @property
    def fixed(self) -> bool:
        return self.config_key is None


@dataclass(frozen=True)
class MapMethod:
    """A map method. ``name``: its config name, run folder and config section; ``title``: how figures
    name it; ``colour``: its colour in plots that span methods; ``axes``: the settings of its runs;
    ``options``: keys of its section every run reads (changing one reruns the method's maps);
    ``threads_key``: the section key of a run's CPU threads (None: one thread); ``requires``: the
    third-party modules ``compute`` imports (inside it, so the figure jobs that read the declarations
    need none of them; the map rule's environment provides them, a test holds both to it);
    ``run_bytes_per_image`` and ``run_seconds_per_image``: what one run held and took per image where it
    was measured at scale (BENCHMARKS.md, "The whole workflow at 250,000 and 1,000,000 images"), from
    which the map job asks a cluster for memory and time (``resources.map_mem_mb``, ``map_runtime_min``);
    the defaults, for a method not measured at scale, keep the request every map job had before (about
    20 KB and 3 minutes per 1,000 images once the margins are applied)."""

    name: str
    title: str
    colour: str
    axes: tuple[Axis, ...]
    options: tuple[str, ...] = ()
    threads_key: str | None = None
    requires: tuple[str, ...] = ()
    run_bytes_per_image: int = 13_000
    run_seconds_per_image: float = 0.06

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(axis.key for axis in self.axes)

    @property
    def stochastic(self) -> bool:
        return "seed" in self.keys

    def axis_values(self, config: dict, axis: Axis) -> list:
        """The values of one axis in a config (sorted): the section's list, or the fixed value."""
        if axis.fixed:
            return [axis.value]
        if axis.key == "seed":
            return sorted(self.seeds(config))
        return sorted(config[self.name][axis.config_key])

    def settings(self, config: dict) -> list[dict]:
        """Every run's settings, in file-stem key order, each axis sorted (the sweep's run order)."""
        values = [self.axis_values(config, axis) for axis in self.axes]
        return [dict(zip(self.keys, combination)) for combination in product(*values)]

    def seeds(self, config: dict) -> list[int]:
        """The seeds of the method's runs in config order ([] for a deterministic method); a null list
        means t-SNE's (``tsne.seeds``, the sweep's seeds), so methods compare like with like."""
        seed = next((axis for axis in self.axes if axis.key == "seed"), None)
        if seed is None:
            return []
        seeds = config[self.name][seed.config_key]
        return list(config["tsne"]["seeds"] if seeds is None else seeds)

    def run_options(self, config: dict) -> dict:
        """The section keys every run of the method reads (a rule param: changing one reruns its maps)."""
        return {key: config[self.name][key] for key in self.options}

    def threads(self, config: dict) -> int:
        return int(config[self.name][self.threads_key]) if self.threads_key else 1

    def shared_inputs(self, config: dict, settings: dict, sweep_k: int) -> dict[str, tuple[str, float]]:
        """The shared files of the feature set a run reads beside the prepared input, by input name:
        ``("graph", k)`` (a k-NN graph; ``sweep_k``: the sweep's) or ``("affinities", perplexity)`` (t-SNE's P)."""
        return {}

    def shared_graph_neighbours(self, config: dict) -> int:
        """Neighbours the method's runs need in the sweep's shared k-NN graph when ``graph.neighbours``
        is auto (0: it needs none there, or reads a graph of its own when the sweep's is smaller)."""
        return 0

    def check(self, config: dict, n_images: int) -> None:
        """Checks of the method's settings against the sample size; raises AtlasError naming the key."""

    def warm_up(self) -> dict:
        """Work done before a run's clock starts (e.g. compiling); returns what the record says of it."""
        return {}

    def compute(
        self, X: np.ndarray, settings: dict, options: dict, threads: int, shared: dict
    ) -> tuple[np.ndarray, dict]:
        """One run: N x 2 float64 coordinates of the prepared input ``X`` and the record's method-specific
        fields. ``shared``: the shared files named by ``shared_inputs`` (paths)."""
        raise NotImplementedError

    def place_neighbours(self, settings: dict) -> int:
        """Nearest reference points per query point the placement on a run of these ``settings`` reads (0:
        none). Per run, so the place job searches only those and no other setting reaches it."""
        return 0

    def place(
        self,
        X: np.ndarray,
        coords: np.ndarray,
        Q: np.ndarray,
        neighbours: tuple[np.ndarray, np.ndarray],
        settings: dict,
        options: dict,
        threads: int,
        shared: dict,
    ) -> tuple[np.ndarray, dict]:
        """Q's N_q x 2 float64 coordinates on the run's map, the map unmoved, and the record's fields.

        ``X``: the reference's prepared input (N x d float64, what the run mapped); ``coords``: the run's
        N x 2 map as written to its TSV (repr floats, so exact), never modified; ``Q``: the query prepared
        with the reference's own z-scoring and PCA (N_q x d); ``neighbours``: (indices N_q x k int64 into
        X, euclidean distances N_q x k float64), each query's k nearest reference rows of X, ascending,
        exact, k at least ``place_neighbours``: a method reads the first columns it needs.
        ``settings``/``options``/``threads``/``shared`` exactly as ``compute`` gets them for that run.
        Deterministic: the same inputs give byte-identical output (docs/placement.md says what a placed
        point means)."""
        raise NotImplementedError(f"{self.name} cannot place new points on its maps")


def placement_neighbours(
    name: str, X: np.ndarray, coords: np.ndarray, Q: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` columns of a query's neighbours (C-contiguous), after the checks every ``place``
    makes of its inputs; raises AtlasError saying which of them disagree and what to rerun."""
    if coords.shape != (len(X), 2):
        raise AtlasError(
            f"{name}: the run's map holds {coords.shape[0]} points but the prepared input {len(X)}: the run and "
            f"the prepared input disagree; delete the run's map and rerun"
        )
    if Q.ndim != 2 or Q.shape[1] != X.shape[1]:
        raise AtlasError(
            f"{name}: the query's prepared input has {Q.shape[-1]} dimensions, the reference's {X.shape[1]}: it "
            f"was not prepared with the reference's preparation; delete it and rerun"
        )
    indices, distances = neighbours
    if indices.shape != distances.shape or len(indices) != len(Q) or indices.shape[1] < k:
        raise AtlasError(
            f"{name}: the query's neighbours are {indices.shape[0]} x {indices.shape[1]} for {len(Q)} query "
            f"points, placement needs {k} per point; delete them and rerun"
        )
    if k and len(indices) and (indices[:, :k].min() < 0 or indices[:, :k].max() >= len(X)):
        raise AtlasError(
            f"{name}: the query's neighbours point outside the reference's {len(X)} points: they were found in "
            f"another reference; delete them and rerun"
        )
    return np.ascontiguousarray(indices[:, :k], dtype=np.int64), np.ascontiguousarray(distances[:, :k], np.float64)
