"""Rule prepare_query: calls tsne_atlas.preparation.prepare_query with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.preparation import prepare_query

run_rule(snakemake, prepare_query)
