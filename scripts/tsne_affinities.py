"""Rule tsne_affinities: calls tsne_atlas.preparation.tsne_affinities with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.preparation import tsne_affinities

run_rule(snakemake, tsne_affinities)
