#!/usr/bin/env bash
# GPU feature-extraction benchmark (ResNet-101 from JPEG files, data loading included):
# fp32 / bf16 / fp16 autocast x NCHW / channels-last x batch 32, 64, 128, 256, the article's loop,
# and the project's extract_features (device cuda, precision auto). Prints one Markdown table.
#
# Usage, from anywhere (it runs from the repo root):
#   bash benchmarks/gpu.sh                       # 2,000 synthetic 500x375 JPEGs, about 3-6 min on an H200
#   bash benchmarks/gpu.sh --root DIR            # a class-per-folder dataset instead (first N files by path)
#   bash benchmarks/gpu.sh --out gpu.md          # also write the table to a file
# Any other option goes to benchmarks/gpu_extraction.py (see its --help): --n-images, --arch,
# --weights, --num-workers, --batches, --precisions, --layouts, --project-variants, --budget-s.
# Interpreter: .venv/bin/python when it has a CUDA torch, else python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cuda_ok='import torch; assert torch.cuda.is_available()'
if [[ -x .venv/bin/python ]] && .venv/bin/python -c "$cuda_ok" 2>/dev/null; then
    PY=.venv/bin/python
else
    PY=python3
fi

if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "benchmarks/gpu.sh: no nvidia-smi here; this benchmark needs an NVIDIA GPU with CUDA" >&2
    exit 2
fi
if ! "$PY" -c "$cuda_ok" 2>/dev/null; then
    echo "benchmarks/gpu.sh: $PY's torch sees no CUDA GPU (or has no torch); run it on a CUDA machine" >&2
    exit 2
fi
if ! missing=$("$PY" - 2>&1 <<'EOF'
import importlib.util, sys
need = ["torchvision", "h5py", "PIL", "numpy", "tqdm"]
gone = [m for m in need if importlib.util.find_spec(m) is None]
print(" ".join(gone)); sys.exit(1 if gone else 0)
EOF
); then
    echo "benchmarks/gpu.sh: $PY lacks Python packages: $missing" >&2
    exit 2
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
export PYTHONUNBUFFERED=1
# The benchmarks import the workflow's package, scripts/tsne_atlas (it is not installed).
export PYTHONPATH="scripts${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/gpu_extraction.py --device cuda "$@"
