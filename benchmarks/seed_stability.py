"""What a seed changes: Procrustes disparity of seeds 1 and 2 against seed 0 (README table).

Runs the workflow's own t-SNE (tsne_atlas.methods.tsne.embed with the config defaults) on the features and
input of a finished run, for both implementations and both initialisations, at one perplexity.
0 = the same layout, 1 = unrelated.

    PYTHONPATH=scripts python benchmarks/seed_stability.py --results results [--features resnet101]
"""

import argparse
from pathlib import Path

import yaml
from scipy.spatial import procrustes

from common import REPO, command_line, markdown_table
from tsne_atlas.files.map_inputs import read_input
from tsne_atlas.methods.tsne import embed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=REPO / "results", help="results folder of a finished run")
    parser.add_argument("--features", default="resnet101", help="feature set id (a folder of results/embeddings)")
    parser.add_argument("--perplexity", type=float, default=30)
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args()
    defaults = yaml.safe_load((REPO / "config.yaml").read_text())["tsne"]
    X, attrs = read_input(args.results / "embeddings" / args.features / "input.h5")
    rows = []
    for implementation in ("sklearn", "opentsne"):
        cells = []
        for init in ("pca", "random"):
            layouts = [
                embed(X, args.perplexity, seed, implementation, init=init, bh_theta=defaults["bh_theta"])[0]
                for seed in (0, 1, 2)
            ]
            cells.append(", ".join(f"{procrustes(layouts[0], other)[2]:.3f}" for other in layouts[1:]))
        rows.append([f"`{implementation}`", *cells])
    text = (
        f"N = {len(X)}, input {X.shape[1]}-d (standardize {attrs['standardize']}, PCA {attrs['pca_components']}), "
        f"perplexity {args.perplexity:g}\n\nCommand: `{command_line()}`\n\n"
        + markdown_table(["implementation", "`init: pca`", "`init: random`"], rows)
        + "\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
