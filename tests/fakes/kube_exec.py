"""`kubectl exec` for the fake API server: the pods/exec WebSocket stream protocol.

A real API server proxies `pods/{name}/exec` to the kubelet, which runs the command in the
container and streams its output back over the channel protocol kubectl negotiated
(`v5.channel.k8s.io`, else `v4.channel.k8s.io`). Every binary frame starts with its channel:
0 stdin, 1 stdout, 2 stderr, 3 the final `Status` (JSON), 4 terminal resize; v5 adds 255,
"this stream is closed". The fake has no containers: a test registers, per component, an
exec handler `argv -> ExecResult` (see `FakeKubeCluster.set_exec_handler`), typically
`local_tool_handler`, which runs the real tool (pg_isready, psql, redis-cli, curl, df) as a
local process aimed at the server that `route_port` puts behind the pod. So an exec through
the fake costs what it costs on a cluster: kubectl's round trip plus the tool's own run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.fakes.http_base import OPCODE_BINARY, WebSocket, WebSocketClosed

# What a 1.32 API server accepts for exec over WebSocket, preferred first.
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDOUT_CHANNEL = 1
STDERR_CHANNEL = 2
STATUS_CHANNEL = 3
CLOSE_CHANNEL = 255  # v5: "no more data on stream N"
FRAME_BYTES = 32 * 1024  # the kubelet streams output in chunks; so does the fake


@dataclass(frozen=True)
class ExecResult:
    """What the command did in the container: exit code and its two output streams."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""


ExecHandler = Callable[[list[str]], ExecResult]


class ExecutableNotFound(Exception):
    """The container has no such program (the runtime refuses to start the exec)."""


def exit_status(result: ExecResult) -> dict[str, Any]:
    """The Status the kubelet sends on channel 3 for a command that ran to its end."""
    if result.exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {result.exit_code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(result.exit_code)}]},
    }


def not_started_status(argv: Sequence[str]) -> dict[str, Any]:
    """The Status for an exec the container runtime could not start (no such program)."""
    program = argv[0] if argv else ""
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            "Internal error occurred: error executing command in container: failed to exec "
            "in container: OCI runtime exec failed: exec failed: unable to start container "
            f'process: exec: "{program}": executable file not found in $PATH: unknown'
        ),
        "reason": "InternalError",
        "code": 500,
    }


def serve_exec(
    websocket: WebSocket,
    handler: ExecHandler | None,
    argv: list[str],
    *,
    stdout: bool,
    stderr: bool,
) -> None:
    """Run one exec session: the command's output on channels 1 and 2, then its Status."""
    try:
        if handler is None:
            raise ExecutableNotFound(argv[0] if argv else "")
        result: ExecResult | None = handler(argv)
    except ExecutableNotFound:
        result = None
    try:
        if result is not None:
            for channel, data, wanted in (
                (STDOUT_CHANNEL, result.stdout, stdout),
                (STDERR_CHANNEL, result.stderr, stderr),
            ):
                for start in range(0, len(data) if wanted else 0, FRAME_BYTES):
                    chunk = data[start : start + FRAME_BYTES]
                    websocket.send(OPCODE_BINARY, bytes([channel]) + chunk)
        status = exit_status(result) if result is not None else not_started_status(argv)
        websocket.send(OPCODE_BINARY, bytes([STATUS_CHANNEL]) + json.dumps(status).encode())
        websocket.close()
        # Read until the client answers the close (or drops the connection), as the kubelet
        # does, so kubectl sees an orderly end rather than a reset.
        with contextlib.suppress(WebSocketClosed, OSError):
            while True:
                websocket.receive()
    except WebSocketClosed:
        return


def local_tool_handler(
    tool_args: Mapping[str, Sequence[str]] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    paths: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> ExecHandler:
    """An exec handler that runs the command as a local process, as the container would.

    `tool_args` gives, per program, the arguments inserted right after its name that point
    it at the local server standing in for the pod's localhost (`-h 127.0.0.1 -p 54321` for
    psql, `--connect-to localhost:3003:127.0.0.1:40001` for curl); `env` is the container's
    environment on top of this process's; `paths` maps container paths (an argument equal to
    one, or under it) to local folders. A program absent here is absent from the container.
    """
    extra = {name: list(args) for name, args in (tool_args or {}).items()}
    folders = dict(paths or {})
    environment = {**os.environ, **(env or {})}

    def local_path(argument: str) -> str:
        for inside, outside in folders.items():
            if argument == inside or argument.startswith(inside.rstrip("/") + "/"):
                return outside + argument[len(inside.rstrip("/")) :]
        return argument

    def run(argv: list[str]) -> ExecResult:
        if not argv:
            raise ExecutableNotFound("")
        command = [argv[0], *extra.get(argv[0], []), *(local_path(a) for a in argv[1:])]
        try:
            completed = subprocess.run(
                command, env=environment, capture_output=True, timeout=timeout, check=False
            )
        except FileNotFoundError as exc:
            raise ExecutableNotFound(argv[0]) from exc
        except subprocess.TimeoutExpired as exc:
            # The kubelet would keep waiting; a test must not, so report it as a failure.
            message = f"{argv[0]}: still running after {timeout:g} s\n".encode()
            return ExecResult(137, exc.stdout or b"", (exc.stderr or b"") + message)
        return ExecResult(completed.returncode, completed.stdout, completed.stderr)

    return run
