# What all runs of a feature set share is computed once (scripts/tsne_atlas/preparation.py): the
# z-scored, PCA-reduced input, the k-NN graph at the largest perplexity and one affinity matrix per
# perplexity. Each (feature set, perplexity, seed) run then only optimises.


rule tsne_input:
    input:
        features=features_file,
    output:
        prepared=f"{RESULTS}/tsne/{{features}}/input.h5",
    log:
        f"{RESULTS}/logs/tsne/{{features}}/input.log",
    benchmark:
        f"{RESULTS}/benchmarks/tsne/{{features}}/input.tsv"
    conda:
        "../envs/tsne.yaml"
    resources:
        mem_mb=tsne_input_mem_mb(N_IMAGES),
        runtime=tsne_runtime_min(N_IMAGES),
    params:
        node=node_of,
        standardize=config["tsne"]["standardize"],
        pca_components=config["tsne"]["pca_components"],
    script:
        "../scripts/tsne_input.py"


rule tsne_neighbors:
    input:
        prepared=rules.tsne_input.output.prepared,
    output:
        neighbors=f"{RESULTS}/tsne/{{features}}/neighbors/k-{{k}}.npz",
    log:
        f"{RESULTS}/logs/tsne/{{features}}/neighbors-k-{{k}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/tsne/{{features}}/neighbors-k-{{k}}.tsv"
    conda:
        "../envs/tsne.yaml"
    resources:
        mem_mb=tsne_mem_mb(N_IMAGES),
        runtime=tsne_runtime_min(N_IMAGES),
    params:
        k=lambda wildcards: int(wildcards.k),
    script:
        "../scripts/tsne_neighbors.py"


rule tsne_affinities:
    input:
        neighbors=neighbors_file,
    output:
        affinities=f"{RESULTS}/tsne/{{features}}/affinities/perplexity-{{perplexity}}.npz",
    log:
        f"{RESULTS}/logs/tsne/{{features}}/affinities-perplexity-{{perplexity}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/tsne/{{features}}/affinities-perplexity-{{perplexity}}.tsv"
    conda:
        "../envs/tsne.yaml"
    threads: config["tsne"]["threads"]
    resources:
        mem_mb=tsne_mem_mb(N_IMAGES),
        runtime=tsne_runtime_min(N_IMAGES),
    params:
        perplexity=lambda wildcards: float(wildcards.perplexity),
    script:
        "../scripts/tsne_affinities.py"


rule tsne:
    input:
        unpack(tsne_run_inputs),
    output:
        embedding=f"{RESULTS}/tsne/{RUN}.tsv",
        meta=f"{RESULTS}/tsne/{RUN}.json",
    log:
        f"{RESULTS}/logs/tsne/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/tsne/{RUN}.tsv"
    conda:
        "../envs/tsne.yaml"
    threads: config["tsne"]["threads"]
    resources:
        mem_mb=tsne_mem_mb(N_IMAGES),
        runtime=tsne_runtime_min(N_IMAGES),
    params:
        features_id=lambda wildcards: wildcards.features,
        node=node_of,
        perplexity=lambda wildcards: float(wildcards.perplexity),
        seed=lambda wildcards: int(wildcards.seed),
        implementation=config["tsne"]["implementation"],
        init=config["tsne"]["init"],
        negative_gradient=config["tsne"]["negative_gradient"],
        bh_theta=config["tsne"]["bh_theta"],
    script:
        "../scripts/tsne.py"
