# The service image: `make image` builds service/Dockerfile from the repository root with what the
# machine has (docker where an engine answers, otherwise buildah on a local Debian base built by
# mmdebstrap) and prints its name, id, digest and size. `make bench-image` measures it.
# PYTHON_IMAGE=<ref> builds on that base instead; IMAGE_ENGINE=docker|buildah forces an engine.
IMAGE_ENGINE ?= auto

.PHONY: image
image: $(SYNCED) ## Build the service image from models/ (make run first) and print its name, digest and size.
	$(PY) scripts/container_image.py build --engine $(IMAGE_ENGINE)$(if $(PYTHON_IMAGE), --python-image $(PYTHON_IMAGE))

.PHONY: bench-image
bench-image: $(SYNCED) ## Measure the image: build time, size and layers, container start to ready.
	$(PY) scripts/bench_image.py --context .
