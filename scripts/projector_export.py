"""Rule projector_export: calls tsne_atlas.projector.projector_export with the rule's named input, output and params."""

from tsne_atlas.jobs import run_rule
from tsne_atlas.projector import projector_export

run_rule(snakemake, projector_export)
