"""Sweep overview: a contact sheet of every embedding, rows = perplexity, columns = seed,
one shared legend, each panel titled with its metrics. PNG and PDF (vector)."""

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from figure_style import class_colours, class_markers, note_legend, weights_note  # noqa: E402
from plot_scatter import PNG_METADATA, draw_classes  # noqa: E402
from run_tsne import read_embedding  # noqa: E402
from workflow_utils import atomic_path, job_log  # noqa: E402

LOGGER = logging.getLogger("tsne_atlas.sweep_overview")
PDF_METADATA = {"Creator": "tsne-atlas", "CreationDate": None, "Producer": None}


def panel_title(metrics: dict) -> str:
    return (
        f"p={metrics['perplexity']:g}  s={metrics['seed']}\n"
        f"T={metrics['trustworthiness']:.3f}  kNN={metrics['knn_accuracy_2d']:.2f}  KL={metrics['kl_divergence']:.2f}"
    )


def plot_overview(runs: list[dict], classes: list[str], panel_in: float = 2.6, point_size: float = 3.0,
                  note: str | None = None, title: str = "") -> plt.Figure:
    """``runs``: dicts with perplexity, seed, coords, labels and metrics; one panel each."""
    perplexities = sorted({r["perplexity"] for r in runs})
    seeds = sorted({r["seed"] for r in runs})
    fig, axes = plt.subplots(
        len(perplexities), len(seeds), figsize=(panel_in * len(seeds) + 2.2, panel_in * len(perplexities) + 0.9),
        squeeze=False, layout="constrained",
    )
    by_key = {(r["perplexity"], r["seed"]): r for r in runs}
    for i, p in enumerate(perplexities):
        for j, s in enumerate(seeds):
            ax = axes[i][j]
            run = by_key.get((p, s))
            if run is None:
                ax.set_axis_off()
                continue
            draw_classes(ax, run["coords"], run["labels"], classes, point_size)
            ax.set_title(panel_title(run["metrics"]), fontsize=8)
    colours, markers = class_colours(len(classes)), class_markers(len(classes))
    handles = [Line2D([], [], linestyle="", marker=m, color=c, markersize=7, label=name)
               for name, c, m in zip(classes, colours, markers)]
    note_legend(fig, handles, list(classes), note, ncols=min(len(classes), max(3, 2 * len(seeds))))
    fig.suptitle(title or "t-SNE sweep: rows = perplexity, columns = seed", fontsize=11)
    return fig


def render_overview(embeddings: list[str], metas: list[str], metric_files: list[str], png: str, pdf: str,
                    panel_in: float = 2.6, dpi: int = 150) -> None:
    runs, classes, model, random_weights = [], None, None, False
    for embedding, meta_json, metrics_json in zip(embeddings, metas, metric_files):
        meta = json.loads(Path(meta_json).read_text(encoding="utf-8"))
        metrics = json.loads(Path(metrics_json).read_text(encoding="utf-8"))
        _, labels, coords = read_embedding(embedding)
        classes, model = meta["classes"], meta.get("model")
        random_weights |= bool(meta.get("weights_random"))
        runs.append({"perplexity": meta["perplexity"], "seed": meta["seed"], "coords": coords, "labels": labels,
                     "metrics": metrics})
    n = runs[0]["metrics"]["n_images"]
    title = (f"t-SNE sweep of {model} features (N={n}): rows = perplexity, columns = seed\n"
             f"T = trustworthiness, kNN = {runs[0]['metrics']['knn_k']}-NN label accuracy in 2-D")
    fig = plot_overview(runs, classes, panel_in, note=weights_note({"weights_random": random_weights}), title=title)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
    with atomic_path(pdf) as tmp:
        fig.savefig(tmp, format="pdf", metadata=PDF_METADATA)
    plt.close(fig)
    LOGGER.info("wrote %s and %s (%d panels)", png, pdf, len(runs))


def main(snakemake) -> None:
    with job_log(snakemake.log[0]):
        render_overview(list(snakemake.input.embeddings), list(snakemake.input.metas),
                        list(snakemake.input.metrics), snakemake.output.png, snakemake.output.pdf,
                        panel_in=float(snakemake.params.panel_in), dpi=int(snakemake.params.dpi))


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
