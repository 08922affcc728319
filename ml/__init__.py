"""predict-buy's training pipeline: ingest, validate, train, evaluate and version a cross-sell model."""
