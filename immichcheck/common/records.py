"""Frozen result records in base units (seconds, bytes) and their JSON form.

Every stored run is one `RunRecord`. Values are kept in base units; scaling to ms or MB/s
happens only when a formatter renders them. `schema_version` lets later versions migrate or
reject old files.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1

JSONValue = Any  # values that json.dumps accepts


class Status(StrEnum):
    """Outcome of one check. ERROR means the probe could not run; it is never PASS or FAIL."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"
    ERROR = "ERROR"


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check against one target."""

    code: str
    target: str
    status: Status
    message: str
    remediation: str = ""
    duration: float = 0.0  # seconds
    evidence: Mapping[str, JSONValue] = field(default_factory=dict)
    component: str = ""
    title: str = ""

    def to_dict(self) -> dict[str, JSONValue]:
        """Plain-JSON form of this result."""
        return {
            "code": self.code,
            "target": self.target,
            "status": self.status.value,
            "message": self.message,
            "remediation": self.remediation,
            "duration": self.duration,
            "evidence": dict(self.evidence),
            "component": self.component,
            "title": self.title,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> CheckResult:
        """Rebuild a result from its JSON form."""
        return cls(
            code=data["code"],
            target=data["target"],
            status=Status(data["status"]),
            message=data["message"],
            remediation=data.get("remediation", ""),
            duration=float(data.get("duration", 0.0)),
            evidence=dict(data.get("evidence", {})),
            component=data.get("component", ""),
            title=data.get("title", ""),
        )


@dataclass(frozen=True)
class BenchmarkResult:
    """Summary of one workload at one set of parameters. Latencies in seconds."""

    workload: str
    parameters: Mapping[str, JSONValue]
    count: int
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float
    max: float
    mean: float
    stddev: float
    throughput: float  # operations per second over the measured wall time
    errors: int
    duration: float = 0.0  # measured wall time in seconds (warm-up excluded)
    bytes_per_second: float | None = None  # for workloads that move data
    histogram: str | None = None  # HDR histogram (nanoseconds), base64 compressed, for significance
    engine: str = "immichcheck"  # or "pgbench", "redis-benchmark", "fio" with --engine native
    notes: tuple[str, ...] = ()
    error_messages: tuple[str, ...] = ()
    # Observations around the run (e.g. Redis AOF counters). Unlike `parameters` they are not
    # part of what identifies a series, so two runs of the same workload stay comparable.
    facts: Mapping[str, JSONValue] = field(default_factory=dict)

    def to_dict(self) -> dict[str, JSONValue]:
        """Plain-JSON form of this result."""
        data = dataclasses.asdict(self)
        data["parameters"] = dict(self.parameters)
        data["facts"] = dict(self.facts)
        data["notes"] = list(self.notes)
        data["error_messages"] = list(self.error_messages)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> BenchmarkResult:
        """Rebuild a result from its JSON form."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["parameters"] = dict(values.get("parameters", {}))
        values["facts"] = dict(values.get("facts", {}))
        values["notes"] = tuple(values.get("notes", ()))
        values["error_messages"] = tuple(values.get("error_messages", ()))
        return cls(**values)


@dataclass(frozen=True)
class FilesystemFacts:
    """Where a measured path lives: device, filesystem type and mount options."""

    path: str
    mountpoint: str
    device: str
    fstype: str
    options: str
    total_bytes: int
    free_bytes: int

    def to_dict(self) -> dict[str, JSONValue]:
        """Plain-JSON form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> FilesystemFacts:
        """Rebuild from JSON."""
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class HostFacts:
    """The machine a run executed on."""

    hostname: str
    cpu_model: str
    cpu_count: int
    memory_bytes: int
    kernel: str
    platform: str
    python: str
    filesystems: tuple[FilesystemFacts, ...] = ()

    def to_dict(self) -> dict[str, JSONValue]:
        """Plain-JSON form."""
        data = dataclasses.asdict(self)
        data["filesystems"] = [fs.to_dict() for fs in self.filesystems]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> HostFacts:
        """Rebuild from JSON."""
        values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        values["filesystems"] = tuple(
            FilesystemFacts.from_dict(fs) for fs in data.get("filesystems", ())
        )
        return cls(**values)


def utc_now() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_run_id(moment: datetime | None = None) -> str:
    """A sortable, unique run id: UTC timestamp plus a short random suffix."""
    moment = moment or utc_now()
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class RunRecord:
    """One verify or bench run: what ran, where, with which versions, and every result."""

    run_id: str
    kind: str  # "verify" or "bench"
    started_at: datetime
    finished_at: datetime
    node: str
    host: HostFacts
    tool_version: str
    service_versions: Mapping[str, str] = field(default_factory=dict)
    checks: tuple[CheckResult, ...] = ()
    benchmarks: tuple[BenchmarkResult, ...] = ()
    tags: tuple[str, ...] = ()
    settings: Mapping[str, JSONValue] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, JSONValue]:
        """Plain-JSON form of the whole run."""
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "kind": self.kind,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "node": self.node,
            "host": self.host.to_dict(),
            "tool_version": self.tool_version,
            "service_versions": dict(self.service_versions),
            "checks": [c.to_dict() for c in self.checks],
            "benchmarks": [b.to_dict() for b in self.benchmarks],
            "tags": list(self.tags),
            "settings": dict(self.settings),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """Serialise to JSON text."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> RunRecord:
        """Rebuild a run from its JSON form; the caller checks `schema_version` first."""
        return cls(
            schema_version=int(data["schema_version"]),
            run_id=data["run_id"],
            kind=data["kind"],
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(data["finished_at"]),
            node=data["node"],
            host=HostFacts.from_dict(data["host"]),
            tool_version=data["tool_version"],
            service_versions=dict(data.get("service_versions", {})),
            checks=tuple(CheckResult.from_dict(c) for c in data.get("checks", ())),
            benchmarks=tuple(BenchmarkResult.from_dict(b) for b in data.get("benchmarks", ())),
            tags=tuple(data.get("tags", ())),
            settings=dict(data.get("settings", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """Parse JSON text into a run."""
        return cls.from_dict(json.loads(text))
