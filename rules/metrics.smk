rule embedding_metrics:
    input:
        prepared=rules.prepare_input.output.prepared,
        embedding=EMBEDDING,
        meta=EMBEDDING_META,
        manifest=rules.label_images.output.manifest,
    output:
        metrics=f"{RESULTS}/metrics/{RUN}.json",
    log:
        f"{RESULTS}/logs/metrics/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/metrics/{RUN}.tsv"
    conda:
        "../envs/maps.yaml"
    resources:
        mem_mb=run_metrics_mem_mb(N_IMAGES, config["metrics"]["max_images"]),
        runtime=metrics_runtime_min(N_IMAGES),
    params:
        trustworthiness_k=config["metrics"]["trustworthiness_k"],
        knn_k=config["metrics"]["knn_k"],
        max_images=config["metrics"]["max_images"],
    script:
        "../scripts/embedding_metrics.py"


rule sweep_metrics:
    input:
        metrics=sweep_files(rules.embedding_metrics.output.metrics),
        clusters_summary=rules.find_clusters.output.summary,
    output:
        table=report(
            f"{RESULTS}/metrics/{{features}}/sweep.csv",
            caption="../report/sweep_table.rst",
            category="Sweep",
            labels={"features": "{features}", "figure": "metrics table"},
        ),
        png=report(
            f"{RESULTS}/metrics/{{features}}/sweep.png",
            caption="../report/sweep_metrics.rst",
            category="Sweep",
            labels={"features": "{features}", "figure": "metrics vs perplexity"},
        ),
        svg=f"{RESULTS}/metrics/{{features}}/sweep.svg",
    log:
        f"{RESULTS}/logs/sweep_metrics/{{features}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sweep_metrics/{{features}}.tsv"
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/sweep_metrics.py"
