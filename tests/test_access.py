"""verify's access checks through real loopback proxies in front of the fake Immich server.

Each proxy breaks one thing the way real ones do (tests/fakes/proxies.py): a body limit that
answers nginx's 413, certificates that expire in 5 days or expired 3 days ago, a proxy that
drops or refuses the websocket upgrade. The checks must give the right status and name the
setting that fixes it. Body sizes are small (2 MB limit, 4 MB probe) to stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from immichcheck.cli.main import main
from immichcheck.clients import ProbeError
from immichcheck.clients.access_body_limit import rejected_by
from immichcheck.clients.access_ways import ways_in
from immichcheck.common.records import CheckResult, RunRecord, Status
from immichcheck.deploy.expected_state import load_expected_state
from immichcheck.verify.engine import ProbeOutcome, evaluate
from tests.fakes.proxies import ReverseProxy, make_certificate

LIMIT = 2_000_000
PROBE_SIZE = "4MB"


@pytest.fixture(autouse=True)
def no_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Access checks need no cluster; make sure none is picked up from the machine."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))


def run_access(
    args: list[str], capsys: pytest.CaptureFixture[str], only: str = "access"
) -> tuple[int, RunRecord]:
    """`immichcheck verify --only access ...` in-process, JSON back."""
    with pytest.raises(SystemExit) as raised:
        main(
            [
                "verify", "--only", only, *args,
                "--body-limit-size", PROBE_SIZE, "--body-limit-budget", "15s",
                "--timeout", "5", "--no-save", "--format", "json",
            ]
        )  # fmt: skip
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return int(raised.value.code or 0), RunRecord.from_json(out)


def results(record: RunRecord, code: str) -> list[CheckResult]:
    return [c for c in record.checks if c.code == code]


def test_healthy_paths_pass_everything(
    fake_immich_server: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca_file, context, _ = make_certificate(tmp_path, days_left=60)
    plain = ReverseProxy(fake_immich_server.url)
    secure = ReverseProxy(fake_immich_server.url, tls=context)
    with plain, secure:
        code, record = run_access(
            [
                "--node-ip", plain.address,
                "--ingress-ip", plain.address,
                "--external-url", secure.url,
                "--ca-file", str(ca_file),
            ],
            capsys,
        )  # fmt: skip
    not_passing = [
        (c.code, c.target, c.status, c.message) for c in record.checks if c.status != Status.PASS
    ]
    assert not_passing == []
    assert code == 0
    targets = {c.target for c in record.checks if c.code == "IC-AC-601"}
    assert targets == {
        "nodeport",
        "ingress immich.home",
        "ingress photos.home",
        "external 127.0.0.1",
    }
    hosts = {r["host"] for r in plain.requests}
    assert {"immich.home", "photos.home"} <= hosts  # the Host header reached the ingress
    (upload,) = [c for c in results(record, "IC-AC-606") if c.target == "external 127.0.0.1"]
    assert upload.evidence["largest_passed_bytes"] == 4_000_000
    assert "nothing stored" in upload.message
    assert not fake_immich_server.assets  # the unauthenticated body was refused with 401
    assert "v2.7.5" in results(record, "IC-AC-602")[0].message
    assert all("websocket upgraded" in c.message for c in results(record, "IC-AC-607"))
    (tls,) = results(record, "IC-AC-605")
    assert tls.message.startswith("TLSv1.")


def test_body_limit_on_the_ingress_fails_with_the_annotation_to_set(
    fake_immich_server: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ReverseProxy(fake_immich_server.url, body_limit=LIMIT) as proxy:
        code, record = run_access(["--ingress-ip", proxy.address], capsys)
    assert code == 2
    uploads = results(record, "IC-AC-606")
    assert {c.target for c in uploads} == {"ingress immich.home", "ingress photos.home"}
    for result in uploads:
        assert result.status == Status.FAIL
        assert "the proxy (nginx) answered 413 to 4.0 MB" in result.message
        assert 'nginx.ingress.kubernetes.io/proxy-body-size: "0" in manifests/09-ingress.yaml' in (
            result.message
        )
        assert "the manifests already set it" in result.message  # so the live object drifted
        assert result.evidence["proxy_413"] is True
        largest = result.evidence["largest_passed_bytes"]
        refused = result.evidence["smallest_refused_bytes"]
        assert LIMIT / 1.25 <= largest <= LIMIT < refused <= 4_000_000
        assert result.remediation  # the catalogue text comes along
    assert all(c.status == Status.PASS for c in results(record, "IC-AC-601"))
    assert not fake_immich_server.assets


@pytest.mark.parametrize(
    ("days_left", "status", "exit_code", "phrase"),
    [(5, Status.WARN, 1, "expires in 5.0 days"), (-3, Status.FAIL, 2, "expired 3.0 days ago")],
)
def test_certificate_expiry(
    days_left: float,
    status: Status,
    exit_code: int,
    phrase: str,
    fake_immich_server: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca_file, context, _ = make_certificate(tmp_path, days_left=days_left)
    with ReverseProxy(fake_immich_server.url, tls=context) as proxy:
        code, record = run_access(
            ["--external-url", proxy.url, "--ca-file", str(ca_file)],
            capsys,
            only="IC-AC-601,IC-AC-603,IC-AC-604",
        )
    (expiry,) = results(record, "IC-AC-604")
    assert expiry.status == status
    assert phrase in expiry.message
    assert "renew or replace the certificate" in expiry.message
    # The chain and name are fine: only the dates are wrong, and the path still answers.
    assert results(record, "IC-AC-603")[0].status == Status.PASS
    assert results(record, "IC-AC-601")[0].status == Status.PASS
    assert code == exit_code


def test_untrusted_and_wrong_name_certificates_fail(
    fake_immich_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_file, context, _ = make_certificate(tmp_path, days_left=60, names=("localhost",))
    with ReverseProxy(fake_immich_server.url, tls=context) as proxy:
        _, wrong_name = run_access(
            ["--external-url", proxy.url, "--ca-file", str(ca_file)], capsys, only="IC-AC-603"
        )
        _, untrusted = run_access(
            ["--external-url", proxy.url.replace("127.0.0.1", "localhost")],
            capsys,
            only="IC-AC-603",
        )
    (name_result,) = wrong_name.checks
    assert name_result.status == Status.FAIL
    assert "the certificate names localhost, not 127.0.0.1" in name_result.message
    (trust_result,) = untrusted.checks
    assert trust_result.status == Status.FAIL
    assert "not trusted: self-signed certificate in certificate chain" in trust_result.message
    assert "pass it here with --ca-file" in trust_result.message


@pytest.mark.parametrize(
    ("mode", "phrase"),
    [
        (
            "strip",
            "Immich saw a plain GET (engine.io 'Bad request'): a proxy on the way dropped the "
            "Upgrade/Connection headers",
        ),
        ("refuse", "the upgrade was answered HTTP 400"),
    ],
)
def test_proxy_without_websocket_support_fails(
    mode: str,
    phrase: str,
    fake_immich_server: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ReverseProxy(fake_immich_server.url, websocket=mode) as proxy:
        code, record = run_access(["--external-url", proxy.url], capsys, only="IC-AC-601,IC-AC-607")
    (websocket,) = results(record, "IC-AC-607")
    assert websocket.status == Status.FAIL
    # Immich's engine.io answered the polling handshake itself: the path reaches Immich, and
    # the message must not send the user chasing a routing problem.
    assert websocket.message.startswith(
        "the socket.io path reaches Immich (engine.io itself refused the polling handshake: "
        "400 Transport unknown) but the websocket upgrade fails ("
    )
    assert "does not reach" not in websocket.message
    assert phrase in websocket.message
    assert "proxy_set_header Upgrade $http_upgrade" in websocket.message
    assert code == 2


def test_a_way_in_that_does_not_answer_is_fail_and_skips_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, record = run_access(
        ["--external-url", "http://127.0.0.1:9"], capsys, only="IC-AC-601,IC-AC-607"
    )
    assert [(c.code, c.status) for c in record.checks] == [
        ("IC-AC-601", Status.FAIL),
        ("IC-AC-607", Status.SKIP),
    ]
    assert "connection refused" in record.checks[0].message
    assert code == 2


# Checks on synthetic probe data: cases no loopback proxy produces cheaply --------------------


def _way(**overrides: Any) -> dict[str, Any]:
    way: dict[str, Any] = {
        "name": "external photos.example.com",
        "kind": "external",
        "url": "https://photos.example.com",
        "scheme": "https",
        "error": "",
        "tls": None,
        "route": "/api/server/ping",
        "ping": {
            "status": 200,
            "json": {"res": "pong"},
            "text": "",
            "seconds": 0.01,
            "headers": {},
        },
        "version": {"status": 200, "json": {"major": 2, "minor": 7, "patch": 5}},
        "well_known": {"status": 404, "json": None, "headers": {}},
        "root": {"status": 200, "headers": {}},
        "socket": {},
    }
    way.update(overrides)
    return way


def _evaluate(code: str, **probes: Any) -> list[CheckResult]:
    outcomes = {
        name.replace("_", "."): ProbeOutcome(name, data=data) for name, data in probes.items()
    }
    return evaluate([code], outcomes, load_expected_state())


def test_another_version_behind_a_way_in_fails() -> None:
    way = _way(version={"status": 200, "json": {"major": 1, "minor": 99, "patch": 0}})
    server = {"version": {"json": {"major": 2, "minor": 7, "patch": 5}}}
    (result,) = _evaluate("IC-AC-602", access={way["name"]: way}, server=server)
    assert result.status == Status.FAIL
    assert "reaches v1.99.0 but the ClusterIP path answers v2.7.5" in result.message


def test_http_redirect_behind_https_and_cached_api_warn() -> None:
    way = _way(
        root={"status": 302, "headers": {"location": "http://photos.example.com/auth/login"}},
        ping={
            "status": 200,
            "json": {"res": "pong"},
            "text": "",
            "seconds": 0.01,
            "headers": {"cf-cache-status": "HIT"},
        },
    )
    (result,) = _evaluate("IC-AC-608", access={way["name"]: way})
    assert result.status == Status.WARN
    assert "X-Forwarded-Proto: https" in result.message
    assert "bypass caching for /api/*" in result.message


def test_cloudflare_413_names_the_plan_limit() -> None:
    upload = {
        "external photos.example.com": {
            "name": "external photos.example.com",
            "kind": "external",
            "url": "https://photos.example.com",
            "target_bytes": 100_000_000,
            "attempts": [
                {"bytes": 100_000_000, "status": 413, "by": "cloudflare", "sent": 1_000_000},
                {"bytes": 65_536, "status": 401, "by": "server", "sent": 65_536},
            ],
            "largest_passed": 65_536,
            "smallest_refused": 100_000_000,
            "budget_exhausted": True,
        }
    }
    (result,) = _evaluate("IC-AC-606", access_upload=upload)
    assert result.status == Status.FAIL
    assert "the proxy (cloudflare) answered 413" in result.message
    assert "100 MB on Free and Pro plans" in result.message
    assert "time budget used up" in result.message


def test_who_answered_413() -> None:
    nest = b'{"message":"Payload Too Large","error":"Payload Too Large","statusCode":413}'
    assert rejected_by(413, {}, nest) == "server"
    assert rejected_by(413, {"cf-ray": "8a1"}, b"<html>") == "cloudflare"
    assert rejected_by(413, {"server": "nginx/1.25.3"}, b"<html>") == "nginx"
    assert rejected_by(413, {}, b"") == "proxy"


def test_ways_in_from_the_flags() -> None:
    expected = load_expected_state()
    found = ways_in(expected, "10.0.0.5", "https://10.0.0.6", "https://photos.example.com/")
    assert [(w.name, w.base_url, w.host_header, w.server_name) for w in found] == [
        ("nodeport", "http://10.0.0.5:31283", None, None),
        ("ingress immich.home", "https://10.0.0.6", "immich.home", "immich.home"),
        ("ingress photos.home", "https://10.0.0.6", "photos.home", "photos.home"),
        ("external photos.example.com", "https://photos.example.com", None, "photos.example.com"),
    ]
    with pytest.raises(ProbeError, match="not an http"):
        ways_in(expected, None, None, "ftp://x")


def test_https_ingress_is_checked_with_the_virtual_hosts_certificate(
    fake_immich_server: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hosts = tuple(load_expected_state().ingress_hosts)
    ca_file, context, _ = make_certificate(tmp_path, days_left=60, names=hosts)
    with ReverseProxy(fake_immich_server.url, tls=context) as ingress:
        address = ingress.url.split("://", 1)[1]
        code, record = run_access(
            [
                "--ingress-ip", f"https://{address}",
                "--ca-file", str(ca_file),
                "--skip", "IC-AC-606",
            ],
            capsys,
            only="access,IC-SV-407",
        )  # fmt: skip
    assert code == 0
    for code_checked in ("IC-AC-601", "IC-AC-603", "IC-AC-604", "IC-AC-605", "IC-SV-407"):
        checked = results(record, code_checked)
        assert {c.target for c in checked} == {f"ingress {host}" for host in hosts}
        assert all(c.status == Status.PASS for c in checked), [c.message for c in checked]
    assert {r["host"] for r in ingress.requests} >= set(hosts)


def _socket_way(polling: dict[str, Any], websocket: dict[str, Any]) -> dict[str, Any]:
    return _way(socket={"polling": polling, "websocket": websocket})


def test_socket_io_path_not_routed_to_immich_fails_naming_the_route() -> None:
    # nginx serving its own 404 for /api/socket.io/: no engine.io answer anywhere.
    way = _socket_way(
        {
            "status": 404,
            "open": None,
            "engine_io_error": None,
            "text": "<html>404 Not Found</html>",
        },
        {"status": 404, "error": "the upgrade was answered HTTP 404", "text": "<html>404</html>"},
    )
    (result,) = _evaluate("IC-AC-607", access={way["name"]: way})
    assert result.status == Status.FAIL
    assert result.message == (
        "the socket.io path does not reach Immich: the polling handshake was not answered by "
        "engine.io (HTTP 404: <html>404 Not Found</html>); route /api/socket.io/ to the "
        "immich-server Service"
    )


def test_socket_io_server_that_still_offers_polling_counts_as_reached() -> None:
    opened = {"sid": "abc", "upgrades": ["websocket"], "pingInterval": 25000}
    way = _socket_way(
        {"status": 200, "open": opened, "engine_io_error": None, "text": "0{...}"},
        {"status": None, "error": "no upgrade answer within 3 s"},
    )
    (result,) = _evaluate("IC-AC-607", access={way["name"]: way})
    assert result.status == Status.FAIL
    assert result.message.startswith(
        "the socket.io path reaches Immich (the polling handshake opened a session) but the "
        "websocket upgrade fails (no upgrade answer within 3 s)"
    )
