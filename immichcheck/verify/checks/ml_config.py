"""Machine learning as the server is configured: the ML URLs it calls and its face model.

An inference check proves little when the server calls another ML service, or uses another
model: these read GET /api/system-config (machineLearning) and compare it with the ML Service
of manifests/ (or --ml-url), then run face detection with the server's own face model.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from immichcheck.clients.immich_admin import SYSTEM_CONFIG
from immichcheck.verify.checks import Facts, Verdict, check, errored, failed, passed, warned
from immichcheck.verify.checks.admin_answers import config_section, unusable


def is_service_url(url: str, service: str, namespace: str, port: int) -> bool:
    """Whether `url` names the Kubernetes Service: `svc`, `svc.ns`, `svc.ns.svc[.cluster...]`."""
    try:
        parts = urlsplit(url)
        labels = (parts.hostname or "").split(".")
        actual = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    if labels[0] != service or actual != port:
        return False
    return len(labels) == 1 or labels[1] == namespace


def _same_url(one: str, other: str) -> bool:
    return one.rstrip("/").lower() == other.rstrip("/").lower()


@check("IC-ML-304", probes=("immich.config",))
def server_calls_our_ml(facts: Facts) -> Verdict:
    """One of the server's ML URLs is the ML Service of manifests/ (or the given --ml-url)."""
    data = facts["immich.config"]
    target = f"{data['url']}{SYSTEM_CONFIG}"
    problem = unusable(data["answer"], SYSTEM_CONFIG, target)
    if problem:
        return problem
    section = config_section(data["answer"], "machineLearning")
    if not isinstance(section, dict):
        return errored("could not run: the config has no machineLearning section", target)
    urls = [str(u) for u in section.get("urls") or []]
    features = [
        name
        for name in ("clip", "facialRecognition", "duplicateDetection", "ocr")
        if (section.get(name) or {}).get("enabled")
    ]
    if section.get("enabled") is False:
        return warned("machine learning is disabled in the server's config", target)
    component = facts.expected.component("ml")
    namespace = facts.expected.namespace
    service = facts.expected.services.get(component.service)
    port = int(service.ports[0].port) if service is not None and service.ports else component.port
    ml_url = data.get("ml_url")
    ours = [
        url
        for url in urls
        if is_service_url(url, component.service, namespace, port)
        or (ml_url and _same_url(url, ml_url))
    ]
    listed = ", ".join(urls) or "none"
    evidence = {"urls": urls, "features": features}
    if not ours:
        mine = f"{component.service}:{port}" + (f" or {ml_url}" if ml_url else "")
        return warned(
            f"the server calls {listed}, not the ML service verified here ({mine})",
            target,
            **evidence,
        )
    return passed(
        f"the server calls {ours[0]} (features on: {', '.join(features) or 'none'})",
        target,
        **evidence,
    )


@check("IC-ML-305", probes=("ml.faces",), requires=("IC-ML-301",))
def face_detection_with_server_model(facts: Facts) -> Verdict:
    """Face detection and recognition answer with the model the server is configured with."""
    answer = facts["ml.faces"]
    target = f"{answer['url']} {answer['model']}"
    if answer["problem"]:
        return failed(f"/predict failed: {answer['problem']} ({answer['text'][:60]!r})", target)
    return passed(
        f"detection + recognition answered in {answer['seconds'] * 1000:.0f} ms "
        f"({answer['faces']} face(s) in the probe image)",
        target,
        seconds=answer["seconds"],
    )
