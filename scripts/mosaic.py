"""Rule mosaic: calls tsne_atlas.mosaic.mosaic with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.mosaic import mosaic

run_rule(snakemake, mosaic)
