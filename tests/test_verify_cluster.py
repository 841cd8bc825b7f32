"""verify against the fake Kubernetes API (kr8s over real HTTPS), real PostgreSQL/Redis, fakes.

Every fault the fake cluster can inject is checked for its code, status, message and exit
code; the healthy run puts the real PostgreSQL password into the cluster's secret so the
credentials verify reads from the snapshot are the ones that work.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from immichcheck.common.records import RunRecord, Status
from immichcheck.verify.checks import load_catalogue
from tests.test_checks_cluster import STRONG_JWT
from tests.test_verify_integration import (
    MEDIA_FOLDERS,
    _redis_db,
    assert_verdict,
    message,
    run_cli,
    run_json,
    statuses,
)

# Session fixtures shared with that module (pytest finds fixtures imported into a module).
from tests.test_verify_integration import immich_database_dsn as immich_database_dsn
from tests.test_verify_integration import media_root as media_root

CLUSTER = ["--only", "cluster", "--no-save"]
CORE = "cluster,postgres,redis,ml,server,storage"  # what this issue delivers


@pytest.fixture
def cluster_args(fake_cluster: Any) -> list[str]:
    return ["--kubeconfig", str(fake_cluster.kubeconfig_path)]


def test_healthy_cluster_and_services_all_pass(
    fake_cluster: Any,
    cluster_args: list[str],
    immich_database_dsn: str,
    vector_postgres_server: Any,
    redis_server: Any,
    fake_immich_server: Any,
    fake_ml_service: Any,
    media_root: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    fake_cluster.set_secret(
        "immich-postgres-secret",
        {"username": "immich", "password": vector_postgres_server.password},
    )
    # As immich-config.json of manifests/ sets it (Immich's own default names another host).
    fake_immich_server.admin.config["machineLearning"]["urls"] = ["http://immich-ml:3003"]
    args = [
        *cluster_args,
        "--pg-dsn", immich_database_dsn,
        "--redis-url", _redis_db(redis_server.url, 3),
        "--server-url", fake_immich_server.url,
        "--ml-url", fake_ml_service.url,
        "--api-key", fake_immich_server.admin_api_key,
        "--media-path", str(media_root),
        "--min-free-media", "1MB",
        # IC-PG-104/110 need contrib extensions the pgvector server here lacks (see
        # test_verify_integration); NodePort/ingress/data path are covered there.
        "--only", CORE,
        "--skip", "IC-PG-104,IC-PG-110,IC-SV-406,IC-SV-407",
        "--reports-dir", str(tmp_path),
    ]  # fmt: skip
    code, record = run_json(args, capsys)
    not_passing = [
        (c.code, c.target, c.status, c.message) for c in record.checks if c.status != Status.PASS
    ]
    assert not_passing == []
    assert code == 0
    assert "kubernetes" in record.service_versions
    components = {c.component for c in record.checks}
    assert {"cluster", "postgres", "redis", "ml", "server", "storage"} <= components


def test_port_forward_reaches_services_with_credentials_from_the_secret(
    fake_cluster: Any,
    cluster_args: list[str],
    postgres_server: Any,
    redis_server: Any,
    fake_immich_server: Any,
    fake_ml_service: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from urllib.parse import urlsplit

    fake_cluster.set_secret(
        "immich-postgres-secret",
        {"username": postgres_server.user, "password": postgres_server.password},
    )
    fake_cluster.route_port("postgres", 5432, (postgres_server.host, postgres_server.port))
    fake_cluster.route_port("redis", 6379, (redis_server.host, redis_server.port))
    server, ml = urlsplit(fake_immich_server.url), urlsplit(fake_ml_service.url)
    fake_cluster.route_port("server", 2283, (server.hostname, server.port))
    fake_cluster.route_port("ml", 3003, (ml.hostname, ml.port))
    code, record = run_json(
        [
            *cluster_args,
            "--port-forward",
            "--only",
            "IC-PG-101,IC-PG-102,IC-RD-201,IC-RD-205,IC-SV-401,IC-ML-301",
            "--no-save",
        ],
        capsys,
    )
    problems = [(c.code, c.message) for c in record.checks if c.status != Status.PASS]
    assert {c.code: c.status for c in record.checks} == {
        "IC-PG-101": Status.PASS,
        "IC-PG-102": Status.PASS,
        "IC-RD-201": Status.PASS,
        "IC-RD-205": Status.PASS,
        "IC-SV-401": Status.PASS,
        "IC-ML-301": Status.PASS,
    }, problems
    assert record.settings["reached"]["postgres"] == "port-forward"
    assert code == 0


def test_without_port_forward_services_outside_are_skipped(
    cluster_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, record = run_json([*cluster_args, "--only", "IC-PG-101,IC-RD-201", "--no-save"], capsys)
    assert {c.status for c in record.checks} == {Status.SKIP}
    assert message(record, "IC-PG-101") == (
        "skipped: not reachable from outside the cluster: pass --pg-dsn or --port-forward"
    )
    assert code == 0


def _fault(name: str) -> Callable[[Any], None]:
    faults: dict[str, Callable[[Any], None]] = {
        "crashloop": lambda c: c.crashloop("postgres"),
        "image_pull_error": lambda c: c.image_pull_error("ml"),
        "not_ready": lambda c: c.not_ready("server"),
        "place_on_node": lambda c: c.place_on_node("redis", "node02"),
        "pvc_pending": lambda c: c.pvc_pending("immich-library"),
        "delete_secret": lambda c: c.delete_secret("immich-server-secret"),
        "drop_secret_key": lambda c: c.drop_secret_key("immich-postgres-secret", "password"),
        "weak_secret": lambda c: c.set_secret(
            "immich-postgres-secret", {"username": "immich", "password": "immich123"}
        ),
        "no_endpoints": lambda c: c.remove_endpoints("immich-ml"),
        "old_image": lambda c: c.set_image("server", "ghcr.io/immich-app/immich-server:v1.117.0"),
        "bad_config_json": lambda c: c.set_configmap_data(
            "immich-server-config", {"immich-config.json": "{oops"}
        ),
        "evicting_redis_config": lambda c: c.set_redis_config(maxmemory_policy="allkeys-lru"),
    }
    return faults[name]


@pytest.mark.parametrize(
    ("fault", "code", "status", "text", "exit_code"),
    [
        ("crashloop", "IC-CL-006", Status.FAIL, "CrashLoopBackOff", 2),
        ("image_pull_error", "IC-CL-006", Status.FAIL, "ImagePullBackOff", 2),
        ("not_ready", "IC-CL-006", Status.FAIL, "server:", 2),
        (
            "place_on_node",
            "IC-CL-008",
            Status.FAIL,
            "redis runs on node02, manifests pin it to node05, where its data lives",
            2,
        ),
        ("pvc_pending", "IC-CL-009", Status.FAIL, "PVC immich-library is Pending", 2),
        (
            "delete_secret",
            "IC-CL-002",
            Status.FAIL,
            "secret immich-server-secret does not exist",
            2,
        ),
        (
            "drop_secret_key",
            "IC-CL-002",
            Status.FAIL,
            "immich-postgres-secret lacks key(s) password",
            2,
        ),
        ("weak_secret", "IC-CL-003", Status.WARN, "password has 9 characters (fewer than 16)", 1),
        ("no_endpoints", "IC-CL-010", Status.FAIL, "service immich-ml has no endpoints", 2),
        ("old_image", "IC-CL-013", Status.WARN, "immich-server:v1.117.0", 1),
        ("bad_config_json", "IC-CL-004", Status.FAIL, "immich-config.json is not valid JSON", 2),
        (
            "evicting_redis_config",
            "IC-CL-014",
            Status.WARN,
            "immich-redis-config data redis.conf",
            1,
        ),
    ],
)
def test_each_injected_fault(
    fake_cluster: Any,
    cluster_args: list[str],
    capsys: pytest.CaptureFixture[str],
    fault: str,
    code: str,
    status: Status,
    text: str,
    exit_code: int,
) -> None:
    _fault(fault)(fake_cluster)
    outcome = run_json([*cluster_args, *CLUSTER], capsys)
    record = assert_verdict(outcome, code, status, text, exit_code)
    if code == "IC-CL-003":
        assert "immich123" not in record.to_json()


def test_crashloop_names_the_last_events(
    fake_cluster: Any, cluster_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_cluster.crashloop("postgres")
    _code, record = run_json([*cluster_args, "--only", "IC-CL-006,IC-CL-007", "--no-save"], capsys)
    assert "last events:" in message(record, "IC-CL-006")
    assert statuses(record)["IC-CL-007"] == Status.WARN


def test_with_the_shipped_rbac_verify_reads_everything(
    fake_cluster: Any, cluster_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_cluster.enforce_rbac("immichcheck")
    code, record = run_json([*cluster_args, *CLUSTER], capsys)
    assert [(c.code, c.message) for c in record.checks if c.status != Status.PASS] == []
    assert code == 0


def test_forbidden_list_is_error_not_fail(
    fake_cluster: Any, cluster_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_cluster.forbid("list", "pods", namespace="immich")
    code, record = run_json([*cluster_args, "--only", "IC-CL-006", "--no-save"], capsys)
    assert statuses(record) == {"IC-CL-006": Status.ERROR}
    assert "cannot read Pod objects" in message(record, "IC-CL-006")
    assert "403" in message(record, "IC-CL-006")
    assert code == 3


def test_bad_token_is_error(
    fake_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session_kubeconfig = fake_cluster.kubeconfig_path
    config = fake_cluster.write_kubeconfig(tmp_path / "kubeconfig", token="NotTheRightTokenAtAll")
    fake_cluster.kubeconfig_path = session_kubeconfig  # later tests keep the right one
    code, record = run_json(["--kubeconfig", str(config), *CLUSTER], capsys)
    first = record.checks[0]
    assert (first.code, first.status) == ("IC-CL-001", Status.ERROR)
    assert "401" in first.message
    assert "NotTheRightTokenAtAll" not in record.to_json()
    assert code == 3


def test_secret_values_never_printed_in_any_format(
    fake_cluster: Any, cluster_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "Xq7!pZ2@rT9#wL4$vN8%"
    fake_cluster.set_secret("immich-server-secret", {"jwt-secret": secret})
    fake_cluster.set_secret(
        "immich-postgres-secret", {"username": "immich", "password": STRONG_JWT}
    )
    for output_format in ("table", "json", "junit", "nagios", "prometheus", "markdown"):
        _code, out, err = run_cli([*cluster_args, *CLUSTER, "--format", output_format], capsys)
        for value in (secret, STRONG_JWT, fake_cluster.token):
            assert value not in out + err, output_format


@pytest.mark.parametrize("password", ["immich", "postgres", "password"])
def test_common_passwords_alter_no_message(
    fake_cluster: Any,
    cluster_args: list[str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    password: str,
) -> None:
    """A password that is also an ordinary word leaves every message, in every format, whole."""
    fake_cluster.set_secret(
        "immich-postgres-secret", {"username": "immich", "password": STRONG_JWT}
    )
    _, strong = run_json([*cluster_args, *CLUSTER], capsys)
    fake_cluster.set_secret("immich-postgres-secret", {"username": "immich", "password": password})
    reports = tmp_path / "reports"
    _, weak = run_json([*cluster_args, "--only", "cluster", "--reports-dir", str(reports)], capsys)
    # The weak-password finding names the secret whole (it once read ***-postgres-secret).
    weak_values = [c for c in weak.checks if c.code == "IC-CL-003" and c.status == Status.WARN]
    assert [c.message for c in weak_values] == [
        f"immich-postgres-secret has weak values: password has {len(password)} characters "
        "(fewer than 16)"
    ]

    # Every other verdict reads exactly as with a strong password: nothing was masked.
    def others(record: RunRecord) -> list[tuple[str, str, Status, str]]:
        return [
            (c.code, c.target, c.status, c.message)
            for c in record.checks
            if (c.code, c.target) != ("IC-CL-003", "secret/immich-postgres-secret")
        ]

    assert others(weak) == others(strong)
    saved = "".join(f.read_text() for f in reports.rglob("*.json"))
    assert "immich-postgres-secret has weak values" in saved
    for output_format in ("table", "json", "junit", "nagios", "prometheus", "markdown"):
        _code, out, _err = run_cli([*cluster_args, *CLUSTER, "--format", output_format], capsys)
        assert "***" not in out, output_format
        assert "immich-postgres-secret" in out or output_format in ("nagios", "prometheus")


def test_dump_from_the_fake_cluster_matches_the_live_run(
    fake_cluster: Any, cluster_args: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`kubectl get ... -o json` output gives the same verdicts offline as the live API."""
    import json
    import shutil
    import subprocess

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    fake_cluster.place_on_node("ml", "node03")
    kinds = (
        "namespace,pods,services,endpoints,pvc,configmaps,events,deployments,statefulsets,ingresses"
    )
    listing = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(fake_cluster.kubeconfig_path),
            "get",
            kinds,
            "-n",
            "immich",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    secrets = subprocess.run(
        [kubectl, "--kubeconfig", str(fake_cluster.kubeconfig_path), "get", "secret",
         "immich-postgres-secret", "immich-server-secret", "-n", "immich", "-o", "json"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    items = json.loads(listing)["items"] + json.loads(secrets)["items"]
    dump = tmp_path / "dump.json"
    dump.write_text(json.dumps({"kind": "List", "apiVersion": "v1", "items": items}))
    _, live = run_json([*cluster_args, *CLUSTER], capsys)
    _, offline = run_json(["--from-dump", str(dump), *CLUSTER], capsys)

    def verdicts(record: RunRecord) -> list[tuple[str, str, Status]]:
        return [(c.code, c.target, c.status) for c in record.checks]

    assert verdicts(offline) == verdicts(live)
    assert statuses(offline)["IC-CL-008"] == Status.FAIL


def _readme_dump(fake_cluster: Any, path: Path, *, leave_out: str = "") -> Path:
    """Run the README's dump commands (kubectl against the fake API), appended into `path`."""
    import re
    import shlex
    import shutil
    import subprocess

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    commands = re.findall(r"^  (kubectl get .*) >>? cluster\.json$", readme, re.MULTILINE)
    assert len(commands) == 4, commands
    with path.open("w") as dump:
        for command in commands:
            argv = shlex.split(command)
            if leave_out:
                argv = [
                    ",".join(k for k in a.split(",") if k != leave_out) if "," in a else a
                    for a in argv
                ]
                if leave_out in argv:
                    continue  # the whole command (the secrets)
            argv = [kubectl, "--kubeconfig", str(fake_cluster.kubeconfig_path), *argv[1:]]
            dump.write(
                subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout
            )
    return path


def test_readme_dump_commands_are_what_verify_reads() -> None:
    from immichcheck.clients.kubernetes_dump import dump_commands
    from immichcheck.deploy.expected_state import load_expected_state

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    expected = load_expected_state()
    for command in dump_commands(expected.namespace, list(expected.secrets)):
        assert f"  {command} >" in readme, command


def test_readme_dump_gives_the_live_verdicts(
    fake_cluster: Any, cluster_args: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake_cluster.place_on_node("ml", "node03")
    fake_cluster.remove_endpoints("immich-ml")
    dump = _readme_dump(fake_cluster, tmp_path / "cluster.json")
    live_code, live = run_json([*cluster_args, *CLUSTER], capsys)
    dump_code, offline = run_json(["--from-dump", str(dump), *CLUSTER], capsys)

    def verdicts(record: RunRecord) -> list[tuple[str, str, Status, str]]:
        return [(c.code, c.target, c.status, c.message) for c in record.checks]

    assert verdicts(offline) == verdicts(live)
    assert statuses(offline)["IC-CL-010"] == Status.FAIL
    assert dump_code == live_code == 2


@pytest.mark.parametrize(
    ("left_out", "code", "skipped"),
    [
        (
            "endpoints",
            "IC-CL-010",
            "skipped: not in the dump: add `endpoints` to the kubectl command",
        ),
        (
            "persistentvolumeclaims",
            "IC-CL-009",
            "skipped: not in the dump: add `persistentvolumeclaims` to the kubectl command",
        ),
        (
            "secret",
            "IC-CL-002",
            "skipped: not in the dump: add the secrets (`kubectl get secret "
            "immich-postgres-secret immich-server-secret -n immich -o json`)",
        ),
    ],
)
def test_a_kind_left_out_of_the_dump_is_skip_naming_it(
    fake_cluster: Any,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    left_out: str,
    code: str,
    skipped: str,
) -> None:
    dump = _readme_dump(fake_cluster, tmp_path / "cluster.json", leave_out=left_out)
    exit_code, record = run_json(["--from-dump", str(dump), *CLUSTER], capsys)
    results = [c for c in record.checks if c.code == code]
    assert [(c.status, c.message) for c in results] == [(Status.SKIP, skipped)]
    # Nothing else turns into a FAIL or ERROR for the gap: the healthy cluster passes.
    assert {c.status for c in record.checks} <= {Status.PASS, Status.SKIP}
    assert exit_code == 0


def test_catalogue_size_is_what_list_prints(capsys: pytest.CaptureFixture[str]) -> None:
    _code, out, _err = run_cli(["--list", "--format", "json"], capsys)
    import json

    assert [entry["code"] for entry in json.loads(out)] == list(load_catalogue())
    assert MEDIA_FOLDERS  # the media layout the storage checks expect is shared with that module


def test_in_cluster_uses_the_service_account_and_cluster_dns(
    fake_cluster: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in fake_cluster.service_account_env(tmp_path / "serviceaccount").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    code, record = run_json(["--only", "cluster,IC-PG-101", "--timeout", "1", "--no-save"], capsys)
    assert record.settings["reached"]["kubernetes"] == "in-cluster service account"
    assert record.settings["reached"]["postgres"] == "cluster DNS"
    cluster = [c for c in record.checks if c.component == "cluster"]
    assert {c.status for c in cluster} == {Status.PASS}
    # This test runs outside a real cluster, so the service's DNS name cannot resolve here.
    postgres = next(c for c in record.checks if c.code == "IC-PG-101")
    assert postgres.status == Status.ERROR
    assert postgres.message.startswith(
        "could not run: cannot resolve the host of immich-postgres.immich.svc.cluster.local:5432/"
    )
    assert code == 3
