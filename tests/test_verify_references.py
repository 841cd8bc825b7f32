"""Broken references and lost annotations on the live cluster (IC-CL-05x): outages are FAIL
with both ends and the fix named, harmless differences stay WARN under drift (IC-CL-014).

The live objects are edited in the fake API's store, as `kubectl edit` would leave them, and
verify reads them over real HTTPS. The same rules run on the shipped files in
`manifests validate` (tests/test_manifests_validation.py); the last tests here hold both
sides to the same wording.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from immichcheck.common.records import Status
from immichcheck.deploy.cross_references import ObjectSet, broken_references
from immichcheck.deploy.manifest_files import load_manifest_documents
from immichcheck.deploy.validation import validate_manifests
from tests.test_manifests_validation import broken_copy
from tests.test_verify_integration import assert_verdict, message, run_json, statuses

CLUSTER = ["--only", "cluster", "--no-save"]
BODY_SIZE = "nginx.ingress.kubernetes.io/proxy-body-size"


@pytest.fixture
def cluster_args(fake_cluster: Any) -> list[str]:
    return ["--kubeconfig", str(fake_cluster.kubeconfig_path)]


def edit(cluster: Any, plural: str, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Change a stored object as `kubectl edit` would; Endpoints and status follow."""
    with cluster.lock:
        obj = cluster.get(plural, name)
        change(obj)
        cluster.state.put(obj)
        cluster.refresh()


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]


def _set_env(name: str, value: str) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        for item in _container(obj)["env"]:
            if item["name"] == name:
                item["value"] = value

    return change


def _annotations(change: Callable[[dict[str, str]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda obj: change(obj["metadata"].setdefault("annotations", {}))


FAULTS: dict[str, tuple[str, str, Callable[[dict[str, Any]], None]]] = {
    "target_port": (
        "services",
        "immich-ml",
        lambda s: s["spec"]["ports"][0].update(targetPort=3004),
    ),
    "named_target_port": (
        "services",
        "immich-server",
        lambda s: s["spec"]["ports"][0].update(targetPort="web"),
    ),
    "selector": (
        "services",
        "immich-ml",
        lambda s: s["spec"].update(selector={"app": "immich-machine-learning"}),
    ),
    "db_hostname": ("deployments", "immich-server", _set_env("DB_HOSTNAME", "immich-postgresql")),
    "redis_port": ("deployments", "immich-server", _set_env("REDIS_PORT", "6380")),
    "ml_url": (
        "deployments",
        "immich-server",
        _set_env("IMMICH_MACHINE_LEARNING_URL", "http://immich-machine-learning:3003"),
    ),
    "ingress_backend": (
        "ingresses",
        "immich-ingress",
        lambda i: i["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"].update(
            number=2284
        ),
    ),
    "configmap_volume": (
        "deployments",
        "immich-redis",
        lambda d: next(v for v in d["spec"]["template"]["spec"]["volumes"] if "configMap" in v)[
            "configMap"
        ].update(name="immich-redis-conf"),
    ),
    "body_size_lost": ("ingresses", "immich-ingress", _annotations(lambda a: a.pop(BODY_SIZE))),
    "body_size_limited": (
        "ingresses",
        "immich-ingress",
        _annotations(lambda a: a.update({BODY_SIZE: "50m"})),
    ),
    "read_timeout_short": (
        "ingresses",
        "immich-ingress",
        _annotations(lambda a: a.update({"nginx.ingress.kubernetes.io/proxy-read-timeout": "30"})),
    ),
    "read_timeout_longer": (
        "ingresses",
        "immich-ingress",
        _annotations(
            lambda a: a.update({"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"})
        ),
    ),
    "buffering_on": (
        "ingresses",
        "immich-ingress",
        _annotations(lambda a: a.pop("nginx.ingress.kubernetes.io/proxy-request-buffering")),
    ),
    "component_annotation_lost": (
        "deployments",
        "immich-server",
        _annotations(lambda a: a.pop("immichcheck/component")),
    ),
}


@pytest.mark.parametrize(
    ("fault", "code", "status", "text", "exit_code"),
    [
        (
            "target_port",
            "IC-CL-052",
            Status.FAIL,
            "Service/immich-ml: port http: targetPort 3004 is not a container port of the "
            "selected pods (has 3003): set targetPort to the port Deployment/immich-ml listens "
            "on, or declare containerPort 3004 there",
            2,
        ),
        (
            "named_target_port",
            "IC-CL-052",
            Status.FAIL,
            "Service/immich-server: port http: targetPort 'web' is not a named container port "
            "of the selected pods: use one of the port names of Deployment/immich-server",
            2,
        ),
        (
            "selector",
            "IC-CL-051",
            Status.FAIL,
            "Service/immich-ml: selector app=immich-machine-learning matches no workload's pod "
            "labels: Deployment/immich-ml's pods are labelled app=immich-ml",
            2,
        ),
        (
            "db_hostname",
            "IC-CL-054",
            Status.FAIL,
            "Deployment/immich-server: container immich-server: env DB_HOSTNAME/DB_PORT: "
            "Service immich-postgresql does not exist: Immich cannot reach that service",
            2,
        ),
        (
            "redis_port",
            "IC-CL-054",
            Status.FAIL,
            "env REDIS_HOSTNAME/REDIS_PORT: Service immich-redis has no port 6380 (it has 6379)",
            2,
        ),
        (
            "ml_url",
            "IC-CL-054",
            Status.FAIL,
            "env IMMICH_MACHINE_LEARNING_URL: Service immich-machine-learning does not exist",
            2,
        ),
        (
            "ingress_backend",
            "IC-CL-053",
            Status.FAIL,
            "Ingress/immich-ingress: backend: Service immich-server has no port 2284 (it has "
            "2283, 8081, 8082): requests for immich.home/ find no backend (nginx answers 503)",
            2,
        ),
        (
            "configmap_volume",
            "IC-CL-055",
            Status.FAIL,
            "Deployment/immich-redis: volume config: ConfigMap immich-redis-conf does not exist",
            2,
        ),
        (
            "body_size_lost",
            "IC-CL-057",
            Status.FAIL,
            "nginx.ingress.kubernetes.io/proxy-body-size is missing (ingress-nginx then uses 1m) "
            "on the live Ingress, shipped '0': uploads larger than 1m are refused with HTTP 413",
            2,
        ),
        (
            "body_size_limited",
            "IC-CL-057",
            Status.FAIL,
            "proxy-body-size is '50m' on the live Ingress, shipped '0': uploads larger than 50m "
            "are refused with HTTP 413",
            2,
        ),
        (
            "read_timeout_short",
            "IC-CL-057",
            Status.FAIL,
            "proxy-read-timeout is '30' on the live Ingress, shipped '600': uploads and "
            "websocket connections idle for 30 s are cut",
            2,
        ),
        (
            "read_timeout_longer",
            "IC-CL-057",
            Status.WARN,
            "proxy-read-timeout is '3600' on the live Ingress, shipped '600'; re-apply "
            "manifests/09-ingress.yaml",
            1,
        ),
        (
            "buffering_on",
            "IC-CL-057",
            Status.WARN,
            "proxy-request-buffering is 'missing' on the live Ingress, shipped 'off': the "
            "controller stores each upload on its own disk",
            1,
        ),
        (
            "component_annotation_lost",
            "IC-CL-014",
            Status.WARN,
            "Deployment/immich-server annotation immichcheck/component: missing live, "
            "shipped 'server'",
            1,
        ),
    ],
)
def test_each_broken_reference(
    fake_cluster: Any,
    cluster_args: list[str],
    capsys: pytest.CaptureFixture[str],
    fault: str,
    code: str,
    status: Status,
    text: str,
    exit_code: int,
) -> None:
    plural, name, change = FAULTS[fault]
    edit(fake_cluster, plural, name, change)
    outcome = run_json([*cluster_args, *CLUSTER], capsys)
    assert_verdict(outcome, code, status, text, exit_code)


def test_healthy_cluster_passes_every_reference_and_annotation_check(
    fake_cluster: Any, cluster_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    codes = "IC-CL-051,IC-CL-052,IC-CL-053,IC-CL-054,IC-CL-055,IC-CL-056,IC-CL-057,IC-CL-014"
    code, record = run_json([*cluster_args, "--only", codes, "--no-save"], capsys)
    assert [(c.code, c.message) for c in record.checks if c.status != Status.PASS] == []
    assert message(record, "IC-CL-057") == (
        "Ingress immich-ingress keeps proxy-body-size, proxy-read-timeout, proxy-send-timeout "
        "as shipped"
    )
    assert code == 0


def test_a_broken_target_port_is_not_only_drift(
    fake_cluster: Any, cluster_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The outage is FAIL on its own code; drift still lists the difference as WARN."""
    plural, name, change = FAULTS["target_port"]
    edit(fake_cluster, plural, name, change)
    _code, record = run_json([*cluster_args, *CLUSTER], capsys)
    assert statuses(record)["IC-CL-052"] == Status.FAIL
    assert statuses(record)["IC-CL-014"] == Status.WARN
    # The endpoints controller still lists the pod: only the port is wrong.
    assert statuses(record)["IC-CL-010"] == Status.PASS


def test_the_same_rules_judge_the_files_and_the_cluster(tmp_path: Path) -> None:
    """A targetPort broken in the files gives the same reason as the same break live."""
    folder = broken_copy(tmp_path, "06-services.yaml", "targetPort: 3003", "targetPort: 3004")
    files = [p.line() for p in validate_manifests(folder, schema=False).problems]
    assert files == [
        "06-services.yaml: Service/immich-ml: port http: targetPort 3004 is not a container "
        "port of the selected pods (has 3003)"
    ]
    # The same objects as the API returns them (the namespace filled in).
    live = [
        {**doc.body, "metadata": {**doc.body["metadata"], "namespace": "immich"}}
        for doc in load_manifest_documents(folder)
    ]
    found = broken_references(
        ObjectSet(live, secrets={}, judge_all_secrets=False, secrets_documented=False)
    )
    assert [(b.label, b.reason) for b in found] == [
        (
            "Service/immich-ml",
            "port http: targetPort 3004 is not a container port of the selected pods (has 3003)",
        )
    ]
