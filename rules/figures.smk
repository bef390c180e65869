rule scatter:
    input:
        embedding=rules.tsne.output.embedding,
        meta=rules.tsne.output.meta,
    output:
        png=report(
            f"{RESULTS}/scatter/perplexity-{{perplexity}}_seed-{{seed}}.png",
            caption="../report/scatter.rst",
            category="Scatter plots",
            subcategory="perplexity {perplexity}",
            labels={"perplexity": "{perplexity}", "seed": "{seed}"},
        ),
        svg=f"{RESULTS}/scatter/perplexity-{{perplexity}}_seed-{{seed}}.svg",
    log:
        f"{RESULTS}/logs/scatter/perplexity-{{perplexity}}_seed-{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/scatter/perplexity-{{perplexity}}_seed-{{seed}}.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        point_size=config["scatter"]["point_size"],
        width_in=config["scatter"]["width_in"],
        dpi=config["scatter"]["dpi"],
    script:
        "../scripts/plot_scatter.py"


rule mosaic:
    input:
        embedding=rules.tsne.output.embedding,
        meta=rules.tsne.output.meta,
    output:
        png=report(
            f"{RESULTS}/mosaic/perplexity-{{perplexity}}_seed-{{seed}}.png",
            caption="../report/mosaic.rst",
            category="Mosaics",
            subcategory="perplexity {perplexity}",
            labels={"perplexity": "{perplexity}", "seed": "{seed}"},
        ),
    log:
        f"{RESULTS}/logs/mosaic/perplexity-{{perplexity}}_seed-{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/mosaic/perplexity-{{perplexity}}_seed-{{seed}}.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        root=config["dataset"]["root"],
        canvas_size=config["mosaic"]["canvas_size"],
        thumb_size=config["mosaic"]["thumb_size"],
        border=config["mosaic"]["border"],
        background=config["mosaic"]["background"],
    script:
        "../scripts/render_mosaic.py"
