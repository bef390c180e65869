# With two or more feature sets: figures that put them side by side (scripts/tsne_atlas/compare.py).


rule compare_sheet:
    input:
        embeddings=compare_files(EMBEDDING),
        metas=compare_files(EMBEDDING_META),
        manifest=rules.label_images.output.manifest,
    output:
        png=report(
            f"{RESULTS}/compare/sheet.png",
            caption="../report/compare_sheet.rst",
            category="Comparison",
            labels={"figure": "aligned contact sheet"},
        ),
        pdf=f"{RESULTS}/compare/sheet.pdf",
    log:
        f"{RESULTS}/logs/compare/sheet.log",
    benchmark:
        f"{RESULTS}/benchmarks/compare/sheet.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        order=FEATURE_IDS,
        reference=COMPARE_REFERENCE,
        panel_in=config["compare"]["panel_in"],
        dpi=config["compare"]["dpi"],
    script:
        "../scripts/compare_sheet.py"


rule compare_metrics:
    input:
        metrics=all_sets_files(rules.embedding_metrics.output.metrics),
        clusters_summaries=expand(
            rules.find_clusters.output.summary, features=FEATURE_IDS
        ),
    output:
        table=report(
            f"{RESULTS}/compare/metrics.csv",
            caption="../report/compare_table.rst",
            category="Comparison",
            labels={"figure": "metrics table"},
        ),
        png=report(
            f"{RESULTS}/compare/metrics.png",
            caption="../report/compare_metrics.rst",
            category="Comparison",
            labels={"figure": "metrics per feature set"},
        ),
        svg=f"{RESULTS}/compare/metrics.svg",
    log:
        f"{RESULTS}/logs/compare/metrics.log",
    benchmark:
        f"{RESULTS}/benchmarks/compare/metrics.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        order=FEATURE_IDS,
        dpi=config["compare"]["dpi"],
    script:
        "../scripts/compare_metrics.py"


rule compare_cka:
    input:
        features=features_file_per_id,
    output:
        table=f"{RESULTS}/compare/cka.csv",
        png=report(
            f"{RESULTS}/compare/cka.png",
            caption="../report/compare_cka.rst",
            category="Comparison",
            labels={"figure": "linear CKA"},
        ),
    log:
        f"{RESULTS}/logs/compare/cka.log",
    benchmark:
        f"{RESULTS}/benchmarks/compare/cka.tsv"
    conda:
        "../envs/figures.yaml"
    resources:
        mem_mb=metrics_mem_mb(N_IMAGES, config["metrics"]["max_images"]),
    params:
        ids=FEATURE_IDS,
        nodes=[FEATURES[features_id][1] for features_id in FEATURE_IDS],
        max_images=config["metrics"]["max_images"],
        dpi=config["compare"]["dpi"],
    script:
        "../scripts/compare_cka.py"


rule compare_clusters:
    input:
        assignments=expand(rules.find_clusters.output.assignments, features=FEATURE_IDS),
        summaries=expand(rules.find_clusters.output.summary, features=FEATURE_IDS),
    output:
        table=f"{RESULTS}/compare/clusters.csv",
        png=report(
            f"{RESULTS}/compare/clusters.png",
            caption="../report/compare_clusters.rst",
            category="Comparison",
            labels={"figure": "clusters across feature sets"},
        ),
        svg=f"{RESULTS}/compare/clusters.svg",
    log:
        f"{RESULTS}/logs/compare/clusters.log",
    benchmark:
        f"{RESULTS}/benchmarks/compare/clusters.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        order=FEATURE_IDS,
        reference=COMPARE_REFERENCE,
        dpi=config["compare"]["dpi"],
    script:
        "../scripts/compare_clusters.py"
