"""Rule embedding_metrics: calls tsne_atlas.metrics.embedding_metrics_for_run with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.metrics import embedding_metrics_for_run

run_rule(snakemake, embedding_metrics_for_run)
