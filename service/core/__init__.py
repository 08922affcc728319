"""The service's plumbing: settings, structured logging, metrics and the HTTP middleware."""
