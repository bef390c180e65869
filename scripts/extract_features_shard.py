"""Rule extract_features_shard: calls tsne_atlas.extraction.extract_features for one shard of a set (the
param ``shard``: its rows of the sample) with the rule's named input, output and params, and the two
values rule extract_features adds."""

from tsne_atlas.config import extraction_job_arguments
from tsne_atlas.extraction import extract_features
from tsne_atlas.jobs import run_rule

run_rule(snakemake, extract_features, **extraction_job_arguments(snakemake.config, snakemake.wildcards.feature_set))
