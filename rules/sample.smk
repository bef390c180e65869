# The sample in two steps: which images (sample_images: paths and content hashes, all extraction
# reads), then what they are called (label_images: labels and metadata). Relabelling reruns only
# label_images and what draws or counts labels, no extraction and no t-SNE.


rule sample_images:
    input:
        unpack(collection_inputs),
    output:
        images=f"{RESULTS}/sample/images.csv",
        skipped=f"{RESULTS}/sample/skipped.csv",
    log:
        f"{RESULTS}/logs/sample_images.log",
    benchmark:
        f"{RESULTS}/benchmarks/sample_images.tsv"
    conda:
        "../envs/figures.yaml"
    resources:
        runtime=sampling_runtime_min(N_IMAGES),
    params:
        **reference_split_param(),
        layout=config["dataset"]["layout"],
        root=config["dataset"]["root"],
        extensions=config["dataset"]["extensions"],
        label_column=manifest_setting("label_column"),
        missing_label=manifest_setting("missing_label"),
        # What of a dataset manifest the sample depends on (its paths, and its labels when sampling
        # is stratified): editing its other columns reruns label_images only.
        manifest_digest=DATASET_MANIFEST_DIGEST,
        n_images=config["sample"]["n_images"],
        seed=config["sample"]["seed"],
        stratified=config["sample"]["stratified"],
        on_bad_image=config["dataset"]["on_bad_image"],
        # With a split query set, the manifest rows outside it (none without one: the params stay as they were).
    script:
        "../scripts/sample_images.py"


rule label_images:
    input:
        unpack(dataset_manifest_input),
        images=rules.sample_images.output.images,
    output:
        manifest=f"{RESULTS}/sample/manifest.csv",
    log:
        f"{RESULTS}/logs/label_images.log",
    benchmark:
        f"{RESULTS}/benchmarks/label_images.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        layout=config["dataset"]["layout"],
        root=config["dataset"]["root"],
        label_column=manifest_setting("label_column"),
        missing_label=manifest_setting("missing_label"),
        label_map=config["dataset"]["label_map"],
    script:
        "../scripts/label_images.py"
