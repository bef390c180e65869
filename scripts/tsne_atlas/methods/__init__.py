"""The map methods, each declared once in its own module (``base.MapMethod``): ``tsne``, ``umap``,
``pca``, ``pacmap``. ``MAP_METHODS`` is the one list of them, in the order figures group them; the sweep, run
names, sweep.csv columns, figure colours and the map rule derive from it.

Adding a method: a module here declaring ``METHOD``, its entry below, its section (and its name in
``methods``) in the schema, its package pin (requirements.txt, envs/maps.yaml), tests and docs.
"""

from . import pacmap, pca, tsne, umap
from .base import Axis, MapMethod

MAP_METHODS: dict[str, MapMethod] = {
    method.name: method for method in (tsne.METHOD, umap.METHOD, pca.METHOD, pacmap.METHOD)
}

__all__ = ["MAP_METHODS", "Axis", "MapMethod"]
