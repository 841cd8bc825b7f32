"""verify's node checks (IC-ND-7xx) against the fake Kubernetes API over real HTTPS.

The fake builds node01..node05 from the manifests: PostgreSQL, Redis and ML are pinned to
node05, the server runs on node02. Only those two nodes matter to Immich; each test breaks a
node the way a real cluster shows it (tests/fakes/kube_nodes.py) and asserts code, status,
message and exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from immichcheck.common.records import Status
from tests.fakes import kube_nodes
from tests.test_checks_cluster import healthy_cluster_objects, write_dump
from tests.test_verify_integration import assert_verdict, message, run_json, statuses

NODES = ["--only", "nodes", "--no-save"]
NODE_CODES = ["IC-ND-701", "IC-ND-702", "IC-ND-703", "IC-ND-704", "IC-ND-705"]


@pytest.fixture
def cluster_args(fake_cluster: Any) -> list[str]:
    return ["--kubeconfig", str(fake_cluster.kubeconfig_path)]


def test_healthy_nodes_all_pass_and_only_immich_nodes_are_judged(
    fake_cluster: Any, cluster_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, record = run_json([*cluster_args, *NODES], capsys)
    assert [(c.code, c.target, c.message) for c in record.checks if c.status != Status.PASS] == []
    assert sorted({c.code for c in record.checks}) == NODE_CODES
    assert {c.target for c in record.checks} == {"node/node02", "node/node05"}
    assert "node node05 is Ready (runs postgres, redis, ml)" in message(record, "IC-ND-701")
    assert "node node02 is Ready (runs server)" in message(record, "IC-ND-701")
    assert "node node05: Immich requests 850m CPU of 4000m allocatable" in message(
        record, "IC-ND-704"
    )
    assert "kubelet v1.32.4+k3s1, API server v1.32.4+k3s1" in message(record, "IC-ND-705")
    assert code == 0


def _fault(name: str) -> Callable[[Any], None]:
    faults: dict[str, Callable[[Any], None]] = {
        "kubelet_stopped": lambda c: kube_nodes.stop_kubelet(c, "node05"),
        "kubelet_not_ready": lambda c: kube_nodes.kubelet_not_ready(c, "node02"),
        "disk_pressure": lambda c: kube_nodes.pressure(c, "node05", "DiskPressure"),
        "memory_pressure": lambda c: kube_nodes.pressure(
            c, "node02", "MemoryPressure", message="kubelet has insufficient memory available"
        ),
        "pid_pressure": lambda c: kube_nodes.pressure(c, "node05", "PIDPressure"),
        "cordon_pinned": lambda c: kube_nodes.cordon(c, "node05"),
        "cordon_unpinned": lambda c: kube_nodes.cordon(c, "node02"),
        "too_little_memory": lambda c: kube_nodes.set_allocatable(c, "node05", memory="1Gi"),
        "nearly_full_cpu": lambda c: kube_nodes.set_allocatable(c, "node05", cpu="900m"),
        "kubelet_newer": lambda c: kube_nodes.set_kubelet_version(c, "node02", "v1.33.1+k3s1"),
        "kubelet_too_old": lambda c: kube_nodes.set_kubelet_version(c, "node05", "v1.28.9+k3s1"),
    }
    return faults[name]


@pytest.mark.parametrize(
    ("fault", "code", "status", "text", "exit_code"),
    [
        (
            "kubelet_stopped",
            "IC-ND-701",
            Status.FAIL,
            "node node05 is not reporting (Ready=Unknown: NodeStatusUnknown Kubelet stopped "
            "posting node status.); the kubelet last reported 7 min ago; runs postgres, redis, ml",
            2,
        ),
        (
            "kubelet_not_ready",
            "IC-ND-701",
            Status.FAIL,
            "node node02 is NotReady (Ready=False: KubeletNotReady container runtime network "
            "not ready",
            2,
        ),
        (
            "disk_pressure",
            "IC-ND-702",
            Status.FAIL,
            "node node05 is under DiskPressure (kubelet has disk pressure); the kubelet evicts "
            "pods to recover and runs postgres, redis, ml",
            2,
        ),
        (
            "memory_pressure",
            "IC-ND-702",
            Status.FAIL,
            "node node02 is under MemoryPressure (kubelet has insufficient memory available)",
            2,
        ),
        (
            "pid_pressure",
            "IC-ND-702",
            Status.FAIL,
            "PIDPressure (kubelet has insufficient PID available)",
            2,
        ),
        (
            "cordon_pinned",
            "IC-ND-703",
            Status.FAIL,
            "node node05 is cordoned (spec.unschedulable): postgres, redis, ml are pinned to it "
            "and stay Pending after their next restart or rollout; kubectl uncordon node05",
            2,
        ),
        (
            "cordon_unpinned",
            "IC-ND-703",
            Status.WARN,
            "node node02 is cordoned (spec.unschedulable): the pods of server can move to another "
            "node when they restart",
            1,
        ),
        (
            "too_little_memory",
            "IC-ND-704",
            Status.FAIL,
            "1792 MiB of 1024 MiB memory (postgres 250m/512 MiB, redis 100m/256 MiB, "
            "ml 500m/1024 MiB): the scheduler cannot place them all",
            2,
        ),
        ("nearly_full_cpu", "IC-ND-704", Status.WARN, "850m CPU of 900m allocatable", 1),
        (
            "kubelet_newer",
            "IC-ND-705",
            Status.WARN,
            "node node02: kubelet v1.33.1+k3s1, API server v1.32.4+k3s1: a kubelet newer than "
            "the API server is not supported",
            1,
        ),
        (
            "kubelet_too_old",
            "IC-ND-705",
            Status.WARN,
            "4 minor versions behind, more than the 3 the skew policy supports",
            1,
        ),
    ],
)
def test_each_node_fault(
    fake_cluster: Any,
    cluster_args: list[str],
    capsys: pytest.CaptureFixture[str],
    fault: str,
    code: str,
    status: Status,
    text: str,
    exit_code: int,
) -> None:
    _fault(fault)(fake_cluster)
    outcome = run_json([*cluster_args, *NODES], capsys)
    assert_verdict(outcome, code, status, text, exit_code)


def test_pressure_is_unknown_while_the_kubelet_is_silent(
    fake_cluster: Any, cluster_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    kube_nodes.stop_kubelet(fake_cluster, "node05")
    _code, record = run_json([*cluster_args, *NODES], capsys)
    pressure = next(c for c in record.checks if c.code == "IC-ND-702" and c.target == "node/node05")
    assert pressure.status == Status.SKIP
    assert pressure.message == (
        "node node05: MemoryPressure, DiskPressure, PIDPressure unknown (the kubelet is not "
        "reporting; see IC-ND-701)"
    )


def test_a_broken_node_immich_does_not_use_is_not_judged(
    fake_cluster: Any, cluster_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    kube_nodes.stop_kubelet(fake_cluster, "node03")
    kube_nodes.pressure(fake_cluster, "node04", "DiskPressure")
    kube_nodes.cordon(fake_cluster, "node01")
    code, record = run_json([*cluster_args, *NODES], capsys)
    assert {c.status for c in record.checks} == {Status.PASS}
    assert code == 0


def test_the_shipped_cluster_role_reads_nodes(
    fake_cluster: Any, cluster_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_cluster.enforce_rbac("immichcheck")
    kube_nodes.cordon(fake_cluster, "node05")
    code, record = run_json([*cluster_args, *NODES], capsys)
    assert statuses(record)["IC-ND-703"] == Status.FAIL
    assert code == 2


def test_forbidden_nodes_are_error_naming_the_cluster_role(
    fake_cluster: Any, cluster_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_cluster.forbid("list", "nodes")
    code, record = run_json([*cluster_args, *NODES], capsys)
    assert {c.status for c in record.checks} == {Status.ERROR}
    text = message(record, "IC-ND-701")
    assert "cannot read Node objects" in text and "403" in text
    assert "ClusterRole in manifests/11-immichcheck.yaml" in text
    assert code == 3


def _dump(tmp_path: Path, keep: Callable[[dict[str, Any]], bool]) -> Path:
    from immichcheck.deploy.expected_state import load_expected_state

    objects = [o for o in healthy_cluster_objects(load_expected_state()) if keep(o)]
    return write_dump(tmp_path / "dump.json", objects)


def test_dump_without_nodes_skips_and_names_the_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = _dump(tmp_path, lambda o: o["kind"] != "Node")
    code, record = run_json(["--from-dump", str(dump), *NODES], capsys)
    assert {c.status for c in record.checks} == {Status.SKIP}
    assert message(record, "IC-ND-701") == (
        "skipped: not in the dump: add `kubectl get nodes -o json` to the dump"
    )
    assert code == 0


def test_dump_with_nodes_judges_the_skew_against_the_control_plane(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = _dump(tmp_path, lambda o: True)
    code, record = run_json(["--from-dump", str(dump), *NODES], capsys)
    assert {c.status for c in record.checks} == {Status.PASS}
    assert "node node05: kubelet v1.32.4+k3s1, control plane (node01) v1.32.4+k3s1" in message(
        record, "IC-ND-705"
    )
    assert code == 0


def test_dump_where_the_pinned_node_is_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = _dump(
        tmp_path, lambda o: not (o["kind"] == "Node" and o["metadata"]["name"] == "node05")
    )
    code, record = run_json(["--from-dump", str(dump), *NODES], capsys)
    ready = {c.target: c for c in record.checks if c.code == "IC-ND-701"}
    assert ready["node/node05"].status == Status.FAIL
    assert ready["node/node05"].message.startswith(
        "node node05 does not exist (runs postgres, redis, ml): pods pinned to it stay Pending"
    )
    assert ready["node/node02"].status == Status.PASS
    assert code == 2
