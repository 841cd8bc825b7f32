"""The expected-state loader: what the shipped manifests/ tell the rest of immichcheck."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from immichcheck.common.errors import ExitCode
from immichcheck.common.project_files import project_folder
from immichcheck.deploy.bench_job import render_bench_job
from immichcheck.deploy.expected_state import (
    ManifestsError,
    load_expected_state,
    load_manifest_documents,
    parse_postgresql_conf,
    parse_quantity,
    parse_redis_conf,
)

SHIPPED = project_folder("manifests")


@pytest.fixture
def manifests_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped manifests."""
    target = tmp_path / "manifests"
    shutil.copytree(SHIPPED, target)
    return target


def test_documents_cover_every_file_but_kustomization() -> None:
    documents = load_manifest_documents()
    files = {doc.file.name for doc in documents}
    assert "kustomization.yaml" not in files
    kustomization = yaml.safe_load((SHIPPED / "kustomization.yaml").read_text())
    assert files == set(kustomization["resources"])
    # Apply order: file name order, documents in file order.
    names = [doc.file.name for doc in documents]
    assert names == sorted(names)
    assert all(isinstance(doc.body, dict) and doc.kind for doc in documents)


def test_components_names_labels_ports_and_placement() -> None:
    state = load_expected_state()
    assert state.namespace == "immich"
    assert state.node == "node05"
    postgres, redis, ml, server = (
        state.component(k) for k in ("postgres", "redis", "ml", "server")
    )
    assert (postgres.name, dict(postgres.labels), postgres.port) == (
        "immich-postgres",
        {"app": "immich-postgres"},
        5432,
    )
    assert (redis.name, redis.port, redis.service) == ("immich-redis", 6379, "immich-redis")
    assert (ml.name, dict(ml.labels), ml.port, ml.probe_paths) == (
        "immich-ml",
        {"app": "immich-ml"},
        3003,
        ("/ping",),
    )
    assert server.probe_paths == ("/api/server/ping",)
    assert state.server_port == server.port == int(server.env["IMMICH_PORT"])
    assert [c.node for c in (postgres, redis, ml)] == ["node05"] * 3
    assert server.node is None
    for spec in state.components.values():
        assert ":" in spec.image and not spec.image.endswith(":latest")
    assert server.image.rsplit(":", 1)[1] == ml.image.rsplit(":", 1)[1]


def test_secrets_configmaps_claims_and_host_paths() -> None:
    state = load_expected_state()
    assert state.secrets == {
        "immich-postgres-secret": ("username", "password"),
        "immich-server-secret": ("jwt-secret",),
    }
    server = state.component("server")
    assert ("JWT_SECRET", "immich-server-secret", "jwt-secret") in server.secret_refs
    assert set(server.pvcs) == {
        "immich-library",
        "immich-uploads",
        "immich-thumbs",
        "immich-backups",
    }
    assert state.component("postgres").host_paths == ("/opt/immich/postgres",)
    assert state.component("ml").host_paths == ("/opt/immich/ml-models",)
    # envFrom ConfigMaps are resolved into the component's literal env.
    assert state.component("ml").env["MACHINE_LEARNING_WORKERS"] == "2"
    assert "immich-config.json" in state.configmaps["immich-server-config"]
    library = state.pvcs["immich-library"]
    assert library.access_modes == ("ReadWriteMany",)
    assert library.request_bytes == 500 * 2**30
    assert library.volume_name == "immich-library-nfs"


def test_services_nodeport_and_ingress() -> None:
    state = load_expected_state()
    assert state.nodeport_service == "immich-server-nodeport"
    assert state.nodeport == 31283
    nodeport = state.services["immich-server-nodeport"]
    assert nodeport.type == "NodePort"
    assert (nodeport.session_affinity, nodeport.session_affinity_timeout) == ("ClientIP", 10800)
    assert state.ingress_hosts == ("immich.home", "photos.home")
    assert state.ingress_annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"
    assert state.service_url("ml") == "http://immich-ml.immich.svc.cluster.local:3003"
    assert state.service_url("server") == (
        f"http://immich-server.immich.svc.cluster.local:{state.server_port}"
    )
    assert state.service_url("postgres") == (
        "postgresql://immich-postgres.immich.svc.cluster.local:5432/immich"
    )
    assert state.service_url("redis") == "redis://immich-redis.immich.svc.cluster.local:6379/0"
    with pytest.raises(ManifestsError, match="no component 'nope'"):
        state.component("nope")


def test_redis_and_postgres_settings_come_from_the_configmaps() -> None:
    state = load_expected_state()
    assert state.redis_settings["maxmemory"] == "400mb"
    assert state.redis_settings["maxmemory-policy"] == "noeviction"
    assert state.redis_settings["appendonly"] == "yes"
    assert state.redis_settings["appendfsync"] == "everysec"
    assert state.postgres_settings["random_page_cost"] == "1.1"
    assert "vchord.so" in state.postgres_settings["shared_preload_libraries"]
    assert state.postgres_database == "immich"


def test_parse_redis_conf_handles_comments_quotes_and_repeats() -> None:
    text = '# comment\n\nMaxMemory 400mb\nsave 900 1\nsave 300 10\ndir "/data dir"\n'
    assert parse_redis_conf(text) == {
        "maxmemory": "400mb",
        "save": "900 1 300 10",
        "dir": "/data dir",
    }


def test_parse_postgresql_conf_handles_quotes_comments_and_includes() -> None:
    text = (
        "include_if_exists 'other.conf'\n"
        "shared_buffers = 256MB   # a quarter\n"
        "log_line_prefix = '%m # [%p] '\n"
        "random_page_cost 1.1\n"
        "search_path = '\"$user\", public'\n"
        "# all comment\n"
    )
    assert parse_postgresql_conf(text) == {
        "shared_buffers": "256MB",
        "log_line_prefix": "%m # [%p] ",
        "random_page_cost": "1.1",
        "search_path": '"$user", public',
    }
    with pytest.raises(ManifestsError, match="cannot parse line"):
        parse_postgresql_conf("= oops\n")


def test_parse_quantity() -> None:
    assert parse_quantity("20Gi") == 20 * 2**30
    assert parse_quantity("500M") == 500 * 10**6
    assert parse_quantity("1024") == 1024
    with pytest.raises(ManifestsError, match="not a storage quantity"):
        parse_quantity("lots")


def test_state_is_cached_and_reloaded_when_a_file_changes(manifests_copy: Path) -> None:
    first = load_expected_state(manifests_copy)
    started = time.perf_counter()
    again = load_expected_state(manifests_copy)
    assert time.perf_counter() - started < 0.05
    assert again is first
    redis_file = manifests_copy / "03-redis.yaml"
    redis_file.write_text(redis_file.read_text().replace("maxmemory 400mb", "maxmemory 300mb"))
    changed = load_expected_state(manifests_copy)
    assert changed.redis_settings["maxmemory"] == "300mb"


def test_missing_folder_and_bad_yaml_are_one_line_errors(manifests_copy: Path) -> None:
    with pytest.raises(ManifestsError) as missing:
        load_expected_state(manifests_copy / "absent")
    assert missing.value.exit_code == ExitCode.UNKNOWN
    assert "manifests folder was not found" in missing.value.message
    (manifests_copy / "03-redis.yaml").write_text("kind: [unclosed\n")
    with pytest.raises(ManifestsError, match=r"^03-redis.yaml: bad YAML: .* at line \d+"):
        load_expected_state(manifests_copy)


def test_workload_without_component_annotation_is_reported(manifests_copy: Path) -> None:
    redis_file = manifests_copy / "03-redis.yaml"
    redis_file.write_text(redis_file.read_text().replace("immichcheck/component: redis", "x: y"))
    with pytest.raises(
        ManifestsError, match="no workload annotated immichcheck/component for: redis"
    ):
        load_expected_state(manifests_copy)


def test_render_bench_job_fills_node_name_and_args() -> None:
    job = render_bench_job("node03", "immichcheck-bench-node03", ["bench", "--profile", "quick"])
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["name"] == "immichcheck-bench-node03"
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "node03"}
    assert pod["containers"][0]["args"] == ["bench", "--profile", "quick"]
    assert job["spec"]["backoffLimit"] == 0
    assert pod["securityContext"]["runAsNonRoot"] is True
    with pytest.raises(ManifestsError, match="not a valid Job name"):
        render_bench_job("node03", "Bad_Name")
    with pytest.raises(ManifestsError, match="not a valid node name"):
        render_bench_job("node03\nx: y", "ok")


def test_shipped_redis_conf_is_accepted_by_redis_server(tmp_path: Path) -> None:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    text = load_expected_state().configmaps["immich-redis-config"]["redis.conf"]
    # `dir /data` is the container's volume; Redis checks it while reading the file.
    config = tmp_path / "redis.conf"
    config.write_text(
        "".join(line for line in text.splitlines(True) if not line.startswith("dir "))
    )
    # Port 0 and no socket: Redis parses the whole file, then exits without listening.
    result = subprocess.run(
        [server, str(config), "--port", "0", "--dir", str(tmp_path), "--daemonize", "no"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "FATAL CONFIG FILE ERROR" not in result.stdout + result.stderr
    assert "Configuration loaded" in result.stdout


def test_shipped_postgresql_conf_names_real_postgresql_15_parameters() -> None:
    binary = Path("/usr/lib/postgresql/15/bin/postgres")
    if not binary.exists():
        pytest.skip("PostgreSQL 15 server binaries are not installed")
    described = subprocess.run(
        [str(binary), "--describe-config"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    parameters = {line.split("\t", 1)[0]: line.split("\t") for line in described.splitlines()}
    settings = load_expected_state().postgres_settings
    # Dotted names belong to extensions (pg_stat_statements.*), unknown to the bare server.
    unknown = [name for name in settings if "." not in name and name not in parameters]
    assert unknown == []
    # Values of the numeric parameters must be numbers (with units where PostgreSQL has them).
    for name, value in settings.items():
        if "." not in name and parameters[name][3] in ("INTEGER", "REAL"):
            assert re.fullmatch(r"-?[0-9.]+(B|kB|MB|GB|TB|ms|s|min|h|d)?", value), (name, value)
