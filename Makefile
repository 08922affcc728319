# One task vocabulary for the README, CI and hooks. `make run` and `make test` work on a fresh
# clone: the first call builds .venv from the locked, hashed requirement files.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
SYNCED := $(VENV)/.synced
export PYTHONPATH := $(CURDIR)
# Bytecode is written and kept: without it every stage recompiles scikit-learn, pandas and DVC
# from source (`import ml.evaluate` 11.4 s instead of 4.6 s). uv compiles the environment once.
unexport PYTHONDONTWRITEBYTECODE
export UV_PYTHON_DOWNLOADS := never

# Fragments per package add their checks to TEST_CHECKS (mk/*.mk).
TEST_CHECKS :=
-include mk/*.mk

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(UV): requirements/tools.txt
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --require-hashes -r requirements/tools.txt
	@touch $@

$(SYNCED): $(UV) requirements/dev.txt Makefile
	@echo "==> installing the locked environment into $(VENV)"
	test -x $(PY) || $(UV) venv --quiet --python python3 $(VENV)
	$(UV) pip sync --require-hashes --compile-bytecode --python $(PY) requirements/dev.txt
	@touch $@

.PHONY: venv
venv: $(SYNCED) ## build .venv from the locked requirement files

.PHONY: lock
lock: $(UV) ## re-lock requirements/*.txt from pyproject.toml
	UV=$(UV) scripts/lock.sh

.PHONY: lint
lint: $(SYNCED) ## ruff on all Python code
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: format
format: $(SYNCED) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: test
test: $(SYNCED) lint $(TEST_CHECKS) ## every check and test
	$(PY) -m pytest

.PHONY: run
run: $(SYNCED) ## synthetic data, dvc repro, dvc push, then serve the model
	$(PY) -m ml.run

.PHONY: bench
bench: $(SYNCED) ## benchmarks that print figures (training side, then the service)
	$(PY) -m ml.bench
	test -f models/model.json || PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro
	$(MAKE) --no-print-directory bench-service

.PHONY: clean
clean: ## remove environments and what the pipeline generated (not the DVC remote)
	rm -rf $(VENV) $(TOOLS) data/raw data/validated models/model.* models/training.json \
		reports/figures reports/plots .dvc/cache .dvc/tmp
