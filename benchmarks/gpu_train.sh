#!/usr/bin/env bash
# The training checks for a machine with an NVIDIA GPU (run by hand; CI has none):
#   1. pytest -m cuda tests/train: a smoke run on CUDA, its first losses against the CPU's,
#      its checkpoint resumed on the CPU and back on CUDA, the quality figures on CUDA;
#   2. site A's cohort at 128³ (the `paper` preset's grid), the `paper` preset trained on
#      it, and benchmarks/train_quality.py on the result, on CUDA. The whole script keeps
#      inside BUDGET_S seconds: training gets what is left after 180 s for the figures
#      (SIGINT then writes a checkpoint at a step boundary, and the figures are the
#      checkpoint's).
# Usage: bash benchmarks/gpu_train.sh [OUTDIR] [BUDGET_S]  (logs, metrics and PNGs in OUTDIR)
set -u
out=${1:-/tmp/gpu_train}
budget_s=${2:-570}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 FEDSIM_CACHE=${FEDSIM_CACHE:-/tmp/fedsim-cache}
py=${PYTHON:-python3}
work=${WORK:-/tmp/gpu_train_work}
rm -rf "$work"; mkdir -p "$work"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi -L | tee "$out/device.txt"
$py -c "import torch, diffct, monai; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'monai', monai.__version__)" | tee -a "$out/device.txt"
stamp "pytest -m cuda tests/train (beside the cohort)"
timeout 150 $py -m pytest -q -p no:cacheprovider -o addopts=-ra -o filterwarnings=ignore \
  -m cuda tests/train >"$out/pytest_cuda_train.txt" 2>&1 &
pytest_pid=$!
stamp "cohort A 128^3"
$py -m fedsim_app cohort --out "$work/cohort" --sites A --size 128 --seed 0 >"$work/cohort.log" 2>&1 \
  || { tail -20 "$work/cohort.log"; exit 1; }
wait $pytest_pid; echo "pytest rc=$?"; tail -15 "$out/pytest_cuda_train.txt"
train_s=$(( budget_s - ($(date +%s) - t0) - 180 ))
stamp "train paper preset, site A, cap ${train_s} s"
timeout -s INT "$train_s" $py -m fedsim_app train --site A --cohort "$work/cohort" --preset paper \
  --threads 0 --out "$work/run" 2>&1 | tr '\r' '\n' | grep -v '^$' | awk 'NR % 20 == 1 || /trained|interrupt|Error|error/' \
  | tee "$out/train.txt" | tail -30
stamp "training ended"
$py - "$work/run/checkpoint.pt" <<'PY' | tee -a "$out/train.txt"
import sys, torch
s = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
print("checkpoint: phase", s["phase"], "step", s["step"], "seconds", s["seconds"])
PY
cp "$work/run/metrics.csv" "$work/run/loss_curves.png" "$work/run/samples.png" "$work/run/config.toml" "$out/" 2>/dev/null
stamp "train_quality on cuda"
timeout 170 $py benchmarks/train_quality.py --checkpoint "$work/run/checkpoint.pt" \
  --cohort "$work/cohort" --device cuda 2>&1 | tee "$out/quality.txt"
stamp "quality done"
nvidia-smi --query-gpu=memory.used,memory.total --format=csv | tee -a "$out/device.txt"
stamp "end"
