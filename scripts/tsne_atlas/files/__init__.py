"""The files passed between stages: one module per file owns its layout, writer and reader.

- ``manifest``        sample/manifest.csv, sample/skipped.csv
- ``weights_record``  weights/resolved.json
- ``features``        features/features.h5
- ``tsne_inputs``     tsne/input.h5, tsne/neighbors/k-{k}.npz, tsne/affinities/perplexity-{p}.npz
- ``runs``            tsne/{run}.tsv + .json: a run's identity and its record
- ``metrics``         metrics/{run}.json, metrics/sweep.csv
"""
