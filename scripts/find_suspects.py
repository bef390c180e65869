"""Rule find_suspects: calls tsne_atlas.suspects.find_suspects with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.suspects import find_suspects

run_rule(snakemake, find_suspects)
