"""Rule pca_embedding: calls tsne_atlas.maps.run_pca with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.maps import run_pca

run_rule(snakemake, run_pca)
