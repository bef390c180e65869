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
AFFINITY_BYTES_PER_NEIGHBOUR = 48


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


def affinities_mem_bytes(n_images: int, k: int) -> int:
    """One perplexity's affinities from k = 3 x perplexity neighbours (``preparation.symmetric_affinities``):
    at its peak P, P's transpose and P + P.T, 48 bytes a neighbour (P: 8-byte values, 4-byte indices;
    P + P.T up to twice P's entries)."""
    return BASE_MEM_MB * MB + AFFINITY_BYTES_PER_NEIGHBOUR * n_images * k
