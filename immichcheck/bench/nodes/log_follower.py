"""Following one node's Job: stream its pod log, announce its progress, and turn its end into
the run record or a diagnosed failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from immichcheck import __version__
from immichcheck.bench.nodes.echo import Echo
from immichcheck.bench.nodes.failure_diagnosis import (
    NodeBenchFailure,
    format_events,
    format_last_lines,
    job_failure,
    node_lost_problem,
    pending_problem,
    termination_problem,
)
from immichcheck.bench.nodes.node_job import split_log
from immichcheck.common.records import RunRecord

if TYPE_CHECKING:
    from immichcheck.clients.kubernetes_jobs import JobsApi


@dataclass
class JobFollower:
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
