"""The files passed between stages: one module per file owns its layout, writer and reader.

- ``manifest``        sample/manifest.csv, sample/skipped.csv
- ``weights_record``  weights/{set}.json
- ``features``        features/{set}.h5 (one dataset per node)
- ``map_inputs``     embeddings/{features}/input.h5, neighbors/k-{k}.npz, affinities/perplexity-{p}.npz
- ``runs``            embeddings/{run}.tsv + .json: a run's identity ({features}/{method}/{params}, e.g.
                      resnet101/tsne/perplexity-30_seed-0) and record
- ``metrics``         metrics/{run}.json, metrics/{features}/sweep.csv
- ``compare``         compare/metrics.csv, compare/cka.csv
"""
