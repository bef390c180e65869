"""Rule label_images: calls tsne_atlas.sampling.label_images with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.sampling import label_images

run_rule(snakemake, label_images)
