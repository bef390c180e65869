"""Rule compare_cka: calls tsne_atlas.compare.compare_cka with the rule's named input, output and params."""

from tsne_atlas.compare import compare_cka
from tsne_atlas.jobs import run_rule

run_rule(snakemake, compare_cka)
