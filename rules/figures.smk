rule scatter:
    input:
        features=features_file,
        embedding=EMBEDDING,
        meta=EMBEDDING_META,
        manifest=rules.label_images.output.manifest,
        clusters=rules.find_clusters.output.assignments,
        clusters_summary=rules.find_clusters.output.summary,
    output:
        png=report(
            f"{RESULTS}/scatter/{RUN}.png",
            caption="../report/scatter.rst",
            category="Scatter plots",
            subcategory="{features}",
            labels=RUN_LABELS,
        ),
        svg=f"{RESULTS}/scatter/{RUN}.svg",
        predicted=report(
            f"{RESULTS}/scatter/{RUN}.predicted.png",
            caption="../report/scatter_predicted.rst",
            category="Predictions",
            subcategory="{features}",
            labels=RUN_LABELS,
        ),
        cluster_map=report(
            f"{RESULTS}/scatter/{RUN}.clusters.png",
            caption="../report/cluster_map.rst",
            category="Clusters",
            subcategory="{features}",
            labels=RUN_LABELS,
        ),
    log:
        f"{RESULTS}/logs/scatter/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/scatter/{RUN}.tsv"
    conda:
        "../envs/figures.yaml"
    resources:
        mem_mb=scatter_mem_mb(N_IMAGES),
    params:
        point_size=config["scatter"]["point_size"],
        width_in=config["scatter"]["width_in"],
        dpi=config["scatter"]["dpi"],
        density_contours=config["scatter"]["density_contours"],
    script:
        "../scripts/scatter.py"


rule mosaic:
    input:
        embedding=EMBEDDING,
        meta=EMBEDDING_META,
        manifest=rules.label_images.output.manifest,
    output:
        png=report(
            f"{RESULTS}/mosaic/{RUN}.png",
            caption="../report/mosaic.rst",
            category="Mosaics",
            subcategory="{features}",
            labels=RUN_LABELS,
        ),
    log:
        f"{RESULTS}/logs/mosaic/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/mosaic/{RUN}.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        root=config["dataset"]["root"],
        canvas_size=config["mosaic"]["canvas_size"],
        thumb_size=config["mosaic"]["thumb_size"],
        border=config["mosaic"]["border"],
        background=config["mosaic"]["background"],
        max_images=config["mosaic"]["max_images"],
    script:
        "../scripts/mosaic.py"


rule grid_mosaic:
    input:
        embedding=EMBEDDING,
        meta=EMBEDDING_META,
        manifest=rules.label_images.output.manifest,
    output:
        png=report(
            f"{RESULTS}/grid_mosaic/{RUN}.png",
            caption="../report/grid_mosaic.rst",
            category="Grid mosaics",
            subcategory="{features}",
            labels=RUN_LABELS,
        ),
    log:
        f"{RESULTS}/logs/grid_mosaic/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/grid_mosaic/{RUN}.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        root=config["dataset"]["root"],
        thumb_size=config["grid_mosaic"]["thumb_size"],
        border=config["grid_mosaic"]["border"],
        background=config["grid_mosaic"]["background"],
        max_images=config["grid_mosaic"]["max_images"],
    script:
        "../scripts/grid_mosaic.py"


rule sweep_overview:
    input:
        embeddings=sweep_files(EMBEDDING),
        metas=sweep_files(EMBEDDING_META),
        manifest=rules.label_images.output.manifest,
        metrics=sweep_files(rules.embedding_metrics.output.metrics),
        clusters=rules.find_clusters.output.assignments,
    output:
        png=report(
            f"{RESULTS}/overview/{{features}}.png",
            caption="../report/sweep_overview.rst",
            category="Sweep",
            labels={"features": "{features}", "figure": "contact sheet"},
        ),
        pdf=f"{RESULTS}/overview/{{features}}.pdf",
        clusters_png=report(
            f"{RESULTS}/overview/{{features}}.clusters.png",
            caption="../report/sweep_overview_clusters.rst",
            category="Clusters",
            subcategory="{features}",
            labels={"features": "{features}", "figure": "contact sheet by cluster"},
        ),
    log:
        f"{RESULTS}/logs/sweep_overview/{{features}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sweep_overview/{{features}}.tsv"
    conda:
        "../envs/figures.yaml"
    resources:
        mem_mb=lambda wildcards, input: overview_mem_mb(N_IMAGES, len(input.embeddings)),
    params:
        panel_in=config["overview"]["panel_in"],
        dpi=config["overview"]["dpi"],
    script:
        "../scripts/sweep_overview.py"
