# A query set placed onto the reference's maps without moving them (config section query,
# docs/placement.md): sampled whole and labelled (sample_query, label_query), extracted with every feature set like the reference
# (the same rules, sharded alike), prepared with the reference's fitted z-scoring and PCA (prepare_query),
# each image's nearest reference images found (query_neighbours), placed on every run (place_query), read off per
# feature set (placement_tables) and drawn per run (query_figures). Everything goes to results/query/:
# no reference file is an output here, so adding, changing or removing the query set moves no map.


rule sample_query:
    input:
        unpack(query_collection_inputs),
        reference_images=rules.sample_images.output.images,
    output:
        images=f"{QUERY}/sample/images.csv",
        skipped=f"{QUERY}/sample/skipped.csv",
    log:
        f"{RESULTS}/logs/query/sample_query.log",
    benchmark:
        f"{RESULTS}/benchmarks/query/sample_query.tsv"
    conda:
        "../envs/figures.yaml"
    resources:
        runtime=sampling_runtime_min(N_QUERY),
    params:
        **QUERY_COLLECTION,
        on_bad_image=config["dataset"]["on_bad_image"],
        root=config["dataset"]["root"],
        # What of a query manifest its images depend on (their paths): editing its labels or other
        # columns reruns label_query only.
        manifest_digest=QUERY_MANIFEST_DIGEST,
    script:
        "../scripts/sample_query.py"


rule label_query:
    input:
        unpack(query_manifest_input),
        images=rules.sample_query.output.images,
    output:
        manifest=f"{QUERY}/sample/manifest.csv",
    log:
        f"{RESULTS}/logs/query/label_query.log",
    benchmark:
        f"{RESULTS}/benchmarks/query/label_query.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        **QUERY_COLLECTION,
        label_map=config["dataset"]["label_map"],
    script:
        "../scripts/label_query.py"


# The query's features: the reference's extraction rules on the query's image list, into results/query/.
use rule extract_features as extract_query_features with:
    input:
        images=rules.sample_query.output.images,
    output:
        features=f"{QUERY}/features/{{feature_set}}.h5",
    log:
        f"{RESULTS}/logs/query/extract_features/{{feature_set}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/query/extract_features/{{feature_set}}.tsv"
    wildcard_constraints:
        feature_set=query_sets_pattern(sharded=False),
    resources:
        gpu=set_gpus,
        mem_mb=extraction_mem_mb(config["extraction"]["num_workers"]),
        runtime=extraction_runtime_min(N_QUERY, config["extraction"]["device"]),
    params:
        root=QUERY_ROOT,


use rule extract_features_shard as extract_query_features_shard with:
    input:
        images=rules.sample_query.output.images,
    output:
        features=temp(
            f"{QUERY}/features/shards/{{feature_set}}/{{shard}}-of-{{shards}}.h5"
        ),
    log:
        f"{RESULTS}/logs/query/extract_features/{{feature_set}}/{{shard}}-of-{{shards}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/query/extract_features/{{feature_set}}/{{shard}}-of-{{shards}}.tsv"
    wildcard_constraints:
        feature_set=query_sets_pattern(sharded=True),
        shard=r"[0-9]+",
        shards=r"[0-9]+",
    resources:
        gpu=set_gpus,
        mem_mb=extraction_mem_mb(config["extraction"]["num_workers"]),
        runtime=query_shard_runtime_min,
    params:
        root=QUERY_ROOT,


use rule merge_features as merge_query_features with:
    input:
        shards=query_feature_shards,
        images=rules.sample_query.output.images,
    output:
        features=f"{QUERY}/features/{{feature_set}}.h5",
    log:
        f"{RESULTS}/logs/query/merge_features/{{feature_set}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/query/merge_features/{{feature_set}}.tsv"
    wildcard_constraints:
        feature_set=query_sets_pattern(sharded=True),
    resources:
        mem_mb=merge_mem_mb(),
        runtime=merge_runtime_min(N_QUERY),


rule prepare_query:
    input:
        features=features_file,
        query_features=query_features_file,
        prepared=rules.prepare_input.output.prepared,
    output:
        query_prepared=f"{QUERY}/embeddings/{{features}}/input.h5",
    log:
        f"{RESULTS}/logs/query/prepare_query/{{features}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/query/prepare_query/{{features}}.tsv"
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
        "../scripts/prepare_query.py"


# The nearest reference images the tables and the explorer show (query.neighbours); a placement
# searches the ones its method needs itself, so this setting moves no placed point.
rule query_neighbours:
    input:
        prepared=rules.prepare_input.output.prepared,
        query_prepared=rules.prepare_query.output.query_prepared,
    output:
        query_neighbours=f"{QUERY}/embeddings/{{features}}/neighbours.npz",
    log:
        f"{RESULTS}/logs/query/query_neighbours/{{features}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/query/query_neighbours/{{features}}.tsv"
    conda:
        "../envs/maps.yaml"
    resources:
        mem_mb=maps_mem_mb(N_IMAGES),
        runtime=maps_runtime_min(N_IMAGES),
    params:
        neighbours=config["query"]["neighbours"],
    script:
        "../scripts/query_neighbours.py"


rule place_query:
    input:
        unpack(map_inputs),
        embedding=EMBEDDING,
        meta=EMBEDDING_META,
        query_features=query_features_file,
        query_prepared=rules.prepare_query.output.query_prepared,
    output:
        placed=f"{QUERY}/maps/{RUN}.tsv",
        placed_meta=f"{QUERY}/maps/{RUN}.json",
    log:
        f"{RESULTS}/logs/query/place_query/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/query/place_query/{RUN}.tsv"
    conda:
        "../envs/maps.yaml"
    threads: map_threads
    resources:
        mem_mb=maps_mem_mb(N_IMAGES),
        runtime=maps_runtime_min(N_IMAGES),
    params:
        method=lambda wildcards: wildcards.method,
        features_id=lambda wildcards: wildcards.features,
        node=node_of,
        settings=map_settings,
        options=map_options,
    script:
        "../scripts/place_query.py"


rule placement_tables:
    input:
        reference_images=rules.sample_images.output.images,
        reference_manifest=rules.label_images.output.manifest,
        query_images=rules.sample_query.output.images,
        query_manifest=rules.label_query.output.manifest,
        prepared=rules.prepare_input.output.prepared,
        graph=graph_file,
        query_prepared=rules.prepare_query.output.query_prepared,
        query_neighbours=rules.query_neighbours.output.query_neighbours,
    output:
        placement=report(
            f"{QUERY}/placement/{{features}}/placement.csv",
            caption="../report/placement.rst",
            category="Query set",
            subcategory="{features}",
            labels={"features": "{features}", "table": "placement"},
        ),
        leaks=f"{QUERY}/placement/{{features}}/leaks.csv",
        classes=f"{QUERY}/placement/{{features}}/classes.csv",
    log:
        f"{RESULTS}/logs/query/placement_tables/{{features}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/query/placement_tables/{{features}}.tsv"
    conda:
        "../envs/maps.yaml"
    params:
        root=config["dataset"]["root"],
        query_root=QUERY_ROOT,
        neighbours=config["query"]["neighbours"],
        near_duplicate_cosine=config["suspects"]["near_duplicate_cosine"],
    script:
        "../scripts/placement_tables.py"


rule query_figures:
    input:
        embedding=EMBEDDING,
        meta=EMBEDDING_META,
        manifest=rules.label_images.output.manifest,
        placed=rules.place_query.output.placed,
        placed_meta=rules.place_query.output.placed_meta,
        query_manifest=rules.label_query.output.manifest,
        placement=rules.placement_tables.output.placement,
    output:
        png=report(
            f"{QUERY}/figures/{RUN}.png",
            caption="../report/query_figure.rst",
            category="Query set",
            subcategory="{features}",
            labels=RUN_LABELS,
        ),
        mosaic_png=f"{QUERY}/figures/{RUN}.mosaic.png",
    log:
        f"{RESULTS}/logs/query/query_figures/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/query/query_figures/{RUN}.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        query_root=QUERY_ROOT,
        point_size=config["scatter"]["point_size"],
        width_in=config["scatter"]["width_in"],
        dpi=config["scatter"]["dpi"],
        canvas_size=config["mosaic"]["canvas_size"],
        thumb_size=config["mosaic"]["thumb_size"],
        border=config["mosaic"]["border"],
        background=config["mosaic"]["background"],
        max_images=config["mosaic"]["max_images"],
        ood_threshold=config["query"]["ood_threshold"],
    script:
        "../scripts/query_figures.py"
