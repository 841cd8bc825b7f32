"""`immichcheck support-bundle` against the fake Kubernetes API and the fake Immich server.

Known secret values are planted where real ones end up (the two Secrets, container logs, a
literal env value, a ConfigMap, the API key on the command line, a bearer token and a URL
password immichcheck never saw) and every byte of every archive member is searched for them.
"""

from __future__ import annotations

import base64
import json
import secrets
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from immichcheck.cli.main import main
from immichcheck.history.store import save_run
from tests.test_store_factories import generated, run

SERVER_IMAGE_DRIFT = "ghcr.io/immich-app/immich-server:v2.6.0"


def _plant(fake_cluster: Any) -> dict[str, str]:
    """Secret values in the cluster, its logs, a pod spec and a ConfigMap; returns them."""
    planted = {
        "postgres password": "pg-" + secrets.token_urlsafe(24),
        "jwt secret": "jwt-" + secrets.token_urlsafe(32),
        "literal env token": "env-" + secrets.token_urlsafe(20),
        "bearer token": "bearer" + secrets.token_urlsafe(20),
        "unseen URL password": "unseen-" + secrets.token_urlsafe(16),
    }
    pg, jwt = planted["postgres password"], planted["jwt secret"]
    fake_cluster.set_secret("immich-postgres-secret", {"username": "immich", "password": pg})
    fake_cluster.set_secret("immich-server-secret", {"jwt-secret": jwt})
    fake_cluster.append_log(
        "server", f"DB_URL=postgresql://immich:{pg}@immich-postgres:5432/immich"
    )
    fake_cluster.append_log("server", f"signing sessions with {jwt}")
    fake_cluster.append_log("postgres", f'FATAL: password authentication failed, tried "{pg}"')
    fake_cluster.append_log("ml", f"GET /predict Authorization: Bearer {planted['bearer token']}")
    fake_cluster.append_log(
        "redis", f"client redis://default:{planted['unseen URL password']}@immich-redis:6379"
    )
    fake_cluster.set_configmap_data(
        "immich-server-config", {"DEBUG_DSN": f"postgresql://immich:{pg}@db:5432/immich"}
    )
    # A token typed into the Deployment (and so into its pods) instead of a secretKeyRef.
    token = {"name": "IMMICH_API_TOKEN", "value": planted["literal env token"]}
    workload = fake_cluster.workload_of("server")
    workload["spec"]["template"]["spec"]["containers"][0].setdefault("env", []).append(token)
    fake_cluster.state.put(workload)
    for pod in fake_cluster.pods_of("server"):
        pod["spec"]["containers"][0].setdefault("env", []).append(token)
        fake_cluster.state.put(pod)
    fake_cluster.set_image("server", SERVER_IMAGE_DRIFT)
    fake_cluster.crashloop("ml", restarts=3)
    return planted


def _bundle(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as raised:
        main(["support-bundle", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    return int(raised.value.code or 0), out


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as archive:
        result = {}
        for info in archive.getmembers():
            handle = archive.extractfile(info)
            assert handle is not None, info.name
            result[info.name.split("/", 1)[1]] = handle.read()
        return result


def test_bundle_is_complete_and_holds_no_secret(
    fake_cluster: Any,
    fake_immich_server: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    planted = _plant(fake_cluster)
    planted["api key"] = fake_immich_server.admin_api_key
    planted["--pg-dsn password"] = "dsn-" + secrets.token_urlsafe(16)
    reports = tmp_path / "reports"
    bench_run = run(1, benchmarks=[generated("redis.get", {"concurrency": 1}, 0.0002, count=50)])
    save_run(bench_run, reports)
    output = tmp_path / "out"
    output.mkdir()
    code, printed = _bundle(
        capsys,
        [
            "--kubeconfig", str(fake_cluster.kubeconfig_path),
            "--server-url", fake_immich_server.url,
            "--api-key", fake_immich_server.admin_api_key,
            "--pg-dsn", f"postgresql://immich:{planted['--pg-dsn password']}@127.0.0.1:9/immich",
            "--no-inference", "--timeout", "5", "--tail", "50",
            "--reports-dir", str(reports),
            "--output", str(output),
        ],
    )  # fmt: skip
    assert code == 0
    (archive,) = output.glob("immichcheck-bundle-*.tar.gz")
    assert archive.stat().st_mode & 0o777 == 0o600
    members = _members(archive)

    # Redaction: no planted value, nor its base64 form, in any member's bytes.
    for what, value in planted.items():
        encoded = base64.b64encode(value.encode()).decode()
        for name, data in members.items():
            assert value.encode() not in data, f"{what} found in {name}"
            assert encoded.encode() not in data, f"base64 {what} found in {name}"

    # Completeness: the printed list, the index and the archive agree; nothing is empty.
    lines = printed.splitlines()[1:]
    end = lines.index("not collected:") if "not collected:" in lines else len(lines)
    listed = [line.split()[0] for line in lines[:end]]
    assert set(listed) == set(members)
    index = members["index.txt"].decode()
    for name, data in members.items():
        assert data.strip(), f"{name} is empty"
        if name != "index.txt":
            assert name in index
    pods = {p["metadata"]["name"]: p for p in fake_cluster.pods_of("server")}
    (server_pod,) = pods
    ml_pod = fake_cluster.pods_of("ml")[0]["metadata"]["name"]
    expected = {
        "verify.json",
        "verify.txt",
        "versions.json",
        "nodes.json",
        "host.json",
        "cluster/pods.txt",
        "cluster/pods.yaml",
        "cluster/events.txt",
        "cluster/secrets.txt",
        "cluster/drift.diff",
        "cluster/configmaps/immich-server-config.yaml",
        "cluster/live/Deployment/immich-server.yaml",
        "cluster/live/Ingress/immich-ingress.yaml",
        f"logs/{server_pod}/immich-server.log",
        f"logs/{ml_pod}/machine-learning.previous.log",
        f"bench/{bench_run.run_id}.json",
    }
    assert expected <= set(members), expected - set(members)
    for component in ("server", "ml", "postgres", "redis"):
        (pod,) = fake_cluster.pods_of(component)
        assert any(n.startswith(f"logs/{pod['metadata']['name']}/") for n in members), component

    # What was scrubbed is still readable around the mask, and structured files still parse.
    server_log = members[f"logs/{server_pod}/immich-server.log"].decode()
    assert "DB_URL=postgresql://immich:***@immich-postgres:5432/immich" in server_log
    assert "signing sessions with ***" in server_log
    record = json.loads(members["verify.json"])
    assert record["kind"] == "verify" and record["checks"]
    assert yaml.safe_load(members["cluster/pods.yaml"])
    live = yaml.safe_load(members["cluster/live/Deployment/immich-server.yaml"])
    env = live["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "IMMICH_API_TOKEN", "value": "***"} in env
    assert "jwt-secret (values never included)" in members["cluster/secrets.txt"].decode()

    # Drift and versions.
    diff = members["cluster/drift.diff"].decode()
    assert "-        image: ghcr.io/immich-app/immich-server:v2.7.5" in diff
    assert f"+        image: {SERVER_IMAGE_DRIFT}" in diff
    assert "+        - name: IMMICH_API_TOKEN" in diff
    versions = json.loads(members["versions.json"])
    assert versions["services"]["immich"] == "v2.7.5"
    assert any(i["image"] == SERVER_IMAGE_DRIFT for i in versions["images_running"])
    assert "BackOff" in members["cluster/events.txt"].decode()


def test_tail_and_since_limit_the_logs(
    fake_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for number in range(20):
        fake_cluster.append_log("redis", f"line {number}")
    target = tmp_path / "bundle.tar.gz"
    code, printed = _bundle(
        capsys,
        [
            "--kubeconfig", str(fake_cluster.kubeconfig_path), "--no-inference",
            "--tail", "3", "--since", "10m", "--output", str(target),
            "--reports-dir", str(tmp_path / "none"),
        ],
    )  # fmt: skip
    assert code == 0 and printed.startswith(f"wrote {target} (")
    assert "bench: no benchmark run under" in printed
    members = _members(target)
    (redis_pod,) = fake_cluster.pods_of("redis")
    log = members[f"logs/{redis_pod['metadata']['name']}/redis.log"].decode()
    assert [line.split(" ", 1)[1] for line in log.splitlines()] == ["line 17", "line 18", "line 19"]
    # --since 10m: the start-up lines of days ago are gone from the other logs too.
    (postgres_pod,) = fake_cluster.pods_of("postgres")
    assert f"logs/{postgres_pod['metadata']['name']}/postgres.log" not in members


def test_output_folder_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["support-bundle", "--output", str(tmp_path / "missing" / "b.tar.gz")])
    assert raised.value.code == 3
    assert "folder" in capsys.readouterr().err


def test_bundle_round_trips_through_verify_from_dump(
    fake_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bundle's cluster/dump.json (or the archive) gives the live run's cluster verdicts."""
    from immichcheck.common.records import RunRecord, Status
    from tests.test_verify_integration import run_json

    fake_cluster.place_on_node("ml", "node03")  # a WARN
    fake_cluster.crashloop("redis", restarts=4)  # a FAIL with events
    fake_cluster.set_image("server", SERVER_IMAGE_DRIFT)  # drift
    archive = tmp_path / "bundle.tar.gz"
    code, _printed = _bundle(
        capsys,
        [
            "--kubeconfig", str(fake_cluster.kubeconfig_path), "--no-inference",
            "--output", str(archive), "--reports-dir", str(tmp_path / "none"),
        ],
    )  # fmt: skip
    assert code == 0
    dump_file = tmp_path / "dump.json"
    dump_file.write_bytes(_members(archive)["cluster/dump.json"])
    cluster = ["--only", "cluster", "--no-save"]
    live_code, live = run_json(
        ["--kubeconfig", str(fake_cluster.kubeconfig_path), *cluster], capsys
    )
    archive_code, from_archive = run_json(["--from-dump", str(archive), *cluster], capsys)
    file_code, from_file = run_json(["--from-dump", str(dump_file), *cluster], capsys)

    def verdicts(record: RunRecord) -> list[tuple[str, str, Status, str]]:
        return [
            (c.code, c.target, c.status, c.message) for c in record.checks if c.code != "IC-CL-003"
        ]

    assert verdicts(from_archive) == verdicts(live)
    assert verdicts(from_file) == verdicts(live)
    assert {c.status for c in live.checks} >= {Status.PASS, Status.WARN, Status.FAIL}
    assert archive_code == file_code == live_code == 2
    # The one difference: the bundle never holds secret values, so their strength is SKIP.
    assert {c.status for c in live.checks if c.code == "IC-CL-003"} == {Status.PASS}
    assert [c.message for c in from_archive.checks if c.code == "IC-CL-003"] == [
        "skipped: the dump holds the secrets' keys but not their values (a support bundle "
        "masks them): run verify against the cluster to judge the values"
    ]
    # The dump is the kubectl form: a List of objects with their kinds.
    document = json.loads(dump_file.read_text())
    assert document["kind"] == "List"
    kinds = {item["kind"] for item in document["items"]}
    assert {"Namespace", "Pod", "Service", "Endpoints", "Secret", "Deployment"} <= kinds
    for item in document["items"]:
        if item["kind"] == "Secret":
            assert set(item["data"].values()) == {"***"}


@pytest.mark.parametrize("password", ["immich", "postgres", "password"])
def test_bundle_with_a_common_password_keeps_names_and_hides_the_value(
    fake_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], password: str
) -> None:
    fake_cluster.set_secret("immich-postgres-secret", {"username": "immich", "password": password})
    # The same password typed into the server's pod spec and logged in a DSN.
    literal = {"name": "DB_PASSWORD", "value": password}
    for pod in fake_cluster.pods_of("server"):
        pod["spec"]["containers"][0].setdefault("env", []).append(literal)
        fake_cluster.state.put(pod)
    fake_cluster.append_log(
        "server", f"DB_URL=postgresql://immich:{password}@immich-postgres/immich"
    )
    archive = tmp_path / "bundle.tar.gz"
    code, _printed = _bundle(
        capsys,
        [
            "--kubeconfig", str(fake_cluster.kubeconfig_path), "--no-inference",
            "--output", str(archive), "--reports-dir", str(tmp_path / "none"),
        ],
    )  # fmt: skip
    assert code == 0
    members = _members(archive)
    everything = b"".join(members.values()).decode()
    assert "***-" not in everything and "-***" not in everything  # no name cut by the mask
    record = json.loads(members["verify.json"])
    (weak,) = [c for c in record["checks"] if c["code"] == "IC-CL-003" and c["status"] == "WARN"]
    assert weak["message"].startswith("immich-postgres-secret has weak values: password has")
    pods = yaml.safe_load(members["cluster/pods.yaml"])
    server_env = [e for p in pods for c in p["spec"]["containers"] for e in c.get("env") or []]
    assert {"name": "DB_PASSWORD", "value": "***"} in server_env
    assert literal not in server_env
    (server_pod,) = fake_cluster.pods_of("server")
    log = members[f"logs/{server_pod['metadata']['name']}/immich-server.log"].decode()
    assert "DB_URL=postgresql://immich:***@immich-postgres/immich" in log
    encoded = base64.b64encode(password.encode()).decode()
    dump = json.loads(members["cluster/dump.json"])
    for item in dump["items"]:
        if item["kind"] == "Secret":
            assert encoded not in json.dumps(item) and set(item["data"].values()) == {"***"}
