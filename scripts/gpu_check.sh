#!/usr/bin/env bash
# GPU check for the fused neuron kernels: the Triton gradient-equivalence matrix compiled for CUDA,
# then the neuron benchmark (CPU rows and the CUDA rows: ours/Triton vs SpikingJelly's Triton path
# vs a plain PyTorch loop, fp32 and fp16). Without a CUDA device it says so and exits 0.
#   scripts/gpu_check.sh            # full benchmark sizes
#   QUICK=1 scripts/gpu_check.sh    # small sizes, 3 repeats
# Results: the pytest summary and the benchmark table on stdout; JSON in ${OUT:-.}/bench_neurons_gpu.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
if ! "$PYTHON" -c "import torch, triton" 2>/dev/null; then
    echo "gpu_check: $PYTHON cannot import torch and triton; activate the project's environment" >&2
    exit 2
fi
if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device visible to torch; nothing to check"
    exit 0
fi
unset TRITON_INTERPRET SNNCORE_BACKEND
"$PYTHON" -c "import torch, triton; print('device:', torch.cuda.get_device_name(), '| torch', torch.__version__, '| triton', triton.__version__)"
"$PYTHON" -m pytest tests/snncore/test_triton_kernels.py -q -p no:cacheprovider
"$PYTHON" scripts/bench.py neurons ${QUICK:+--quick} --json "${OUT:-.}/bench_neurons_gpu.json"
