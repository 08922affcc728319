"""Pulumi program for predict-buy: stacks nonprod (bucket, registry, image) and prod (promotion)."""
