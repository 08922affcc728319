"""predict-buy training pipeline: ingest, validate, train, evaluate, version a cross-sell model."""
