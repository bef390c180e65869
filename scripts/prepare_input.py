"""Rule prepare_input: calls tsne_atlas.preparation.prepare_input with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.preparation import prepare_input

run_rule(snakemake, prepare_input)
