"""Rule merge_features: calls tsne_atlas.merge.merge_features with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.merge import merge_features

run_rule(snakemake, merge_features)
