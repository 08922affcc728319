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
# from source (`import ml.evaluate` 11.4 s instead of 4.6 s). uv compiles the environment when it
# installs it; an older .venv gets its bytecode written on first import.
unexport PYTHONDONTWRITEBYTECODE
export UV_PYTHON_DOWNLOADS := never

# Fragments per package add their checks to TEST_CHECKS (mk/*.mk).
TEST_CHECKS :=
-include mk/*.mk

.PHONY: help
help: ## List the targets with what each one does.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(UV): requirements/tools.txt
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --require-hashes -r requirements/tools.txt
	@touch $@

$(SYNCED): $(UV) requirements/dev.txt
	@echo "==> installing the locked environment into $(VENV)"
	test -x $(PY) || $(UV) venv --quiet --python python3 $(VENV)
	$(UV) pip sync --require-hashes --compile-bytecode --python $(PY) requirements/dev.txt
	@touch $@

.PHONY: venv
venv: $(SYNCED) ## Build .venv from the locked, hashed requirement files, bytecode compiled.

.PHONY: lock
lock: $(UV) ## Re-lock requirements/*.txt from pyproject.toml's dependency sets.
	UV=$(UV) scripts/lock.sh

.PHONY: lint
lint: $(SYNCED) ## Check all Python code with ruff (lint rules and formatting).
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: format
format: $(SYNCED) ## Apply ruff's fixes and formatting to all Python code.
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# pytest-xdist workers: the suite is mostly CPU-bound, and the machines have two cores. Each test
# file stays on one worker (its module fixtures hold as in a serial run).
TEST_WORKERS ?= 2

.PHONY: test
test: $(SYNCED) lint $(TEST_CHECKS) ## Run every check and every test.
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

.PHONY: run
run: $(SYNCED) ## Train on synthetic data (dvc repro), push to the DVC remote, serve the model.
	$(PY) -m ml.run

.PHONY: bench
bench: $(SYNCED) ## Print every benchmark's figures: model, pipeline, scoring, service and image.
	$(PY) -m ml.bench
	test -f models/model.json || PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro
	-$(MAKE) --no-print-directory bench-score  # a missed target is reported; the service's still run
	$(MAKE) --no-print-directory bench-service
	$(MAKE) --no-print-directory bench-image

# What the pipeline generates. The committed baseline (dvc.lock, reports/*.json, the plots' CSV
# files, the model card) is put back as git has it, as on a fresh clone.
GENERATED := data/raw data/validated models/model.skops models/model.npz models/model.json \
	models/training.json reports/figures dvc_plots \
	.dvc/cache .dvc/tmp .pytest_cache .ruff_cache
BASELINE  := dvc.lock reports/metrics.json reports/validation.json reports/evaluation.json \
	reports/validation_details.json reports/plots data/.gitignore models/.gitignore \
	reports/.gitignore reports/drift models/MODEL_CARD.md

.PHONY: clean
clean: ## Remove the environments and everything the pipeline generated (not the DVC remote).
	rm -rf $(VENV) $(TOOLS) $(GENERATED)
	find ml service infra tests scripts -name __pycache__ -type d -prune -exec rm -rf {} +
	for path in $(BASELINE); do \
		if git ls-files --error-unmatch "$$path" >/dev/null 2>&1; then \
			git checkout -q -- "$$path"; else rm -rf "$$path"; fi; \
	done
