# Prediction service: Dockerfile lint in `make test`, and its HTTP benchmark.

.PHONY: hadolint
hadolint: $(SYNCED) ## lint service/Dockerfile (zero findings allowed)
	$(VENV)/bin/hadolint service/Dockerfile

TEST_CHECKS += hadolint

.PHONY: bench-service
bench-service: $(SYNCED) ## wrk: /predict vs a no-op FastAPI, p99, batch rows/s (needs a model)
	$(PY) scripts/bench_service.py --model-dir models
