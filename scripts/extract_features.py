"""Rule extract_features: calls tsne_atlas.extraction.extract_features with the rule's named input,
output and params, and two values that are deliberately not rule params."""

from tsne_atlas.config import extraction_job_arguments
from tsne_atlas.extraction import extract_features
from tsne_atlas.jobs import run_rule

run_rule(snakemake, extract_features, **extraction_job_arguments(snakemake.config, snakemake.wildcards.feature_set))
