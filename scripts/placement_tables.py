"""Rule placement_tables: calls tsne_atlas.placement.placement_tables with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.placement import placement_tables

run_rule(snakemake, placement_tables)
