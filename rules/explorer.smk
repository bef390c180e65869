# The interactive explorer: thumbnails of the sample as JPEG atlases (results/explorer/), then one page
# for every run of the sweep (results/explorer.html) with neighbours, search, colour-by (the clusters of
# each feature set too, their names on the map), density contours, selection and two runs side by side, linked;
# with a query set, the query images as a layer of their own on every map (rules/query.smk places them).
# Above 100,000 images (explorer.backend auto) the page draws every image with WebGL and loads its data
# from results/explorer-data/ (explorer_outputs).


rule explorer_thumbnails:
    input:
        images=rules.sample_images.output.images,
    output:
        thumbnails=directory(f"{RESULTS}/explorer"),
    log:
        f"{RESULTS}/logs/explorer/thumbnails.log",
    benchmark:
        f"{RESULTS}/benchmarks/explorer/thumbnails.tsv"
    conda:
        "../envs/figures.yaml"
    threads: 2
    resources:
        runtime=thumbnails_runtime_min(N_IMAGES),
    params:
        **explorer_thumbnail_params(config["explorer"], N_IMAGES),
        root=config["dataset"]["root"],
    script:
        "../scripts/explorer_thumbnails.py"


# The query set's thumbnails (with a query set only), for the explorer's query layer: as the reference's,
# from the query's image list and folder, into results/query/explorer/.
use rule explorer_thumbnails as query_thumbnails with:
    input:
        images=rules.sample_query.output.images,
    output:
        thumbnails=directory(f"{QUERY}/explorer"),
    log:
        f"{RESULTS}/logs/query/explorer/thumbnails.log",
    benchmark:
        f"{RESULTS}/benchmarks/query/explorer/thumbnails.tsv"
    resources:
        runtime=thumbnails_runtime_min(N_QUERY),
    params:
        root=QUERY_ROOT,


rule explorer:
    input:
        unpack(explorer_query_inputs),
        embeddings=all_sets_files(EMBEDDING),
        metas=all_sets_files(EMBEDDING_META),
        manifest=rules.label_images.output.manifest,
        features=features_file_per_id,
        graphs=graph_file_per_id,
        clusters=expand(rules.find_clusters.output.assignments, features=FEATURE_IDS),
        outliers=expand(rules.find_suspects.output.outliers, features=FEATURE_IDS),
        quality=rules.image_quality.output.quality,
        thumbnails=rules.explorer_thumbnails.output.thumbnails,
    output:
        **explorer_outputs(),
    log:
        f"{RESULTS}/logs/explorer.log",
    benchmark:
        f"{RESULTS}/benchmarks/explorer.tsv"
    conda:
        "../envs/figures.yaml"
    resources:
        mem_mb=explorer_mem_mb(N_IMAGES),
    params:
        **explorer_query_params(),
        order=FEATURE_IDS,
        root=config["dataset"]["root"],
        inline_max_images=config["explorer"]["inline_max_images"],
        neighbours=config["explorer"]["neighbours"],
        backend=EXPLORER_BACKEND,
    script:
        "../scripts/explorer.py"
