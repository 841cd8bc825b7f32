"""How long `immichcheck verify` takes next to the README's health commands, on one local stack.

The stack: the fake Kubernetes API (built from manifests/, served over TLS like a real API
server), real PostgreSQL and Redis started by
immichcheck.bench.local_servers.stack, the fake Immich server
and ML service over HTTP, each fake in a process of its own as the real services are. The
same stack answers both sides:

- verify: one `immichcheck verify` command checking everything (cluster snapshot, PostgreSQL,
  Redis, server, ML with one inference, storage), as a user runs it;
- the README: its kubectl lines, one after another as a user pastes them, each pointed at
  the same services. Its `kubectl exec deployment/immich-postgres -- pg_isready -U immich`
  style lines go through kubectl and the fake API server's pods/exec (WebSocket channel
  protocol, as on a cluster) and run the real tool (pg_isready, psql, redis-cli, curl, df)
  as the pod would, its localhost mapped to the local server standing in for the pod.

Runs the two sides in alternating pairs (after one warm-up) and prints each side's median wall
time, the median of the pairs' ratios, and the time of `immichcheck --help`.

A real API server (and the kubelet and container runtime behind every exec) takes time to
answer each request; the loopback fake answers at once unless told to wait. The targets are
judged with the fake API server holding every request 20 ms, closer to a real one than zero:
verify under 1 s wall and at least 3x faster than the README's commands (a real
`kubectl exec` costs far more than the fake's, so the ratio is a floor), and
`immichcheck --help` under 0.3 s. The figures at the other latencies (`--api-latency-ms`,
default 0,10,20) are printed to show how the comparison moves, not judged.

    .venv/bin/python benchmarks/verify_speed.py [--runs 9] [--api-latency-ms 0,10,20] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fakes live in tests/, next to the package

JUDGED_LATENCY_MS = 20.0  # the targets below are judged at this API latency
VERIFY_TARGET = 1.0
SPEEDUP_TARGET = 3.0
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


def paired_runs(
    verify: Sequence[str],
    readme: Sequence[Sequence[str]],
    env: dict[str, str],
    runs: int,
    latency_ms: float,
) -> Measured:
    """Both sides `runs` times, alternating (verify, then the README's commands), after one
    warm-up of each. On a shared 2-core machine the speed drifts by 20% or more between
    minutes; each pair is timed within seconds, so its ratio is not skewed by that drift."""
    timed(verify, env)
    for command in readme:
        timed(command, env)
    pairs = []
    for _ in range(runs):
        verify_seconds = timed(verify, env)[0]
        readme_seconds = sum(timed(command, env)[0] for command in readme)
        pairs.append((verify_seconds, readme_seconds))
    return Measured(
        latency_ms,
        verify=statistics.median(v for v, _ in pairs),
        readme=statistics.median(r for _, r in pairs),
        pair_ratios=tuple(r / v for v, r in pairs),
    )


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
        fake.latency = float(options.get("latency", 0.0))  # seconds held before each answer
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
        self._children: dict[str, tuple[Any, Any]] = {}  # kind -> (process, stop event)

    def start(self, kind: str, **options: str) -> dict[str, str]:
        """Start one fake (replacing a running one of that kind); returns its URL, API key."""
        self.stop(kind)
        answers = self._context.Queue()
        stop = self._context.Event()
        child = self._context.Process(
            target=_serve_fake, args=(kind, options, answers, stop), daemon=True
        )
        child.start()
        self._children[kind] = (child, stop)
        return dict(answers.get(timeout=60))

    def stop(self, *kinds: str) -> None:
        """Stop the named fakes (all when none are named) and wait for their processes."""
        for kind in kinds or list(self._children):
            child, stop = self._children.pop(kind, (None, None))
            if child is None:
                continue
            stop.set()
            child.join(timeout=10)
            if child.is_alive():
                child.terminate()


def latencies_ms(text: str) -> list[float]:
    """`--api-latency-ms 0,10,20` as numbers, ascending; the judged latency is always run."""
    try:
        parts = {float(part) for part in text.split(",") if part.strip()}
        values = sorted(parts | {JUDGED_LATENCY_MS})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text}") from None
    if values[0] < 0:
        raise argparse.ArgumentTypeError("latencies cannot be negative")
    return values


@dataclass
class Measured:
    """Both sides' median wall time with the fake API server at one added latency."""

    latency_ms: float
    verify: float
    readme: float
    pair_ratios: tuple[float, ...] = ()  # README/verify of each alternating pair of runs

    @property
    def speedup(self) -> float:
        """How many times verify's time the README's commands take: the median of the
        paired runs' ratios when there are pairs, else the ratio of the medians."""
        if self.pair_ratios:
            return statistics.median(self.pair_ratios)
        return self.readme / self.verify


def verdicts(judged: Measured, help_seconds: float) -> list[tuple[str, bool]]:
    """Each target as (what it says, whether it was met), judged at JUDGED_LATENCY_MS."""
    spread = (
        f"{min(judged.pair_ratios):.1f}-{max(judged.pair_ratios):.1f}x"
        if judged.pair_ratios
        else "no pairs"
    )
    return [
        (
            f"verify under {VERIFY_TARGET:g} s: {judged.verify:.3f} s",
            judged.verify < VERIFY_TARGET,
        ),
        (
            f"verify at least {SPEEDUP_TARGET:g}x faster than the README's commands: "
            f"{judged.speedup:.1f}x (median of the pairs' ratios, {spread})",
            judged.speedup >= SPEEDUP_TARGET,
        ),
        (f"--help under {HELP_TARGET:g} s: {help_seconds:.3f} s", help_seconds < HELP_TARGET),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Start the stack, time both sides at each API latency, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="timed pairs of runs (median)")
    parser.add_argument(
        "--api-latency-ms",
        type=latencies_ms,
        default=latencies_ms("0,10,20"),
        help="time the fake API server holds each request, comma-separated (0 is always run)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    from immichcheck.bench.local_servers.stack import LocalStack

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
        kube_options = dict(
            kubeconfig=str(kubeconfig), user=pg.user, password=pg.password,
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

        rows: list[Measured] = []
        failing: list[tuple[Sequence[str], str]] = []
        checks_counted = 0
        for latency_ms in args.api_latency_ms:
            # A fresh fake API server (and kubeconfig) for each latency.
            fakes.start("kube", latency=str(latency_ms / 1000), **kube_options)
            rows.append(paired_runs(verify, readme, env, args.runs, latency_ms))
            if latency_ms == args.api_latency_ms[0]:
                failing = [failure for c in readme if (failure := why_failed(c, env))]
                checks_run = subprocess.run(
                    [*verify, "--format", "json"], env=env, capture_output=True, text=True,
                    check=False,
                )  # fmt: skip
                checks_counted = len(json.loads(checks_run.stdout)["checks"])
        help_seconds = median_time([[immichcheck, "--help"]], env, max(args.runs, 5))
        judged = next(row for row in rows if row.latency_ms == JUDGED_LATENCY_MS)

        print(
            f"stack: fake Kubernetes API (TLS), PostgreSQL {pg.version}, Redis {redis.version}, "
            "fake server and ML (fakes in separate processes)"
        )
        print(
            f"machine: {os.cpu_count()} CPUs; {args.runs} alternating pairs of runs (verify, "
            f"then the README's {len(readme)} commands one after another) after one warm-up; "
            f"medians; verify gives {checks_counted} results in 1 command\n"
        )
        print("with the fake API server holding every request:")
        print(f"{'API latency':>12} {'verify s':>9} {'README s':>9} {'ratio':>7}")
        for row in rows:
            judged_mark = "  (judged)" if row is judged else ""
            print(
                f"{row.latency_ms:>9g} ms {row.verify:>9.3f} {row.readme:>9.3f} "
                f"{row.speedup:>6.1f}x{judged_mark}"
            )
        print(f"immichcheck --help: {help_seconds:.3f} s\n")
        results = verdicts(judged, help_seconds)
        print(f"targets, at {JUDGED_LATENCY_MS:g} ms of API latency:")
        for text, met in results:
            print(f"  {text}: {'met' if met else 'MISSED'}")
        print(f"\nREADME commands that exited non-zero ({len(failing)}):")
        for command, reason in failing:
            print("  " + " ".join(command)[-110:])
            print(f"    {reason[-110:]}")
        missed = not all(met for _, met in results)
        return 1 if args.check and missed else 0
    finally:
        fakes.stop()
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
