"""Rule sweep_metrics: calls tsne_atlas.metrics_plot.sweep_metrics with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.metrics_plot import sweep_metrics

run_rule(snakemake, sweep_metrics)
