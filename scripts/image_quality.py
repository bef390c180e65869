"""Rule image_quality: calls tsne_atlas.quality_figure.image_quality with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.quality_figure import image_quality

run_rule(snakemake, image_quality)
