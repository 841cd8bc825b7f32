"""Shared fixtures: real PostgreSQL/Redis servers and faithful fakes, each in its own module."""

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.fakes",
]
