"""Rule query_neighbours: calls tsne_atlas.preparation.query_neighbours with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.preparation import query_neighbours

run_rule(snakemake, query_neighbours)
