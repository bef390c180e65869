"""Rule label_query: calls tsne_atlas.sampling.label_query with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.sampling import label_query

run_rule(snakemake, label_query)
