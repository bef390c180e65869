"""Print the layer table of a finished comparison (tsne_atlas.layers_table): per network and layer, in
depth order, k-NN label accuracy in the features and in 2-D and linear CKA to the next deeper and to the
deepest layer, then one verdict per network (separability rises with depth? CKA adjacent > distant?).

    PYTHONPATH=scripts .venv/bin/python tools/layers_table.py results/compare-layers

reads RESULTS/compare/metrics.csv and RESULTS/compare/cka.csv and prints Markdown.
"""

import sys

from tsne_atlas.layers_table import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
