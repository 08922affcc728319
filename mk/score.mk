# Scoring files without HTTP: its benchmark (`predict-buy score` against pandas.read_csv).

.PHONY: bench-score
bench-score: $(SYNCED) ## predict-buy score vs pandas.read_csv side by side, peak memory (needs a model)
	$(PY) scripts/bench_score.py --model-dir models
