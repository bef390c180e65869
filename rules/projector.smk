# TensorBoard's Embedding Projector: per feature set, the prepared input as tensors.tsv, the labels,
# predictions and metadata as metadata.tsv and a sprite cut from the explorer's thumbnails; one
# projector_config.pbtxt for every set (scripts/tsne_atlas/projector.py). `projector.enabled: false`
# leaves them out of the final outputs.


rule projector_export:
    input:
        prepared=rules.prepare_input.output.prepared,
        images=rules.sample_images.output.images,
        manifest=rules.label_images.output.manifest,
        features=features_file,
        thumbnails=rules.explorer_thumbnails.output.thumbnails,
    output:
        tensors=f"{RESULTS}/projector/{{features}}/tensors.tsv",
        metadata=f"{RESULTS}/projector/{{features}}/metadata.tsv",
        sprite=f"{RESULTS}/projector/{{features}}/sprite.jpg",
        record=f"{RESULTS}/projector/{{features}}/embedding.json",
    log:
        f"{RESULTS}/logs/projector/{{features}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/projector/{{features}}.tsv"
    conda:
        "../envs/figures.yaml"
    resources:
        mem_mb=projector_mem_mb(N_IMAGES),
        runtime=projector_runtime_min(N_IMAGES),
    params:
        features_id=lambda wildcards: wildcards.features,
    script:
        "../scripts/projector_export.py"


rule projector_config:
    input:
        records=expand(rules.projector_export.output.record, features=FEATURE_IDS),
    output:
        config=f"{RESULTS}/projector/projector_config.pbtxt",
    log:
        f"{RESULTS}/logs/projector/config.log",
    benchmark:
        f"{RESULTS}/benchmarks/projector/config.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        # Removing a set shrinks the input list, which alone reruns nothing: the ids make it rerun.
        order=FEATURE_IDS,
    script:
        "../scripts/projector_config.py"
