# Which images look wrong, per feature set: label disagreement with the nearest neighbours, exact
# and near duplicates, outliers, all from the sweep's k-NN graph (scripts/tsne_atlas/suspects.py).


rule find_suspects:
    input:
        prepared=rules.prepare_input.output.prepared,
        graph=graph_file,
        images=rules.sample_images.output.images,
        manifest=rules.label_images.output.manifest,
    output:
        suspects=f"{RESULTS}/suspects/{{features}}/suspects.csv",
        duplicates=f"{RESULTS}/suspects/{{features}}/duplicates.csv",
        outliers=f"{RESULTS}/suspects/{{features}}/outliers.csv",
    log:
        f"{RESULTS}/logs/suspects/{{features}}/find.log",
    benchmark:
        f"{RESULTS}/benchmarks/suspects/{{features}}/find.tsv"
    conda:
        "../envs/maps.yaml"
    resources:
        mem_mb=suspects_mem_mb(
            N_IMAGES, GRAPH_K, input_columns(config["prepare"]["pca_components"])
        ),
        runtime=suspects_runtime_min(N_IMAGES, GRAPH_K),
    params:
        neighbours=config["suspects"]["neighbours"],
        near_duplicate_cosine=config["suspects"]["near_duplicate_cosine"],
        max_rows=config["suspects"]["max_rows"],
    script:
        "../scripts/find_suspects.py"


rule suspects_figures:
    input:
        features=features_file,
        suspects=rules.find_suspects.output.suspects,
        duplicates=rules.find_suspects.output.duplicates,
        outliers=rules.find_suspects.output.outliers,
        manifest=rules.label_images.output.manifest,
    output:
        suspects_png=report(
            f"{RESULTS}/suspects/{{features}}/suspects.png",
            caption="../report/suspects.rst",
            category="Suspects",
            subcategory="{features}",
            labels={"features": "{features}", "figure": "suspect labels"},
        ),
        duplicates_png=report(
            f"{RESULTS}/suspects/{{features}}/duplicates.png",
            caption="../report/duplicates.rst",
            category="Suspects",
            subcategory="{features}",
            labels={"features": "{features}", "figure": "duplicates"},
        ),
        outliers_png=report(
            f"{RESULTS}/suspects/{{features}}/outliers.png",
            caption="../report/outliers.rst",
            category="Suspects",
            subcategory="{features}",
            labels={"features": "{features}", "figure": "outliers"},
        ),
    log:
        f"{RESULTS}/logs/suspects/{{features}}/figures.log",
    benchmark:
        f"{RESULTS}/benchmarks/suspects/{{features}}/figures.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        features_id=lambda wildcards: wildcards.features,
        node=node_of,
        root=config["dataset"]["root"],
        thumb_size=config["suspects"]["thumb_size"],
        near_duplicate_cosine=config["suspects"]["near_duplicate_cosine"],
    script:
        "../scripts/suspects_figures.py"
