# fetch_weights needs the network (ImageNet weights): on a cluster it runs on the submitting host.
localrules:
    fetch_weights,


rule fetch_weights:
    input:
        # Unnamed: only a dependency (a replaced weights file reruns this), not an argument.
        weights_file,
    output:
        resolved=f"{RESULTS}/weights/resolved.json",
    log:
        f"{RESULTS}/logs/fetch_weights.log",
    conda:
        "../envs/features.yaml"
    params:
        arch=config["model"]["arch"],
        weights=config["model"]["weights"],
        init_seed=config["model"]["init_seed"],
    script:
        "../scripts/fetch_weights.py"


rule extract_features:
    input:
        weights_file,
        manifest=rules.sample_images.output.manifest,
        resolved=rules.fetch_weights.output.resolved,
    output:
        features=f"{RESULTS}/features/features.h5",
    log:
        f"{RESULTS}/logs/extract_features.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract_features.tsv"
    conda:
        "../envs/features.yaml"
    threads: config["model"]["threads"]
    resources:
        gpu=extraction_gpus(config["model"]["device"]),
        mem_mb=extraction_mem_mb(config["model"]["num_workers"]),
        runtime=extraction_runtime_min(N_IMAGES, config["model"]["device"]),
    params:
        root=config["dataset"]["root"],
        arch=config["model"]["arch"],
        weights=config["model"]["weights"],
        node=config["model"]["node"],
        device=config["model"]["device"],
        precision=config["model"]["precision"],
        channels_last=config["model"]["channels_last"],
        batch_size=config["model"]["batch_size"],
        init_seed=config["model"]["init_seed"],
    script:
        "../scripts/extract_features.py"
