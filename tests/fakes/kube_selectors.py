"""Kubernetes label and field selectors, parsed and matched the way the API server does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Qualified label key: optional DNS prefix, then a name of alphanumerics, '-', '_', '.'.
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_KEY = rf"(?:{_DNS_LABEL}(?:\.{_DNS_LABEL})*/)?{_NAME}"
_KEY_PATTERN = re.compile(rf"^{_KEY}$")
_SET_PATTERN = re.compile(r"^\s*(\S+)\s+(in|notin)\s+\((.*)\)\s*$")
_EQUALITY_PATTERN = re.compile(r"^\s*([^=!\s]+)\s*(==|!=|=)\s*(\S*)\s*$")

# Fields every resource supports, plus the extra ones the API server registers per resource.
COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
EXTRA_FIELDS: Mapping[str, frozenset[str]] = {
    "pods": frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
    "events": frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
    "secrets": frozenset({"type"}),
    "nodes": frozenset({"spec.unschedulable"}),
    "namespaces": frozenset({"status.phase"}),
    "replicasets": frozenset({"status.replicas"}),
    "jobs": frozenset({"status.successful"}),
    "persistentvolumeclaims": frozenset(),
}


class SelectorError(ValueError):
    """A selector the API server would reject with 400 BadRequest."""


@dataclass(frozen=True)
class LabelRequirement:
    """One requirement of a label selector."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this requirement."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" also match objects that lack the label, like the API server.
        return not present or value not in self.values


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside an `in (...)` value list."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [term for term in (t.strip() for t in terms) if term]


def _check_key(key: str, term: str) -> str:
    if not _KEY_PATTERN.match(key):
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r} in {term!r}")
    return key


def parse_label_selector(text: str | None) -> tuple[LabelRequirement, ...]:
    """Parse `a=b,c!=d,e in (f,g),h notin (i),j,!k`; raise SelectorError when malformed."""
    if not text or not text.strip():
        return ()
    requirements: list[LabelRequirement] = []
    for term in _split_terms(text):
        set_match = _SET_PATTERN.match(term)
        if set_match:
            key, operator, raw_values = set_match.groups()
            values = tuple(v.strip() for v in raw_values.split(",") if v.strip())
            if not values:
                raise SelectorError(f"unable to parse requirement: empty value set in {term!r}")
            requirements.append(LabelRequirement(_check_key(key, term), operator, values))
            continue
        equality = _EQUALITY_PATTERN.match(term)
        if equality:
            key, operator, value = equality.groups()
            operator = "=" if operator == "==" else operator
            requirements.append(LabelRequirement(_check_key(key, term), operator, (value,)))
            continue
        if term.startswith("!"):
            requirements.append(LabelRequirement(_check_key(term[1:].strip(), term), "!exists"))
            continue
        if " " in term or "(" in term or ")" in term:
            raise SelectorError(f"unable to parse requirement: found {term!r}")
        requirements.append(LabelRequirement(_check_key(term, term), "exists"))
    return tuple(requirements)


def labels_match(requirements: tuple[LabelRequirement, ...], obj: Mapping[str, Any]) -> bool:
    """Whether an object's metadata.labels satisfy every requirement."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(requirement.matches(labels) for requirement in requirements)


@dataclass(frozen=True)
class FieldRequirement:
    """One `field=value` or `field!=value` term of a field selector."""

    field: str
    negate: bool
    value: str


def parse_field_selector(text: str | None, plural: str) -> tuple[FieldRequirement, ...]:
    """Parse a field selector; unsupported fields raise SelectorError like the API server."""
    if not text or not text.strip():
        return ()
    supported = COMMON_FIELDS | EXTRA_FIELDS.get(plural, frozenset())
    requirements: list[FieldRequirement] = []
    for term in _split_terms(text):
        match = _EQUALITY_PATTERN.match(term)
        if not match:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        name, operator, value = match.groups()
        if name not in supported:
            raise SelectorError(f"field label not supported: {name}")
        requirements.append(FieldRequirement(name, operator == "!=", value))
    return tuple(requirements)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string form of a dotted field path ('' when absent), as field selectors compare it."""
    if path == "source":  # events index `source` as the reporting component
        return str((obj.get("source") or {}).get("component") or "")
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def fields_match(requirements: tuple[FieldRequirement, ...], obj: Mapping[str, Any]) -> bool:
    """Whether an object satisfies every field requirement."""
    for requirement in requirements:
        equal = field_value(obj, requirement.field) == requirement.value
        if equal == requirement.negate:
            return False
    return True
