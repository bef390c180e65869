"""Rule suspects_figures: calls tsne_atlas.suspects_figure.suspects_figures with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.suspects_figure import suspects_figures

run_rule(snakemake, suspects_figures)
