"""Rules extract_features and extract_features_shard (which adds the param ``shard``): call
tsne_atlas.extraction.extract_features with the rule's named input, output and params, and two values
that are deliberately not rule params."""

from tsne_atlas.config import features_config_hash
from tsne_atlas.extraction import extract_features
from tsne_atlas.jobs import run_rule

run_rule(
    snakemake,
    extract_features,
    # How fast, never what: as a param, changing it would rerun extraction and all after it.
    num_workers=snakemake.config["extraction"]["num_workers"],
    # Provenance recorded in the features file; every setting in it that can change a feature is a param.
    config_hash=features_config_hash(snakemake.config, snakemake.wildcards.feature_set),
)
