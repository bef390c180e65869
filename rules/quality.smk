# Image problems of the sample (scripts/tsne_atlas/quality.py): blurry, dark, light, low information, odd
# aspect ratio, grayscale in a colour set, small. One job per sample, no network: quality.csv and one
# figure per problem. A check's threshold is quality.<check>_below (or _above); CHECKS declares them.
from scripts.tsne_atlas.quality import CHECKS, thresholds_of

# Every check's threshold by its key: one param, so a new check needs no edit here.
QUALITY_THRESHOLDS = thresholds_of(config["quality"])


rule image_quality:
    input:
        images=rules.sample_images.output.images,
        manifest=rules.label_images.output.manifest,
    output:
        quality=f"{RESULTS}/quality/quality.csv",
        figures=[
            report(
                f"{RESULTS}/quality/{check.name}.png",
                caption="../report/quality.rst",
                category="Image quality",
                labels={"figure": check.name},
            )
            for check in CHECKS
        ],
    log:
        f"{RESULTS}/logs/quality.log",
    benchmark:
        f"{RESULTS}/benchmarks/quality.tsv"
    conda:
        "../envs/figures.yaml"
    resources:
        mem_mb=quality_mem_mb(N_IMAGES),
        runtime=thumbnails_runtime_min(N_IMAGES),
    params:
        root=config["dataset"]["root"],
        thresholds=QUALITY_THRESHOLDS,
        max_share=config["quality"]["max_share"],
        thumb_size=config["quality"]["thumb_size"],
        max_images=config["quality"]["max_images"],
    script:
        "../scripts/image_quality.py"
