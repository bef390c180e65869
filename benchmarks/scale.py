"""Scale: the whole workflow at 10,000 and 100,000 images; wall time and peak RSS per rule.

- ``--dataset animal-mnist-full``: all 10,000 Animal-MNIST silhouettes (downloaded by
  benchmarks/datasets.py), ResNet-101.
- ``--dataset synthetic --n-images 100000``: synthetic PNGs (benchmarks/datasets.py). The
  backbone is configurable (``--arch``): a ResNet-101 pass over 100,000 images takes about an hour
  on 2 CPU cores (see the extraction benchmark), so the 100k run here uses a small backbone; what
  scales with N besides the network's cost (streaming HDF5, t-SNE, metrics, figures) is the same.

Every rule's job time and peak RSS come from Snakemake's own benchmark files. ``--workdir``
may point at a folder where part of the workflow already ran (the 10k sweep benchmark's): jobs
that are up to date are not rerun, and their benchmark files still count in the table.

    PYTHONPATH=scripts python benchmarks/scale.py --dataset animal-mnist-full
    PYTHONPATH=scripts python benchmarks/scale.py --dataset synthetic --n-images 100000 --arch mobilenet_v3_small
"""

import argparse
import sys
from pathlib import Path

import yaml

from common import DEMO, WORK, command_line, machine, markdown_table, rule_benchmarks, run_snakemake, write_config
from datasets import animal_mnist_full, synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dataset",
        choices=["animal-mnist-full", "synthetic", "demo"],
        default="animal-mnist-full",
        help="demo: the bundled 1,000",
    )
    parser.add_argument("--n-images", type=int, default=100_000, help="synthetic images to make and use")
    parser.add_argument("--arch", default="resnet101")
    parser.add_argument("--perplexities", type=float, nargs="+", default=[30])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    folders = {"animal-mnist-full": "animal-mnist-full", "synthetic": f"synthetic-{args.n_images}", "demo": "demo"}
    workdir = args.workdir or WORK / f"scale-{folders[args.dataset]}"
    config_file = workdir / "config.yaml"
    if config_file.exists():  # continue a run made by another benchmark with its own config
        config = yaml.safe_load(config_file.read_text())
        root = Path(config["dataset"]["root"])
    else:
        makers = {
            "animal-mnist-full": animal_mnist_full,
            "synthetic": lambda: synthetic(args.n_images),
            "demo": lambda: DEMO,
        }
        root = makers[args.dataset]()
        config = {
            "results": "results",
            "dataset": {"root": str(root)},
            "sample": {"n_images": "all", "seed": 0},
            "features": {args.arch: {"arch": args.arch, "weights": "none"}},
            "extraction": {"num_workers": 2, "threads": 2},
            "tsne": {"perplexities": args.perplexities, "seeds": args.seeds, "threads": args.cores},
        }
        write_config(workdir, config)
    print(f"running the workflow in {workdir}", file=sys.stderr)
    wall = run_snakemake(workdir, cores=args.cores)
    results = workdir / "results"
    per_rule = rule_benchmarks(results)
    sets = list(config["features"])
    names = [f"features/{s}.h5" for s in sets] + [f"embeddings/{s}/input.h5" for s in sets] + ["explorer.html"]
    sizes = {name: (results / name).stat().st_size / 2**20 for name in names if (results / name).exists()}
    rows = [
        [rule, e["jobs"], f"{e['s']:.1f}", f"{e['s'] / e['jobs']:.1f}", f"{e['max_rss_mib']:.0f}"]
        for rule, e in per_rule.items()
    ]
    n_runs = len(config["tsne"]["perplexities"]) * len(config["tsne"]["seeds"])
    text = (
        f"{root.name}: {', '.join(sets)} (random init), perplexities {config['tsne']['perplexities']} x "
        f"seeds {config['tsne']['seeds']} ({n_runs} runs)\n\nMachine: {machine()}\n\n"
        f"Command: `{command_line()}` (this invocation's wall time: {wall:.0f} s)\n\n"
        + markdown_table(["rule", "jobs", "summed job s", "s per job", "peak RSS MiB"], rows)
        + "\n\nOutput sizes: "
        + ", ".join(f"{name} {mib:.1f} MiB" for name, mib in sizes.items())
        + "\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
