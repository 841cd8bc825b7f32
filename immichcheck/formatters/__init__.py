"""Formatters: pure functions that turn run records into bytes (tables, JSON, Prometheus...)."""
