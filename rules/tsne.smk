rule tsne:
    input:
        features=rules.extract_features.output.features,
    output:
        embedding=f"{RESULTS}/tsne/perplexity-{{perplexity}}_seed-{{seed}}.tsv",
        meta=f"{RESULTS}/tsne/perplexity-{{perplexity}}_seed-{{seed}}.json",
    log:
        f"{RESULTS}/logs/tsne/perplexity-{{perplexity}}_seed-{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/tsne/perplexity-{{perplexity}}_seed-{{seed}}.tsv"
    conda:
        "../envs/tsne.yaml"
    threads: config["tsne"]["threads"]
    resources:
        mem_mb=tsne_mem_mb(N_IMAGES),
        runtime=tsne_runtime_min(N_IMAGES),
    params:
        perplexity=lambda wildcards: float(wildcards.perplexity),
        seed=lambda wildcards: int(wildcards.seed),
        implementation=config["tsne"]["implementation"],
        init=config["tsne"]["init"],
        standardize=config["tsne"]["standardize"],
        pca_components=config["tsne"]["pca_components"],
    script:
        "../scripts/run_tsne.py"
