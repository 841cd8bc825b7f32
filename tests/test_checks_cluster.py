"""Cluster checks on small snapshots built from the shipped manifests plus a healthy status.

`healthy_cluster_objects` is what `kubectl get ... -o json` would show for the deployment
running as shipped; each test breaks one thing and asserts the code, status and message.
The same objects feed the `--from-dump` tests.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from immichcheck.clients.kubernetes import Snapshot
from immichcheck.clients.kubernetes_dump import snapshot_from_dump
from immichcheck.common.records import CheckResult, Status
from immichcheck.deploy.expected_state import ExpectedState, load_expected_state
from immichcheck.verify.checks import load_catalogue
from immichcheck.verify.engine import ProbeOutcome, evaluate

STRONG_PASSWORD = "q8Zr2LpX7vKd9WmN4tYc6HsB1fJe3GaU"
STRONG_JWT = "Vb7Nq2Xr9LmK4pZt8WcY3hD6sF1gJ5aQ0eRuTiOo"
CLUSTER_CODES = [code for code, entry in load_catalogue().items() if entry.component == "cluster"]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_object(name: str, data: dict[str, str], namespace: str = "immich") -> dict[str, Any]:
    """A Secret as the API returns it (values base64-encoded)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": {k: _b64(v) for k, v in data.items()},
    }


def _pod(component: Any, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{component.name}-7d9f8c6b5-abcde",
            "namespace": "immich",
            "labels": dict(component.labels),
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": component.container, "image": component.image}],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": component.container,
                    "image": component.image,
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-11-28T10:00:00Z"}},
                }
            ],
        },
    }


def node_object(name: str, *, control_plane: bool = False) -> dict[str, Any]:
    """A Ready, schedulable k3s node as `kubectl get node -o json` shows it (trimmed)."""
    labels = {"kubernetes.io/hostname": name}
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = "true"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "4", "memory": "7982Mi"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "DiskPressure", "status": "False"},
                {"type": "PIDPressure", "status": "False"},
                {"type": "Ready", "status": "True", "reason": "KubeletReady"},
            ],
            "nodeInfo": {"kubeletVersion": "v1.32.4+k3s1"},
        },
    }


def healthy_cluster_objects(
    expected: ExpectedState, password: str = STRONG_PASSWORD
) -> list[dict[str, Any]]:
    """Every object verify reads, as a cluster running the shipped manifests would report them."""
    objects: list[dict[str, Any]] = []
    for shipped in expected.objects:
        kind = shipped["kind"]
        if kind not in (
            "Namespace",
            "ConfigMap",
            "Deployment",
            "StatefulSet",
            "Service",
            "Ingress",
            "PersistentVolumeClaim",
        ):
            continue
        live = copy.deepcopy(shipped)
        live.setdefault("metadata", {}).setdefault("namespace", expected.namespace)
        if kind in ("Deployment", "StatefulSet"):
            replicas = live["spec"].get("replicas", 1)
            live["status"] = {
                "replicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
        if kind == "PersistentVolumeClaim":
            live["status"] = {
                "phase": "Bound",
                "capacity": {"storage": live["spec"]["resources"]["requests"]["storage"]},
            }
        if kind == "Namespace":
            live["metadata"].pop("namespace", None)
            live["status"] = {"phase": "Active"}
        objects.append(live)
    for component in expected.components.values():
        objects.append(_pod(component, component.node or "node02"))
    for name, service in expected.services.items():
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": expected.namespace},
                "subsets": [
                    {
                        "addresses": [{"ip": "10.42.0.10"}],
                        "ports": [{"port": service.ports[0].target_port}],
                    }
                ],
            }
        )
    # The nodes Immich uses (the pinned one and the server's) and the control plane.
    objects += [node_object("node01", control_plane=True), node_object("node02")]
    pinned = {c.node for c in expected.components.values() if c.node} - {"node01", "node02"}
    objects += [node_object(name) for name in sorted(pinned)]
    objects.append(
        secret_object("immich-postgres-secret", {"username": "immich", "password": password})
    )
    objects.append(secret_object("immich-server-secret", {"jwt-secret": STRONG_JWT}))
    return objects


def write_dump(path: Path, objects: list[dict[str, Any]]) -> Path:
    """A `kubectl get -o json` style List file."""
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    return path


@pytest.fixture(scope="module")
def expected() -> ExpectedState:
    return load_expected_state()


def _snapshot(expected: ExpectedState, objects: list[dict[str, Any]], tmp_path: Path) -> Snapshot:
    return snapshot_from_dump(
        write_dump(tmp_path / "dump.json", objects),
        expected.namespace,
        declared_kinds={str(obj.get("kind")) for obj in expected.objects},
    )


def run_cluster_checks(
    expected: ExpectedState,
    tmp_path: Path,
    mutate: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[CheckResult]:
    objects = healthy_cluster_objects(expected)
    if mutate:
        mutate(objects)
    snapshot = _snapshot(expected, objects, tmp_path)
    return evaluate(CLUSTER_CODES, {"kube": ProbeOutcome("kube", data=snapshot)}, expected)


def find(objects: list[dict[str, Any]], kind: str, name_prefix: str) -> dict[str, Any]:
    return next(
        o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name_prefix)
    )


def by_code(results: list[CheckResult], code: str) -> list[CheckResult]:
    return [r for r in results if r.code == code]


def worst(results: list[CheckResult], code: str) -> CheckResult:
    order = [Status.PASS, Status.SKIP, Status.WARN, Status.ERROR, Status.FAIL]
    return max(by_code(results, code), key=lambda r: order.index(r.status))


def test_healthy_cluster_is_all_pass(expected: ExpectedState, tmp_path: Path) -> None:
    results = run_cluster_checks(expected, tmp_path)
    assert {r.code for r in results} == set(CLUSTER_CODES)
    not_passing = [(r.code, r.status, r.message) for r in results if r.status != Status.PASS]
    assert not_passing == []


def test_missing_namespace_fails_and_skips_the_rest(
    expected: ExpectedState, tmp_path: Path
) -> None:
    def no_namespace(objects: list[dict[str, Any]]) -> None:
        objects[:] = [o for o in objects if o["kind"] == "Namespace"]
        objects[0]["metadata"]["name"] = "other"

    results = run_cluster_checks(expected, tmp_path, no_namespace)
    assert worst(results, "IC-CL-001").status == Status.FAIL
    assert "namespace immich not found" in worst(results, "IC-CL-001").message
    others = [r for r in results if r.code != "IC-CL-001"]
    assert {r.status for r in others} == {Status.SKIP}
    assert "prerequisite IC-CL-001 (Namespace exists) is FAIL" in others[0].message


def test_crashloop_names_reason_and_events(expected: ExpectedState, tmp_path: Path) -> None:
    def crashloop(objects: list[dict[str, Any]]) -> None:
        pod = find(objects, "Pod", "immich-postgres")
        status = pod["status"]
        status["conditions"] = [{"type": "Ready", "status": "False"}]
        container = status["containerStatuses"][0]
        container.update(
            ready=False,
            restartCount=7,
            state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
            lastState={"terminated": {"reason": "Error", "exitCode": 1}},
        )
        objects.append(
            {
                "kind": "Event",
                "metadata": {"name": "e1", "namespace": "immich"},
                "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"]},
                "reason": "BackOff",
                "message": "Back-off restarting failed container postgres",
                "lastTimestamp": "2026-11-28T10:05:00Z",
            }
        )

    results = run_cluster_checks(expected, tmp_path, crashloop)
    pods = worst(results, "IC-CL-006")
    assert pods.status == Status.FAIL
    assert (
        "CrashLoopBackOff" in pods.message
        and "Back-off restarting failed container" in pods.message
    )
    assert pods.remediation.startswith("Look at `kubectl describe pod")
    restarts = worst(results, "IC-CL-007")
    assert restarts.status == Status.WARN
    assert "7 restart(s)" in restarts.message and "Error (exit 1)" in restarts.message


def test_image_pull_error(expected: ExpectedState, tmp_path: Path) -> None:
    def pull_error(objects: list[dict[str, Any]]) -> None:
        container = find(objects, "Pod", "immich-ml")["status"]["containerStatuses"][0]
        container.update(ready=False, state={"waiting": {"reason": "ImagePullBackOff"}})

    results = run_cluster_checks(expected, tmp_path, pull_error)
    assert "ml:" in worst(results, "IC-CL-006").message
    assert "ImagePullBackOff" in worst(results, "IC-CL-006").message


def test_wrong_node_placement_fails_where_the_data_is_local(
    expected: ExpectedState, tmp_path: Path
) -> None:
    def move(objects: list[dict[str, Any]]) -> None:
        find(objects, "Pod", "immich-redis")["spec"]["nodeName"] = "node03"

    result = worst(run_cluster_checks(expected, tmp_path, move), "IC-CL-008")
    assert result.status == Status.FAIL
    assert result.message == (
        "redis runs on node03, manifests pin it to node05, where its data lives "
        "(/opt/immich/redis): on node03 it reads another disk"
    )


def test_unscheduled_pinned_pod_only_warns(expected: ExpectedState, tmp_path: Path) -> None:
    def unschedule(objects: list[dict[str, Any]]) -> None:
        find(objects, "Pod", "immich-postgres")["spec"].pop("nodeName")

    result = worst(run_cluster_checks(expected, tmp_path, unschedule), "IC-CL-008")
    assert result.status == Status.WARN
    assert result.message == "postgres runs on (not scheduled), manifests pin it to node05"


def test_pending_pvc_fails(expected: ExpectedState, tmp_path: Path) -> None:
    def pending(objects: list[dict[str, Any]]) -> None:
        find(objects, "PersistentVolumeClaim", "immich-library")["status"] = {"phase": "Pending"}

    result = worst(run_cluster_checks(expected, tmp_path, pending), "IC-CL-009")
    assert result.status == Status.FAIL
    assert result.message == "PVC immich-library is Pending"
    assert result.target == "pvc/immich-library"


def test_missing_secret_and_missing_key(expected: ExpectedState, tmp_path: Path) -> None:
    def break_secrets(objects: list[dict[str, Any]]) -> None:
        objects[:] = [
            o
            for o in objects
            if not (o["kind"] == "Secret" and o["metadata"]["name"] == "immich-server-secret")
        ]
        del find(objects, "Secret", "immich-postgres-secret")["data"]["password"]

    results = by_code(run_cluster_checks(expected, tmp_path, break_secrets), "IC-CL-002")
    messages = {r.target: (r.status, r.message) for r in results}
    assert messages["secret/immich-server-secret"] == (
        Status.FAIL,
        "secret immich-server-secret does not exist",
    )
    assert messages["secret/immich-postgres-secret"] == (
        Status.FAIL,
        "secret immich-postgres-secret lacks key(s) password",
    )


@pytest.mark.parametrize(
    ("password", "reason"),
    [("short", "5 characters (fewer than 16)"), ("aaaaaaaaaaaaaaaaaaaa", "low randomness")],
)
def test_weak_secret_warns_without_printing_it(
    expected: ExpectedState, tmp_path: Path, password: str, reason: str
) -> None:
    def weaken(objects: list[dict[str, Any]]) -> None:
        secret = find(objects, "Secret", "immich-postgres-secret")
        secret["data"]["password"] = _b64(password)

    results = run_cluster_checks(expected, tmp_path, weaken)
    result = next(
        r for r in by_code(results, "IC-CL-003") if r.target == "secret/immich-postgres-secret"
    )
    assert result.status == Status.WARN
    assert reason in result.message
    assert password not in result.message


def test_invalid_immich_config_json_fails(expected: ExpectedState, tmp_path: Path) -> None:
    def corrupt(objects: list[dict[str, Any]]) -> None:
        find(objects, "ConfigMap", "immich-server-config")["data"]["immich-config.json"] = (
            '{"job": '
        )

    results = run_cluster_checks(expected, tmp_path, corrupt)
    result = next(
        r for r in by_code(results, "IC-CL-004") if r.target == "configmap/immich-server-config"
    )
    assert result.status == Status.FAIL
    assert "immich-config.json is not valid JSON" in result.message


def test_drift_lists_every_changed_field(expected: ExpectedState, tmp_path: Path) -> None:
    def drift(objects: list[dict[str, Any]]) -> None:
        server = find(objects, "Deployment", "immich-server")
        container = server["spec"]["template"]["spec"]["containers"][0]
        container["image"] = "ghcr.io/immich-app/immich-server:v2.6.0"
        for env in container["env"]:
            if env["name"] == "IMMICH_PORT":
                env["value"] = "3001"
        find(objects, "Deployment", "immich-ml")["spec"]["replicas"] = 2
        redis = find(objects, "ConfigMap", "immich-redis-config")["data"]
        redis["redis.conf"] = redis["redis.conf"].replace(
            "maxmemory-policy noeviction", "maxmemory-policy allkeys-lru"
        )
        server = find(objects, "ConfigMap", "immich-server-config")["data"]
        config = json.loads(server["immich-config.json"])
        config["ffmpeg"]["preset"] = "slow"
        server["immich-config.json"] = json.dumps(config)

    results = run_cluster_checks(expected, tmp_path, drift)
    images = worst(results, "IC-CL-013")
    assert images.status == Status.WARN
    assert (
        "workload runs ghcr.io/immich-app/immich-server:v2.6.0, "
        "shipped ghcr.io/immich-app/immich-server:v2.7.5" in images.message
    )
    drift_result = worst(results, "IC-CL-014")
    assert drift_result.status == Status.WARN
    listed = drift_result.evidence["drift"]
    assert (
        "Deployment/immich-server container immich-server env IMMICH_PORT: "
        "live '3001', shipped '2283'" in listed
    )
    assert "Deployment/immich-ml replicas: live 2, shipped 1" in listed
    assert (
        "ConfigMap/immich-redis-config data redis.conf maxmemory-policy: "
        "live 'allkeys-lru', shipped 'noeviction'" in listed
    )
    assert (
        "ConfigMap/immich-server-config data immich-config.json ffmpeg.preset: "
        "live 'slow', shipped 'ultrafast'" in listed
    )
    assert any(
        line.startswith("Deployment/immich-server container immich-server image") for line in listed
    )


def test_nodeport_and_affinity_changed(expected: ExpectedState, tmp_path: Path) -> None:
    def patch(objects: list[dict[str, Any]]) -> None:
        service = find(objects, "Service", "immich-server-nodeport")
        service["spec"]["ports"][0]["nodePort"] = 32283
        service["spec"]["sessionAffinity"] = "None"
        service["spec"].pop("sessionAffinityConfig", None)

    result = worst(run_cluster_checks(expected, tmp_path, patch), "IC-CL-011")
    assert result.status == Status.FAIL
    assert "nodePort [32283], shipped 31283" in result.message
    assert "sessionAffinity None, shipped ClientIP" in result.message
    assert result.message.endswith("apps set up for port 31283 cannot connect")


def test_lost_session_affinity_alone_warns(expected: ExpectedState, tmp_path: Path) -> None:
    def patch(objects: list[dict[str, Any]]) -> None:
        service = find(objects, "Service", "immich-server-nodeport")
        service["spec"]["sessionAffinity"] = "None"
        service["spec"].pop("sessionAffinityConfig", None)

    result = worst(run_cluster_checks(expected, tmp_path, patch), "IC-CL-011")
    assert result.status == Status.WARN
    assert result.message.startswith("immich-server-nodeport: sessionAffinity None")


def test_service_without_endpoints_and_missing_ingress_host(
    expected: ExpectedState, tmp_path: Path
) -> None:
    def patch(objects: list[dict[str, Any]]) -> None:
        find(objects, "Endpoints", "immich-ml")["subsets"] = []
        ingress = find(objects, "Ingress", "immich")
        ingress["spec"]["rules"] = [
            r for r in ingress["spec"]["rules"] if r["host"] != "photos.home"
        ]

    results = run_cluster_checks(expected, tmp_path, patch)
    endpoints = next(r for r in by_code(results, "IC-CL-010") if r.target == "service/immich-ml")
    assert (endpoints.status, endpoints.message) == (
        Status.FAIL,
        "service immich-ml has no endpoints",
    )
    ingress = next(r for r in by_code(results, "IC-CL-012") if r.target == "ingress/photos.home")
    assert (ingress.status, ingress.message) == (
        Status.FAIL,
        "no ingress rule for host photos.home: requests for it get 404",
    )


def test_unreadable_kind_is_error_not_fail(expected: ExpectedState, tmp_path: Path) -> None:
    snapshot = _snapshot(expected, healthy_cluster_objects(expected), tmp_path)
    snapshot.objects["Pod"] = []
    snapshot.errors["Pod"] = "the Kubernetes API refused the request (HTTP 403): forbidden"
    results = evaluate(["IC-CL-006"], {"kube": ProbeOutcome("kube", data=snapshot)}, expected)
    assert results[0].status == Status.ERROR
    assert "HTTP 403" in results[0].message


def test_probe_error_makes_every_cluster_check_error_or_skip(expected: ExpectedState) -> None:
    outcome = ProbeOutcome("kube", error="cannot connect to the Kubernetes API: refused")
    results = evaluate(CLUSTER_CODES, {"kube": outcome}, expected)
    first = results[0]
    assert (first.code, first.status) == ("IC-CL-001", Status.ERROR)
    assert first.message == "could not run: cannot connect to the Kubernetes API: refused"
    assert {r.status for r in results[1:]} == {Status.SKIP}


def test_pvc_smaller_than_requested_warns(expected: ExpectedState, tmp_path: Path) -> None:
    def shrink(objects: list[dict[str, Any]]) -> None:
        find(objects, "PersistentVolumeClaim", "immich-thumbs")["status"]["capacity"] = {
            "storage": "1Gi"
        }

    results = run_cluster_checks(expected, tmp_path, shrink)
    assert worst(results, "IC-CL-009").status == Status.PASS  # Bound is Bound
    result = next(r for r in by_code(results, "IC-CL-056") if r.target == "pvc/immich-thumbs")
    assert result.status == Status.WARN
    assert result.message == (
        "PVC immich-thumbs is Bound with 1073741824 bytes, less than the 53687091200 requested"
    )


def test_ingress_of_another_class_fails(expected: ExpectedState, tmp_path: Path) -> None:
    def reclass(objects: list[dict[str, Any]]) -> None:
        find(objects, "Ingress", "immich")["spec"]["ingressClassName"] = "traefik"

    results = run_cluster_checks(expected, tmp_path, reclass)
    ingress = next(r for r in by_code(results, "IC-CL-012") if r.target == "ingress/immich.home")
    assert (ingress.status, ingress.message) == (
        Status.FAIL,
        "immich.home: Ingress immich-ingress has ingressClassName traefik, shipped nginx: the "
        "nginx controller does not serve it",
    )


def test_env_from_a_configmap_naming_no_service_fails(
    expected: ExpectedState, tmp_path: Path
) -> None:
    def via_configmap(objects: list[dict[str, Any]]) -> None:
        server = find(objects, "Deployment", "immich-server")
        container = server["spec"]["template"]["spec"]["containers"][0]
        for item in container["env"]:
            if item["name"] == "DB_HOSTNAME":
                item.pop("value")
                item["valueFrom"] = {"configMapKeyRef": {"name": "immich-db", "key": "host"}}
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "immich-db", "namespace": "immich"},
                "data": {"host": "immich-pg"},
            }
        )

    results = run_cluster_checks(expected, tmp_path, via_configmap)
    env = worst(results, "IC-CL-054")
    assert env.status == Status.FAIL
    assert env.target == "deployment/immich-server"
    assert env.message.startswith(
        "Deployment/immich-server: container immich-server: env DB_HOSTNAME/DB_PORT: "
        "Service immich-pg does not exist: Immich cannot reach that service"
    )
    assert worst(results, "IC-CL-055").status == Status.PASS
