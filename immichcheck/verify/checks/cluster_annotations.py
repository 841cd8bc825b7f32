"""Cluster checks: the metadata the manifests set on purpose, above all the ingress annotations
phone uploads depend on (judged from the cluster read alone, no --ingress-ip needed)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from immichcheck.verify.checks import Facts, Verdict, check, failed, passed, warned
from immichcheck.verify.checks.cluster import _NEEDS_NAMESPACE, _PROBES, _name, _read_error

# Annotations tools add to live objects; never set by the manifests, never drift.
_TOOL_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
_NGINX = "nginx.ingress.kubernetes.io/"
INGRESS_FILE = "manifests/09-ingress.yaml"


@dataclass(frozen=True)
class UploadAnnotation:
    """An ingress-nginx annotation uploads depend on: its unit and the controller's default."""

    key: str
    unit: str  # "size" (nginx size, 0 = unlimited) or "seconds"
    default: str  # what ingress-nginx uses when the annotation is absent
    consequence: str  # what users see when the live value allows less than the shipped one


UPLOAD_ANNOTATIONS = (
    UploadAnnotation(
        _NGINX + "proxy-body-size",
        "size",
        "1m",
        "uploads larger than {live} are refused with HTTP 413 (phone videos fail to back up)",
    ),
    UploadAnnotation(
        _NGINX + "proxy-read-timeout",
        "seconds",
        "60",
        "uploads and websocket connections idle for {live} s are cut",
    ),
    UploadAnnotation(
        _NGINX + "proxy-send-timeout",
        "seconds",
        "60",
        "responses that take {live} s to send are cut (long uploads fail at the end)",
    ),
)
# Buffering the request body makes the controller write whole videos to its own disk first:
# uploads still work, slower and at the cost of the controller's disk (WARN, not FAIL).
BUFFERING_ANNOTATION = _NGINX + "proxy-request-buffering"
_JUDGED_HERE = {a.key for a in UPLOAD_ANNOTATIONS} | {BUFFERING_ANNOTATION}
_NGINX_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG]?)\s*$")


def nginx_size_bytes(text: str) -> int | None:
    """An nginx size ('0', '512k', '10m', '1g') in bytes; 0 means unlimited; None if not one."""
    match = _NGINX_SIZE.match(text)
    if not match:
        return None
    factor = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[match.group(2).lower()]
    return int(match.group(1)) * factor


def _allows(unit: str, value: str) -> float | None:
    """How much a value allows, comparable within a unit (infinite for size 0)."""
    if unit == "size":
        size = nginx_size_bytes(value)
        return None if size is None else (float("inf") if size == 0 else float(size))
    return float(value) if value.strip().isdigit() else None


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """metadata.annotations as strings."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return {str(k): str(v) for k, v in annotations.items()}


def annotation_drift(shipped: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """Annotations the manifests set that the live object lacks or sets otherwise.

    Annotations only the live object has are left alone (controllers and tools add their own);
    the ingress upload annotations are IC-CL-057's.
    """
    prefix = f"{shipped.get('kind')}/{_name(shipped)}"
    want, have = annotations_of(shipped), annotations_of(live)
    drift = []
    for key in sorted(want):
        if key in _TOOL_ANNOTATIONS or (shipped.get("kind") == "Ingress" and key in _JUDGED_HERE):
            continue
        if key not in have:
            drift.append(f"{prefix} annotation {key}: missing live, shipped {want[key]!r}")
        elif have[key] != want[key]:
            drift.append(f"{prefix} annotation {key}: live {have[key]!r}, shipped {want[key]!r}")
    return drift


def upload_annotation_problem(
    annotation: UploadAnnotation, shipped: str, live: str | None
) -> tuple[str, str] | None:
    """("fail"|"warn", text) when the live value differs from the shipped one, else None."""
    if live == shipped:
        return None
    effective = live if live is not None else annotation.default
    shown = f"{live!r}" if live is not None else f"missing (ingress-nginx then uses {effective})"
    text = f"{annotation.key} is {shown} on the live Ingress, shipped {shipped!r}"
    wanted, allowed = _allows(annotation.unit, shipped), _allows(annotation.unit, effective)
    if wanted is not None and (allowed is None or allowed < wanted):
        return "fail", f"{text}: {annotation.consequence.format(live=effective)}"
    return "warn", text


@check("IC-CL-057", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def ingress_upload_annotations(facts: Facts) -> list[Verdict]:
    """The live Ingresses keep the body-size, timeout and buffering annotations uploads need."""
    error = _read_error(facts, "Ingress")
    if error:
        return [error]
    verdicts = []
    for shipped in facts.expected.objects:
        if shipped.get("kind") != "Ingress":
            continue
        name = _name(shipped)
        target = f"ingress/{name}"
        live = facts["kube"].get("Ingress", name)
        if live is None:
            continue  # IC-CL-012 reports the hosts it routed
        want, have = annotations_of(shipped), annotations_of(live)
        failures: list[str] = []
        warnings: list[str] = []
        for annotation in UPLOAD_ANNOTATIONS:
            if annotation.key not in want:
                continue
            problem = upload_annotation_problem(
                annotation, want[annotation.key], have.get(annotation.key)
            )
            if problem:
                (failures if problem[0] == "fail" else warnings).append(problem[1])
        if want.get(BUFFERING_ANNOTATION) == "off" and have.get(BUFFERING_ANNOTATION) != "off":
            warnings.append(
                f"{BUFFERING_ANNOTATION} is {have.get(BUFFERING_ANNOTATION, 'missing')!r} on the "
                "live Ingress, shipped 'off': the controller stores each upload on its own disk "
                "before Immich sees it"
            )
        fix = f"re-apply {INGRESS_FILE} (kubectl apply -f {INGRESS_FILE})"
        if failures:
            verdicts.append(
                failed(f"Ingress {name}: {'; '.join(failures + warnings)}; {fix}", target)
            )
        elif warnings:
            verdicts.append(warned(f"Ingress {name}: {'; '.join(warnings)}; {fix}", target))
        else:
            kept = [a.key.removeprefix(_NGINX) for a in UPLOAD_ANNOTATIONS if a.key in want]
            verdicts.append(passed(f"Ingress {name} keeps {', '.join(kept)} as shipped", target))
    return verdicts
