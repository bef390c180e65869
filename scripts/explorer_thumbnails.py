"""Rule explorer_thumbnails: calls tsne_atlas.thumbnails.explorer_thumbnails with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.thumbnails import explorer_thumbnails

run_rule(snakemake, explorer_thumbnails)
