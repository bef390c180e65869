"""Rule explorer: calls tsne_atlas.explorer.explorer with the rule's named input, output and params."""

from tsne_atlas.explorer import explorer
from tsne_atlas.jobs import run_rule

run_rule(snakemake, explorer)
