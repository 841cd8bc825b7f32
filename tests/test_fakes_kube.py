"""The fake Kubernetes API serves manifests/ + status faithfully enough for kubectl and kr8s."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from immichcheck.clients.kubernetes import forward_listening
from immichcheck.deploy.expected_state import load_expected_state
from tests.fakes.kube_api import FakeKubeCluster
from tests.fakes.kube_exec import ExecResult, local_tool_handler
from tests.fakes.kube_selectors import (
    SelectorError,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

STATE = load_expected_state()
NS = STATE.namespace


@pytest.fixture
def api(fake_cluster: FakeKubeCluster) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {fake_cluster.token}"}
    with httpx.Client(base_url=fake_cluster.url, headers=headers, timeout=5) as client:
        yield client


def _names(body: dict[str, Any]) -> list[str]:
    return [item["metadata"]["name"] for item in body["items"]]


def test_discovery_and_authentication(fake_cluster: FakeKubeCluster, api: httpx.Client) -> None:
    assert api.get("/version").json()["platform"] == "linux/arm64"
    assert api.get("/api").json()["versions"] == ["v1"]
    groups = {g["name"] for g in api.get("/apis").json()["groups"]}
    assert {"apps", "batch", "networking.k8s.io", "discovery.k8s.io"} <= groups
    core = {r["name"] for r in api.get("/api/v1").json()["resources"]}
    assert {"pods", "pods/log", "services", "secrets", "persistentvolumeclaims"} <= core
    wrong = httpx.get(
        f"{fake_cluster.url}/api/v1/namespaces/{NS}/pods",
        headers={"Authorization": "Bearer wrong"},
    )
    assert wrong.status_code == 401 and wrong.json()["reason"] == "Unauthorized"
    anonymous = httpx.get(f"{fake_cluster.url}/api/v1/nodes")
    assert anonymous.status_code == 403 and anonymous.json()["kind"] == "Status"


def test_healthy_cluster_from_manifests(fake_cluster: FakeKubeCluster, api: httpx.Client) -> None:
    pods = api.get(f"/api/v1/namespaces/{NS}/pods").json()
    assert pods["kind"] == "PodList" and pods["metadata"]["resourceVersion"]
    assert len(pods["items"]) == len(STATE.components)
    for key, spec in STATE.components.items():
        (pod,) = fake_cluster.pods_of(key)
        status = pod["status"]
        assert status["phase"] == "Running" and status["podIP"].startswith("10.42.")
        main = next(c for c in status["containerStatuses"] if c["name"] == spec.container)
        assert main["ready"] and main["started"] and main["restartCount"] == 0
        assert main["image"] == spec.image
        assert pod["spec"]["nodeName"] == (spec.node or pod["spec"]["nodeName"])
        owner = pod["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "ReplicaSet" if spec.kind == "Deployment" else "StatefulSet"
        workload = fake_cluster.workload_of(key)
        assert workload["status"]["readyReplicas"] == 1
    nodes = api.get("/api/v1/nodes").json()["items"]
    assert [n["metadata"]["name"] for n in nodes][-1] == STATE.node
    assert all(n["status"]["nodeInfo"]["architecture"] == "arm64" for n in nodes)
    node = api.get(f"/api/v1/nodes/{STATE.node}").json()
    assert node["kind"] == "Node" and node["apiVersion"] == "v1"
    for name, claim_spec in STATE.pvcs.items():
        claim = fake_cluster.get("persistentvolumeclaims", name)
        assert claim["status"]["phase"] == "Bound"
        if claim_spec.volume_name:
            assert claim["spec"]["volumeName"] == claim_spec.volume_name
    secret = api.get(f"/api/v1/namespaces/{NS}/secrets/immich-postgres-secret").json()
    assert base64.b64decode(secret["data"]["username"]).decode() == "immich"
    assert len(base64.b64decode(secret["data"]["password"])) >= 32
    ingress = api.get(f"/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses").json()["items"][0]
    assert ingress["status"]["loadBalancer"]["ingress"]


def test_endpoints_follow_ready_pods(fake_cluster: FakeKubeCluster, api: httpx.Client) -> None:
    spec = STATE.component("ml")
    (pod,) = fake_cluster.pods_of("ml")
    endpoints = api.get(f"/api/v1/namespaces/{NS}/endpoints/{spec.service}").json()
    (subset,) = endpoints["subsets"]
    assert subset["addresses"][0]["ip"] == pod["status"]["podIP"]
    assert subset["ports"][0]["port"] == spec.port
    slices = api.get(
        f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices",
        params={"labelSelector": f"kubernetes.io/service-name={spec.service}"},
    ).json()["items"]
    assert slices[0]["endpoints"][0]["conditions"]["ready"] is True
    fake_cluster.not_ready("ml")
    subset = fake_cluster.get("endpoints", spec.service)["subsets"][0]
    assert "addresses" not in subset and subset["notReadyAddresses"]
    fake_cluster.remove_endpoints(STATE.component("redis").service)
    assert fake_cluster.get("endpoints", STATE.component("redis").service)["subsets"] == []


def test_label_selectors() -> None:
    labels = {"metadata": {"labels": {"app": "immich-ml", "tier": "ai"}}}
    accepted = [
        "app=immich-ml",
        "app==immich-ml",
        "app!=x",
        "app in (a,immich-ml)",
        "app notin (x,y)",
        "tier",
        "!missing",
        "app=immich-ml,tier=ai",
    ]
    rejected = [
        "app=x",
        "app!=immich-ml",
        "app in (a,b)",
        "app notin (immich-ml)",
        "missing",
        "!tier",
    ]
    for text in accepted:
        assert labels_match(parse_label_selector(text), labels), text
    for text in rejected:
        assert not labels_match(parse_label_selector(text), labels), text
    with pytest.raises(SelectorError):
        parse_label_selector("app in ()")
    with pytest.raises(SelectorError):
        parse_field_selector("spec.bogus=1", "pods")


def test_selectors_over_http(fake_cluster: FakeKubeCluster, api: httpx.Client) -> None:
    pods_url = f"/api/v1/namespaces/{NS}/pods"
    ml = STATE.component("ml")
    server = STATE.component("server")
    selector = f"app in ({ml.labels['app']},{server.labels['app']})"
    assert len(api.get(pods_url, params={"labelSelector": selector}).json()["items"]) == 2
    not_ml = api.get(pods_url, params={"labelSelector": f"app!={ml.labels['app']}"}).json()
    assert len(not_ml["items"]) == len(STATE.components) - 1
    on_node = api.get("/api/v1/pods", params={"fieldSelector": f"spec.nodeName={STATE.node}"})
    pinned = [spec for spec in STATE.components.values() if spec.node == STATE.node]
    assert len(on_node.json()["items"]) == len(pinned)
    (pod,) = fake_cluster.pods_of("ml")
    events = api.get(
        f"/api/v1/namespaces/{NS}/events",
        params={"fieldSelector": f"involvedObject.name={pod['metadata']['name']},type=Normal"},
    ).json()
    assert {e["reason"] for e in events["items"]} >= {"Scheduled", "Started"}
    by_name = api.get(
        f"/api/v1/namespaces/{NS}/secrets",
        params={"fieldSelector": "metadata.name=immich-server-secret"},
    ).json()
    assert _names(by_name) == ["immich-server-secret"]
    bad = api.get(pods_url, params={"fieldSelector": "spec.bogus=1"})
    assert (
        bad.status_code == 400 and bad.json()["message"] == "field label not supported: spec.bogus"
    )
    running = api.get(pods_url, params={"fieldSelector": "status.phase!=Running"}).json()
    assert running["items"] == []
    page = api.get(pods_url, params={"limit": 3}).json()
    assert len(page["items"]) == 3 and page["metadata"]["continue"]
    rest = api.get(pods_url, params={"limit": 3, "continue": page["metadata"]["continue"]}).json()
    assert len(page["items"]) + len(rest["items"]) == len(STATE.components)


def test_not_found_status(api: httpx.Client) -> None:
    missing = api.get(f"/api/v1/namespaces/{NS}/pods/nope")
    assert missing.status_code == 404
    assert missing.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "pods"},
        "code": 404,
    }
    deployment = api.get(f"/apis/apps/v1/namespaces/{NS}/deployments/nope").json()
    assert deployment["message"] == 'deployments.apps "nope" not found'
    assert api.get("/apis/nope.example.com/v1").status_code == 404


def test_crashloop_and_image_pull_faults(fake_cluster: FakeKubeCluster, api: httpx.Client) -> None:
    fake_cluster.crashloop("postgres")
    (pod,) = fake_cluster.pods_of("postgres")
    main = next(
        c
        for c in pod["status"]["containerStatuses"]
        if c["name"] == STATE.component("postgres").container
    )
    assert main["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert main["restartCount"] > 0 and main["lastState"]["terminated"]["exitCode"] == 1
    deployment = fake_cluster.workload_of("postgres")
    assert deployment["status"]["readyReplicas"] == 0
    available = next(c for c in deployment["status"]["conditions"] if c["type"] == "Available")
    assert available["status"] == "False"
    warnings = api.get(
        f"/api/v1/namespaces/{NS}/events", params={"fieldSelector": "type=Warning,reason=BackOff"}
    ).json()["items"]
    assert warnings and "Back-off restarting failed container" in warnings[0]["message"]
    log_url = f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}/log"
    previous = api.get(log_url, params={"previous": "true"})
    assert previous.status_code == 200 and "exited with code 1" in previous.text
    fake_cluster.image_pull_error("ml")
    (ml_pod,) = fake_cluster.pods_of("ml")
    assert ml_pod["status"]["phase"] == "Pending"
    waiting = ml_pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ImagePullBackOff"
    refused = api.get(f"/api/v1/namespaces/{NS}/pods/{ml_pod['metadata']['name']}/log")
    assert refused.status_code == 400 and "waiting to start" in refused.json()["message"]


def test_placement_claims_secrets_and_drift(fake_cluster: FakeKubeCluster) -> None:
    fake_cluster.place_on_node("redis", "node02")
    (pod,) = fake_cluster.pods_of("redis")
    assert pod["spec"]["nodeName"] == "node02"
    claim_name = STATE.component("postgres").pvcs[0]
    fake_cluster.pvc_pending(claim_name)
    claim = fake_cluster.get("persistentvolumeclaims", claim_name)
    assert claim["status"]["phase"] == "Pending" and "volumeName" not in claim["spec"]
    (pg_pod,) = fake_cluster.pods_of("postgres")
    assert pg_pod["status"]["phase"] == "Pending" and "nodeName" not in pg_pod["spec"]
    fake_cluster.drop_secret_key("immich-server-secret", "jwt-secret")
    assert fake_cluster.secret_values("immich-server-secret") == {}
    fake_cluster.delete_secret("immich-postgres-secret")
    with pytest.raises(KeyError):
        fake_cluster.get("secrets", "immich-postgres-secret")
    fake_cluster.set_secret("immich-postgres-secret", {"username": "u", "password": "p"})
    assert fake_cluster.secret_values("immich-postgres-secret") == {
        "username": "u",
        "password": "p",
    }
    fake_cluster.set_image("server", "ghcr.io/immich-app/immich-server:v1.99.0")
    (server_pod,) = fake_cluster.pods_of("server")
    assert server_pod["status"]["containerStatuses"][0]["image"].endswith("v1.99.0")
    fake_cluster.set_redis_config(maxmemory_policy="allkeys-lru")
    redis_conf = next(
        text
        for name in STATE.component("redis").configmaps
        for text in fake_cluster.get("configmaps", name)["data"].values()
    )
    assert "maxmemory-policy allkeys-lru" in redis_conf


def test_logs_tail_and_since(fake_cluster: FakeKubeCluster, api: httpx.Client) -> None:
    (pod,) = fake_cluster.pods_of("server")
    url = f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}/log"
    full = api.get(url).text.splitlines()
    assert any("Immich Server is listening" in line for line in full)
    assert api.get(url, params={"tailLines": 1}).text.splitlines() == full[-1:]
    fake_cluster.append_log("server", "fresh line")
    assert api.get(url, params={"sinceSeconds": 60}).text == "fresh line\n"
    stamped = api.get(url, params={"tailLines": 1, "timestamps": "true"}).text
    assert stamped.endswith("Z fresh line\n")


def test_rbac_from_shipped_role(fake_cluster: FakeKubeCluster, api: httpx.Client) -> None:
    impersonated = api.get(
        f"/api/v1/namespaces/{NS}/secrets",
        headers={"Impersonate-User": "system:serviceaccount:immich:immichcheck"},
    )
    assert impersonated.status_code == 403
    assert api.get(f"/api/v1/namespaces/{NS}/secrets").status_code == 200
    fake_cluster.enforce_rbac("immichcheck")
    listing = api.get(f"/api/v1/namespaces/{NS}/secrets")
    assert listing.status_code == 403
    assert listing.json()["message"] == (
        'secrets is forbidden: User "system:serviceaccount:immich:immichcheck" cannot list '
        'resource "secrets" in API group "" in the namespace "immich"'
    )
    assert api.get(f"/api/v1/namespaces/{NS}/secrets/immich-server-secret").status_code == 200
    by_name = api.get(
        f"/api/v1/namespaces/{NS}/secrets",
        params={"fieldSelector": "metadata.name=immich-server-secret"},
    )
    # The Role grants `get` by resourceNames but not `list`: a list narrowed to the name
    # (what kr8s's Secret.get() sends) is refused by a real cluster too.
    assert by_name.status_code == 403
    assert api.get("/api/v1/nodes").status_code == 200
    assert api.get(f"/api/v1/namespaces/{NS}/pods").status_code == 200
    assert api.delete(f"/api/v1/namespaces/{NS}/pods/x").status_code == 403
    fake_cluster.forbid("get", "pods/log")
    (pod,) = fake_cluster.pods_of("ml")
    denied = api.get(f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}/log")
    assert denied.status_code == 403 and 'resource "pods/log"' in denied.json()["message"]


def test_create_patch_delete_with_propagation(
    fake_cluster: FakeKubeCluster, api: httpx.Client
) -> None:
    jobs = f"/apis/batch/v1/namespaces/{NS}/jobs"
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"generateName": "bench-"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }
    created = api.post(jobs, json=job)
    assert created.status_code == 201
    name = created.json()["metadata"]["name"]
    assert name.startswith("bench-") and created.json()["metadata"]["uid"]
    assert api.post(jobs, json={**job, "metadata": {"name": name}}).status_code == 409
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-pod",
            "labels": {"job-name": name},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": name,
                    "uid": created.json()["metadata"]["uid"],
                }
            ],
        },
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    assert api.post(f"/api/v1/namespaces/{NS}/pods", json=pod).status_code == 201
    patched = api.patch(
        f"{jobs}/{name}",
        json={"metadata": {"labels": {"run": "1"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.json()["metadata"]["labels"] == {"run": "1"}
    # Like the real API server, a Job deleted without a policy orphans its pods.
    assert api.delete(f"{jobs}/{name}").status_code == 200
    assert api.get(f"/api/v1/namespaces/{NS}/pods/{name}-pod").status_code == 200
    second = api.post(jobs, json=job).json()
    pod["metadata"]["name"] = "owned-pod"
    pod["metadata"]["ownerReferences"][0].update(
        name=second["metadata"]["name"], uid=second["metadata"]["uid"]
    )
    api.post(f"/api/v1/namespaces/{NS}/pods", json=pod)
    deleted = api.delete(
        f"{jobs}/{second['metadata']['name']}", params={"propagationPolicy": "Background"}
    )
    assert deleted.status_code == 200
    assert api.get(f"/api/v1/namespaces/{NS}/pods/owned-pod").status_code == 404


def test_table_printing(api: httpx.Client) -> None:
    table = api.get(
        f"/api/v1/namespaces/{NS}/pods",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
    ).json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    assert table["rows"][0]["cells"][1:3] == ["1/1", "Running"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_lists_through_generated_kubeconfig(
    fake_cluster: FakeKubeCluster, tmp_path: Path
) -> None:
    assert fake_cluster.kubeconfig_path is not None
    fake_cluster.crashloop("redis")
    result = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(fake_cluster.kubeconfig_path),
            "--cache-dir",
            str(tmp_path / "cache"),
            "get",
            "pods,svc,pvc,secrets",
            "-n",
            NS,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout
    for spec in STATE.components.values():
        assert f"pod/{spec.name}-" in output
    for name in [*STATE.services, *STATE.pvcs, *STATE.secrets]:
        assert f"/{name} " in output
    assert "CrashLoopBackOff" in output
    wrong = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(fake_cluster.write_kubeconfig(tmp_path / "bad", token="x")),
            "--cache-dir",
            str(tmp_path / "cache2"),
            "get",
            "pods",
            "-n",
            NS,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert wrong.returncode == 1  # kubectl's exit code for every failed command
    assert "You must be logged in" in wrong.stderr
    # RBAC of the shipped Role, asked the way an admin would (protobuf access reviews).
    account = "system:serviceaccount:immich:immichcheck"
    answers = {}
    for question in (
        ["list", "secrets"],
        ["get", "secrets/immich-server-secret"],
        ["list", "pods"],
    ):
        asked = subprocess.run(
            ["kubectl", "--kubeconfig", str(fake_cluster.kubeconfig_path), "--cache-dir",
             str(tmp_path / "cache"), "auth", "can-i", *question, "-n", NS, "--as", account],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        answers[" ".join(question)] = asked.stdout.strip()
    assert answers == {
        "list secrets": "no",
        "get secrets/immich-server-secret": "yes",
        "list pods": "yes",
    }


async def test_kr8s_lists_pods_and_reads_a_secret(fake_cluster: FakeKubeCluster) -> None:
    import kr8s.asyncio
    from kr8s.asyncio.objects import Pod, Secret

    assert fake_cluster.kubeconfig_path is not None
    fake_cluster.set_secret("immich-postgres-secret", {"username": "immich", "password": "s3cret"})
    api = await kr8s.asyncio.api(kubeconfig=str(fake_cluster.kubeconfig_path))
    pods = [pod async for pod in api.get("pods", namespace=NS)]
    assert all(isinstance(pod, Pod) for pod in pods)
    assert sorted(str(getattr(pod, "name", "")).rsplit("-", 2)[0] for pod in pods) == sorted(
        spec.name for spec in STATE.components.values()
    )
    secret = await Secret.get("immich-postgres-secret", namespace=NS, api=api)
    assert base64.b64decode(secret.raw["data"]["password"]).decode() == "s3cret"
    ml_selector = dict(STATE.component("ml").labels)
    ml_pods = [pod async for pod in api.get("pods", namespace=NS, label_selector=ml_selector)]
    assert len(ml_pods) == 1


async def test_kr8s_under_the_shipped_role(fake_cluster: FakeKubeCluster) -> None:
    import kr8s
    import kr8s.asyncio
    from kr8s.asyncio.objects import Secret

    assert fake_cluster.kubeconfig_path is not None
    fake_cluster.enforce_rbac("immichcheck")
    api = await kr8s.asyncio.api(kubeconfig=str(fake_cluster.kubeconfig_path))
    # A direct GET by name is what the Role allows: refresh() does that.
    secret = Secret({"metadata": {"name": "immich-server-secret", "namespace": NS}}, api=api)
    await secret.refresh()
    assert set(secret.raw["data"]) == set(STATE.secrets["immich-server-secret"])
    # Secret.get() lists with a metadata.name field selector, which needs `list`.
    with pytest.raises(kr8s.ServerError) as refused:
        await Secret.get("immich-server-secret", namespace=NS, api=api)
    assert refused.value.response is not None and refused.value.response.status_code == 403


async def test_kr8s_port_forward_reaches_a_routed_local_server(
    fake_cluster: FakeKubeCluster, fake_immich_server: Any
) -> None:
    import kr8s.asyncio
    from kr8s.asyncio.objects import Service

    assert fake_cluster.kubeconfig_path is not None
    spec = STATE.component("server")
    fake_cluster.route_port("server", spec.port, ("127.0.0.1", fake_immich_server.port))
    api = await kr8s.asyncio.api(kubeconfig=str(fake_cluster.kubeconfig_path))
    service = await Service.get(spec.service, namespace=NS, api=api)
    forward = service.portforward(remote_port=spec.port, local_port="auto")
    local_port = await forward.start()
    try:
        # kr8s hands back the port before its local server listens: wait as verify does.
        assert await asyncio.wait_for(forward_listening(forward), 5)
        async with httpx.AsyncClient(timeout=5) as client:
            for _ in range(2):  # a second request opens a second stream
                ping = await client.get(f"http://127.0.0.1:{local_port}/api/server/ping")
                assert ping.json() == {"res": "pong"}
    finally:
        await forward.stop()
    # A port-forward is a WebSocket upgrade, which needs `get` as well as `create` on
    # pods/portforward: the shipped Role grants both, so the upgrade goes through under it,
    # and a Role without `get` is refused with the API server's message.
    fake_cluster.enforce_rbac("immichcheck")
    (pod,) = fake_cluster.pods_of("server")
    headers = {
        "Authorization": f"Bearer {fake_cluster.token}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
    }
    url = f"{fake_cluster.url}/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}/portforward"
    with httpx.stream("GET", url, params={"ports": spec.port}, headers=headers) as allowed:
        assert allowed.status_code == 101
    fake_cluster.forbid("get", "pods/portforward", namespace=NS)
    refused = httpx.get(url, params={"ports": spec.port}, headers=headers)
    assert refused.status_code == 403
    assert 'cannot get resource "pods/portforward"' in refused.json()["message"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_exec_runs_the_registered_handler(
    fake_cluster: FakeKubeCluster, redis_server: Any, tmp_path: Path
) -> None:
    assert fake_cluster.kubeconfig_path is not None
    base = ["kubectl", "--kubeconfig", str(fake_cluster.kubeconfig_path),
            "--cache-dir", str(tmp_path / "cache"), "exec", "-n", NS]  # fmt: skip

    def kubectl_exec(target: str, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, target, "--", *argv], capture_output=True, text=True, timeout=60, check=False
        )

    # A real redis-cli run where the pod's localhost is the local Redis: kubectl resolves
    # deployment/immich-redis to its pod, then streams the tool's output back (v5 protocol).
    redis_at = ["-h", redis_server.host, "-p", str(redis_server.port)]
    fake_cluster.set_exec_handler("redis", local_tool_handler({"redis-cli": redis_at}))
    pong = kubectl_exec("deployment/immich-redis", "redis-cli", "ping")
    assert (pong.returncode, pong.stdout) == (0, "PONG\n"), pong.stderr
    # Output streams stay apart, and a non-zero exit code is kubectl's exit code too.
    seen: list[list[str]] = []

    def postgres(argv: list[str]) -> ExecResult:
        seen.append(argv)
        return ExecResult(2, b"out\n", b"no response\n")

    fake_cluster.set_exec_handler("postgres", postgres)
    failed = kubectl_exec("deployment/immich-postgres", "pg_isready", "-U", "immich")
    assert seen == [["pg_isready", "-U", "immich"]]
    assert (failed.returncode, failed.stdout) == (2, "out\n")
    assert failed.stderr == "no response\ncommand terminated with exit code 2\n"
    # Container paths map to local folders; a program the container lacks is refused.
    (tmp_path / "upload").mkdir()
    fake_cluster.set_exec_handler(
        "server", local_tool_handler(paths={"/usr/src/app/upload": str(tmp_path / "upload")})
    )
    listing = kubectl_exec("deployment/immich-server", "ls", "-d", "/usr/src/app/upload/")
    assert (listing.returncode, listing.stdout) == (0, f"{tmp_path}/upload/\n"), listing.stderr
    missing = kubectl_exec("deployment/immich-server", "iostat-not-installed", "-x")
    assert missing.returncode == 1
    assert '"iostat-not-installed": executable file not found in $PATH' in missing.stderr
    # A container that is not running cannot be exec'd into.
    fake_cluster.crashloop("ml")
    fake_cluster.set_exec_handler("ml", local_tool_handler())
    crashed = kubectl_exec("deployment/immich-ml", "true")
    assert crashed.returncode == 1 and "container not found" in crashed.stderr
    # pods/exec is a WebSocket upgrade: under RBAC it needs `create` and `get`, which the
    # shipped Role does not grant.
    fake_cluster.enforce_rbac("immichcheck")
    denied = kubectl_exec("deployment/immich-redis", "redis-cli", "ping")
    assert denied.returncode == 1 and 'resource "pods/exec"' in denied.stderr, denied.stderr
