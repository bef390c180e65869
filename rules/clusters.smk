# The clusters of each feature set, found once in feature space (Leiden on the sweep's k-NN graph,
# scripts/tsne_atlas/clusters.py) and shown by every map of the set.


rule find_clusters:
    input:
        prepared=rules.prepare_input.output.prepared,
        graph=graph_file,
        images=rules.sample_images.output.images,
        manifest=rules.label_images.output.manifest,
        features=features_file,
    output:
        assignments=f"{RESULTS}/clusters/{{features}}/clusters.csv",
        table=report(
            f"{RESULTS}/clusters/{{features}}/table.csv",
            caption="../report/cluster_table.rst",
            category="Clusters",
            subcategory="{features}",
            labels={"features": "{features}", "figure": "cluster table"},
        ),
        summary=f"{RESULTS}/clusters/{{features}}/summary.json",
    log:
        f"{RESULTS}/logs/clusters/{{features}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/clusters/{{features}}.tsv"
    conda:
        "../envs/maps.yaml"
    resources:
        mem_mb=clusters_mem_mb(
            N_IMAGES,
            min(config["clusters"]["neighbours"], GRAPH_K),
            input_columns(config["prepare"]["pca_components"]),
        ),
        runtime=clusters_runtime_min(
            N_IMAGES, min(config["clusters"]["neighbours"], GRAPH_K)
        ),
    params:
        neighbours=config["clusters"]["neighbours"],
        resolution=config["clusters"]["resolution"],
        seed=config["clusters"]["seed"],
        examples=config["clusters"]["examples"],
        features_id=lambda wildcards: wildcards.features,
        node=node_of,
    script:
        "../scripts/find_clusters.py"
