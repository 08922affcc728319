# Prediction service: Dockerfile lint in `make test`, and its HTTP benchmark.

.PHONY: hadolint
hadolint: $(SYNCED) ## Lint service/Dockerfile with hadolint (zero findings allowed).
	$(VENV)/bin/hadolint service/Dockerfile

TEST_CHECKS += hadolint

.PHONY: bench-service
bench-service: $(SYNCED) ## Measure /predict with wrk against a no-op FastAPI: p99, batch rows/s (needs a model).
	$(PY) scripts/bench_service.py --model-dir models
