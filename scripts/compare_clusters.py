"""Rule compare_clusters: calls tsne_atlas.cluster_compare.compare_clusters with the rule's named input, output and params."""

from tsne_atlas.cluster_compare import compare_clusters
from tsne_atlas.jobs import run_rule

run_rule(snakemake, compare_clusters)
