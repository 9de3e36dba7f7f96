#!/usr/bin/env bash
# The CUDA checks, for a machine with an NVIDIA GPU (run by hand; CI has none):
#   1. the numerical tests on CUDA (pytest -m cuda: adjoint, gradcheck, exact ellipsoid
#      line integrals, CPU agreement of the operator and of the whole physics chain);
#   2. the engine's tests with CUDA as the default device (FEDSIM_DEVICE unset);
#   3. the simulator benchmarks on CUDA, physics at 64³ and 128³ and one 128³ cohort case.
# Usage: bash benchmarks/gpu_check.sh [OUTDIR]   (logs land in OUTDIR, default /tmp/gpu_check)
set -u
out=${1:-/tmp/gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 FEDSIM_CACHE=${FEDSIM_CACHE:-/tmp/fedsim-cache}
py=${PYTHON:-python3}
pt="$py -m pytest -q -p no:cacheprovider -o addopts=-ra -o filterwarnings=ignore"
nvidia-smi -L | tee "$out/device.txt"
$py -c "import torch, diffct, numba; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0), 'numba', numba.__version__)" | tee -a "$out/device.txt"
$pt -m cuda tests/ctsim 2>&1 | tee "$out/pytest_cuda.txt" | tail -15
timeout 150 $pt tests/ctsim tests/pipeline tests/cohort tests/shape 2>&1 | tee "$out/pytest_engine.txt" | tail -25
timeout 90 $py benchmarks/ctsim.py --repeats 10 --physics-size 64 2>&1 | tee "$out/bench_ctsim_64.txt" | tail -3
timeout 120 $py -c "
import time, torch
from fedsim_app.ctsim import load_scanner, render
from fedsim_app.ctsim.phantoms import CHEST_CLASSES, chest_phantom
p = load_scanner('site_a')
for n in (64, 128):
    sp = (p.fov_mm / n,) * 3
    lab = chest_phantom((n, n, n), sp)
    for rep in range(2):  # the first includes kernel compilation
        torch.cuda.synchronize(); t = time.perf_counter()
        render(lab, CHEST_CLASSES, p, spacing_mm=sp, fidelity='physics', generator=torch.Generator().manual_seed(1))
        torch.cuda.synchronize(); print(f'physics_{n}_s run{rep}={time.perf_counter() - t:.2f}', flush=True)
" 2>&1 | tee "$out/bench_physics.txt"
timeout 90 $py benchmarks/cohort.py --physics 2>&1 | tee "$out/bench_cohort.txt" | tail -3
