"""Rule compare_metrics: calls tsne_atlas.compare.compare_metrics with the rule's named input, output and params."""

from tsne_atlas.compare import compare_metrics
from tsne_atlas.jobs import run_rule

run_rule(snakemake, compare_metrics)
