"""Rule sample_images: calls tsne_atlas.sampling.sample_images with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.sampling import sample_images

run_rule(snakemake, sample_images)
