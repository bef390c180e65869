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


# One job per feature set: all its nodes come from one forward pass (BENCHMARKS.md, "Layers").
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
