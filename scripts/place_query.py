"""Rule place_query: calls tsne_atlas.maps.place_query with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.maps import place_query

run_rule(snakemake, place_query)
