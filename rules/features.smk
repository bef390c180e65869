rule extract_features:
    input:
        manifest=rules.sample_images.output.manifest,
        weights=weights_file,
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
        mem_mb=8000,
    params:
        root=config["dataset"]["root"],
        arch=config["model"]["arch"],
        weights=config["model"]["weights"],
        node=config["model"]["node"],
        device=config["model"]["device"],
        precision=config["model"]["precision"],
        batch_size=config["model"]["batch_size"],
        num_workers=config["model"]["num_workers"],
        init_seed=config["model"]["init_seed"],
        settings_hash=settings_hash(feature_settings()),
    script:
        "../scripts/extract_features.py"
