"""Rule fetch_weights: calls tsne_atlas.weights.fetch_weights with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.weights import fetch_weights

run_rule(snakemake, fetch_weights)
