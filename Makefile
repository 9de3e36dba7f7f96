# FedSim: `make run` launches the app, `make test` runs the whole suite.
# Setup is shared and idempotent: a stamp file records the last install, so a second
# `make run` / `make test` goes straight to work (seconds).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.fedsim-installed
# torch is pinned: a CPU build of 2.13.0 lies on this machine's disk; an unpinned torch
# would pull a multi-GB CUDA build. On a machine with an NVIDIA GPU pick a CUDA build by
# its index, e.g. `make setup TORCH_INDEX=https://download.pytorch.org/whl/cu128`.
TORCH  := torch==2.13.0
TORCH_INDEX ?=
# PyQt6 pass: a second venv layered on .venv (its packages through a .pth file) that adds
# the pyqt6 extra, so the GUI tests also run on the binding napari keeps after PyQt5.
VENV6  := .venv-pyqt6
STAMP6 := $(VENV6)/.fedsim-installed

.PHONY: setup run test test-fast test-gui-pyqt6 lint bench assets screenshot clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e '.[pyqt5,test,flower,evaluate]'
	@touch $(STAMP)

run: setup
	$(PY) -m fedsim_napari

# pytest-xvfb starts a virtual X server for the session, so the `gui` tests get a real
# display (napari does not render on Qt's offscreen platform).
test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow and not gui"

$(STAMP6): $(STAMP)
	@test -x $(VENV6)/bin/python || $(PYTHON) -m venv $(VENV6)
	$(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
	  > "$$($(VENV6)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/fedsim-base.pth"
	$(VENV6)/bin/python -m pip install -q -e '.[pyqt6,test]'
	@touch $(STAMP6)

# QT_API / PYTEST_QT_API choose PyQt6 although .venv's PyQt5 is visible through the .pth.
test-gui-pyqt6: $(STAMP6)
	QT_API=pyqt6 PYTEST_QT_API=pyqt6 $(VENV6)/bin/python -m pytest -m gui

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The default trained model, learnt federatedly: the embedded cohort (seed 0, 64³), then
# `fedsim federate` over the three sites with the `cpu` preset and seed 0 (shared G_shape
# and G_material, each site's own enhancer), bundled in float16 (fixed seeds: the same
# bundle on a rerun).
MODEL_SITES ?= A,B,C
MODEL_RUN := build/runs/federated

assets: setup
	$(VENV)/bin/fedsim ssm build --out assets/ssm/atlas_ssm.npz
	$(VENV)/bin/fedsim cohort --out build/cohort --size 64 --seed 0
	rm -rf $(MODEL_RUN)
	$(VENV)/bin/fedsim federate --sites $(MODEL_SITES) --cohort build/cohort --preset cpu \
	  --seed 0 --out $(MODEL_RUN)
	$(VENV)/bin/fedsim federate --out $(MODEL_RUN) --bundle assets/checkpoints/default.pt --half

# The README's napari pictures (Explorer, latent mode, three sites, training and export
# panels) under xvfb-run; SHOTS="napari" retakes one (see docs/screenshots.py).
SHOTS ?=
screenshot: setup
	$(PY) docs/screenshots.py $(if $(SHOTS),--only $(SHOTS))

clean:
	rm -rf $(VENV) $(VENV6) build dist .pytest_cache .ruff_cache
