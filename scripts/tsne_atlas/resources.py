"""What each job asks a scheduler for: GPUs, memory (MB) and wall time (minutes), from the config.

The rules declare these as ``resources``, so the same rules run on a workstation
(``snakemake --cores N --resources gpu=1``: at most one GPU job at a time) and on SLURM
(the executor plugin turns ``gpu``, ``mem_mb`` and ``runtime`` into ``--gpus``, ``--mem`` and
``--time``). Sizes are generous upper bounds, not predictions; where the sample size matters they
grow with it:

- extraction streams features to disk, so its memory is flat in N (the model, a few batches and
  one process per DataLoader worker); its run time grows with N (with extraction.shards, with the
  shard's slice). Merging shards copies one batch at a time: flat memory, time linear in N.
- the sweep's prepared-input job (prepare_input, and prepare_query, which refits it) holds, up to
  ``prepare.block_rows`` images, the features as float64 several times over (z-scoring, PCA: measured
  20-22 bytes per feature value); above, one block of rows as float32 and float64 (12 bytes per
  value), a few D x D matrices and the N x d result (measured: 2.9 GB at 1,000,000 x 2,048 in blocks
  of 100,000). The feature width is not known before extraction, so 4096 dimensions are assumed
  (ResNet-101 gives 2048); the job checks its need with the real width before it reads a row.
  The neighbour graph, affinity and per-run t-SNE jobs hold only the 50-d input, the graph and a
  sparse P: a few KB per image (measured: 538 MB for a run of 100,000 images).
- the projector export holds its sprite, at most TensorBoard's 8192 x 8192 pixels (twice, while it is
  encoded), and the prepared input, labels and metadata of the images: a few KB per image.
- the explorer's thumbnails are written one atlas at a time: flat memory (measured: 132 MB at 100,000
  images); decoding large photos dominates their run time. The explorer page holds the sweep's k-NN
  graph (k = 3 x the largest perplexity, indices and distances) and the page's text (measured: 449 MB
  at 100,000 images with k = 90).
- the metrics' trustworthiness (scikit-learn) builds N x N distance and rank matrices: about
  32 bytes x N^2 for the N <= metrics.max_images points it uses (5,000: ~0.8 GB).

Kept free of heavy imports: Snakemake imports this on every invocation.
"""

import math

BASE_MEM_MB = 1000
EXTRACTION_BASE_MEM_MB = 4000
MEM_PER_WORKER_MB = 1000
ASSUMED_FEATURE_DIM = 4096
FLOAT64_COPIES = 3
# The prepared input in row blocks: bytes per value of one block (float32 as read, float64 to compute
# on) and the D x D float64 matrices held at once (the covariance, LAPACK's copy of it, its workspace of
# 2 D^2, the eigenvectors, one temporary).
PREPARE_BLOCK_BYTES_PER_VALUE = 12
PREPARE_SQUARE_COPIES = 6
TRUSTWORTHINESS_BYTES_PER_PAIR = 32
# Neighbour graph (k = 3 x perplexity, indices + distances), P and the 50-d input per image, generously.
TSNE_RUN_BYTES_PER_IMAGE = 20_000
MIN_RUNTIME_MIN = 10
# Conservative throughput (images per second) of a ResNet-101 extraction, image decoding included.
EXTRACTION_IMAGES_PER_S = {"gpu": 20, "cpu": 2}
# Conservative rate of joining extraction shards (it copies the features: 20,000 images/s of ResNet-101's
# 2,048 floats measured from a cold page cache, BENCHMARKS.md).
MERGE_IMAGES_PER_S = 1000
TSNE_MIN_PER_1000_IMAGES = 3
METRICS_MIN_PER_1000_IMAGES = 1
# The projector sprite's largest size (RGB, 8192 x 8192), the rest per image, and its run time, generously.
PROJECTOR_SPRITE_BYTES = 3 * 8192 * 8192
PROJECTOR_BYTES_PER_IMAGE = 2_000
PROJECTOR_MIN_PER_1000_IMAGES = 1
# Explorer: thumbnails at ~10 ms per large photo, the page at 10 KB per image (graph, page text), generously.
THUMBNAILS_MIN_PER_1000_IMAGES = 0.5
# Sampling decodes and hashes every sampled file on one core: ~10 ms per large photo, as the thumbnails.
SAMPLING_MIN_PER_1000_IMAGES = 0.5
EXPLORER_BYTES_PER_IMAGE = 10_000
MB = 2**20


def uses_gpu(device: str) -> bool:
    """model.device ``auto`` or ``cuda[:N]`` asks for a GPU; ``cpu`` does not."""
    return device == "auto" or device.startswith("cuda")


def extraction_gpus(device: str, source: str) -> int:
    """The ``gpu`` resource of a feature set's extraction job: 1 when it may use a GPU, else 0 (a
    precomputed set only reads a file, so it never waits for a GPU)."""
    return 1 if uses_gpu(device) and source != "precomputed" else 0


def sample_size(n_images, count_images=None) -> int:
    """``sample.n_images`` as a number; ``all`` is counted with ``count_images()``."""
    if n_images == "all":
        if count_images is None:
            raise ValueError("sample.n_images is 'all': give count_images to count the dataset")
        return int(count_images())
    return int(n_images)


def sampling_runtime_min(n_images: int) -> int:
    """Every sampled file is fully decoded and hashed, one at a time: time linear in N (a cluster's
    default 15 minutes would not check 1,000,000 photos)."""
    return MIN_RUNTIME_MIN + math.ceil(SAMPLING_MIN_PER_1000_IMAGES * n_images / 1000)


def extraction_mem_mb(num_workers: int) -> int:
    """Flat in N (features are streamed to disk): the model plus one process per DataLoader worker."""
    return EXTRACTION_BASE_MEM_MB + MEM_PER_WORKER_MB * int(num_workers)


def extraction_runtime_min(n_images: int, device: str) -> int:
    rate = EXTRACTION_IMAGES_PER_S["gpu" if uses_gpu(device) else "cpu"]
    return MIN_RUNTIME_MIN + math.ceil(n_images / rate / 60)


def merge_mem_mb() -> int:
    """Joining extraction shards copies one batch at a time: flat in N."""
    return BASE_MEM_MB


def merge_runtime_min(n_images: int) -> int:
    return MIN_RUNTIME_MIN + math.ceil(n_images / MERGE_IMAGES_PER_S / 60)


def prepare_blocked(n_images: int, dim: int, block_rows: int) -> bool:
    """Whether the prepared input is made from the features in row blocks (more images than
    ``prepare.block_rows``, and at least as many as dimensions: with fewer, the features are smaller
    than their D x D covariance and PCA takes a full SVD of them whole)."""
    return n_images > block_rows and n_images >= dim


def prepare_need_bytes(n_images: int, dim: int, block_rows: int, pca_components: int) -> int:
    """What the prepared input of N x ``dim`` features holds, interpreter aside: whole, the features
    as float32 and float64 a few times over; in row blocks, one block as float32 and float64, a few
    D x D float64 matrices (the covariance, one block's product, the eigendecomposition) and the
    N x d float64 result (d = ``pca_components``, or ``dim`` without PCA)."""
    if not prepare_blocked(n_images, dim, block_rows):
        return n_images * dim * 8 * FLOAT64_COPIES
    out_dim = min(pca_components, dim) if pca_components else dim
    return (
        block_rows * dim * PREPARE_BLOCK_BYTES_PER_VALUE
        + PREPARE_SQUARE_COPIES * dim * dim * 8
        + n_images * out_dim * 8
    )


def prepare_mem_mb(n_images: int, block_rows: int, pca_components: int) -> int:
    """The prepared input (z-scoring and PCA; also the query set's, which refits it): up to
    ``prepare.block_rows`` images the features as float64 a few times over, above one block of them,
    the D x D covariance and the result (``prepare_need_bytes`` at the assumed width)."""
    return BASE_MEM_MB + math.ceil(prepare_need_bytes(n_images, ASSUMED_FEATURE_DIM, block_rows, pca_components) / MB)


def maps_mem_mb(n_images: int) -> int:
    """k-NN graph, affinities, each map run and the suspects: the reduced input, the graph and a sparse P."""
    return BASE_MEM_MB + math.ceil(n_images * TSNE_RUN_BYTES_PER_IMAGE / MB)


def maps_runtime_min(n_images: int) -> int:
    return MIN_RUNTIME_MIN + math.ceil(TSNE_MIN_PER_1000_IMAGES * n_images / 1000)


def map_need_bytes(n_images: int, bytes_per_image: int) -> int:
    """One map run of a method that holds ``bytes_per_image`` (``MapMethod.run_bytes_per_image``)."""
    return IMPORTS_BYTES + n_images * bytes_per_image


def map_mem_mb(n_images: int, bytes_per_image: int) -> int:
    """The map job: what its method measured per image, with the requests' margin."""
    return _request_mb(map_need_bytes(n_images, bytes_per_image))


def map_runtime_min(n_images: int, seconds_per_image: float) -> int:
    return _runtime_min(n_images * seconds_per_image)


def metrics_mem_mb(n_images: int, max_images: int) -> int:
    """Trustworthiness's N x N matrices over the (at most ``max_images``) points the metrics use."""
    n_used = min(n_images, max_images)
    return maps_mem_mb(n_images) + math.ceil(TRUSTWORTHINESS_BYTES_PER_PAIR * n_used**2 / MB)


def metrics_runtime_min(n_images: int) -> int:
    return MIN_RUNTIME_MIN + math.ceil(METRICS_MIN_PER_1000_IMAGES * n_images / 1000)


def projector_mem_mb(n_images: int) -> int:
    """The projector export: the sprite twice (built, then encoded) and a few KB per image."""
    return BASE_MEM_MB + math.ceil((2 * PROJECTOR_SPRITE_BYTES + n_images * PROJECTOR_BYTES_PER_IMAGE) / MB)


def projector_runtime_min(n_images: int) -> int:
    return MIN_RUNTIME_MIN + math.ceil(PROJECTOR_MIN_PER_1000_IMAGES * n_images / 1000)


def thumbnails_runtime_min(n_images: int) -> int:
    return MIN_RUNTIME_MIN + math.ceil(THUMBNAILS_MIN_PER_1000_IMAGES * n_images / 1000)


def explorer_mem_mb(n_images: int) -> int:
    """The explorer page's job: the sweep's k-NN graph and the page's text grow with the sample."""
    return BASE_MEM_MB + math.ceil(n_images * EXPLORER_BYTES_PER_IMAGE / MB)


# --- The stages after the prepared input, sized from their peak RSS and time measured at 250,000 and
# 1,000,000 images (BENCHMARKS.md, "Stages at 1,000,000 images": 48-px PNGs, a 50-d prepared input, the
# graph of the default 150 neighbours, 9 maps; a 2-core VM). What a stage holds per image (per
# neighbour where the graph's width matters) is what it measured, rounded up; the jobs ask for
# REQUEST_MARGIN times that plus BASE_MEM_MB, and for 10 minutes plus RUNTIME_MARGIN times the
# measured seconds per image. ``*_need_bytes`` (no margin) is what ``jobs.check_memory`` compares with
# the memory a job can take, before the stage reads its inputs.
REQUEST_MARGIN = 1.5
RUNTIME_MARGIN = 3
# The interpreter and the stage's imports (numpy, scipy, openTSNE): 137 MiB measured, rounded up.
IMPORTS_BYTES = 200 * MB
# Per image and per neighbour of the graph (int64 index + float64 distance).
GRAPH_BYTES_PER_NEIGHBOUR = 16
# knn_graph: Annoy's index (float32 rows, its trees) and the prepared input, beside the graph it
# returns: measured 2,712 and 3,628 MiB at 1,000,000 images x 90 and 150 neighbours (1.3 KB an image
# besides the graph); 815 and 1,149 s, so 0.31 ms an image plus 5.6 us a neighbour (Annoy's build
# and queries grow as N log N: a larger N takes a little longer per image).
KNN_BYTES_PER_IMAGE = 1_400
KNN_SECONDS_PER_IMAGE = 0.00032
KNN_SECONDS_PER_NEIGHBOUR = 0.0000056
# tsne_affinities at its peak (preparation.symmetric_affinities): P (8-byte value, 4-byte index per
# neighbour), its transpose made CSR (the same) and P + P.T (up to twice the entries): at most 48 bytes
# a neighbour; measured 6,589 MiB at 1,000,000 x 150 (perplexity 50; 44 bytes a neighbour besides the
# imports), 74 s.
AFFINITY_BYTES_PER_NEIGHBOUR = 48
AFFINITY_SECONDS_PER_NEIGHBOUR = 5e-7
# find_suspects besides the graph and X (twice: X and its unit rows): the per-image scores, sort keys
# and the sample's paths, hashes and labels as Python strings; measured 3,753 MiB at 1,000,000 x 150
# (0.7 KB an image besides the graph and X), 61 s.
SUSPECTS_BYTES_PER_IMAGE = 1_000
SUSPECTS_SECONDS_PER_IMAGE = 0.00006
# Images find_suspects scores at a time (suspects.BLOCK_ROWS): their temporaries are a few
# SUSPECTS_BLOCK_ROWS x K arrays (about 20 MB each at K = 150), whatever N is.
SUSPECTS_BLOCK_ROWS = 16_384
# find_clusters: the first clusters.neighbours columns of the graph, X, the sample's strings, igraph's
# graph (edges added in blocks) and Leiden's partition: measured 4,092 MiB at 1,000,000 images x 15
# neighbours (3.4 KB an image besides the graph's columns and X), 568 s (10 clusters: Leiden's time
# depends on the data).
CLUSTERS_BYTES_PER_IMAGE = 3_500
CLUSTERS_SECONDS_PER_IMAGE = 0.0006
# embedding_metrics: trustworthiness's N x N matrices over at most metrics.max_images points
# (TRUSTWORTHINESS_BYTES_PER_PAIR), and per image the prepared input, the run's and the manifest's rows:
# measured 1,496 MiB at 1,000,000 images (5,000 used; 0.7 KB an image besides the 5,000^2 matrices), 21 s.
METRICS_BYTES_PER_IMAGE = 1_000
# Figures that read every image (one image decoded at a time): image_quality keeps every image's scores
# (a dict of floats) and its quality.csv row, measured 1,560 MiB at 1,000,000 48-px PNGs (1.5 KB an
# image); the scatter stage a run's paths, labels and coordinates and its figures' points, 800 MiB
# (0.7 KB); the contact sheet that for every run of the sweep, 2,435 MiB for 9 runs (0.27 KB an image
# and run). (The profile's default, 2,000 MB, held the scatter only.)
QUALITY_BYTES_PER_IMAGE = 2_000
SCATTER_BYTES_PER_IMAGE = 1_000
OVERVIEW_BYTES_PER_IMAGE_AND_RUN = 300


def _request_mb(need_bytes: float) -> int:
    """A job's request for a measured need: BASE_MEM_MB plus REQUEST_MARGIN times it."""
    return BASE_MEM_MB + math.ceil(REQUEST_MARGIN * need_bytes / MB)


def _runtime_min(seconds: float) -> int:
    return MIN_RUNTIME_MIN + math.ceil(RUNTIME_MARGIN * seconds / 60)


def knn_need_bytes(n_images: int, k: int) -> int:
    return IMPORTS_BYTES + n_images * (KNN_BYTES_PER_IMAGE + GRAPH_BYTES_PER_NEIGHBOUR * k)


def knn_mem_mb(n_images: int, k: int) -> int:
    """The k-NN graph job (Annoy, one thread)."""
    return _request_mb(knn_need_bytes(n_images, k))


def knn_runtime_min(n_images: int, k: int) -> int:
    return _runtime_min(n_images * (KNN_SECONDS_PER_IMAGE + KNN_SECONDS_PER_NEIGHBOUR * k))


def affinities_need_bytes(n_images: int, k: int) -> int:
    """One perplexity's affinities from k = 3 x perplexity neighbours (``preparation.symmetric_affinities``)."""
    return IMPORTS_BYTES + AFFINITY_BYTES_PER_NEIGHBOUR * n_images * k


def affinities_mem_mb(n_images: int, k: int) -> int:
    return _request_mb(affinities_need_bytes(n_images, k))


def affinities_runtime_min(n_images: int, k: int) -> int:
    return _runtime_min(AFFINITY_SECONDS_PER_NEIGHBOUR * n_images * k)


def input_columns(pca_components: int) -> int:
    """Columns of the prepared input as the config says them: prepare.pca_components, or the assumed
    feature width when PCA is off (0)."""
    return int(pca_components) or ASSUMED_FEATURE_DIM


def suspects_need_bytes(n_images: int, graph_width: int, n_columns: int) -> int:
    """find_suspects: the whole graph, X twice and a few KB of scores and strings per image, one block of
    scores (suspects.BLOCK_ROWS images x the graph's width, a few arrays)."""
    block = 6 * 8 * SUSPECTS_BLOCK_ROWS * graph_width
    per_image = GRAPH_BYTES_PER_NEIGHBOUR * graph_width + 16 * n_columns + SUSPECTS_BYTES_PER_IMAGE
    return IMPORTS_BYTES + block + n_images * per_image


def suspects_mem_mb(n_images: int, graph_width: int, n_columns: int) -> int:
    return _request_mb(suspects_need_bytes(n_images, graph_width, n_columns))


def suspects_runtime_min(n_images: int, graph_width: int) -> int:
    return _runtime_min(SUSPECTS_SECONDS_PER_IMAGE * n_images * max(1.0, graph_width / 150))


def clusters_need_bytes(n_images: int, neighbours: int, n_columns: int) -> int:
    """find_clusters: ``neighbours`` columns of the graph, X, igraph's graph and Leiden's partition."""
    per_image = GRAPH_BYTES_PER_NEIGHBOUR * neighbours + 8 * n_columns + CLUSTERS_BYTES_PER_IMAGE * neighbours / 15
    return IMPORTS_BYTES + math.ceil(n_images * per_image)


def clusters_mem_mb(n_images: int, neighbours: int, n_columns: int) -> int:
    return _request_mb(clusters_need_bytes(n_images, neighbours, n_columns))


def clusters_runtime_min(n_images: int, neighbours: int) -> int:
    return _runtime_min(CLUSTERS_SECONDS_PER_IMAGE * n_images * max(1.0, neighbours / 15))


def quality_mem_mb(n_images: int) -> int:
    """image_quality: every image's scores and its quality.csv row (one image decoded at a time)."""
    return _request_mb(IMPORTS_BYTES + QUALITY_BYTES_PER_IMAGE * n_images)


def scatter_mem_mb(n_images: int) -> int:
    """The scatter stage: one run's paths, labels and coordinates and its figures' points."""
    return _request_mb(IMPORTS_BYTES + SCATTER_BYTES_PER_IMAGE * n_images)


def overview_mem_mb(n_images: int, n_runs: int) -> int:
    """The contact sheet: every run of the sweep, each as the scatter stage's."""
    return _request_mb(IMPORTS_BYTES + OVERVIEW_BYTES_PER_IMAGE_AND_RUN * n_images * max(1, n_runs))


def run_metrics_mem_mb(n_images: int, max_images: int) -> int:
    """embedding_metrics: the capped trustworthiness plus what it reads of every image."""
    n_used = min(n_images, max_images)
    return _request_mb(IMPORTS_BYTES + TRUSTWORTHINESS_BYTES_PER_PAIR * n_used**2 + METRICS_BYTES_PER_IMAGE * n_images)
