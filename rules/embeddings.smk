# The maps of each feature set (t-SNE, UMAP, PCA; config: methods). What they share is computed once
# (scripts/tsne_atlas/preparation.py): the z-scored, PCA-reduced input every method maps, the k-NN
# graph at the largest perplexity (t-SNE's affinities, UMAP's neighbours) and one affinity matrix per
# perplexity. Each run then only optimises. The three map rules write the same RUN pattern, each
# narrowed to its method and its own file stems (files/runs.py).


rule tsne_input:
    input:
        features=features_file,
    output:
        prepared=f"{EMBEDDINGS}/{{features}}/input.h5",
    log:
        f"{RESULTS}/logs/embeddings/{{features}}/input.log",
    benchmark:
        f"{RESULTS}/benchmarks/embeddings/{{features}}/input.tsv"
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
        neighbors=f"{EMBEDDINGS}/{{features}}/neighbors/k-{{k}}.npz",
    log:
        f"{RESULTS}/logs/embeddings/{{features}}/neighbors-k-{{k}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embeddings/{{features}}/neighbors-k-{{k}}.tsv"
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
        affinities=f"{EMBEDDINGS}/{{features}}/affinities/perplexity-{{perplexity}}.npz",
    log:
        f"{RESULTS}/logs/embeddings/{{features}}/affinities-perplexity-{{perplexity}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embeddings/{{features}}/affinities-perplexity-{{perplexity}}.tsv"
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
        embedding=EMBEDDING,
        meta=EMBEDDING_META,
    log:
        f"{RESULTS}/logs/embeddings/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embeddings/{RUN}.tsv"
    wildcard_constraints:
        method="tsne",
        params=PARAMS_PATTERNS["tsne"],
    conda:
        "../envs/tsne.yaml"
    threads: config["tsne"]["threads"]
    resources:
        mem_mb=tsne_mem_mb(N_IMAGES),
        runtime=tsne_runtime_min(N_IMAGES),
    params:
        features_id=lambda wildcards: wildcards.features,
        node=node_of,
        perplexity=run_setting("perplexity"),
        seed=run_setting("seed"),
        implementation=config["tsne"]["implementation"],
        init=config["tsne"]["init"],
        negative_gradient=config["tsne"]["negative_gradient"],
        bh_theta=config["tsne"]["bh_theta"],
    script:
        "../scripts/tsne.py"


rule umap_embedding:
    input:
        features=features_file,
        prepared=rules.tsne_input.output.prepared,
        neighbors=umap_neighbors_file,
    output:
        embedding=EMBEDDING,
        meta=EMBEDDING_META,
    log:
        f"{RESULTS}/logs/embeddings/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embeddings/{RUN}.tsv"
    wildcard_constraints:
        method="umap",
        params=PARAMS_PATTERNS["umap"],
    conda:
        "../envs/tsne.yaml"
    resources:
        mem_mb=tsne_mem_mb(N_IMAGES),
        runtime=tsne_runtime_min(N_IMAGES),
    params:
        features_id=lambda wildcards: wildcards.features,
        node=node_of,
        n_neighbors=run_setting("n_neighbors"),
        min_dist=run_setting("min_dist"),
        seed=run_setting("seed"),
    script:
        "../scripts/umap_embedding.py"


rule pca_embedding:
    input:
        features=features_file,
        prepared=rules.tsne_input.output.prepared,
    output:
        embedding=EMBEDDING,
        meta=EMBEDDING_META,
    log:
        f"{RESULTS}/logs/embeddings/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embeddings/{RUN}.tsv"
    wildcard_constraints:
        method="pca",
        params=PARAMS_PATTERNS["pca"],
    conda:
        "../envs/tsne.yaml"
    resources:
        mem_mb=tsne_mem_mb(N_IMAGES),
        runtime=tsne_runtime_min(N_IMAGES),
    params:
        features_id=lambda wildcards: wildcards.features,
        node=node_of,
    script:
        "../scripts/pca_embedding.py"
