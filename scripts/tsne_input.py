"""Rule tsne_input: calls tsne_atlas.preparation.tsne_input with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.preparation import tsne_input

run_rule(snakemake, tsne_input)
