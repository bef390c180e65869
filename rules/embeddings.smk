# The maps of each feature set (config: methods; each method declared once in
# scripts/tsne_atlas/methods/). What they share is computed once (scripts/tsne_atlas/preparation.py):
# the z-scored, PCA-reduced input every method maps (section prepare), the k-NN graph (section graph:
# t-SNE's affinities, UMAP's neighbours, the suspects, the explorer) and one affinity matrix per
# perplexity. Each run then only optimises: one rule, map, for every method's runs (files/runs.py).


rule prepare_input:
    input:
        features=features_file,
    output:
        prepared=f"{EMBEDDINGS}/{{features}}/input.h5",
    log:
        f"{RESULTS}/logs/embeddings/{{features}}/input.log",
    benchmark:
        f"{RESULTS}/benchmarks/embeddings/{{features}}/input.tsv"
    conda:
        "../envs/maps.yaml"
    resources:
        mem_mb=prepare_mem_mb(
            N_IMAGES,
            config["prepare"]["block_rows"],
            config["prepare"]["pca_components"],
        ),
        runtime=maps_runtime_min(N_IMAGES),
    params:
        node=node_of,
        standardize=config["prepare"]["standardize"],
        pca_components=config["prepare"]["pca_components"],
        block_rows=config["prepare"]["block_rows"],
    script:
        "../scripts/prepare_input.py"


rule knn_graph:
    input:
        prepared=rules.prepare_input.output.prepared,
    output:
        graph=f"{EMBEDDINGS}/{{features}}/graph/k-{{k}}.npz",
    log:
        f"{RESULTS}/logs/embeddings/{{features}}/graph-k-{{k}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embeddings/{{features}}/graph-k-{{k}}.tsv"
    conda:
        "../envs/maps.yaml"
    resources:
        mem_mb=lambda wildcards: knn_mem_mb(N_IMAGES, int(wildcards.k)),
        runtime=lambda wildcards: knn_runtime_min(N_IMAGES, int(wildcards.k)),
    params:
        k=lambda wildcards: int(wildcards.k),
    script:
        "../scripts/knn_graph.py"


rule tsne_affinities:
    input:
        graph=graph_file,
    output:
        affinities=f"{EMBEDDINGS}/{{features}}/affinities/perplexity-{{perplexity}}.npz",
    log:
        f"{RESULTS}/logs/embeddings/{{features}}/affinities-perplexity-{{perplexity}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embeddings/{{features}}/affinities-perplexity-{{perplexity}}.tsv"
    conda:
        "../envs/maps.yaml"
    threads: config["tsne"]["threads"]
    resources:
        mem_mb=lambda wildcards: affinities_mem_mb(
            N_IMAGES, neighbours_for(float(wildcards.perplexity), N_IMAGES)
        ),
        runtime=lambda wildcards: affinities_runtime_min(
            N_IMAGES, neighbours_for(float(wildcards.perplexity), N_IMAGES)
        ),
    params:
        perplexity=lambda wildcards: float(wildcards.perplexity),
    script:
        "../scripts/tsne_affinities.py"


rule map:
    input:
        unpack(map_inputs),
    output:
        embedding=EMBEDDING,
        meta=EMBEDDING_META,
    log:
        f"{RESULTS}/logs/embeddings/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embeddings/{RUN}.tsv"
    conda:
        "../envs/maps.yaml"
    threads: map_threads
    resources:
        mem_mb=lambda wildcards: map_mem_mb(
            N_IMAGES, MAP_METHODS[wildcards.method].run_bytes_per_image
        ),
        runtime=lambda wildcards: map_runtime_min(
            N_IMAGES, MAP_METHODS[wildcards.method].run_seconds_per_image
        ),
    params:
        method=lambda wildcards: wildcards.method,
        features_id=lambda wildcards: wildcards.features,
        node=node_of,
        settings=map_settings,
        options=map_options,
    script:
        "../scripts/map.py"
