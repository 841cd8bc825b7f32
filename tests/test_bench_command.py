"""`immichcheck bench` as a user runs it: tables, saved runs, clean errors, clean Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from immichcheck.bench.local_servers import binaries as local_stack
from immichcheck.bench.local_servers.postgres_server import LocalPostgres
from immichcheck.bench.local_servers.redis_server import LocalRedis
from immichcheck.bench.table import bench_rows, render_bench_table
from immichcheck.cli.main import main
from immichcheck.common.host_facts import host_facts
from immichcheck.common.records import BenchmarkResult, RunRecord, utc_now
from tests.fixtures.databases import write_tiny_home


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder the unprivileged server user can enter (pytest's tmp_path is private)."""
    folder = Path(tempfile.mkdtemp(prefix="immichcheck-cmd-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def tiny_env(open_dir: Path) -> dict[str, str]:
    """Environment whose `quick` profile takes seconds (IMMICHCHECK_HOME with tiny workloads)."""
    home = write_tiny_home(open_dir / "home")
    return {**os.environ, "IMMICHCHECK_HOME": str(home), "COLUMNS": "200"}


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "immichcheck", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def saved_runs(reports: Path) -> list[RunRecord]:
    """Every run saved under a reports folder."""
    return [RunRecord.from_json(p.read_text()) for p in sorted(reports.glob("runs/*/*/*.json"))]


# Runs the CLI with secrets.token_urlsafe wrapped so every value it generates (the local
# servers' passwords) is appended to a file: the test can then look for the real secret.
_RECORD_SECRETS = """
import runpy, secrets, sys
record, real = sys.argv[1], secrets.token_urlsafe
def recording(*args, **kwargs):
    value = real(*args, **kwargs)
    with open(record, "a", encoding="utf-8") as handle:
        handle.write(value + "\\n")
    return value
secrets.token_urlsafe = recording
sys.argv = ["immichcheck", *sys.argv[2:]]
runpy.run_module("immichcheck", run_name="__main__")
"""


def run_cli_recording_secrets(
    args: list[str], env: dict[str, str], record: Path
) -> subprocess.CompletedProcess[str]:
    """`run_cli`, with every generated secret written to `record`, one a line."""
    return subprocess.run(
        [sys.executable, "-c", _RECORD_SECRETS, str(record), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_local_bench_prints_table_and_saves_run(open_dir: Path, tiny_env: dict[str, str]) -> None:
    data = open_dir / "data"
    data.mkdir()
    reports = open_dir / "reports"
    generated = open_dir / "generated-secrets"
    done = run_cli_recording_secrets(
        [
            "bench",
            "--local",
            "--profile",
            "quick",
            "--data-dir",
            str(data),
            "--reports-dir",
            str(reports),
            "--suite",
            "postgres",
            "--suite",
            "redis",
            "--tag",
            "nvme",
        ],
        tiny_env,
        generated,
    )
    assert done.returncode == 0, done.stderr
    assert "postgres.select1" in done.stdout and "redis.set" in done.stdout
    assert " µs" in done.stdout or " ms" in done.stdout
    assert "ops/s" in done.stdout and "MB/s" in done.stdout
    (record,) = saved_runs(reports)
    assert record.kind == "bench" and record.tags == ("nvme",)
    assert set(record.service_versions) == {"postgres", "redis"}
    assert record.host.filesystems[0].path == str(data.resolve())
    assert record.host.filesystems[0].fstype
    assert record.settings["local"] is True
    assert list(data.iterdir()) == []  # the throwaway servers' folder is gone
    saved_text = next(reports.glob("runs/*/*/*.json")).read_text()
    # The throwaway PostgreSQL's generated password, found nowhere the user can see.
    secrets_made = generated.read_text().split()
    assert secrets_made, "the local stack generated no password"
    for secret in secrets_made:
        assert secret not in saved_text
        assert secret not in done.stdout and secret not in done.stderr


def test_existing_servers_json_output(
    postgres_server: LocalPostgres,
    redis_server: LocalRedis,
    open_dir: Path,
    tiny_env: dict[str, str],
) -> None:
    reports = open_dir / "reports"
    done = run_cli(
        [
            "bench",
            "--pg-dsn",
            postgres_server.dsn,
            "--redis-url",
            redis_server.url,
            "--suite",
            "redis",
            "--profile",
            "quick",
            "--format",
            "json",
            "--reports-dir",
            str(reports),
        ],
        tiny_env,
    )
    assert done.returncode == 0, done.stderr
    record = RunRecord.from_json(done.stdout)
    assert {b.workload for b in record.benchmarks} >= {"redis.set", "redis.get"}
    assert record.settings["local"] is False
    assert saved_runs(reports)[0].run_id == record.run_id
    assert postgres_server.password not in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "--local", "--data-dir", "/sys"], "--data-dir /sys is not writable"),
        (["bench", "--local", "--data-dir", "/nonexistent/x"], "does not exist"),
        (["bench", "--profile", "huge"], "Invalid value for '--profile'"),
        (["bench", "--path", "nolabel"], "expected LABEL=DIR"),
        (["bench", "--data-dir", "/tmp"], "--data-dir only applies with --local"),
        (["bench", "--redis-url", "rediss://x", "--suite", "redis"], "TLS"),
        (["bench"], "nothing to benchmark"),
    ],
)
def test_bad_input_is_one_line_and_exit_3(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], open_dir: Path
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--reports-dir", str(open_dir / "reports")])
    assert exit_info.value.code == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert "Traceback" not in err


def test_missing_binaries_name_the_package(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], open_dir: Path
) -> None:
    monkeypatch.setenv("PATH", str(open_dir))
    monkeypatch.setattr(local_stack, "POSTGRES_SEARCH_ROOT", open_dir / "none")
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--local", "--reports-dir", str(open_dir / "reports")])
    assert exit_info.value.code == 3
    assert "apt-get install postgresql" in capsys.readouterr().err


def _server_processes(stack: Path) -> list[psutil.Process]:
    """The postmaster (with its backends) and redis-server named by the stack's pid files."""
    processes = []
    for pid_file in (stack / "postgres" / "postmaster.pid", stack / "redis" / "redis.pid"):
        try:
            pid = int(pid_file.read_text().split()[0])
            server = psutil.Process(pid)
        except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
            continue
        processes += [server, *server.children(recursive=True)]
    return processes


@pytest.mark.slow
def test_ctrl_c_stops_servers_and_removes_data(open_dir: Path, tiny_env: dict[str, str]) -> None:
    data = open_dir / "data"
    data.mkdir()
    # The standard profile of the tiny home builds a large dataset: plenty of time to interrupt.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "immichcheck",
            "bench",
            "--local",
            "--profile",
            "standard",
            "--data-dir",
            str(data),
            "--reports-dir",
            str(open_dir / "reports"),
            "--suite",
            "postgres",
            "--suite",
            "redis",
        ],
        env=tiny_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    servers: list[psutil.Process] = []
    while time.monotonic() < deadline and len(servers) < 2:
        stacks = list(data.glob("immichcheck-local-*"))
        servers = _server_processes(stacks[0]) if stacks else []
        time.sleep(0.1)
    if len(servers) < 2:
        process.kill()
        pytest.fail("the local stack did not start")
    time.sleep(1.0)  # into the benchmark itself
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert list(data.iterdir()) == []
    _, alive = psutil.wait_procs(servers, timeout=5)
    assert alive == []


def _result(workload: str, **values: object) -> BenchmarkResult:
    base: dict[str, object] = dict(
        workload=workload,
        parameters={},
        count=10,
        min=1e-6,
        p50=2e-5,
        p90=3e-5,
        p95=4e-5,
        p99=1.5e-3,
        p999=2.5,
        max=3.0,
        mean=2e-5,
        stddev=1e-6,
        throughput=34_400.0,
        errors=0,
    )
    base.update(values)
    return BenchmarkResult(**base)  # type: ignore[arg-type]


def test_table_shows_units_missing_percentiles_and_dropped_settings() -> None:
    record = RunRecord(
        run_id="r1",
        kind="bench",
        started_at=utc_now(),
        finished_at=utc_now(),
        node="node05",
        host=host_facts(),
        tool_version="0",
        service_versions={"postgres": "15.18"},
        benchmarks=(
            _result("postgres.select1", parameters={"concurrency": 1}),
            _result(
                "redis.set",
                parameters={"pipeline": 16},
                facts={"missing_percentiles": ["p90", "p999"]},
                engine="redis-benchmark",
                bytes_per_second=51e6,
                notes=("a load worker used 97% of a core",),
            ),
        ),
        settings={
            "postgres_settings_dropped": {
                "shared_preload_libraries:vchord.so": "library not installed in /x",
                "port": "set by the local stack",
            },
            "server_settings_source": "/m",
        },
    )
    rows = bench_rows(record.benchmarks)
    assert rows[0][:8] == [
        "postgres.select1 concurrency=1",
        "immichcheck",
        "20 µs",
        "40 µs",
        "1.50 ms",
        "2.50 s",
        "3.00 s",
        "34.4 kops/s",
    ]
    assert rows[1][5] == "–" and rows[1][8] == "51.0 MB/s"
    text = render_bench_table(record)
    assert "a load worker used 97% of a core" in text
    assert "shared_preload_libraries:vchord.so not applied (library not installed in /x)" in text
    assert "port not applied" not in text
    assert "versions: postgres 15.18" in text
