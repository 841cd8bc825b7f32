"""Benchmarks on cluster nodes: `bench --node NODE`, `--nodes a,b`, `--all-nodes [--parallel]`.

Disk figures only mean something measured on the node itself, so each node gets a Job made
from the template in manifests/11-immichcheck.yaml, pinned with `kubernetes.io/hostname`,
mounting that node's NVMe scratch folder and the NFS uploads volume. The Job runs
`immichcheck bench --in-job ...` in the image; its log is streamed here line by line and its
last line, `IMMICHCHECK-RUN-RECORD {json}`, is the run record, saved locally like any other
run (node = that node). The Job is deleted when the run ends, fails or is interrupted;
`ttlSecondsAfterFinished` and `activeDeadlineSeconds` are the cluster's backstop should
this process die first.

Nodes run one after another by default: they share the NFS server, which must not be
measured while other nodes load it. `--parallel` is there for node-local figures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from immichcheck import __version__
from immichcheck.common.errors import ExitCode, ImmichcheckError
from immichcheck.common.records import RunRecord

if TYPE_CHECKING:
    from immichcheck.clients.kubernetes_jobs import JobsApi

RECORD_PREFIX = "IMMICHCHECK-RUN-RECORD "
JOB_NAME_PREFIX = "immichcheck-bench-"
HOSTNAME_LABEL = "kubernetes.io/hostname"
NODE_NAME_ENV = "IMMICHCHECK_JOB_NODE"  # set from the Downward API (spec.nodeName)
DEFAULT_TIMEOUT = 3600.0  # seconds; the template's activeDeadlineSeconds
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_REQUEST_TIMEOUT = 30.0
DEADLINE_MARGIN = 60  # the Job's own deadline trails ours, so ours fires first
EVENTS_SHOWN = 6
LOG_LINES_SHOWN = 5
# Waiting reasons after which a container will not start without someone changing something.
STUCK_WAITING_REASONS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
)

Echo = Callable[[str], None]


def echo_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class NodeBenchFailure(ImmichcheckError):
    """One node's benchmark failed; `details` holds the pod's events and last log lines."""

    def __init__(self, node: str, message: str, details: Sequence[str] = ()) -> None:
        self.node = node
        self.reason = message
        self.details = tuple(details)
        text = f"node {node}: {message}"
        if self.details:
            text += "\n" + "\n".join(self.details)
        super().__init__(text, ExitCode.UNKNOWN)


@dataclass(frozen=True)
class NodeBenchRequest:
    """What `bench --node/--nodes/--all-nodes` was asked to do."""

    nodes: tuple[str, ...] = ()
    all_nodes: bool = False
    parallel: bool = False
    bench_args: tuple[str, ...] = ()  # options forwarded to `immichcheck bench` in the Job
    tags: tuple[str, ...] = ()
    reports_dir: Path = Path("reports")
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    manifests_dir: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    poll_interval: float = DEFAULT_POLL_INTERVAL
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT


@dataclass(frozen=True)
class NodeRun:
    """The outcome on one node: a saved record, or why there is none."""

    node: str
    job: str
    record: RunRecord | None = None
    saved: Path | None = None
    error: str | None = None


@dataclass(frozen=True)
class NodeState:
    """What matters about a node for scheduling a benchmark on it."""

    name: str
    ready: bool
    schedulable: bool
    problem: str = ""  # why it cannot take the Job, empty when it can

    @property
    def usable(self) -> bool:
        """Ready and not cordoned."""
        return self.ready and self.schedulable

    def label(self) -> str:
        """`node02 (cordoned)` for lists in messages."""
        return f"{self.name} ({self.problem or 'Ready'})"


@dataclass
class NodeBenchResult:
    """Every node's outcome, in the order the nodes were given."""

    runs: list[NodeRun] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # --all-nodes: node -> why

    @property
    def failed(self) -> list[NodeRun]:
        """Runs without a record."""
        return [run for run in self.runs if run.record is None]


# Pure logic: nodes, the Job, the pod's state ------------------------------------------------


def node_state(node: Mapping[str, Any]) -> NodeState:
    """Ready/cordoned state of a Node object."""
    name = str((node.get("metadata") or {}).get("name", ""))
    conditions = (node.get("status") or {}).get("conditions") or []
    ready_condition = next((c for c in conditions if c.get("type") == "Ready"), None)
    ready = bool(ready_condition and ready_condition.get("status") == "True")
    schedulable = not (node.get("spec") or {}).get("unschedulable")
    problems = []
    if not ready:
        detail = ""
        if ready_condition:
            detail = ": " + " ".join(
                str(part)
                for part in (ready_condition.get("reason"), ready_condition.get("message"))
                if part
            )
        problems.append(f"NotReady{detail}")
    if not schedulable:
        problems.append("cordoned")
    return NodeState(name, ready, schedulable, ", ".join(problems))


def describe_nodes(states: Sequence[NodeState]) -> str:
    """`node01 (Ready), node02 (cordoned)`."""
    return ", ".join(state.label() for state in states) or "none"


def parse_node_list(text: str | None) -> tuple[str, ...]:
    """`node01, node05` -> ('node01', 'node05'); one error line for an empty entry."""
    if text is None:
        return ()
    names = tuple(part.strip() for part in text.split(","))
    if not names or any(not name for name in names):
        raise ImmichcheckError(f"--nodes {text!r}: expected comma-separated node names")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ImmichcheckError(f"--nodes names {', '.join(duplicates)} more than once")
    return names


def choose_nodes(
    requested: Sequence[str], all_nodes: bool, states: Sequence[NodeState]
) -> tuple[list[str], dict[str, str]]:
    """The nodes to run on, and (for --all-nodes) the ones skipped with the reason.

    A node asked for by name that cannot take the Job is an error naming every node, so the
    user sees the right spelling or which nodes are usable.
    """
    by_name = {state.name: state for state in states}
    if all_nodes:
        chosen = [state.name for state in states if state.usable]
        skipped = {state.name: state.problem for state in states if not state.usable}
        if not chosen:
            raise ImmichcheckError(
                f"no node can take a benchmark Job; nodes: {describe_nodes(states)}"
            )
        return chosen, skipped
    for name in requested:
        state = by_name.get(name)
        if state is None:
            raise ImmichcheckError(f"node {name} does not exist; nodes: {describe_nodes(states)}")
        if not state.usable:
            raise ImmichcheckError(
                f"node {name} cannot take a benchmark Job ({state.problem}); "
                f"nodes: {describe_nodes(states)}"
            )
    return list(requested), {}


def job_name_for(node: str, token: str | None = None) -> str:
    """`immichcheck-bench-node05-x7k2p`: a DNS label, unique per run."""
    suffix = token or secrets.token_hex(3)
    slug = re.sub(r"[^a-z0-9-]+", "-", node.lower()).strip("-") or "node"
    room = 63 - len(JOB_NAME_PREFIX) - len(suffix) - 1
    return f"{JOB_NAME_PREFIX}{slug[:room].rstrip('-')}-{suffix}"


def job_arguments(template_args: Sequence[str], bench_args: Sequence[str]) -> list[str]:
    """The container's args: `bench --in-job`, the template's --path mounts, our options.

    The template's `--path LABEL=DIR` entries name the folders the Job mounts, so they are
    kept; its profile and output options give way to the user's.
    """
    paths: list[str] = []
    args = list(template_args)
    for index, arg in enumerate(args):
        if arg == "--path" and index + 1 < len(args):
            paths += ["--path", args[index + 1]]
        elif arg.startswith("--path="):
            paths += ["--path", arg.split("=", 1)[1]]
    return ["bench", "--in-job", *paths, *bench_args]


def render_node_job(
    node: str,
    job_name: str,
    bench_args: Sequence[str],
    *,
    timeout: float,
    manifests_dir: str | None = None,
) -> dict[str, Any]:
    """The Job for one node from the manifests' template, with our args and deadline."""
    from immichcheck.deploy.bench_job import render_bench_job

    job = render_bench_job(node, job_name, directory=manifests_dir)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    container["args"] = job_arguments(container.get("args") or [], bench_args)
    env = [e for e in container.get("env") or [] if e.get("name") != NODE_NAME_ENV]
    env.append({"name": NODE_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    container["env"] = env
    # The cluster ends the Job a little after we would have given up, should we be gone.
    job["spec"]["activeDeadlineSeconds"] = max(
        int(job["spec"].get("activeDeadlineSeconds") or 0), math.ceil(timeout) + DEADLINE_MARGIN
    )
    job["spec"].setdefault("ttlSecondsAfterFinished", 3600)
    job["spec"]["backoffLimit"] = 0  # a failed benchmark is reported, not retried
    pod["restartPolicy"] = "Never"
    return job


def split_log(text: str) -> tuple[list[str], RunRecord | None]:
    """A Job's log as progress lines plus the run record from its last record line."""
    from immichcheck.history.store import RunFileError, parse_run_file

    lines: list[str] = []
    record_text: str | None = None
    for line in text.splitlines():
        if line.startswith(RECORD_PREFIX):
            record_text = line[len(RECORD_PREFIX) :]
        else:
            lines.append(line)
    if record_text is None:
        return lines, None
    try:
        return lines, parse_run_file(record_text)
    except RunFileError as exc:
        raise ImmichcheckError(f"the Job printed an unreadable run record: {exc}") from exc


def _container_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def _limit(pod: Mapping[str, Any], resource: str) -> str | None:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    limits = (containers[0].get("resources") or {}).get("limits") or {}
    value = limits.get(resource)
    return str(value) if value is not None else None


def pending_problem(pod: Mapping[str, Any]) -> str | None:
    """Why a pod that has not started never will: unschedulable, image pull, config."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return f"the pod cannot be scheduled: {condition.get('message') or 'Unschedulable'}"
    waiting = (_container_status(pod).get("state") or {}).get("waiting") or {}
    reason = waiting.get("reason")
    if reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"):
        image = _container_status(pod).get("image") or (
            ((pod.get("spec") or {}).get("containers") or [{}])[0].get("image")
        )
        message = waiting.get("message")
        return (
            f"the image {image} cannot be pulled ({reason})"
            + (f": {message}" if message else "")
            + "; push the image or fix the image in manifests/11-immichcheck.yaml"
        )
    if reason in STUCK_WAITING_REASONS:
        return f"the container cannot start ({reason}): {waiting.get('message') or ''}".rstrip(": ")
    return None


def termination_problem(pod: Mapping[str, Any]) -> str:
    """Why a pod ended Failed: OOMKilled with its limit, or the exit code and reason."""
    terminated = (_container_status(pod).get("state") or {}).get("terminated") or {}
    reason = terminated.get("reason") or (pod.get("status") or {}).get("reason") or "Error"
    exit_code = terminated.get("exitCode")
    if reason == "OOMKilled":
        limit = _limit(pod, "memory")
        return (
            f"the benchmark was OOMKilled (exit {exit_code if exit_code is not None else 137})"
            + (f" at its memory limit of {limit}" if limit else "")
            + "; raise resources.limits.memory in the Job template or use a smaller --profile"
        )
    if reason == "DeadlineExceeded":
        return "the Job reached its activeDeadlineSeconds and was stopped by the cluster"
    message = terminated.get("message") or (pod.get("status") or {}).get("message")
    text = f"the benchmark exited with code {exit_code} ({reason})"
    return text + (f": {message}" if message else "")


def node_lost_problem(
    pod: Mapping[str, Any], node: Mapping[str, Any] | None, name: str
) -> str | None:
    """The node went away under a running pod (NotReady, deleted, or the pod says so)."""
    status = pod.get("status") or {}
    if status.get("phase") == "Unknown" or status.get("reason") == "NodeLost":
        return f"node {name} was lost mid-run (pod phase {status.get('phase')}); no result"
    if node is None:
        return f"node {name} was removed from the cluster mid-run; no result"
    state = node_state(node)
    if not state.ready:
        return f"node {name} stopped responding mid-run ({state.problem}); no result"
    return None


def job_failure(job: Mapping[str, Any]) -> str | None:
    """A Job-level failure condition (deadline, backoff) when the pod tells nothing more."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return (
                f"the Job failed ({condition.get('reason')}): {condition.get('message') or ''}"
            ).rstrip(": ")
    return None


def format_events(events: Sequence[Mapping[str, Any]], subject: str) -> list[str]:
    """`  events of Pod X:` then `    Warning Failed: ...` lines, newest last."""
    if not events:
        return []
    lines = [f"  events of {subject}:"]
    for event in list(events)[-EVENTS_SHOWN:]:
        count = int(event.get("count") or 1)
        repeat = f" (x{count})" if count > 1 else ""
        lines.append(
            f"    {event.get('type', '')} {event.get('reason', '')}{repeat}: "
            f"{event.get('message', '')}"
        )
    return lines


def format_last_lines(lines: Sequence[str]) -> list[str]:
    """The last log lines of the pod, for failure messages."""
    if not lines:
        return []
    return ["  last log lines:", *(f"    {line}" for line in lines[-LOG_LINES_SHOWN:])]


# The Job lifecycle on one node --------------------------------------------------------------


@dataclass
class _Follower:
    """Streams one Job's pod log and decides when it is done."""

    jobs: JobsApi
    node: str
    job_name: str
    container: str
    echo: Echo
    printed: int = 0
    lines: list[str] = field(default_factory=list)
    announced: set[str] = field(default_factory=set)

    def say(self, text: str) -> None:
        """One status line, prefixed with the node."""
        self.echo(f"[{self.node}] {text}")

    def announce(self, key: str, text: str) -> None:
        """A status line shown once per Job (scheduled, running)."""
        if key not in self.announced:
            self.announced.add(key)
            self.say(text)

    async def read_log(self, pod_name: str) -> RunRecord | None:
        """Echo the log lines not shown yet; the run record once the log holds it."""
        from immichcheck.clients.kubernetes import KubeError
        from immichcheck.clients.kubernetes_jobs import KubeForbidden

        try:
            text = await self.jobs.pod_log(pod_name, self.container)
        except KubeForbidden:
            raise
        except KubeError:
            return None  # not started yet: the log appears with the container
        lines, record = split_log(text)
        for line in lines[self.printed :]:
            self.echo(f"[{self.node}] | {line}")
        self.printed = max(self.printed, len(lines))
        self.lines = lines
        return record

    async def failure(self, pod_name: str | None, message: str) -> NodeBenchFailure:
        """The failure with the pod's events (the Job's before a pod exists) and last lines."""
        kind, name = ("Pod", pod_name) if pod_name else ("Job", self.job_name)
        details: list[str] = []
        try:
            details += format_events(await self.jobs.events_for(kind, name), f"{kind} {name}")
        except Exception as exc:  # events only explain; the failure itself stands
            details.append(f"  (events of {kind} {name} could not be read: {exc})")
        details += format_last_lines(self.lines)
        return NodeBenchFailure(self.node, message, details)

    async def follow(self, deadline: float, timeout: float, poll: float) -> RunRecord:
        """Poll until the pod succeeds (the record) or fails (NodeBenchFailure)."""
        pod_name: str | None = None
        while True:
            job = await self.jobs.get_job(self.job_name)
            if job is None:
                raise await self.failure(pod_name, f"the Job {self.job_name} was deleted mid-run")
            pods = await self.jobs.job_pods(self.job_name)
            if pods:
                pod = pods[-1]
                pod_name = str(pod["metadata"]["name"])
                record = await self._pod_step(pod, pod_name)
                if record is not None:
                    return record
            else:
                failed = job_failure(job)
                if failed:
                    raise await self.failure(None, failed)
            if time.monotonic() >= deadline:
                raise await self.failure(
                    pod_name,
                    f"no result within {timeout:g} s (--timeout); the Job was stopped",
                )
            await asyncio.sleep(poll)

    async def _pod_step(self, pod: Mapping[str, Any], pod_name: str) -> RunRecord | None:
        status = pod.get("status") or {}
        phase = status.get("phase") or "Pending"
        problem = pending_problem(pod)
        if problem:
            raise await self.failure(pod_name, problem)
        if phase == "Pending":
            if (pod.get("spec") or {}).get("nodeName"):
                self.announce("scheduled", f"pod {pod_name} scheduled, starting the container")
            return None
        if phase == "Running":
            self.announce("running", f"pod {pod_name} running")
            await self.read_log(pod_name)
            lost = node_lost_problem(pod, await self.jobs.get_node(self.node), self.node)
            if lost:
                raise await self.failure(pod_name, lost)
            return None
        if phase == "Succeeded":
            record = await self.read_log(pod_name)
            if record is None:
                raise await self.failure(
                    pod_name,
                    "the Job finished but printed no run record (does the image run "
                    f"immichcheck {__version__}?)",
                )
            return record
        if phase == "Failed":
            await self.read_log(pod_name)
            raise await self.failure(pod_name, termination_problem(pod))
        lost = node_lost_problem(pod, await self.jobs.get_node(self.node), self.node)
        raise await self.failure(pod_name, lost or f"the pod is in phase {phase}")


async def _delete_job(jobs: JobsApi, job_name: str, echo: Echo, node: str) -> None:
    """Delete the Job and its pod; never raises (the caller's outcome matters more)."""
    try:
        async with asyncio.timeout(jobs.timeout + 5):
            deleted = await jobs.delete_job(job_name)
    except Exception as exc:  # report and carry on: the TTL removes it within the hour
        echo(
            f"[{node}] could not delete Job {job_name} ({exc}); delete it with "
            f"`kubectl -n {jobs.namespace} delete job {job_name}` (it also expires "
            "by itself, ttlSecondsAfterFinished)"
        )
        return
    if deleted:
        echo(f"[{node}] Job {job_name} deleted")


async def bench_on_node(
    jobs: JobsApi,
    node: str,
    request: NodeBenchRequest,
    echo: Echo,
) -> NodeRun:
    """Create the node's Job, follow it, save its record; the Job is always deleted."""
    from immichcheck.clients.kubernetes import KubeError
    from immichcheck.clients.kubernetes_jobs import KubeForbidden
    from immichcheck.history.store import save_run

    job_name = job_name_for(node)
    job = render_node_job(
        node,
        job_name,
        request.bench_args,
        timeout=request.timeout,
        manifests_dir=request.manifests_dir,
    )
    container = str(job["spec"]["template"]["spec"]["containers"][0]["name"])
    started = time.monotonic()
    follower = _Follower(jobs, node, job_name, container, echo)
    may_exist = True  # a create cut short by Ctrl-C may still have made the Job
    try:
        try:
            await jobs.create_job(job)
        except KubeError:
            may_exist = False  # refused or unreachable: nothing was made
            raise
        echo(f"[{node}] Job {job_name} created in namespace {jobs.namespace}")
        record = await follower.follow(
            started + request.timeout, request.timeout, request.poll_interval
        )
    except NodeBenchFailure as exc:
        echo(f"[{node}] failed: {exc.reason}")
        for line in exc.details:
            echo(line)
        return NodeRun(node, job_name, error=f"node {node}: {exc.reason}")
    except KubeForbidden:
        raise
    except asyncio.CancelledError:
        echo(f"[{node}] interrupted; deleting Job {job_name}")
        raise
    finally:
        if may_exist:
            await _delete_job(jobs, job_name, echo, node)
    settings = dict(record.settings)
    settings.update({"ran_in": "job", "job": job_name, "namespace": jobs.namespace})
    record = dataclasses.replace(
        record,
        node=node,
        tags=tuple(dict.fromkeys((*record.tags, *request.tags))),
        settings=settings,
    )
    saved = save_run(record, request.reports_dir)
    echo(f"[{node}] done in {time.monotonic() - started:.0f} s; saved {saved}")
    return NodeRun(node, job_name, record=record, saved=saved)


# Entry point for the command ------------------------------------------------------------------


def resolve_access(request: NodeBenchRequest) -> Any:
    """kubeconfig (with context) or the pod's service account; one clear line when neither."""
    from immichcheck.clients.kubeconfig import find_kube_access, kubeconfig_candidates

    access = find_kube_access(request.kubeconfig, request.context)
    if access is not None:
        return access
    where = ", ".join(str(path) for path in kubeconfig_candidates(request.kubeconfig))
    raise ImmichcheckError(
        f"--node needs a cluster: no kubeconfig found ({where}) and not running in a pod"
    )


async def _run(request: NodeBenchRequest, echo: Echo) -> NodeBenchResult:
    from immichcheck.clients.kubernetes import KubeError, connect
    from immichcheck.clients.kubernetes_jobs import JobsApi
    from immichcheck.deploy.expected_state import load_expected_state

    namespace = request.namespace or load_expected_state(request.manifests_dir).namespace
    access = resolve_access(request)
    try:
        api = await connect(access, namespace, request.request_timeout)
    except KubeError as exc:
        raise ImmichcheckError(f"cannot reach the cluster ({access.description}): {exc}") from exc
    jobs = JobsApi(api, namespace, request.request_timeout)
    states = [node_state(node) for node in await jobs.list_nodes()]
    states.sort(key=lambda state: state.name)
    chosen, skipped = choose_nodes(request.nodes, request.all_nodes, states)
    result = NodeBenchResult(skipped=skipped)
    for name, why in skipped.items():
        echo(f"[{name}] skipped: {why}")
    if request.parallel and len(chosen) > 1:
        echo(f"running on {len(chosen)} nodes at once (--parallel): {', '.join(chosen)}")
        tasks = [asyncio.ensure_future(bench_on_node(jobs, n, request, echo)) for n in chosen]
        try:
            runs = await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            # Ctrl-C: gather has cancelled every node once; wait while each deletes its Job
            # (cancelling them again would cut those deletions short).
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        except BaseException:
            # One refusal (RBAC) stops the other nodes; each task deletes its own Job.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        result.runs.extend(runs)
    else:
        for name in chosen:
            result.runs.append(await bench_on_node(jobs, name, request, echo))
    return result


def run_on_nodes(request: NodeBenchRequest, echo: Echo = echo_to_stderr) -> NodeBenchResult:
    """Benchmark each requested node in its own Job and save every run record.

    Ctrl-C cancels the run; every Job created so far is deleted before KeyboardInterrupt
    reaches the caller. Missing RBAC permissions stop the whole run with one line naming them.
    """
    from immichcheck.clients.kubernetes import KubeError

    if not request.all_nodes and not request.nodes:
        raise ImmichcheckError("name a node: --node NODE, --nodes a,b or --all-nodes")
    if request.all_nodes and request.nodes:
        raise ImmichcheckError("--all-nodes and --node/--nodes exclude each other")
    if request.timeout <= 0:
        raise ImmichcheckError("--timeout must be positive")
    # asyncio.Runner turns the first Ctrl-C into cancellation of the main task, so every
    # node's `finally` deletes its Job, then re-raises KeyboardInterrupt here.
    with asyncio.Runner() as runner:
        try:
            return runner.run(_run(request, echo))
        except KubeError as exc:
            raise ImmichcheckError(str(exc)) from exc


# The side inside the Job -------------------------------------------------------------------


class LineProgress:
    """Progress as plain lines on stderr: inside a Job they become the streamed pod log."""

    def __init__(self, echo: Echo = echo_to_stderr) -> None:
        self._echo = echo
        self._last = ""

    def step(self, message: str) -> None:
        """Print the step once."""
        if message != self._last:
            self._last = message
            self._echo(message)

    def advance(self, done: int, total: int | None = None) -> None:
        """Counts are left out: one line per step keeps the log readable."""


def record_line(record: RunRecord) -> str:
    """The run record as the Job's last log line."""
    return RECORD_PREFIX + record.to_json(indent=None)


def in_job_node() -> str | None:
    """The node this Job runs on (Downward API), if known."""
    import os

    return os.environ.get(NODE_NAME_ENV) or None


def cluster_dns_defaults(
    ml_url: str | None, server_url: str | None, manifests_dir: str | None
) -> tuple[str | None, str | None]:
    """Inside a pod, the ML service and server are reached by their cluster DNS names."""
    from immichcheck.clients.kubernetes import in_cluster
    from immichcheck.deploy.expected_state import load_expected_state

    if not in_cluster() or (ml_url and server_url):
        return ml_url, server_url
    state = load_expected_state(manifests_dir)
    return ml_url or state.service_url("ml"), server_url or state.service_url("server")


def run_in_job(request: Any, echo: Echo = echo_to_stderr) -> int:
    """`bench --in-job`: run the benchmarks, progress as lines, the record as the last line.

    Problems a suite reports are part of the record (settings.suite_errors) and shown by
    the side that saves it, so the pod succeeds whenever a record was printed.
    """
    from immichcheck.bench.runner import run_bench

    request.node = in_job_node() or request.node
    outcome = run_bench(request, progress=LineProgress(echo))
    for name, reason in outcome.skipped.items():
        echo(f"skipped {name}: {reason}")
    for name, message in outcome.suite_errors.items():
        echo(f"suite {name} failed: {message}")
    sys.stdout.write(record_line(outcome.record) + "\n")
    sys.stdout.flush()
    return int(ExitCode.OK)
