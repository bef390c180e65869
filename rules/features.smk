# fetch_weights needs the network (pretrained weights): on a cluster it runs on the submitting host.
localrules:
    fetch_weights,


rule fetch_weights:
    input:
        # Unnamed: only a dependency (a replaced weights file reruns this), not an argument.
        set_files,
    output:
        resolved=f"{RESULTS}/weights/{{feature_set}}.json",
    log:
        f"{RESULTS}/logs/fetch_weights/{{feature_set}}.log",
    conda:
        "../envs/features.yaml"
    params:
        feature_set=lambda wildcards: wildcards.feature_set,
        source=set_setting("source"),
        arch=set_setting("arch"),
        weights=set_setting("weights"),
        init_seed=set_setting("init_seed"),
    script:
        "../scripts/fetch_weights.py"


# One job per feature set: all its nodes come from one forward pass (BENCHMARKS.md, "Layers"). A set
# of extraction.shards K > 1 is extracted by extract_features_shard and merge_features instead.
rule extract_features:
    input:
        set_files,
        set_class_names,
        unpack(weights_record),
        images=rules.sample_images.output.images,
    output:
        features=f"{RESULTS}/features/{{feature_set}}.h5",
    log:
        f"{RESULTS}/logs/extract_features/{{feature_set}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract_features/{{feature_set}}.tsv"
    wildcard_constraints:
        feature_set=sets_pattern(sharded=False),
    conda:
        "../envs/features.yaml"
    threads: config["extraction"]["threads"]
    resources:
        gpu=set_gpus,
        mem_mb=extraction_mem_mb(config["extraction"]["num_workers"]),
        runtime=extraction_runtime_min(N_IMAGES, config["extraction"]["device"]),
    params:
        root=config["dataset"]["root"],
        feature_set=lambda wildcards: wildcards.feature_set,
        settings=lambda wildcards: FEATURE_SETS[wildcards.feature_set],
        # How a network runs (none for a precomputed set: changing it reruns no such set).
        device=network_setting("device"),
        precision=network_setting("precision"),
        channels_last=network_setting("channels_last"),
        batch_size=network_setting("batch_size"),
    script:
        "../scripts/extract_features.py"


# Shard i of K of a set: its slice of the sample (whole batches), a GPU job sized from the slice. The
# shard files are temporary: removed once merged.
rule extract_features_shard:
    input:
        set_files,
        set_class_names,
        unpack(weights_record),
        images=rules.sample_images.output.images,
    output:
        features=temp(
            f"{RESULTS}/features/shards/{{feature_set}}/{{shard}}-of-{{shards}}.h5"
        ),
    log:
        f"{RESULTS}/logs/extract_features/{{feature_set}}/{{shard}}-of-{{shards}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract_features/{{feature_set}}/{{shard}}-of-{{shards}}.tsv"
    wildcard_constraints:
        feature_set=sets_pattern(sharded=True),
        shard=r"[0-9]+",
        shards=r"[0-9]+",
    conda:
        "../envs/features.yaml"
    threads: config["extraction"]["threads"]
    resources:
        gpu=set_gpus,
        mem_mb=extraction_mem_mb(config["extraction"]["num_workers"]),
        runtime=shard_runtime_min,
    params:
        root=config["dataset"]["root"],
        feature_set=lambda wildcards: wildcards.feature_set,
        settings=lambda wildcards: FEATURE_SETS[wildcards.feature_set],
        device=network_setting("device"),
        precision=network_setting("precision"),
        channels_last=network_setting("channels_last"),
        batch_size=network_setting("batch_size"),
        shard=lambda wildcards: [int(wildcards.shard), int(wildcards.shards)],
    script:
        "../scripts/extract_features_shard.py"


# A sharded set's features file, joined from its shards batch by batch: a small CPU job. Its params are
# what the shards must have been extracted with (a shard of other settings is refused).
rule merge_features:
    input:
        shards=feature_shards,
        images=rules.sample_images.output.images,
    output:
        features=f"{RESULTS}/features/{{feature_set}}.h5",
    log:
        f"{RESULTS}/logs/merge_features/{{feature_set}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge_features/{{feature_set}}.tsv"
    wildcard_constraints:
        feature_set=sets_pattern(sharded=True),
    conda:
        "../envs/features.yaml"
    resources:
        mem_mb=merge_mem_mb(),
        runtime=merge_runtime_min(N_IMAGES),
    params:
        feature_set=lambda wildcards: wildcards.feature_set,
        precision=config["extraction"]["precision"],
        channels_last=config["extraction"]["channels_last"],
        batch_size=config["extraction"]["batch_size"],
    script:
        "../scripts/merge_features.py"
