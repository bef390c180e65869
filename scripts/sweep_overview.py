"""Rule sweep_overview: calls tsne_atlas.overview.sweep_overview with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.overview import sweep_overview

run_rule(snakemake, sweep_overview)
