"""Why a node's Job failed, in words a user can act on: the pod stuck pending (image pull,
config, resources), terminated (OOMKilled, exit code), its node lost, the Job's own failure;
with the pod's events and last log lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from immichcheck.bench.nodes.node_selection import node_state
from immichcheck.common.errors import ExitCode, ImmichcheckError

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
