"""Rule projector_config: calls tsne_atlas.projector.projector_config with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.projector import projector_config

run_rule(snakemake, projector_config)
