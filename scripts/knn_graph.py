"""Rule knn_graph: calls tsne_atlas.preparation.knn_graph with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.preparation import knn_graph

run_rule(snakemake, knn_graph)
