"""Rule grid_mosaic: calls tsne_atlas.grid_mosaic.grid_mosaic with the rule's named input, output and params."""

from tsne_atlas.grid_mosaic import grid_mosaic
from tsne_atlas.jobs import run_rule

run_rule(snakemake, grid_mosaic)
