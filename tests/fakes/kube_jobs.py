"""Jobs for the fake Kubernetes API: a Job controller, a scheduler and a kubelet in one.

`FakeJobs(cluster)` registers a controller for batch/v1 Jobs. Creating a Job makes its pod
(owned by the Job, labelled `job-name`, like the real Job controller), schedules it to the
node its nodeSelector names, and then plays the pod's life on a background thread: Pending ->
Running (log lines appear one by one) -> Succeeded, ending with the run-record line the
real image prints. Scenarios break it the ways a real cluster does: image pull error,
unschedulable, OOMKilled, a pod that never finishes, the node lost mid-run, a failing
command. `execute=True` runs the container's command line for real (`immichcheck bench
--in-job ...`, volume mount paths mapped to temporary folders) and serves its output as the
pod log. Deleting the Job (with a propagation policy) removes the pod and stops its thread.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from immichcheck.bench.nodes.node_job import RECORD_PREFIX
from immichcheck.common.records import RunRecord
from tests.fakes.kube_api import FakeKubeCluster
from tests.fakes.kube_objects import PodLog, add_event, container_id, image_id, safe_suffix
from tests.fakes.kube_store import timestamp

SCENARIOS = (
    "succeed",
    "image_pull_error",
    "unschedulable",
    "oom",
    "hang",
    "node_lost",
    "fail",
)
HOSTNAME_LABEL = "kubernetes.io/hostname"


@dataclass
class JobScenario:
    """How the pods of Jobs on a node behave."""

    mode: str = "succeed"
    progress_lines: tuple[str, ...] = (
        "storage: starting",
        "storage: nvme sequential write",
        "storage: nvme small files",
        "storage: nfs sequential write",
        "storage: nfs small files",
    )
    step_seconds: float = 0.05  # between state changes and log lines
    lines_before_failure: int = 2  # for oom, node_lost, fail, hang
    execute: bool = False  # run the container command line for real


def _now() -> datetime:
    return datetime.now(UTC)


class FakeJobs:
    """The Jobs behaviour of one fake cluster; `record_for(node)` supplies run records."""

    def __init__(
        self,
        cluster: FakeKubeCluster,
        record_for: Callable[[str], RunRecord] | None = None,
    ) -> None:
        self.cluster = cluster
        self.record_for = record_for
        self.default = JobScenario()
        self.per_node: dict[str, JobScenario] = {}
        self.created: list[dict[str, Any]] = []  # every Job body as it was submitted
        self.started_on: list[tuple[str, float]] = []  # (node, monotonic time pod ran)
        self.finished_on: list[tuple[str, float]] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._processes: set[subprocess.Popen[bytes]] = set()
        cluster.register_controller("batch", "jobs", self._on_job_created)

    # Knobs ---------------------------------------------------------------------------------

    def scenario(self, mode: str, node: str | None = None, **settings: Any) -> JobScenario:
        """Set what Jobs do (on one node, or everywhere); returns the scenario to tweak."""
        if mode not in SCENARIOS:
            raise ValueError(f"unknown scenario {mode!r}; known: {', '.join(SCENARIOS)}")
        chosen = JobScenario(mode=mode, **settings)
        if node is None:
            self.default = chosen
        else:
            self.per_node[node] = chosen
        return chosen

    def cordon(self, node: str) -> None:
        """`kubectl cordon node`: spec.unschedulable plus the taint the API adds."""
        with self.cluster.lock:
            obj = self.cluster.get("nodes", node)
            obj["spec"]["unschedulable"] = True
            obj["spec"]["taints"] = [
                {
                    "key": "node.kubernetes.io/unschedulable",
                    "effect": "NoSchedule",
                    "timeAdded": timestamp(_now()),
                }
            ]
            self.cluster.state.put(obj)

    def set_node_ready(self, node: str, ready: bool) -> None:
        """Node Ready condition: True, or Unknown as when the kubelet stops reporting."""
        with self.cluster.lock:
            obj = self.cluster.get("nodes", node)
            for condition in obj["status"]["conditions"]:
                if condition["type"] != "Ready":
                    continue
                if ready:
                    condition.update(
                        status="True", reason="KubeletReady",
                        message="kubelet is posting ready status",
                    )  # fmt: skip
                else:
                    condition.update(
                        status="Unknown", reason="NodeStatusUnknown",
                        message="Kubelet stopped posting node status.",
                    )  # fmt: skip
                condition["lastTransitionTime"] = timestamp(_now())
            if not ready:
                obj["spec"]["taints"] = [
                    {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule",
                     "timeAdded": timestamp(_now())},
                    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
                     "timeAdded": timestamp(_now())},
                ]  # fmt: skip
            else:
                obj["spec"].pop("taints", None)
            self.cluster.state.put(obj)

    def jobs(self) -> list[dict[str, Any]]:
        """Jobs currently stored in the namespace."""
        return self.cluster.list("jobs", self.cluster.expected.namespace)

    def job_pods(self) -> list[dict[str, Any]]:
        """Pods owned by any Job (stored now)."""
        return [
            pod
            for pod in self.cluster.list("pods", self.cluster.expected.namespace)
            if "job-name" in (pod["metadata"].get("labels") or {})
        ]

    def stop(self) -> None:
        """Stop every pod thread and process (end of a test)."""
        self._stop.set()
        for process in list(self._processes):
            process.kill()
        for thread in self._threads:
            thread.join(timeout=5)

    # The controller ------------------------------------------------------------------------

    def _on_job_created(self, cluster: FakeKubeCluster, job: dict[str, Any]) -> None:
        self.created.append(copy.deepcopy(job))
        template = (job.get("spec") or {}).get("template") or {}
        metadata = job["metadata"]
        name = metadata["name"]
        pod_name = f"{name}-{safe_suffix(name + metadata['uid'], 5)}"
        labels = {
            **((template.get("metadata") or {}).get("labels") or {}),
            "job-name": name,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": metadata["uid"],
            "batch.kubernetes.io/controller-uid": metadata["uid"],
        }
        spec = copy.deepcopy(template.get("spec") or {})
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "generateName": f"{name}-",
                "namespace": metadata["namespace"],
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": metadata["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "Burstable"},
        }
        job["status"] = {"active": 1, "startTime": timestamp(_now()), "ready": 0}
        cluster.state.put(job)
        stored = cluster.state.put(pod)
        add_event(cluster.state, job, "Normal", "SuccessfulCreate",
                  f"Created pod: {pod_name}", _now(), component="job-controller")  # fmt: skip
        node = str((spec.get("nodeSelector") or {}).get(HOSTNAME_LABEL) or "")
        scenario = self.per_node.get(node, self.default)
        thread = threading.Thread(
            target=self._play,
            args=(name, pod_name, node, scenario, copy.deepcopy(stored)),
            name=f"fake-kubelet-{pod_name}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    # The pod's life ------------------------------------------------------------------------

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.cluster.state.get(self.cluster.resource("pods"), namespace, name)

    def _update(self, namespace: str, name: str, change: Callable[[dict[str, Any]], None]) -> bool:
        """Apply a change to the stored pod; False when the pod is gone (Job deleted)."""
        with self.cluster.lock:
            pod = self._pod(namespace, name)
            if pod is None or self._stop.is_set():
                return False
            change(pod)
            self.cluster.state.put(pod)
            return True

    def _event(self, namespace: str, pod_name: str, kind: str, reason: str, message: str,
               node: str | None, component: str = "kubelet") -> None:  # fmt: skip
        with self.cluster.lock:
            pod = self._pod(namespace, pod_name)
            if pod is not None:
                container = pod["spec"]["containers"][0]["name"]
                add_event(self.cluster.state, pod, kind, reason, message, _now(), node=node,
                          component=component,
                          field_path=None if component != "kubelet"
                          else f"spec.containers{{{container}}}")  # fmt: skip

    def _log(self, namespace: str, pod_name: str, container: str, line: str) -> None:
        with self.cluster.lock:
            key = (namespace, pod_name, container)
            self.cluster.built.logs.setdefault(key, PodLog()).current.append((_now(), line))

    def _unschedulable_reason(self, node: str, scenario: JobScenario) -> str | None:
        nodes = self.cluster.list("nodes")
        total = len(nodes)
        target = next((n for n in nodes if n["metadata"]["name"] == node), None)
        others = total - (1 if target is not None else 0)
        mismatch = f"{others} node(s) didn't match Pod's node affinity/selector"
        if target is None:
            detail = mismatch
        elif target["spec"].get("unschedulable"):
            detail = f"1 node(s) were unschedulable, {mismatch}"
        elif scenario.mode == "unschedulable":
            detail = f"1 Insufficient memory, {mismatch}"
        else:
            return None
        return (
            f"0/{total} nodes are available: {detail}. preemption: 0/{total} nodes are "
            f"available: {total} Preemption is not helpful for scheduling."
        )

    def _play(
        self, job_name: str, pod_name: str, node: str, scenario: JobScenario, pod: dict[str, Any]
    ) -> None:
        namespace = pod["metadata"]["namespace"]
        container = pod["spec"]["containers"][0]
        image = str(container.get("image", ""))
        step = scenario.step_seconds
        self._pause(step)
        unschedulable = self._unschedulable_reason(node, scenario)
        if unschedulable is not None:

            def pending(p: dict[str, Any]) -> None:
                p["status"]["conditions"] = [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": unschedulable, "lastProbeTime": None,
                     "lastTransitionTime": timestamp(_now())}
                ]  # fmt: skip

            if self._update(namespace, pod_name, pending):
                self._event(namespace, pod_name, "Warning", "FailedScheduling", unschedulable,
                            None, component="default-scheduler")  # fmt: skip
            return  # stays Pending until deleted

        def scheduled(p: dict[str, Any]) -> None:
            p["spec"]["nodeName"] = node
            p["status"].update(
                hostIP=self.cluster.built.node_ips.get(node, ""),
                startTime=timestamp(_now()),
                conditions=[
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                     "lastTransitionTime": timestamp(_now())}
                ],
                containerStatuses=[
                    {"name": container["name"], "image": image, "imageID": "", "ready": False,
                     "started": False, "restartCount": 0, "lastState": {},
                     "state": {"waiting": {"reason": "ContainerCreating"}}}
                ],
            )  # fmt: skip

        if not self._update(namespace, pod_name, scheduled):
            return
        self._event(namespace, pod_name, "Normal", "Scheduled",
                    f"Successfully assigned {namespace}/{pod_name} to {node}", None,
                    component="default-scheduler")  # fmt: skip
        self._pause(step)
        if scenario.mode == "image_pull_error":
            self._image_pull_error(namespace, pod_name, node, image)
            return
        self._event(namespace, pod_name, "Normal", "Pulled",
                    f'Container image "{image}" already present on machine', node)  # fmt: skip
        self._event(namespace, pod_name, "Normal", "Created",
                    f"Created container: {container['name']}", node)  # fmt: skip

        started_at = _now()

        def running(p: dict[str, Any]) -> None:
            p["status"]["phase"] = "Running"
            p["status"]["podIP"] = "10.42.9." + str(len(self.started_on) + 10)
            p["status"]["containerStatuses"][0].update(
                ready=True, started=True, imageID=image_id(image),
                containerID=container_id(pod_name, container["name"], 0),
                state={"running": {"startedAt": timestamp(started_at)}},
            )  # fmt: skip
            p["status"]["conditions"].append(
                {"type": "Ready", "status": "True", "lastProbeTime": None,
                 "lastTransitionTime": timestamp(_now())}
            )  # fmt: skip

        with self.cluster.lock:
            self.cluster.built.logs[(namespace, pod_name, container["name"])] = PodLog()
        if not self._update(namespace, pod_name, running):
            return
        self.started_on.append((node, time.monotonic()))
        self._event(namespace, pod_name, "Normal", "Started",
                    f"Started container {container['name']}", node)  # fmt: skip
        if scenario.execute:
            exit_code = self._execute(namespace, pod_name, container, pod["spec"])
            if exit_code is None:
                return
            self._finish(job_name, namespace, pod_name, node, exit_code,
                         "Completed" if exit_code == 0 else "Error", started_at)  # fmt: skip
            return
        lines = list(scenario.progress_lines)
        if scenario.mode in ("oom", "node_lost", "fail", "hang"):
            lines = lines[: scenario.lines_before_failure]
        for line in lines:
            self._pause(step)
            if self._pod(namespace, pod_name) is None or self._stop.is_set():
                return
            self._log(namespace, pod_name, container["name"], line)
        self._pause(step)
        if scenario.mode == "hang":
            return  # runs until deleted
        if scenario.mode == "node_lost":
            self._node_lost(namespace, pod_name, node)
            return
        if scenario.mode == "oom":
            self._finish(job_name, namespace, pod_name, node, 137, "OOMKilled", started_at)
            return
        if scenario.mode == "fail":
            self._log(namespace, pod_name, container["name"],
                      "immichcheck: error: the nfs folder /bench/nfs is not writable")  # fmt: skip
            self._finish(job_name, namespace, pod_name, node, 3, "Error", started_at)
            return
        if self.record_for is None:
            raise RuntimeError("FakeJobs needs record_for to finish a Job successfully")
        record = self.record_for(node)
        self._log(namespace, pod_name, container["name"], RECORD_PREFIX + record.to_json(None))
        self._finish(job_name, namespace, pod_name, node, 0, "Completed", started_at)

    def _image_pull_error(self, namespace: str, pod_name: str, node: str, image: str) -> None:
        message = (
            f'failed to pull and unpack image "{image}": failed to resolve reference '
            f'"{image}": {image.split("/")[0]}/{image.split("/", 1)[-1].split(":")[0]}:'
            f"{image.rsplit(':', 1)[-1]}: not found"
        )
        for reason, text in (
            ("ErrImagePull", message),
            ("ImagePullBackOff", f'Back-off pulling image "{image}"'),
        ):

            def waiting(p: dict[str, Any], reason: str = reason, text: str = text) -> None:
                p["status"]["containerStatuses"][0]["state"] = {
                    "waiting": {"reason": reason, "message": text}
                }

            if not self._update(namespace, pod_name, waiting):
                return
            if reason == "ErrImagePull":
                self._event(namespace, pod_name, "Normal", "Pulling",
                            f'Pulling image "{image}"', node)  # fmt: skip
                self._event(namespace, pod_name, "Warning", "Failed",
                            f'Failed to pull image "{image}": {message}', node)  # fmt: skip
                self._event(namespace, pod_name, "Warning", "Failed", "Error: ErrImagePull",
                            node)  # fmt: skip
            else:
                self._event(namespace, pod_name, "Normal", "BackOff", text, node)
                self._event(namespace, pod_name, "Warning", "Failed", "Error: ImagePullBackOff",
                            node)  # fmt: skip
            self._pause(0.05)

    def _node_lost(self, namespace: str, pod_name: str, node: str) -> None:
        self.set_node_ready(node, False)

        def unreachable(p: dict[str, Any]) -> None:
            for condition in p["status"].get("conditions") or []:
                if condition["type"] == "Ready":
                    condition.update(status="False", lastTransitionTime=timestamp(_now()))
            p["status"]["conditions"].append(
                {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                 "message": "Taint manager: deleting due to NoExecute taint",
                 "lastProbeTime": None, "lastTransitionTime": timestamp(_now())}
            )  # fmt: skip

        if self._update(namespace, pod_name, unreachable):
            self._event(namespace, pod_name, "Warning", "NodeNotReady", "Node is not ready",
                        None, component="node-controller")  # fmt: skip

    def _finish(self, job_name: str, namespace: str, pod_name: str, node: str, exit_code: int,
                reason: str, started_at: datetime) -> None:  # fmt: skip
        finished = _now()
        phase = "Succeeded" if exit_code == 0 else "Failed"

        def terminated(p: dict[str, Any]) -> None:
            p["status"]["phase"] = phase
            status = p["status"]["containerStatuses"][0]
            status.update(ready=False, started=False, state={"terminated": {
                "exitCode": exit_code, "reason": reason,
                "startedAt": timestamp(started_at), "finishedAt": timestamp(finished),
                "containerID": status.get("containerID", ""),
            }})  # fmt: skip
            for condition in p["status"].get("conditions") or []:
                if condition["type"] == "Ready":
                    condition.update(status="False", reason="PodCompleted")

        if not self._update(namespace, pod_name, terminated):
            return
        self.finished_on.append((node, time.monotonic()))
        if reason == "OOMKilled":
            self._event(namespace, pod_name, "Warning", "OOMKilling",
                        "Memory cgroup out of memory: Killed process 7 (immichcheck)",
                        node)  # fmt: skip
        with self.cluster.lock:
            job = self.cluster.state.get(self.cluster.resource("jobs"), namespace, job_name)
            if job is None:
                return
            condition = (
                {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods"}
                if exit_code == 0
                else {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                      "message": "Job has reached the specified backoff limit"}
            )  # fmt: skip
            condition["lastTransitionTime"] = timestamp(finished)
            job["status"] = {
                "startTime": job["status"].get("startTime"),
                "completionTime" if exit_code == 0 else "failedTime": timestamp(finished),
                "succeeded" if exit_code == 0 else "failed": 1,
                "ready": 0,
                "conditions": [condition],
            }
            self.cluster.state.put(job)

    # Running the container for real --------------------------------------------------------

    def _execute(
        self,
        namespace: str,
        pod_name: str,
        container: Mapping[str, Any],
        spec: Mapping[str, Any],
    ) -> int | None:
        """Run the container's args with this checkout's immichcheck; the log is its output."""
        with tempfile.TemporaryDirectory(prefix="fake-pod-") as root:
            mounts: dict[str, str] = {}
            for mount in container.get("volumeMounts") or []:
                local = Path(root) / mount["name"] / (mount.get("subPath") or "")
                local.mkdir(parents=True, exist_ok=True)
                mounts[mount["mountPath"]] = str(local)
            args = [str(a) for a in container.get("args") or []]
            for index, arg in enumerate(args):
                for mount_path, local_path in mounts.items():
                    if mount_path in arg:
                        args[index] = arg.replace(mount_path, local_path)
            env = {k: v for k, v in os.environ.items() if not k.startswith("IMMICHCHECK_")}
            for item in container.get("env") or []:
                if "value" in item:
                    env[item["name"]] = mounts.get(item["value"], item["value"])
            env["HOME"] = mounts.get("/tmp", root)
            env["TMPDIR"] = mounts.get("/tmp", root)
            process = subprocess.Popen(
                [sys.executable, "-m", "immichcheck", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=root,
            )
            self._processes.add(process)
            try:
                assert process.stdout is not None
                for raw in process.stdout:
                    line = raw.decode("utf-8", "replace").rstrip("\n")
                    if self._pod(namespace, pod_name) is None or self._stop.is_set():
                        process.kill()
                        process.wait()
                        return None
                    self._log(namespace, pod_name, container["name"], line)
                return process.wait()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                self._processes.discard(process)
