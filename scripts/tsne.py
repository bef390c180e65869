"""Rule tsne: calls tsne_atlas.tsne.run_tsne with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.tsne import run_tsne

run_rule(snakemake, run_tsne)
