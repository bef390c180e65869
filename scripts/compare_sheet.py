"""Rule compare_sheet: calls tsne_atlas.compare.compare_sheet with the rule's named input, output and params."""

from tsne_atlas.compare import compare_sheet
from tsne_atlas.jobs import run_rule

run_rule(snakemake, compare_sheet)
