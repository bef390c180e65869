"""Rule query_figures: calls tsne_atlas.query_figure.query_figures with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.query_figure import query_figures

run_rule(snakemake, query_figures)
