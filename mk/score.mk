# Scoring files without HTTP: the `predict-buy` command in .venv/bin, and its benchmark.

# The project is not installed into .venv (only its locked requirements are), so the console
# script `predict-buy` of pyproject.toml is written here: it runs `python -m ml.cli` on this clone.
LAUNCHER := $(VENV)/bin/predict-buy
venv run test lint bench: $(LAUNCHER)
$(LAUNCHER): $(SYNCED)
	printf '%s\n' '#!/bin/sh' '# predict-buy: the command line of ml/cli.py in this clone (written by make).' \
		'PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" exec "$(CURDIR)/$(PY)" -m ml.cli "$$@"' > $@
	chmod +x $@

.PHONY: bench-score
bench-score: $(SYNCED) ## Measure predict-buy score against pandas.read_csv side by side, and its peak memory (needs a model).
	$(PY) scripts/bench_score.py --model-dir models
