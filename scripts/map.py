"""Rule map: calls tsne_atlas.maps.run_map with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.maps import run_map

run_rule(snakemake, run_map)
