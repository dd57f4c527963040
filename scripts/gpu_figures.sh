#!/usr/bin/env bash
# The GPU figures the README still lacks, in one short go on a machine with a CUDA GPU:
#   1. the full digit-recognizer config (5 folds, mnist_cnn, shift TTA, the [gpu] profile)
#      under --max-time, so it always ends with a submission: CV accuracy and wall time;
#   2. scripts/bench_trainer.py --device cuda: device-resident data against a DataLoader;
#   3. scripts/bench_images.py: the image-file loader on the GPU machine's cores.
#
#   bash scripts/gpu_figures.sh [OUT_DIR] [MAX_SECONDS]    # OUT_DIR default: gpu_figures/
#
# Needs data/digit-recognizer/ (train.csv, test.csv, sample_submission.csv, or the zip the
# kaggle CLI downloads). Installs the kit into .venv if that is missing (`make .venv`'s
# recipe). Every figure lands in OUT_DIR as JSON plus the console log; nothing else is
# written outside runs/ and submissions/.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_figures}"
max_seconds="${2:-420}"
mkdir -p "$out"
# PY=python3 uses a Python that already holds torch and the kit's needs (a GPU image with no
# package index: carry the missing wheels, e.g. albumentations, and put them on PYTHONPATH).
py="${PY:-.venv/bin/python}"
if [ ! -x "$py" ] && ! command -v "$py" > /dev/null; then
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    py=.venv/bin/python
fi
"$py" -c "import torch, sys; ok = torch.cuda.is_available(); print('cuda:', ok, \
torch.cuda.get_device_name(0) if ok else ''); sys.exit(0 if ok else 1)" | tee "$out/device.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$out/device.txt" || true

start=$(date +%s)
"$py" scripts/train.py --comp digit-recognizer --device cuda --max-time "$max_seconds" \
    --summary-json "$out/digit_recognizer.json" 2>&1 | tee "$out/digit_recognizer.log"
echo "{\"wall_s\": $(( $(date +%s) - start ))}" > "$out/digit_recognizer_wall.json"

"$py" scripts/bench_trainer.py --device cuda --summary-json "$out/bench_trainer.json" \
    2>&1 | tee "$out/bench_trainer.log"
"$py" scripts/bench_images.py --summary-json "$out/bench_images.json" \
    2>&1 | tee "$out/bench_images.log"
echo "done: $out"
