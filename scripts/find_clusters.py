"""Rule find_clusters: calls tsne_atlas.clusters.find_clusters with the rule's named input, output and params."""

from tsne_atlas.clusters import find_clusters
from tsne_atlas.jobs import run_rule

run_rule(snakemake, find_clusters)
