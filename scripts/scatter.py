"""Rule scatter: calls tsne_atlas.scatter.scatter with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.scatter import scatter

run_rule(snakemake, scatter)
