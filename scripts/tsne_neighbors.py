"""Rule tsne_neighbors: calls tsne_atlas.preparation.tsne_neighbors with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.preparation import tsne_neighbors

run_rule(snakemake, tsne_neighbors)
