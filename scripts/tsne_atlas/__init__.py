"""tsne-atlas: how a neural network sees a set of images.

The workflow's stages, in order, each a module with one function per rule:

- ``sampling``     sample_images      image folder -> sample manifest
- ``weights``      fetch_weights      a feature set's weights -> a resolved-weights record (through
                                      its source's resolver, ``sources.RESOLVERS``)
- ``extraction``   extract_features   manifest + weights -> a feature set's features file (all its
                                      nodes from one forward pass, or a precomputed file imported)
- ``preparation``  tsne_input, tsne_neighbors, tsne_affinities: what all maps of a feature set share
- ``tsne``         tsne               one (feature set, perplexity, seed) t-SNE run -> run record
- ``maps``         umap_embedding, pca_embedding: UMAP and PCA maps of the same input -> run records
- ``metrics``      embedding_metrics; ``metrics_plot``: sweep_metrics
- ``scatter``, ``mosaic``, ``grid_mosaic``, ``overview``, ``explorer``: figures of run records
- ``compare``      compare_sheet, compare_metrics, compare_cka: figures across feature sets

Each file passed between stages has one module in ``files/`` that owns its layout, writer and
reader; figure stages read run records through ``files.runs`` and import no other stage.
Where features come from: ``sources``, one module per ``features.<set>.source`` (``torchvision``,
``timm``, ``own_network`` with ``export_archive``, ``precomputed``), each with its weights resolution,
and ``sources.network`` (what the network sources share); ``sources.SOURCES`` lists them.
Shared helpers: ``jobs`` (errors, atomic outputs, job logs, the rule adapter), ``config``
(checks the schema cannot express, feature set ids), ``plan`` (what a config asks the workflow
for, worked out once per invocation, and the done message), ``resources`` (job sizes), ``images`` (one
image reader), ``figure_style`` and ``canvas`` (colours, notes, thumbnails shared by the figures).
"""
