"""`bench --node/--nodes/--all-nodes` end to end against the fake Kubernetes API.

The CLI runs as a user would run it (in-process through `main`, or as a subprocess for
Ctrl-C), with the fake cluster's kubeconfig. The fake's Job controller schedules the pod,
plays its phases and log lines, and breaks in each way a real cluster does; every test
also checks that no Job or pod is left behind.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from immichcheck import __version__
from immichcheck.bench.nodes.failure_diagnosis import node_lost_problem
from immichcheck.bench.nodes.in_job import cluster_dns_defaults
from immichcheck.bench.nodes.node_job import (
    JOB_NAME_PREFIX,
    NODE_NAME_ENV,
    job_arguments,
    job_name_for,
    render_node_job,
    split_log,
)
from immichcheck.bench.nodes.node_selection import NodeState, choose_nodes, node_state
from immichcheck.cli.main import main
from immichcheck.clients.kubernetes_jobs import Permission
from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.records import RunRecord
from immichcheck.deploy.expected_state import load_expected_state
from immichcheck.history.store import load_runs
from tests.fakes.kube_api import FakeKubeCluster
from tests.fakes.kube_jobs import FakeJobs
from tests.test_store_factories import generated, run

# A faster NVMe on node05 than elsewhere, so a node comparison has something to show.
FDATASYNC_MEDIAN = {"node05": 0.0004, "node01": 0.0011, "node03": 0.0012, "node04": 0.0013}


@pytest.fixture
def jobs(fake_cluster: FakeKubeCluster) -> Iterator[FakeJobs]:
    """The fake cluster with its Job controller; run records like a storage bench's."""
    counter = itertools.count(1)

    def record_for(node: str) -> RunRecord:
        median = FDATASYNC_MEDIAN.get(node, 0.001)
        return run(
            next(counter),
            node=f"{node}-pod",  # what the pod calls itself; the saved run says the node
            benchmarks=[
                generated("storage.fdatasync", {"path": "nvme", "size": 8192}, median, count=400),
                generated(
                    "storage.fdatasync", {"path": "nfs", "size": 8192}, median * 12, count=400
                ),
            ],
        )

    fakes = FakeJobs(fake_cluster, record_for)
    yield fakes
    fakes.stop()


def cli(
    capsys: pytest.CaptureFixture[str], cluster: FakeKubeCluster, reports: Path, *args: str
) -> tuple[int, str, str]:
    """Run `immichcheck bench ARGS` in-process; (exit code, stdout, stderr)."""
    argv = [
        "bench",
        *args,
        "--kubeconfig",
        str(cluster.kubeconfig_path),
        "--reports-dir",
        str(reports),
        "--poll-interval",
        "0.05",
    ]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def assert_nothing_left(jobs: FakeJobs) -> None:
    """No Job and no Job pod remain in the fake cluster."""
    assert jobs.jobs() == []
    assert jobs.job_pods() == []


# The happy path -------------------------------------------------------------------------------


def test_bench_node_runs_a_pinned_job_streams_its_log_and_saves_the_record(
    jobs: FakeJobs, fake_cluster: FakeKubeCluster, tmp_path: Path, capsys: Any
) -> None:
    code, out, err = cli(capsys, fake_cluster, tmp_path, "--node", "node05", "--suite", "storage")

    assert code == 0, err
    assert "[node05] Job immichcheck-bench-node05-" in err
    assert "[node05] | storage: nvme sequential write" in err
    assert "[node05] | storage: nfs small files" in err
    assert "IMMICHCHECK-RUN-RECORD" not in err + out
    assert "== node node05" in out and "storage.fdatasync" in out
    runs = load_runs(tmp_path).runs
    assert [r.node for r in runs] == ["node05"]
    assert runs[0].settings["ran_in"] == "job"
    assert runs[0].settings["job"].startswith(JOB_NAME_PREFIX + "node05-")
    assert {b.parameters["path"] for b in runs[0].benchmarks} == {"nvme", "nfs"}
    assert_nothing_left(jobs)

    [job] = jobs.created
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "node05"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["nvme-scratch"]["hostPath"]["path"] == "/opt/immich/temp"
    assert volumes["uploads"]["persistentVolumeClaim"]["claimName"] == "immich-uploads"
    assert container["args"][:2] == ["bench", "--in-job"]
    assert "nvme=/bench/nvme" in container["args"] and "nfs=/bench/nfs" in container["args"]
    assert container["args"][container["args"].index("--suite") + 1] == "storage"
    assert container["image"].endswith(f":{__version__}")
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["backoffLimit"] == 0
    delete = [r for r in fake_cluster.requests if r["method"] == "DELETE"]
    assert [r["query"].get("propagationPolicy") for r in delete] == ["Background"]


def test_bench_node_json_output_is_the_saved_record(
    jobs: FakeJobs, fake_cluster: FakeKubeCluster, tmp_path: Path, capsys: Any
) -> None:
    code, out, _ = cli(capsys, fake_cluster, tmp_path / "r", "--node", "node01", "--format", "json")

    assert code == 0
    data = json.loads(out)  # one record, as `bench --local --format json` prints
    assert data["node"] == "node01"
    assert data["run_id"] == load_runs(tmp_path / "r").runs[0].run_id

    code, out, _ = cli(
        capsys, fake_cluster, tmp_path / "r", "--nodes", "node01,node03", "--format", "json"
    )

    assert code == 0
    assert [record["node"] for record in json.loads(out)] == ["node01", "node03"]


def test_the_shipped_role_is_enough_for_a_node_benchmark(
    jobs: FakeJobs, fake_cluster: FakeKubeCluster, tmp_path: Path, capsys: Any
) -> None:
    fake_cluster.enforce_rbac("immichcheck")  # the Role/ClusterRole of 11-immichcheck.yaml

    code, _, err = cli(capsys, fake_cluster, tmp_path, "--node", "node05")

    assert code == 0, err
    assert_nothing_left(jobs)


# Several nodes --------------------------------------------------------------------------------


@pytest.mark.slow
def test_all_nodes_runs_one_after_another_skips_cordoned_and_compares(
    jobs: FakeJobs, fake_cluster: FakeKubeCluster, tmp_path: Path, capsys: Any
) -> None:
    jobs.cordon("node02")
    jobs.scenario("succeed", step_seconds=0.02)

    code, out, err = cli(capsys, fake_cluster, tmp_path, "--all-nodes")

    assert code == 0, err
    assert "[node02] skipped: cordoned" in err
    ran = [node for node, _ in jobs.started_on]
    assert ran == ["node01", "node03", "node04", "node05"]
    # Sequential: each pod starts only after the previous one finished.
    for (_, finished), (_, started) in zip(jobs.finished_on, jobs.started_on[1:], strict=False):
        assert started >= finished
    assert sorted(r.node for r in load_runs(tmp_path).runs) == ran
    assert "node05" in out and "node01" in out and "#" in out  # the markdown comparison
    assert_nothing_left(jobs)

    # The saved runs feed the node comparison report.
    with pytest.raises(SystemExit) as exited:
        main(["report", "--reports-dir", str(tmp_path), "--nodes", "node01,node05"])
    report = capsys.readouterr().out
    assert exited.value.code == 0
    assert "node01" in report and "node05" in report
    assert "storage.fdatasync" in report


def test_nodes_parallel_overlaps_the_jobs(
    jobs: FakeJobs, fake_cluster: FakeKubeCluster, tmp_path: Path, capsys: Any
) -> None:
    jobs.scenario("succeed", step_seconds=0.15)

    code, _, err = cli(capsys, fake_cluster, tmp_path, "--nodes", "node01,node05", "--parallel")

    assert code == 0, err
    assert "running on 2 nodes at once" in err
    first_finish = min(t for _, t in jobs.finished_on)
    assert all(started < first_finish for _, started in jobs.started_on)
    assert sorted(r.node for r in load_runs(tmp_path).runs) == ["node01", "node05"]
    assert_nothing_left(jobs)


def test_one_failing_node_does_not_stop_the_others(
    jobs: FakeJobs, fake_cluster: FakeKubeCluster, tmp_path: Path, capsys: Any
) -> None:
    jobs.scenario("oom", node="node01")

    code, _, err = cli(capsys, fake_cluster, tmp_path, "--nodes", "node01,node05")

    assert code == 3
    assert "immichcheck: error: 1 of 2 node(s) failed: node01" in err
    assert [r.node for r in load_runs(tmp_path).runs] == ["node05"]
    assert_nothing_left(jobs)


# Bad input and refusals -----------------------------------------------------------------------


def test_unknown_node_lists_the_nodes_and_creates_nothing(
    jobs: FakeJobs, fake_cluster: FakeKubeCluster, tmp_path: Path, capsys: Any
) -> None:
    jobs.set_node_ready("node03", False)

    code, _, err = cli(capsys, fake_cluster, tmp_path, "--node", "node9")

    assert code == 3
    assert err.strip().splitlines()[-1] == (
        "immichcheck: error: node node9 does not exist; nodes: node01 (Ready), node02 (Ready), "
        "node03 (NotReady: NodeStatusUnknown Kubelet stopped posting node status.), "
        "node04 (Ready), node05 (Ready)"
    )
    assert jobs.created == []


def test_cordoned_node_is_refused_before_any_job(
    jobs: FakeJobs, fake_cluster: FakeKubeCluster, tmp_path: Path, capsys: Any
) -> None:
    jobs.cordon("node05")

    code, _, err = cli(capsys, fake_cluster, tmp_path, "--node", "node05")

    assert code == 3
    assert "node node05 cannot take a benchmark Job (cordoned); nodes: node01 (Ready)" in err
    assert jobs.created == []


def test_rbac_forbidden_names_the_missing_permission(
    jobs: FakeJobs, fake_cluster: FakeKubeCluster, tmp_path: Path, capsys: Any
) -> None:
    fake_cluster.enforce_rbac("immichcheck")
    fake_cluster.forbid("create", "jobs")

    code, _, err = cli(capsys, fake_cluster, tmp_path, "--node", "node05")

    assert code == 3
    line = err.strip().splitlines()[-1]
    assert line.startswith(
        "immichcheck: error: the Kubernetes API refused to create jobs: missing permission "
        "'create jobs.batch in namespace immich'"
    )
    assert 'cannot create resource "jobs" in API group "batch"' in line
    assert jobs.created == []


def test_local_only_options_are_refused_with_node(
    fake_cluster: FakeKubeCluster, tmp_path: Path, capsys: Any
) -> None:
    code, _, err = cli(
        capsys, fake_cluster, tmp_path, "--node", "node05", "--path", "x=/tmp",
        "--api-key", "s3cret-api-key",
    )  # fmt: skip

    assert code == 3
    assert "--path, --api-key cannot be used with --node/--nodes/--all-nodes" in err
    assert "s3cret-api-key" not in err


# Failure modes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "extra", "message", "detail"),
    [
        (
            "image_pull_error",
            (),
            "node node05: the image ghcr.io/immichcheck/immichcheck:0.1.0 cannot be pulled (",
            'Warning Failed: Failed to pull image "ghcr.io/immichcheck/immichcheck:0.1.0"',
        ),
        (
            "unschedulable",
            (),
            "node node05: the pod cannot be scheduled: 0/5 nodes are available: "
            "1 Insufficient memory",
            "Warning FailedScheduling: 0/5 nodes are available",
        ),
        (
            "oom",
            (),
            "node node05: the benchmark was OOMKilled (exit 137) at its memory limit of 1Gi",
            "    storage: nvme sequential write",
        ),
        (
            "hang",
            ("--timeout", "1.5"),
            "node node05: no result within 1.5 s (--timeout); the Job was stopped",
            "    storage: starting",
        ),
        (
            "node_lost",
            (),
            "node node05: node node05 stopped responding mid-run (NotReady: NodeStatusUnknown "
            "Kubelet stopped posting node status.); no result",
            "Warning NodeNotReady: Node is not ready",
        ),
        (
            "fail",
            (),
            "node node05: the benchmark exited with code 3 (Error)",
            "    immichcheck: error: the nfs folder /bench/nfs is not writable",
        ),
    ],
)
def test_failure_modes_explain_themselves_and_clean_up(
    jobs: FakeJobs,
    fake_cluster: FakeKubeCluster,
    tmp_path: Path,
    capsys: Any,
    scenario: str,
    extra: tuple[str, ...],
    message: str,
    detail: str,
) -> None:
    jobs.scenario(scenario)

    code, out, err = cli(capsys, fake_cluster, tmp_path, "--node", "node05", *extra)

    assert code == 3
    assert err.strip().splitlines()[-1].startswith("immichcheck: error: " + message), err
    assert detail in err
    assert "[node05] Job immichcheck-bench-node05-" in err and " deleted" in err
    assert out == ""
    assert load_runs(tmp_path).runs == []
    assert_nothing_left(jobs)


def test_node_cordoned_after_the_check_shows_the_scheduler_message(
    jobs: FakeJobs, fake_cluster: FakeKubeCluster, tmp_path: Path, capsys: Any
) -> None:
    original = fake_cluster.controllers[("batch", "jobs")]

    def cordon_then_create(cluster: FakeKubeCluster, job: dict[str, Any]) -> None:
        jobs.cordon("node04")  # someone drains the node between our check and the pod
        original(cluster, job)

    fake_cluster.register_controller("batch", "jobs", cordon_then_create)

    code, _, err = cli(capsys, fake_cluster, tmp_path, "--node", "node04")

    assert code == 3
    assert "0/5 nodes are available: 1 node(s) were unschedulable" in err
    assert_nothing_left(jobs)


# Ctrl-C ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selection", "node_count"),
    [(("--node", "node05"), 1), (("--nodes", "node01,node05", "--parallel"), 2)],
    ids=["one-node", "parallel"],
)
def test_ctrl_c_deletes_the_jobs_and_their_pods(
    jobs: FakeJobs,
    fake_cluster: FakeKubeCluster,
    tmp_path: Path,
    selection: tuple[str, ...],
    node_count: int,
) -> None:
    jobs.scenario("hang")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "immichcheck",
            "bench",
            *selection,
            "--kubeconfig",
            str(fake_cluster.kubeconfig_path),
            "--reports-dir",
            str(tmp_path),
            "--poll-interval",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(jobs.started_on) < node_count and time.monotonic() < deadline:
            time.sleep(0.05)  # every selected node's pod is running
        time.sleep(0.3)  # let it stream a line or two
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "[node05] interrupted; deleting Job immichcheck-bench-node05-" in err
    assert "immichcheck: interrupted" in err
    assert len(jobs.created) == len(jobs.started_on) == node_count
    assert_nothing_left(jobs)


# The image's side: the real command line inside the Job ---------------------------------------


@pytest.mark.slow
def test_job_runs_the_real_in_job_command_through_the_service_account(
    jobs: FakeJobs, fake_cluster: FakeKubeCluster, tmp_path: Path
) -> None:
    """The Job's args run for real (storage on the mounted folders) and the local side
    reaches the API as a pod would: service account token, no kubeconfig."""
    jobs.scenario("succeed", execute=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMMICHCHECK_", "KUBE"))}
    env.update(fake_cluster.service_account_env(tmp_path / "serviceaccount"))
    env["HOME"] = str(tmp_path)  # no ~/.kube/config
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "immichcheck",
            "bench",
            "--node",
            "node05",
            "--suite",
            "storage",
            "--profile",
            "quick",
            "--reports-dir",
            str(tmp_path / "reports"),
            "--poll-interval",
            "0.2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )

    assert result.returncode == 0, result.stderr
    assert "[node05] | storage: starting" in result.stderr
    [record] = load_runs(tmp_path / "reports").runs
    assert record.node == "node05"
    assert record.tool_version == __version__
    measured = {b.parameters.get("path") for b in record.benchmarks}
    assert {"nvme", "nfs"} <= measured
    assert_nothing_left(jobs)


# Pure pieces ----------------------------------------------------------------------------------


def test_job_names_are_dns_labels_even_for_long_node_names() -> None:
    name = job_name_for("Very_Long.Node-Name-" * 5, token="abcdef")
    assert len(name) <= 63
    assert name.startswith(JOB_NAME_PREFIX) and name.endswith("-abcdef")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    assert job_name_for("node05") != job_name_for("node05")


def test_rendered_job_keeps_template_mounts_and_stretches_its_deadline() -> None:
    job = render_node_job("node03", "immichcheck-bench-node03-abc123", ["--profile", "full"],
                          timeout=7200)  # fmt: skip
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "bench", "--in-job", "--path", "nvme=/bench/nvme", "--path", "nfs=/bench/nfs",
        "--profile", "full",
    ]  # fmt: skip
    assert job["spec"]["activeDeadlineSeconds"] == 7200 + 60
    assert {"name": NODE_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in (
        container["env"]
    )
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert job_arguments(["bench", "--path=a=/x"], []) == ["bench", "--in-job", "--path", "a=/x"]


def test_node_choice_messages() -> None:
    states = [
        NodeState("node01", True, True),
        NodeState("node02", True, False, "cordoned"),
    ]
    assert choose_nodes((), True, states) == (["node01"], {"node02": "cordoned"})
    with pytest.raises(ImmichcheckError, match=r"node node02 cannot take .*\(cordoned\)"):
        choose_nodes(("node02",), False, states)
    with pytest.raises(ImmichcheckError, match="no node can take a benchmark Job"):
        choose_nodes((), True, states[1:])
    assert node_state({"metadata": {"name": "x"}, "spec": {}, "status": {}}).problem == "NotReady"


def test_log_is_split_into_progress_and_the_record() -> None:
    record = run(1, node="node05")
    lines, parsed = split_log(f"a\nb\nIMMICHCHECK-RUN-RECORD {record.to_json(None)}\n")
    assert lines == ["a", "b"]
    assert parsed == record
    assert split_log("a\n") == (["a"], None)
    with pytest.raises(ImmichcheckError, match="unreadable run record"):
        split_log("IMMICHCHECK-RUN-RECORD {not json\n")


def test_node_lost_is_recognised_from_the_pod_or_the_node() -> None:
    running = {"status": {"phase": "Running"}}
    ready = {"metadata": {"name": "node05"}, "spec": {},
             "status": {"conditions": [{"type": "Ready", "status": "True"}]}}  # fmt: skip
    assert node_lost_problem(running, ready, "node05") is None
    assert "removed from the cluster" in str(node_lost_problem(running, None, "node05"))
    unknown = {"status": {"phase": "Unknown", "reason": "NodeLost"}}
    assert node_lost_problem(unknown, ready, "node05") == (
        "node node05 was lost mid-run (pod phase Unknown); no result"
    )


def test_permission_reads_like_an_rbac_rule() -> None:
    assert Permission("create", "jobs", "batch", "immich").describe() == (
        "create jobs.batch in namespace immich"
    )
    assert (
        Permission("get", "pods/log", "", "immich").describe() == "get pods/log in namespace immich"
    )
    assert Permission("list", "nodes").describe() == "list nodes (cluster-wide)"


def test_in_cluster_uses_cluster_dns_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = load_expected_state()
    assert cluster_dns_defaults(None, None, None) == (None, None)  # not in a pod
    (tmp_path / "token").write_text("t")
    monkeypatch.setenv("IMMICHCHECK_SERVICE_ACCOUNT_DIR", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.43.0.1")
    ml_url, server_url = cluster_dns_defaults(None, "http://given:2283", None)
    assert ml_url == state.service_url("ml")
    assert ml_url.startswith("http://immich-ml.immich.svc.cluster.local:")
    assert server_url == "http://given:2283"
