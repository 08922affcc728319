"""ComponentResource classes, one per concern: storage, registry, image, promotion, identity."""
