"""Benchmark engines and suites: PostgreSQL, Redis, ML, upload, storage."""
