"""One router per resource: health, prediction, model description, metrics."""
