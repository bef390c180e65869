"""tsne-atlas: how a neural network sees a set of images.

The workflow's stages, in order, each a module with one function per rule (``scripts/<rule>.py`` calls it):

- ``sampling``         sample_images, label_images: image collection (``collection``) -> sample manifest;
                       sample_query: the query set (config section query), whole
- ``weights``          fetch_weights: a feature set's weights -> a resolved-weights record (through its
                       source's resolver, ``sources.RESOLVERS``)
- ``extraction``       extract_features, extract_features_shard: manifest + weights -> a feature set's
                       features file, or one shard of it (``shards``: the slices); all its nodes from one
                       forward pass, or a precomputed file imported
- ``merge``            merge_features: a sharded set's shards -> its features file, byte for byte
- ``preparation``      prepare_input, knn_graph, tsne_affinities: what all maps of a feature set share;
                       prepare_query: the query prepared with the reference's fit, its nearest reference images
- ``maps``             map: one run of any method -> run record; the methods are declared in ``methods``
                       (``base``: ``MapMethod``, ``Axis``; one module per method; ``MAP_METHODS``);
                       place_query: the query placed on one run's map, the map unmoved
- ``placement``        placement_tables: where the query lands, leaks, per class; ``query_figure``:
                       query_figures (the query on a run's map and on its mosaic's frame)
- ``metrics``          embedding_metrics; ``metrics_plot``: sweep_metrics
- ``scatter``, ``mosaic``, ``grid_mosaic``: per-run figures; ``overview``: sweep_overview
- ``suspects``         find_suspects; ``suspects_figure``: suspects_figures
- ``quality_figure``   image_quality: the image problems of the sample, table and figures; the checks
                       are declared in ``quality`` (``CHECKS``, one entry per check)
- ``thumbnails``       explorer_thumbnails; ``explorer``: explorer (its page's code: ``explorer_page/``);
                       ``explorer_points``: its WebGL page of every image (``explorer.backend: points``,
                       the renderer vendored in ``explorer_page/vendor/`` by ``tools/vendor_js.py``)
- ``projector``        projector_export, projector_config: TensorBoard's Embedding Projector
- ``compare``          compare_sheet, compare_metrics, compare_cka: figures across feature sets
- ``layers_table``     not a rule: the layer table of a finished comparison (``tools/layers_table.py``)

Each file passed between stages has one module in ``files/`` that owns its layout, writer and
reader; figure stages read run records through ``files.runs`` and import no other stage.
Where features come from: ``sources``, one module per ``features.<set>.source`` (``torchvision``,
``timm``, ``own_network`` with ``export_archive``, ``precomputed``), each with its weights resolution,
and ``sources.network`` (what the network sources share); ``sources.SOURCES`` lists them.
Shared helpers: ``jobs`` (errors, atomic outputs, job logs, the rule adapter), ``config``
(checks the schema cannot express, feature set ids, the sweep's runs and graph size), ``plan`` (what
a config asks the workflow for, worked out once per invocation, and the done message), ``schema`` (the
config schema, for the Snakefile, tools and tests), ``resources`` (job sizes), ``images`` (one image
reader), ``subsample`` (the fixed subsample of capped stages), ``figure_style`` and ``canvas``
(colours, notes, thumbnails shared by the figures).
"""
