"""Modules imported only when one of their attributes is first read.

Why: kr8s imports, at its top, modules for features verify's snapshot never uses: JSONPath
queries on objects (`jsonpath`, whose import compiles its lexer, ~30 ms), websocket exec and
port-forward (`httpx_ws`, ~25 ms) and client-certificate names (`cryptography.x509`,
~35 ms). Deferred, kr8s imports in ~30 ms instead of ~110 ms, on the critical path of every
verify run; should kr8s ever use one of them, it is imported right then and works as before.

Not `importlib.util.LazyLoader`: on Python 3.11 an `import name` statement reads the
module's `__spec__`, which makes LazyLoader load it at once. Here `__spec__` is a plain
attribute, and only a missing attribute triggers the real import.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_LOADING = threading.Lock()  # kr8s reads files through anyio's worker threads


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is first read."""

    def __getattr__(self, attribute: str) -> Any:
        return getattr(_load(self), attribute)


def defer(*names: str) -> list[str]:
    """Defer each module not yet imported; returns the names deferred (a name that is
    already imported, or not installed, is left to the normal import)."""
    deferred = []
    for name in names:
        if name in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        stand_in = _Deferred(name)
        stand_in.__spec__ = spec
        stand_in.__file__ = spec.origin
        if spec.submodule_search_locations is not None:
            stand_in.__path__ = list(spec.submodule_search_locations)
        sys.modules[name] = stand_in
        parent, _, child = name.rpartition(".")
        if parent:  # `from package import child` must find the stand-in, not import it
            setattr(sys.modules[parent], child, stand_in)
        deferred.append(name)
    return deferred


def _load(stand_in: _Deferred) -> types.ModuleType:
    """Import the real module once, and let the stand-in read straight from it after."""
    name = stand_in.__name__
    with _LOADING:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
            real = importlib.import_module(name)  # on failure the stand-in stays out
            stand_in.__dict__.update(real.__dict__)
        real = sys.modules[name]
    return real
