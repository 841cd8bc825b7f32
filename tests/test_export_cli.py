"""`immichcheck export`: textfile written atomically, Pushgateway PUTs over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from immichcheck.cli.main import main
from immichcheck.clients.pushgateway import group_url
from immichcheck.common.records import Status
from immichcheck.history.store import save_run
from tests.test_store_factories import check, generated, run


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    folder = tmp_path / "reports"
    select = generated("postgres.select1", {"concurrency": 1}, 0.0004, count=100, seed=5)
    save_run(run(0, benchmarks=[select]), folder)
    save_run(run(1, benchmarks=[select]), folder)
    save_run(run(1, node="node01", benchmarks=[select]), folder)
    save_run(run(1, kind="verify", checks=[check("IC-RD-101", Status.FAIL, "redis")]), folder)
    return folder


class _Pushgateway:
    """A loopback HTTP server that records what a Pushgateway would receive."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.requests: list[tuple[str, str, str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                owner.requests.append(("PUT", self.path, self.headers["Content-Type"], body))
                self.send_response(owner.status)
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(b"nope\n")

            def log_message(self, *args: object) -> None:
                """Keep test output clean."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pushgateway() -> Iterator[_Pushgateway]:
    gateway = _Pushgateway(200)
    yield gateway
    gateway.close()


def test_textfile_is_valid_exposition(
    reports: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "textfile" / "immichcheck.prom"
    code, out, err = _run_cli(
        ["export", "--reports-dir", str(reports), "--prometheus", str(target)], capsys
    )
    assert (code, out, err) == (0, "", "")
    text = target.read_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    status = families["immichcheck_check_status"].samples
    assert [(s.labels, s.value) for s in status] == [
        ({"code": "IC-RD-101", "component": "redis", "node": "node05"}, 2.0)
    ]
    last_run = {
        (s.labels["node"], s.labels["kind"]): s.value
        for s in families["immichcheck_last_run_timestamp_seconds"].samples
    }
    assert set(last_run) == {("node05", "bench"), ("node01", "bench"), ("node05", "verify")}
    latency = families["immichcheck_benchmark_latency_seconds"].samples
    assert {s.labels.get("quantile") for s in latency} == {
        "0.5",
        "0.9",
        "0.95",
        "0.99",
        "0.999",
        None,
    }
    assert {s.name for s in latency if "quantile" not in s.labels} == {
        "immichcheck_benchmark_latency_seconds_sum",
        "immichcheck_benchmark_latency_seconds_count",
    }
    assert not list(target.parent.glob(".*.tmp"))  # the atomic write left nothing behind
    met = {
        (s.labels["node"], s.labels["target"]): s.value
        for s in families["immichcheck_target_met"].samples
    }
    assert met == {
        ("node01", "postgres-sub-millisecond"): 1.0,
        ("node05", "postgres-sub-millisecond"): 1.0,
    }
    regressions = families["immichcheck_report_regressions"].samples
    assert [(s.labels, s.value) for s in regressions] == [({"node": "node05"}, 0.0)]

    code, _, _ = _run_cli(
        ["export", "--reports-dir", str(reports), "--prometheus", str(target), "--no-verdicts"],
        capsys,
    )
    assert code == 0
    assert "immichcheck_target_met" not in target.read_text()
    assert "immichcheck_check_status" in target.read_text()


def test_pushgateway_gets_one_group_per_node(
    reports: Path, pushgateway: _Pushgateway, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run_cli(
        ["export", "--reports-dir", str(reports), "--pushgateway", pushgateway.url], capsys
    )
    assert (code, err) == (0, "")
    assert [(m, p) for m, p, _, _ in pushgateway.requests] == [
        ("PUT", "/metrics/job/immichcheck/instance/node01"),
        ("PUT", "/metrics/job/immichcheck/instance/node05"),
    ]
    _, _, content_type, body = pushgateway.requests[1]
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    nodes = {
        s.labels.get("node")
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if "node" in s.labels
    }
    assert nodes == {"node05"}


def test_pushgateway_errors_are_one_line(reports: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failing = _Pushgateway(500)
    try:
        code, _, err = _run_cli(
            ["export", "--reports-dir", str(reports), "--pushgateway", failing.url], capsys
        )
    finally:
        failing.close()
    assert code == 3
    assert err == (
        "immichcheck: error: cannot push metrics: Pushgateway at "
        f"{failing.url}/metrics/job/immichcheck/instance/node01 answered 500: nope\n"
    )
    # Nothing listens on the closed server's port any more.
    code, _, err = _run_cli(
        ["export", "--reports-dir", str(reports), "--pushgateway", failing.url, "--timeout", "2"],
        capsys,
    )
    assert code == 3 and err.startswith("immichcheck: error: cannot push metrics: ")
    assert err.count("\n") == 1


def test_nothing_to_do_or_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run_cli(["export", "--reports-dir", str(tmp_path)], capsys)
    assert (code, err) == (
        3,
        "immichcheck: error: nothing to do: give --prometheus FILE and/or --pushgateway URL\n",
    )
    code, _, err = _run_cli(
        ["export", "--reports-dir", str(tmp_path), "--prometheus", str(tmp_path / "x.prom")],
        capsys,
    )
    assert code == 3 and "no runs to export" in err


def test_group_url_escapes_awkward_names() -> None:
    assert group_url("http://pg:9091/", "immichcheck", "node 05") == (
        "http://pg:9091/metrics/job/immichcheck/instance/node%2005"
    )
    assert group_url("http://pg:9091", "immichcheck", "a/b") == (
        "http://pg:9091/metrics/job/immichcheck/instance@base64/YS9i"
    )


def test_a_partial_bench_run_keeps_the_other_series_and_their_target_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "reports"
    select = generated("postgres.select1", {"concurrency": 1}, 0.0004, count=100, seed=5)
    upload = generated("upload.asset", {"size": 1024}, 0.2, count=100, seed=5)
    save_run(run(0, benchmarks=[select, upload]), folder)
    upload_only = run(1, benchmarks=[generated("upload.asset", {"size": 1024}, 0.3, count=100)])
    save_run(upload_only, folder)
    target = tmp_path / "immichcheck.prom"
    code, _, err = _run_cli(
        ["export", "--reports-dir", str(folder), "--prometheus", str(target)], capsys
    )
    assert (code, err) == (0, "")
    families = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    measured = {
        s.labels["workload"]: s.value
        for s in families["immichcheck_benchmark_timestamp_seconds"].samples
    }
    assert measured == {
        "postgres.select1": run(0).finished_at.timestamp(),
        "upload.asset": upload_only.finished_at.timestamp(),
    }
    met = {
        (s.labels["workload"], s.labels["target"]): s.value
        for s in families["immichcheck_target_met"].samples
    }
    # Judged on the full run's figure, though the latest run measured only uploads.
    assert met == {("postgres.select1", "postgres-sub-millisecond"): 1.0}
