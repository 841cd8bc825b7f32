"""The snapshot and a direct probe (PostgreSQL or Redis) run by a forked child: the same facts
and one-line errors as in process, each answer as soon as it is known, nothing left running.

The fork only happens in a process without threads, and pytest's fakes run threads, so the
child's side runs in a fresh interpreter (the real path a user's `immichcheck verify` takes)
against the fake API server served from this process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from immichcheck.checks import load_catalogue, select_codes
from immichcheck.commands.verify import child_direct_probes, reads_cluster
from immichcheck.errors import ExitCode
from immichcheck.local_stack import LocalPostgres, free_port
from immichcheck.probes import ProbeError
from immichcheck.probes.kube import KubeAccess, open_connection, read_snapshot
from immichcheck.probes.postgres import probe_postgres
from immichcheck.probes.prefetch import ProbePrefetch
from immichcheck.probes.redis import probe_redis
from immichcheck.targets import TargetOptions
from tests.fakes.kube_api import FakeKubeCluster
from tests.fixtures.cli import run_cli
from tests.fixtures.databases import RedisFactory

SECRETS = ["immich-postgres-secret", "immich-server-secret"]
ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter: fork the child, then take its answers (or do `mode` to it).
CHILD_SIDE = """
import asyncio, dataclasses, json, os, signal, sys, time
from pathlib import Path
from immichcheck.probes import ProbeError
from immichcheck.probes.kube import KubeAccess, KubeError
from immichcheck.probes.prefetch import ProbePrefetch

kubeconfig, mode, SECRETS, direct = sys.argv[1], sys.argv[2], *map(json.loads, sys.argv[3:])
access = KubeAccess(Path(kubeconfig), None, False)
if mode == "fork-fails":  # a pids limit (EAGAIN): no child, no descriptor left open
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")
    os.fork = no_fork
    before = sorted(os.listdir("/proc/self/fd"))
    prefetch = ProbePrefetch.start(access, 3.0, direct)
    after = sorted(os.listdir("/proc/self/fd"))
    print(json.dumps({"prefetch": repr(prefetch), "fds_kept": before == after}))
    sys.exit()
started = time.monotonic()
prefetch = ProbePrefetch.start(access, 3.0, direct)
out = {"forked": prefetch is not None, "pid": prefetch.pid, "probes": list(prefetch.probes)}
if mode == "parent-dies":  # before saying what to read, without closing anything
    print(json.dumps(out), flush=True)
    os._exit(0)
if mode == "kill-first":  # the child is gone before the parent says what to read
    os.kill(prefetch.pid, signal.SIGKILL)
    time.sleep(0.3)
prefetch.send_targets("immich", SECRETS)
if mode == "parent-killed":  # as `kill -9` or the OOM killer: no cleanup runs at all
    time.sleep(0.5)  # the child is waiting on the (slow) API server by now
    print(json.dumps(out), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "kill":
    os.kill(prefetch.pid, signal.SIGKILL)


async def take(name, answer):
    try:
        value = await answer
        out[name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    except (KubeError, ProbeError) as exc:
        out[name + "_error"] = str(exc)
    out[name + "_seconds"] = time.monotonic() - started


async def every_answer():
    answers = [take("snapshot", prefetch.snapshot())]
    answers += [take(probe, prefetch.facts(probe)) for probe in direct]
    await asyncio.gather(*answers)


async def close_while_waiting():
    waiting = asyncio.ensure_future(every_answer())
    await asyncio.sleep(0.3)  # the probes are awaiting the child's answers by now
    closed = time.monotonic()
    prefetch.close()  # as Targets.close() when a run is cut short
    await waiting
    out["settled_seconds"] = time.monotonic() - closed


if mode == "close":
    started = time.monotonic()
    prefetch.close()
    out["close_seconds"] = time.monotonic() - started
    out["child_gone"] = not Path(f"/proc/{prefetch.pid}").exists()
elif mode == "close-while-waiting":
    asyncio.run(close_while_waiting())
else:
    asyncio.run(every_answer())
    prefetch.close()
out["kr8s_in_parent"] = "kr8s" in sys.modules
out["clients_in_parent"] = sorted({"asyncpg", "redis"} & set(sys.modules))
print(json.dumps(out))
"""


def child_side(
    kubeconfig: Path, mode: str = "read", direct: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run CHILD_SIDE: the child reads the snapshot and runs the `direct` probes (name: URL)."""
    arguments = [str(kubeconfig), mode, json.dumps(SECRETS), json.dumps(direct or {})]
    completed = subprocess.run(
        [sys.executable, "-c", CHILD_SIDE, *arguments],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    killed = mode == "parent-killed" and completed.returncode == -signal.SIGKILL
    assert completed.returncode == 0 or killed, completed.stderr
    assert completed.stderr == ""  # the child prints nothing of its own
    return dict(json.loads(completed.stdout))


def in_process(kubeconfig: Path) -> Any:
    async def read() -> Any:
        access = KubeAccess(kubeconfig, None, False)
        connection = await open_connection(access, "immich", 3.0)
        return await read_snapshot(connection, "immich", SECRETS, 3.0)

    return asyncio.run(read())


def test_the_child_reads_the_same_snapshot_and_the_parent_never_imports_kr8s(
    fake_cluster: FakeKubeCluster,
) -> None:
    answer = child_side(fake_cluster.kubeconfig_path)
    assert answer["forked"] is True
    assert answer["kr8s_in_parent"] is False  # the child did the reading
    expected = dataclasses.asdict(in_process(fake_cluster.kubeconfig_path))
    assert by_name(answer["snapshot"]) == by_name(expected)
    assert {s["metadata"]["name"] for s in answer["snapshot"]["objects"]["Secret"]} == set(SECRETS)


def by_name(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot with each kind's objects in name order (secrets arrive as they come)."""
    objects = {
        kind: sorted(items, key=lambda item: item["metadata"]["name"])
        for kind, items in snapshot["objects"].items()
    }
    return snapshot | {"objects": objects}


# What changes between two reads of the same server: the time of a PING, Redis's memory,
# PostgreSQL's connection count (other tests' sessions come and go) and its size.
CHANGING_FACTS = {"ping_seconds", "used_memory", "connections", "database_size"}


def steady(facts: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in facts.items() if key not in CHANGING_FACTS}


def test_the_child_probes_postgres_as_the_parent_would_and_the_parent_imports_no_client(
    fake_cluster: FakeKubeCluster, postgres_server: LocalPostgres
) -> None:
    answer = child_side(fake_cluster.kubeconfig_path, direct={"postgres": postgres_server.dsn})
    assert answer["probes"] == ["kube", "postgres"]
    assert answer["clients_in_parent"] == [] and answer["kr8s_in_parent"] is False
    expected = asyncio.run(probe_postgres(postgres_server.dsn, 3.0))
    assert steady(answer["postgres"]) == steady(expected)
    assert set(answer["postgres"]) == set(expected)
    assert answer["postgres"]["location"] == f"127.0.0.1:{postgres_server.port}/immich"
    assert by_name(answer["snapshot"]) == by_name(
        dataclasses.asdict(in_process(fake_cluster.kubeconfig_path))
    )


def test_the_child_probes_redis_as_the_parent_would(
    fake_cluster: FakeKubeCluster, redis_factory: RedisFactory
) -> None:
    redis = redis_factory()
    answer = child_side(fake_cluster.kubeconfig_path, direct={"redis": redis.url})
    assert answer["clients_in_parent"] == []
    expected = asyncio.run(probe_redis(redis.url, 3.0))
    assert steady(answer["redis"]) == steady(expected)
    assert set(answer["redis"]) == set(expected)


def test_a_direct_probe_is_answered_without_waiting_for_a_slow_api_server(
    fake_cluster: FakeKubeCluster, postgres_server: LocalPostgres
) -> None:
    fake_cluster.latency = 2.0  # every API request takes 2 s
    answer = child_side(fake_cluster.kubeconfig_path, direct={"postgres": postgres_server.dsn})
    assert answer["postgres"]["version_num"] >= 150000
    assert answer["snapshot_seconds"] >= 2.0
    assert answer["postgres_seconds"] < answer["snapshot_seconds"]


def test_failing_direct_probes_are_the_one_line_the_parent_would_give(
    fake_cluster: FakeKubeCluster, postgres_server: LocalPostgres
) -> None:
    redis_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    wrong_password = postgres_server.dsn.replace(postgres_server.password, "NotThePassword")
    direct = {"redis": redis_url, "postgres": wrong_password}
    answer = child_side(fake_cluster.kubeconfig_path, direct=direct)
    for probe, run in (("redis", probe_redis), ("postgres", probe_postgres)):
        with pytest.raises(ProbeError) as in_process_error:
            asyncio.run(run(direct[probe], 3.0))
        assert answer[probe + "_error"] == str(in_process_error.value)
    assert answer["redis_error"].startswith("connection refused at 127.0.0.1:")
    assert "password authentication failed" in answer["postgres_error"]
    assert postgres_server.password not in json.dumps(answer)
    assert "snapshot" in answer  # the snapshot is not affected


def test_a_killed_child_fails_each_of_its_probes_in_one_line(
    fake_cluster: FakeKubeCluster, postgres_server: LocalPostgres
) -> None:
    fake_cluster.latency = 2.0
    direct = {"postgres": postgres_server.dsn}
    answer = child_side(fake_cluster.kubeconfig_path, "kill", direct=direct)
    how = "was killed by signal 9 without an answer"
    assert answer["snapshot_error"] == f"the process reading the cluster {how}"
    assert answer["postgres_error"] == f"the process probing PostgreSQL {how}"


def test_the_child_runs_one_direct_probe_reached_through_its_url() -> None:
    catalogue = load_catalogue()
    both = TargetOptions(pg_dsn="postgresql://u:p@10.0.0.6/immich", redis_url="redis://10.0.0.7")
    assert child_direct_probes(None, both) == {"postgres": "postgresql://u:p@10.0.0.6/immich"}
    only_redis = select_codes(catalogue, only=["redis"])
    assert child_direct_probes(only_redis, both) == {"redis": "redis://10.0.0.7"}
    assert child_direct_probes(select_codes(catalogue, only=["cluster"]), both) == {}
    # Credentials from the Secret, cluster DNS, port-forwards: all need the cluster first.
    assert child_direct_probes(None, TargetOptions()) == {}


def test_wrong_credentials_give_the_message_the_in_process_read_gives(
    fake_cluster: FakeKubeCluster, tmp_path: Path
) -> None:
    config = fake_cluster.write_kubeconfig(tmp_path / "kubeconfig", token="NotTheRightTokenAtAll")
    answer = child_side(config)
    with pytest.raises(Exception) as in_process_error:
        in_process(config)
    assert answer["snapshot_error"] == str(in_process_error.value)
    assert "401" in answer["snapshot_error"]


def test_a_killed_child_is_a_one_line_error_not_a_hang(fake_cluster: FakeKubeCluster) -> None:
    fake_cluster.latency = 2.0  # the child is still waiting for the API server when killed
    started = time.monotonic()
    answer = child_side(fake_cluster.kubeconfig_path, "kill")
    assert answer["snapshot_error"] == (
        "the process reading the cluster was killed by signal 9 without an answer"
    )
    assert time.monotonic() - started < 10


def test_close_stops_and_reaps_a_child_still_reading(fake_cluster: FakeKubeCluster) -> None:
    fake_cluster.latency = 2.0
    answer = child_side(fake_cluster.kubeconfig_path, "close")
    assert answer["child_gone"] is True  # killed and reaped: no process, no zombie
    assert answer["close_seconds"] < 1.0


def test_closing_ends_every_probe_still_waiting_for_the_child(
    fake_cluster: FakeKubeCluster,
) -> None:
    fake_cluster.latency = 3.0
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        dsn = f"postgresql://immich:pw@127.0.0.1:{silent.getsockname()[1]}/immich"
        answer = child_side(fake_cluster.kubeconfig_path, "close-while-waiting", {"postgres": dsn})
    stopped = "was stopped before it answered"
    assert answer["snapshot_error"] == f"the process reading the cluster {stopped}"
    assert answer["postgres_error"] == f"the process probing PostgreSQL {stopped}"
    assert answer["settled_seconds"] < 1.0  # not when their guards run out, seconds later


def _ended(pid: int, within: float) -> bool:
    """Whether process `pid` is gone (or a zombie waiting for its reaper) within `within` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_a_child_whose_parent_died_ends_by_itself(fake_cluster: FakeKubeCluster) -> None:
    answer = child_side(fake_cluster.kubeconfig_path, "parent-dies")
    assert _ended(answer["pid"], within=10), "the orphaned reader kept running"
    assert fake_cluster.requests == []  # it never asked the API server anything


def test_a_parent_killed_outright_takes_the_child_with_it(fake_cluster: FakeKubeCluster) -> None:
    fake_cluster.latency = 5.0  # the child would wait 5 s on the API server
    answer = child_side(fake_cluster.kubeconfig_path, "parent-killed")
    assert _ended(answer["pid"], within=2), "the reader outlived its parent"


def test_a_child_gone_before_it_was_told_what_to_read_is_one_line(
    fake_cluster: FakeKubeCluster,
) -> None:
    answer = child_side(fake_cluster.kubeconfig_path, "kill-first")
    assert answer["snapshot_error"] == (
        "the process reading the cluster was killed by signal 9 without an answer"
    )


def test_when_fork_fails_the_snapshot_is_read_in_process(fake_cluster: FakeKubeCluster) -> None:
    answer = child_side(fake_cluster.kubeconfig_path, "fork-fails")
    assert answer == {"prefetch": "None", "fds_kept": True}


def test_no_fork_while_another_thread_runs(fake_cluster: FakeKubeCluster) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        access = KubeAccess(fake_cluster.kubeconfig_path, None, False)
        assert ProbePrefetch.start(access, 3.0) is None
    finally:
        stop.set()
        worker.join()


def test_only_runs_that_read_the_cluster_fork_a_reader(tmp_path: Path) -> None:
    catalogue = load_catalogue()
    access = KubeAccess(tmp_path / "kubeconfig", None, False)
    assert reads_cluster(None, access, from_dump=None)  # no --only/--skip: every check
    assert reads_cluster(select_codes(catalogue), access, from_dump=None)
    assert reads_cluster(select_codes(catalogue, only=["IC-CL-006"]), access, from_dump=None)
    # --only redis with --redis-url: no API request at all, so nothing is forked.
    assert not reads_cluster(select_codes(catalogue, only=["redis"]), access, from_dump=None)
    assert not reads_cluster(select_codes(catalogue), None, from_dump=None)  # no credentials
    assert not reads_cluster(select_codes(catalogue), access, from_dump="dump.json")


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reader forks on Linux")
def test_ctrl_c_while_the_child_reads_ends_both_quietly(fake_cluster: FakeKubeCluster) -> None:
    fake_cluster.latency = 5.0
    immichcheck = str(Path(sys.executable).with_name("immichcheck"))
    verify = subprocess.Popen(
        [immichcheck, "verify", "--kubeconfig", str(fake_cluster.kubeconfig_path),
         "--only", "cluster", "--no-save", "--timeout", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not _children_of(verify.pid):
            assert time.monotonic() < deadline, "verify never forked its reader"
            time.sleep(0.02)
        reader = _children_of(verify.pid)[0]
        os.killpg(verify.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        _out, err = verify.communicate(timeout=20)
    finally:
        if verify.poll() is None:
            os.killpg(verify.pid, signal.SIGKILL)
            verify.wait()
    assert verify.returncode == ExitCode.INTERRUPTED
    assert err.strip() == "immichcheck: interrupted"  # no traceback, from either process
    assert not Path(f"/proc/{reader}").exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(verify.pid, 0)  # nothing of the group is left running


def run_verify(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed `immichcheck verify` in a fresh process (so the reader is forked)."""
    immichcheck = str(Path(sys.executable).with_name("immichcheck"))
    return subprocess.run(
        [immichcheck, "verify", "--no-save", "--format", "json", *args],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip


def assert_no_secret_in(text: str, cluster: FakeKubeCluster) -> None:
    for name in SECRETS:
        for value in cluster.secret_values(name).values():
            if len(value) >= 8:  # the username "immich" is an identifier, shown on purpose
                assert value not in text
    assert cluster.token not in text


def test_verify_through_the_reader_passes_a_healthy_cluster_and_prints_no_secret(
    fake_cluster: FakeKubeCluster,
) -> None:
    completed = run_verify("--kubeconfig", str(fake_cluster.kubeconfig_path), "--only", "cluster")
    assert completed.returncode == ExitCode.OK, completed.stdout + completed.stderr
    record = json.loads(completed.stdout)
    assert {check["status"] for check in record["checks"]} == {"PASS"}
    assert len({check["code"] for check in record["checks"]}) == 14
    assert_no_secret_in(completed.stdout + completed.stderr, fake_cluster)


def test_in_cluster_the_reader_uses_the_service_account(
    fake_cluster: FakeKubeCluster, tmp_path: Path
) -> None:
    """The CronJob's path: no kubeconfig, the pod's service account, read by the child."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(fake_cluster.service_account_env(tmp_path / "serviceaccount"))
    env["HOME"] = str(tmp_path)  # no ~/.kube/config
    completed = run_verify("--only", "cluster", env=env)
    assert completed.returncode == ExitCode.OK, completed.stdout + completed.stderr
    record = json.loads(completed.stdout)
    assert record["settings"]["reached"]["kubernetes"] == "in-cluster service account"
    assert {check["status"] for check in record["checks"]} == {"PASS"}
    assert_no_secret_in(completed.stdout + completed.stderr, fake_cluster)


def test_a_default_run_forks_first_and_still_reads_the_cluster(
    fake_cluster: FakeKubeCluster, tmp_path: Path
) -> None:
    """No --only/--skip (cron's run): the child is forked before the checks are selected."""
    completed = run_verify(
        "--kubeconfig", str(fake_cluster.kubeconfig_path), "--timeout", "1",
        env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    record = json.loads(completed.stdout)
    cluster = {check["status"] for check in record["checks"] if check["component"] == "cluster"}
    assert cluster == {"PASS"}, completed.stdout
    assert "Traceback" not in completed.stderr
    assert_no_secret_in(completed.stdout + completed.stderr, fake_cluster)


def test_verify_through_the_child_gives_the_verdicts_of_an_in_process_run(
    fake_cluster: FakeKubeCluster,
    postgres_server: LocalPostgres,
    redis_factory: RedisFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The snapshot and PostgreSQL from the child (a fresh `immichcheck`), against the same run
    in pytest's process, which has threads and so never forks: the same verdicts."""
    redis = redis_factory()
    args = ["--kubeconfig", str(fake_cluster.kubeconfig_path), "--pg-dsn", postgres_server.dsn,
            "--redis-url", redis.url, "--only", "cluster,postgres,redis"]  # fmt: skip
    forked = run_verify(*args)
    code, output, _ = run_cli(["verify", "--no-save", "--format", "json", *args], capsys)

    def verdicts(record: dict[str, Any]) -> list[tuple[str, str, str]]:
        # Messages quote times (the PING's), so each is compared by its code and status.
        return sorted((c["code"], c["target"], c["status"]) for c in record["checks"])

    forked_record = json.loads(forked.stdout)
    assert verdicts(forked_record) == verdicts(json.loads(output))
    assert forked.returncode == code
    components = {c["component"] for c in forked_record["checks"] if c["status"] == "PASS"}
    assert {"cluster", "postgres", "redis"} <= components
    assert postgres_server.password not in forked.stdout + forked.stderr


def test_answers_are_read_whole_however_the_pipe_cuts_them(tmp_path: Path) -> None:
    """Lines split over many reads, several lines in one read, a big snapshot, and lines that
    are not answers (ignored: the probe they were for ends "without an answer")."""
    done = subprocess.Popen(["true"])  # a real child for the reader to reap
    done.wait()
    read_end, write_end = os.pipe()
    prefetch = ProbePrefetch(done.pid, read_end, os.open(os.devnull, os.O_WRONLY),
                             ("kube", "postgres", "redis"))  # fmt: skip
    big = {"namespace": "immich", "source": "test", "objects": {"ConfigMap": [
        {"metadata": {"name": f"cm-{i}"}, "data": {"blob": "x" * 3000}} for i in range(1000)
    ]}}  # fmt: skip
    lines = [
        b"not json at all",
        json.dumps({"probe": "postgres"}).encode(),  # no facts, no error: not an answer
        json.dumps({"probe": "postgres", "facts": {"version_num": 150018}}).encode(),
        json.dumps({"probe": "kube", "snapshot": big}).encode(),
    ]
    stream = b"\n".join(lines) + b"\n"

    def write() -> None:
        view = memoryview(stream)
        for size in (5, 1, 70_000, 3, 1 << 20):  # then the rest
            os.write(write_end, view[:size])
            view = view[size:]
        os.write(write_end, view)
        os.close(write_end)

    async def read() -> tuple[Any, Any, str]:
        writer = asyncio.get_running_loop().run_in_executor(None, write)
        snapshot = await prefetch.snapshot()
        facts = await prefetch.facts("postgres")
        with pytest.raises(ProbeError) as no_answer:
            await prefetch.facts("redis")
        await writer
        return snapshot, facts, str(no_answer.value)

    snapshot, facts, no_answer = asyncio.run(read())
    prefetch.close()
    assert facts == {"version_num": 150018}
    assert snapshot.objects["ConfigMap"] == big["objects"]["ConfigMap"]
    # `true` was reaped by the test already, so how it ended is not known to the reader.
    assert no_answer == "the process probing Redis ended without an answer"
