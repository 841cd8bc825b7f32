"""verify's checks: small pure functions over probe results, registered under catalogue codes.

A check states one condition. It reads the facts the probes gathered (never the network) and
returns one `Verdict` or several (one per target, e.g. per ingress host). The catalogue
(`catalogue.yaml`) holds each code's title, component, severity and remediation; the runner
joins the two into `CheckResult` records. Probe failures become ERROR and failed
prerequisites SKIP in the runner, so a check function only ever sees data that exists.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.records import Status

CATALOGUE_PATH = Path(__file__).with_name("catalogue.yaml")
COMPONENTS: tuple[str, ...] = (
    "cluster",
    "nodes",
    "postgres",
    "redis",
    "ml",
    "server",
    "storage",
    "access",
)
# One module per component, plus the modules some components' checks are split into by
# subject (the cluster's; the admin API's view of backups, queues and ML settings).
_MODULES = tuple(
    f"immichcheck.verify.checks.{name}"
    for name in (
        *COMPONENTS,
        "cluster_placement",
        "cluster_routing",
        "cluster_drift",
        "cluster_references",
        "cluster_annotations",
        "backups",
        "queues",
        "ml_config",
    )
)


@dataclass(frozen=True)
class CatalogueEntry:
    """One code in the catalogue: what it checks and what to do when it does not pass."""

    code: str
    component: str
    title: str
    severity: Status
    remediation: str


@dataclass(frozen=True)
class Verdict:
    """What a check concluded about one target."""

    status: Status
    message: str
    target: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)


def passed(message: str, target: str = "", **evidence: Any) -> Verdict:
    """The condition holds."""
    return Verdict(Status.PASS, message, target, evidence)


def warned(message: str, target: str = "", **evidence: Any) -> Verdict:
    """The condition holds only partly, or holds for now."""
    return Verdict(Status.WARN, message, target, evidence)


def failed(message: str, target: str = "", **evidence: Any) -> Verdict:
    """The condition does not hold (capped at the catalogue's severity by the runner)."""
    return Verdict(Status.FAIL, message, target, evidence)


def skipped(message: str, target: str = "", **evidence: Any) -> Verdict:
    """The check does not apply to what was found."""
    return Verdict(Status.SKIP, message, target, evidence)


def errored(message: str, target: str = "", **evidence: Any) -> Verdict:
    """Part of the data the check needed could not be read."""
    return Verdict(Status.ERROR, message, target, evidence)


class Facts:
    """What a check may read: the expected state, the probes' data and the run's settings."""

    def __init__(
        self,
        expected: Any,
        probes: Mapping[str, Any],
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.expected = expected
        self._probes = dict(probes)
        self.settings: Mapping[str, Any] = dict(settings or {})

    def __getitem__(self, probe: str) -> Any:
        return self._probes[probe]

    def get(self, probe: str, default: Any = None) -> Any:
        """Data of a probe, or `default` when it did not run."""
        return self._probes.get(probe, default)


CheckFunction = Callable[[Facts], "Verdict | Sequence[Verdict]"]


@dataclass(frozen=True)
class RegisteredCheck:
    """A check function with the probes it reads and the checks that must pass first."""

    code: str
    function: CheckFunction
    probes: tuple[str, ...]
    requires: tuple[str, ...]


_REGISTRY: dict[str, RegisteredCheck] = {}


def check(
    code: str, *, probes: Iterable[str] = (), requires: Iterable[str] = ()
) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check function under its catalogue code."""

    def register(function: CheckFunction) -> CheckFunction:
        if code in _REGISTRY and _REGISTRY[code].function is not function:
            raise ValueError(f"check code {code} registered twice")
        _REGISTRY[code] = RegisteredCheck(code, function, tuple(probes), tuple(requires))
        return function

    return register


def registered_checks() -> dict[str, RegisteredCheck]:
    """Every registered check by code (imports the component modules once)."""
    for module in _MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)


@functools.cache
def load_catalogue(path: Path = CATALOGUE_PATH) -> dict[str, CatalogueEntry]:
    """The catalogue by code, in file order."""
    from immichcheck.common import yaml_text

    raw = yaml_text.load(path.read_text(encoding="utf-8"))
    entries: dict[str, CatalogueEntry] = {}
    for item in raw:
        code = item["code"]
        if code in entries:
            raise ValueError(f"catalogue lists {code} twice")
        entries[code] = CatalogueEntry(
            code=code,
            component=item["component"],
            title=item["title"],
            severity=Status(item["severity"]),
            remediation=" ".join(str(item.get("remediation", "")).split()),
        )
    return entries


def select_codes(
    catalogue: Mapping[str, CatalogueEntry],
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
) -> list[str]:
    """Codes chosen by `--only`/`--skip` patterns: a code, a glob (IC-PG-*) or a component."""

    def split(patterns: Sequence[str]) -> list[str]:
        return [p.strip() for raw in patterns for p in raw.split(",") if p.strip()]

    def matches(entry: CatalogueEntry, pattern: str) -> bool:
        lowered = pattern.lower()
        return (
            lowered == entry.component
            or fnmatch.fnmatchcase(entry.code.upper(), pattern.upper())
            or fnmatch.fnmatchcase(entry.component, lowered)
        )

    only_patterns, skip_patterns = split(only), split(skip)
    for pattern in only_patterns + skip_patterns:
        if not any(matches(entry, pattern) for entry in catalogue.values()):
            raise ImmichcheckError(
                f"--only/--skip pattern {pattern!r} matches no check code or component "
                f"(components: {', '.join(COMPONENTS)}; see verify --list)"
            )
    chosen = [
        code
        for code, entry in catalogue.items()
        if (not only_patterns or any(matches(entry, p) for p in only_patterns))
        and not any(matches(entry, p) for p in skip_patterns)
    ]
    if not chosen:
        raise ImmichcheckError("--only/--skip left no checks to run")
    return chosen
