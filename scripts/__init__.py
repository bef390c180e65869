"""Rule entry points (one per rule, named after it) and the ``tsne_atlas`` package they call.

A regular package so the workflow's own Snakefile can ``import scripts.tsne_atlas`` from the
folder Snakemake puts on ``sys.path`` (the Snakefile's), with no path edits, also when this
workflow is used as a Snakemake module from another folder. Stage scripts import
``tsne_atlas`` directly: Snakemake puts a script's own folder on ``sys.path``.
"""
