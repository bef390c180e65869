"""Rule sample_query: calls tsne_atlas.sampling.sample_query with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.sampling import sample_query

run_rule(snakemake, sample_query)
