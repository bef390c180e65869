"""What a map method declares: its config section, the settings a sweep varies (its axes, in file-stem
order, a stochastic method's seed last), its display name and colour, the shared files its runs read,
the checks the schema cannot make, and how one run is computed. Everything else that knows about
methods (run names, sweep.csv columns, figure colours, the sweep, the map rule) derives from these
declarations (``methods.MAP_METHODS``).

Kept free of heavy imports: Snakemake imports the declarations on every invocation; a method imports
its library inside ``compute``.
"""

from dataclasses import dataclass
from itertools import product

import numpy as np


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
    need none of them; the map rule's environment provides them, a test holds both to it)."""

    name: str
    title: str
    colour: str
    axes: tuple[Axis, ...]
    options: tuple[str, ...] = ()
    threads_key: str | None = None
    requires: tuple[str, ...] = ()

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

    def place_neighbours(self, config: dict) -> int:
        """Nearest reference points per query point the method's placement reads (0: none)."""
        return 0

    def place(self, X, coords, Q, neighbours, settings, options, threads, shared) -> tuple[np.ndarray, dict]:
        """Q's N_q x 2 float64 coordinates on the run's map, the map unmoved, and the record's fields."""
        raise NotImplementedError

    def compute(
        self, X: np.ndarray, settings: dict, options: dict, threads: int, shared: dict
    ) -> tuple[np.ndarray, dict]:
        """One run: N x 2 float64 coordinates of the prepared input ``X`` and the record's method-specific
        fields. ``shared``: the shared files named by ``shared_inputs`` (paths)."""
        raise NotImplementedError
