"""How long `immichcheck verify` takes next to the README's health commands, on one local stack.

The stack: the fake Kubernetes API (built from manifests/, served over TLS like a real API
server), real PostgreSQL and Redis started by immichcheck.local_stack, the fake Immich server
and ML service over HTTP, each fake in a process of its own as the real services are. The
same stack answers both sides:

- verify: one `immichcheck verify` process checking everything (cluster snapshot, PostgreSQL,
  Redis, server, ML with one inference, storage), as a user runs it;
- the README: its kubectl lines, one after another as a user pastes them, each pointed at
  the same services. Its `kubectl exec deployment/immich-postgres -- pg_isready -U immich`
  style lines go through kubectl and the fake API server's pods/exec (WebSocket channel
  protocol, as on a cluster) and run the real tool (pg_isready, psql, redis-cli, curl, df)
  as the pod would, its localhost mapped to the local server standing in for the pod.

Prints the median wall time of each (after one warm-up), their ratio, and `immichcheck --help`.
Targets: verify under 1.5 s, at least 5x faster than the README's commands, --help under 0.3 s.

    .venv/bin/python benchmarks/verify_speed.py [--runs 5] [--check]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fakes live in tests/, next to the package

VERIFY_TARGET = 1.5
SPEEDUP_TARGET = 5.0
HELP_TARGET = 0.3
APPS = ("immich-postgres", "immich-redis", "immich-ml", "immich-server")
CONFIG_JSON = "{.data.immich-config\\.json}"
MEMORY_SETTINGS = "'shared_buffers', 'effective_cache_size', 'work_mem'"
MEMORY_PATTERN = "(shared_buffers|effective_cache_size|work_mem)"
# Inside the pods, as the README's exec lines address them.
ML_LOCAL = "http://localhost:3003"
SERVER_LOCAL = "http://localhost:3001"
UPLOAD_FOLDER = "/usr/src/app/upload"


def timed(command: Sequence[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall time and exit code of one command (output discarded, as a script would)."""
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
    return time.perf_counter() - started, completed.returncode


def why_failed(command: Sequence[str], env: dict[str, str]) -> tuple[Sequence[str], str] | None:
    """The command and its first line of error output when it exits non-zero, else None."""
    completed = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if completed.returncode == 0:
        return None
    lines = completed.stderr.strip().splitlines()
    return command, lines[0] if lines else f"exit code {completed.returncode}, no message"


def median_time(commands: Sequence[Sequence[str]], env: dict[str, str], runs: int) -> float:
    """Median over `runs` of running all `commands` one after another (after one warm-up)."""
    for command in commands:
        timed(command, env)
    totals = []
    for _ in range(runs):
        totals.append(sum(timed(command, env)[0] for command in commands))
    return statistics.median(totals)


def readme_commands(kubeconfig: Path) -> list[list[str]]:
    """The README's own commands for what verify checks, aimed at the local stack.

    One per area verify covers, taken from the README's deployment, health-check and
    troubleshooting sections as written (pipelines run through sh as pasted), the
    `kubectl exec` ones included: each is an exec round trip through the API server.
    """
    k = f"kubectl --kubeconfig {shlex.quote(str(kubeconfig))} -n immich"
    kubectl = shlex.split(k)
    postgres = [*kubectl, "exec", "deployment/immich-postgres", "--"]
    psql = [*postgres, "psql", "-U", "immich", "-d", "immich", "-c"]
    redis_cli = [*kubectl, "exec", "deployment/immich-redis", "--", "redis-cli"]
    ml = [*kubectl, "exec", "deployment/immich-ml", "--"]
    server = [*kubectl, "exec", "deployment/immich-server", "--"]
    show_all = f"{k} exec deployment/immich-postgres -- psql -U immich -c 'SHOW ALL;'"
    config = f"{k} exec deployment/immich-server -- curl -s {SERVER_LOCAL}/api/server-info/config"
    return [
        # Cluster: namespace, secrets, ConfigMaps, pods and events, storage, services, ingress
        [*kubectl, "get", "namespace", "immich"],
        [*kubectl, "get", "secrets"],
        [*kubectl, "get", "configmaps"],
        ["sh", "-c", f"{k} get configmap immich-server-config -o jsonpath='{CONFIG_JSON}' | jq ."],
        [*kubectl, "get", "pods", "-o", "wide"],
        [*kubectl, "get", "events", "--sort-by=.lastTimestamp"],
        *([*kubectl, "describe", "pod", "-l", f"app={app}"] for app in APPS),
        [*kubectl, "get", "pv,pvc"],
        [*kubectl, "get", "svc"],
        ["sh", "-c", f"{k} get svc immich-server-nodeport -o yaml | grep -A5 sessionAffinity"],
        [*kubectl, "get", "ingress"],
        [*kubectl, "describe", "ingress", "immich-ingress"],
        ["sh", "-c", f"{k} logs -l app=immich-server | grep -i 'config\\|error'"],
        # PostgreSQL
        [*postgres, "pg_isready", "-U", "immich"],
        [*psql, f"SELECT name, setting FROM pg_settings WHERE name IN ({MEMORY_SETTINGS});"],
        ["sh", "-c", f"{show_all} | grep -E '{MEMORY_PATTERN}'"],
        [*psql, "SELECT * FROM pg_stat_activity WHERE state = 'active';"],
        [*psql, "SELECT email, created_at FROM users;"],
        # Redis
        [*redis_cli, "ping"],
        [*redis_cli, "info", "stats"],
        [*redis_cli, "CONFIG", "GET", "*memory*"],
        [*redis_cli, "LLEN", "immich:jobs:active"],
        # Machine learning and server
        [*ml, "curl", "-s", f"{ML_LOCAL}/ping"],
        [*server, "curl", "-s", f"{SERVER_LOCAL}/api/server-info/ping"],
        ["sh", "-c", f"{config} | jq ."],
        # Storage
        [*server, "df", "-h", UPLOAD_FOLDER],
    ]  # fmt: skip


def register_exec_handlers(fake: Any, options: dict[str, str]) -> None:
    """What `kubectl exec` runs in each pod: the real tool, aimed at the local server.

    The pod's localhost is the server standing in for it (the same one `route_port` puts
    behind the pod): psql/pg_isready and redis-cli get `-h/-p` for it, curl a `--connect-to`
    (the URL as typed stays), and the server pod's upload folder is the local media folder.
    """
    from tests.fakes.kube_exec import local_tool_handler

    pg = ["-h", options["pg_host"], "-p", options["pg_port"]]
    redis = ["-h", options["redis_host"], "-p", options["redis_port"]]
    ml_host, ml_port = options["ml_address"].rsplit(":", 1)
    server_host, server_port = options["server_address"].rsplit(":", 1)
    fake.route_port("postgres", 5432, (options["pg_host"], int(options["pg_port"])))
    fake.route_port("redis", 6379, (options["redis_host"], int(options["redis_port"])))
    fake.route_port("ml", 3003, (ml_host, int(ml_port)))
    fake.route_port("server", 3001, (server_host, int(server_port)))
    fake.set_exec_handler(
        "postgres",
        # The container's environment has the database password (POSTGRES_PASSWORD).
        local_tool_handler({"pg_isready": pg, "psql": [*pg, "-X"]},
                           env={"PGPASSWORD": options["password"]}),
    )  # fmt: skip
    fake.set_exec_handler("redis", local_tool_handler({"redis-cli": redis}))
    fake.set_exec_handler(
        "ml", local_tool_handler({"curl": ["--connect-to", f"localhost:3003:{ml_host}:{ml_port}"]})
    )
    fake.set_exec_handler(
        "server",
        local_tool_handler(
            {"curl": ["--connect-to", f"localhost:3001:{server_host}:{server_port}"]},
            paths={UPLOAD_FOLDER: options["media"]},
        ),
    )


def _serve_fake(kind: str, options: dict[str, str], answers: Any, stop: Any) -> None:
    """Child process: serve one fake until told to stop (each fake on its own interpreter,
    as the real services are separate processes, so they do not share one GIL)."""
    from tests.fakes.immich_server import FakeImmichServer
    from tests.fakes.kube_api import FakeKubeCluster
    from tests.fakes.ml_service import FakeMLService

    fake: Any
    if kind == "kube":
        fake = FakeKubeCluster().start()
        secret = {"username": options["user"], "password": options["password"]}
        fake.set_secret("immich-postgres-secret", secret)
        fake.write_kubeconfig(options["kubeconfig"])
        register_exec_handlers(fake, options)
        answers.put({"url": fake.https_url})
    elif kind == "server":
        fake = FakeImmichServer().start()
        answers.put({"url": fake.url, "admin_api_key": fake.admin_api_key})
    else:
        fake = FakeMLService().start()
        answers.put({"url": fake.url})
    stop.wait()
    fake.stop()


class FakeProcesses:
    """The fakes, each in a child process of its own."""

    def __init__(self) -> None:
        import multiprocessing

        self._context = multiprocessing.get_context("fork")
        self._stop = self._context.Event()
        self._children: list[Any] = []

    def start(self, kind: str, **options: str) -> dict[str, str]:
        """Start one fake and return what it reports (URL, API key)."""
        answers = self._context.Queue()
        child = self._context.Process(
            target=_serve_fake, args=(kind, options, answers, self._stop), daemon=True
        )
        child.start()
        self._children.append(child)
        return dict(answers.get(timeout=60))

    def stop(self) -> None:
        """Stop every fake and wait for the processes."""
        self._stop.set()
        for child in self._children:
            child.join(timeout=10)
            if child.is_alive():
                child.terminate()


def main(argv: Sequence[str] | None = None) -> int:
    """Start the stack, time both sides, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per side (median)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    from immichcheck.local_stack import LocalStack

    workdir = Path(tempfile.mkdtemp(prefix="verify-speed-"))
    stack = LocalStack().open()
    fakes = FakeProcesses()
    try:
        pg = stack.start_postgres()
        redis = stack.start_redis()
        kubeconfig = workdir / "kubeconfig"
        server = SimpleNamespace(**fakes.start("server"))
        ml = SimpleNamespace(**fakes.start("ml"))
        media = workdir / "media"
        for folder in ("library", "upload", "thumbs", "encoded-video", "profile", "backups"):
            (media / folder).mkdir(parents=True)
            (media / folder / ".immich").write_text("1")
        fakes.start(
            "kube", kubeconfig=str(kubeconfig), user=pg.user, password=pg.password,
            pg_host=pg.host, pg_port=str(pg.port),
            redis_host=redis.host, redis_port=str(redis.port),
            ml_address=urlsplit(ml.url).netloc, server_address=urlsplit(server.url).netloc,
            media=str(media / "upload"),
        )  # fmt: skip
        env = dict(os.environ)
        # As installed Python runs: bytecode cached after the first (warm-up) run, here in a
        # private folder (this machine's environment sets PYTHONDONTWRITEBYTECODE=1, which
        # would recompile ~170 modules, ~0.15 s, on every run).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
        env.pop("KUBECONFIG", None)
        immichcheck = str(Path(sys.executable).with_name("immichcheck"))
        verify = [
            immichcheck, "verify",
            "--kubeconfig", str(kubeconfig),
            "--pg-dsn", pg.dsn,
            "--redis-url", redis.url,
            "--server-url", server.url,
            "--ml-url", ml.url,
            "--api-key", server.admin_api_key,
            "--media-path", str(media),
            "--min-free-media", "1MB",
            "--no-save",
        ]  # fmt: skip
        readme = readme_commands(kubeconfig)

        verify_seconds = median_time([verify], env, args.runs)
        readme_seconds = median_time(readme, env, args.runs)
        failing = [failure for c in readme if (failure := why_failed(c, env))]
        help_seconds = median_time([[immichcheck, "--help"]], env, max(args.runs, 5))
        checks_run = subprocess.run(
            [*verify, "--format", "json"], env=env, capture_output=True, text=True, check=False
        )
        import json

        record = json.loads(checks_run.stdout)
        speedup = readme_seconds / verify_seconds

        def verdict(ok: bool) -> str:
            return "met" if ok else "MISSED"

        print(
            f"stack: fake Kubernetes API (TLS), PostgreSQL {pg.version}, Redis {redis.version}, "
            "fake server and ML (fakes in separate processes)"
        )
        print(f"machine: {os.cpu_count()} CPUs; median of {args.runs} runs after one warm-up\n")
        rows = [
            (f"immichcheck verify ({len(record['checks'])} results, 1 process)", verify_seconds),
            (f"README commands ({len(readme)} processes, one after another)", readme_seconds),
            ("immichcheck --help", help_seconds),
        ]
        print(f"{'what':<52} {'seconds':>8}")
        for label, seconds in rows:
            print(f"{label:<52} {seconds:>8.3f}")
        print()
        print(f"verify under {VERIFY_TARGET} s: {verdict(verify_seconds < VERIFY_TARGET)}")
        faster = verdict(speedup >= SPEEDUP_TARGET)
        print(f"verify at least {SPEEDUP_TARGET:g}x faster: {speedup:.1f}x, {faster}")
        print(f"--help under {HELP_TARGET} s: {verdict(help_seconds < HELP_TARGET)}")
        print(f"\nREADME commands that exited non-zero ({len(failing)}):")
        for command, reason in failing:
            print("  " + " ".join(command)[-110:])
            print(f"    {reason[-110:]}")
        missed = (
            verify_seconds >= VERIFY_TARGET
            or speedup < SPEEDUP_TARGET
            or help_seconds >= HELP_TARGET
        )
        return 1 if args.check and missed else 0
    finally:
        fakes.stop()
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
