# tsne-atlas: how a neural network sees a set of images.
# image collection -> sample (images, then labels) -> HDF5 features per feature set -> maps (t-SNE,
# UMAP, PCA sweeps) -> scatter plots + mosaics per run, suspects and a TensorBoard projector export per feature set, and with
# several feature sets the comparison figures; image problems of the sample (quality) once
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/sample.smk"
include: "rules/features.smk"
include: "rules/embeddings.smk"
include: "rules/clusters.smk"
include: "rules/metrics.smk"
include: "rules/figures.smk"
include: "rules/suspects.smk"
include: "rules/quality.smk"
include: "rules/query.smk"
include: "rules/explorer.smk"
include: "rules/projector.smk"
include: "rules/compare.smk"


rule all:
    default_target: True
    input:
        final_outputs(),


onsuccess:
    print(PLAN.summary())
