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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from immichcheck.bench.nodes.echo import Echo, echo_to_stderr
from immichcheck.bench.nodes.failure_diagnosis import NodeBenchFailure
from immichcheck.bench.nodes.log_follower import JobFollower
from immichcheck.bench.nodes.node_job import DEFAULT_TIMEOUT, job_name_for, render_node_job
from immichcheck.bench.nodes.node_selection import choose_nodes, node_state
from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.records import RunRecord

if TYPE_CHECKING:
    from immichcheck.clients.kubernetes_jobs import JobsApi

DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_REQUEST_TIMEOUT = 30.0


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


@dataclass
class NodeBenchResult:
    """Every node's outcome, in the order the nodes were given."""

    runs: list[NodeRun] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # --all-nodes: node -> why

    @property
    def failed(self) -> list[NodeRun]:
        """Runs without a record."""
        return [run for run in self.runs if run.record is None]


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
    follower = JobFollower(jobs, node, job_name, container, echo)
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
