"""The registry of benchmark suites, imported lazily so `--help` stays fast."""

from __future__ import annotations

import importlib

from immichcheck.bench.base import BenchmarkSuite

# Order is the order they run in: databases first (they are what NVMe is for), then the
# services, then raw storage.
SUITE_MODULES: dict[str, str] = {
    "postgres": "immichcheck.bench.suites.postgres",
    "redis": "immichcheck.bench.suites.redis",
    "ml": "immichcheck.bench.suites.ml",
    "upload": "immichcheck.bench.suites.upload",
    "storage": "immichcheck.bench.suites.storage",
}


def available_suites() -> list[str]:
    """Names of the suites whose modules are present in this build."""
    names = []
    for name, module_name in SUITE_MODULES.items():
        try:
            importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        names.append(name)
    return names


def load_suite(name: str) -> BenchmarkSuite:
    """The `SUITE` object of one suite module."""
    module = importlib.import_module(SUITE_MODULES[name])
    suite: BenchmarkSuite = module.SUITE
    return suite
