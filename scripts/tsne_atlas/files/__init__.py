"""The files passed between stages: one module per file owns its layout, writer and reader.

- ``manifest``        sample/images.csv, sample/manifest.csv, sample/skipped.csv
- ``weights_record``  weights/{set}.json
- ``features``        features/{set}.h5 (one dataset per node)
- ``feature_shards``  features/shards/{set}/{i}-of-{K}.h5 (one extraction shard, joined by the merge)
- ``map_inputs``      embeddings/{features}/input.h5, graph/k-{k}.npz, affinities/perplexity-{p}.npz
- ``runs``            embeddings/{run}.tsv + .json: a run's identity ({features}/{method}/{params}, e.g.
                      resnet101/tsne/perplexity-30_seed-0) and record
- ``metrics``         metrics/{run}.json, metrics/{features}/sweep.csv
- ``suspects``        suspects/{features}/suspects.csv, duplicates.csv, outliers.csv
- ``quality``         quality/quality.csv (the image problems of the sample)
- ``thumbnails``      explorer/atlas-*.jpg and thumbnails.json (the explorer's and projector's thumbnails)
- ``explorer_page``   the JSON document inside explorer.html
- ``projector``       projector/{features}/tensors.tsv, metadata.tsv, sprite.jpg, embedding.json;
                      projector/projector_config.pbtxt
- ``compare``         compare/metrics.csv, compare/cka.csv
"""
