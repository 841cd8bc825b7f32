"""`manifests validate`: the shipped set is clean, and broken copies are reported line by line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from immichcheck.common.project_files import project_folder
from immichcheck.deploy.expected_state import ManifestDocument, load_manifest_documents
from immichcheck.deploy.validation import (
    DEFAULT_KUBERNETES_VERSION,
    image_problem,
    validate_manifests,
)
from tests.fixtures.cli import run_cli

SHIPPED = project_folder("manifests")
IMMICHCHECK = Path(sys.executable).parent / "immichcheck"


def broken_copy(tmp_path: Path, file: str, old: str, new: str, count: int = 1) -> Path:
    """A copy of the shipped manifests with `old` replaced by `new` in one file."""
    target = tmp_path / "manifests"
    shutil.copytree(SHIPPED, target)
    path = target / file
    text = path.read_text()
    assert text.count(old) >= count, f"{old!r} not in {file}"
    path.write_text(text.replace(old, new, count))
    return target


def problem_lines(directory: Path, schema: bool = False) -> list[str]:
    """The problem lines `validate` reports for a folder."""
    report = validate_manifests(directory, schema=schema)
    return [problem.line() for problem in report.problems]


# --- the shipped set -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    load_manifest_documents(SHIPPED),
    ids=lambda doc: f"{doc.file.name}:{doc.label}",
)
def test_every_shipped_object_is_schema_valid(document: ManifestDocument) -> None:
    import kubernetes_validate

    assert kubernetes_validate.validate(document.body, DEFAULT_KUBERNETES_VERSION, strict=True)


def test_shipped_manifests_have_no_problems() -> None:
    report = validate_manifests()
    assert report.problems == ()
    assert report.ok
    assert report.kubernetes_version == DEFAULT_KUBERNETES_VERSION
    assert report.files == len(list(SHIPPED.glob("[0-9]*.yaml")))


def test_every_shipped_image_is_pinned() -> None:
    text = "\n".join(path.read_text() for path in SHIPPED.glob("*.yaml"))
    images = [line.split("image:", 1)[1].strip() for line in text.splitlines() if "image:" in line]
    assert len(images) >= 6
    assert [image for image in images if image_problem(image)] == []


def test_kustomization_renders_every_object() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(SHIPPED)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    objects = [obj for obj in yaml.safe_load_all(rendered) if obj]
    assert len(objects) == len(load_manifest_documents(SHIPPED))
    namespaced = [o for o in objects if o["kind"] not in ("Namespace", "PersistentVolume")]
    for obj in namespaced:
        if obj["kind"] in ("StorageClass", "ClusterRole", "ClusterRoleBinding"):
            continue
        assert obj["metadata"]["namespace"] == "immich", obj["metadata"]["name"]


# --- broken copies: one problem each, with file, object and reason --------------------------


def test_service_target_port_that_no_container_has(tmp_path: Path) -> None:
    folder = broken_copy(tmp_path, "06-services.yaml", "targetPort: 6379", "targetPort: 6380")
    assert problem_lines(folder) == [
        "06-services.yaml: Service/immich-redis: port redis: targetPort 6380 is not a container "
        "port of the selected pods (has 6379)"
    ]


def test_missing_configmap(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path,
        "03-redis.yaml",
        "configMap:\n            name: immich-redis-config",
        "configMap:\n            name: immich-redis-conf",
    )
    assert problem_lines(folder) == [
        "03-redis.yaml: Deployment/immich-redis: volume config: ConfigMap immich-redis-conf "
        "does not exist"
    ]


def test_service_selector_that_matches_no_workload(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path,
        "06-services.yaml",
        "selector:\n    app: immich-ml",
        "selector:\n    app: immich-machine-learning",
    )
    assert problem_lines(folder) == [
        "06-services.yaml: Service/immich-ml: selector app=immich-machine-learning matches no "
        "workload's pod labels"
    ]


def test_bad_yaml(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path, "09-ingress.yaml", "ingressClassName: nginx", "ingressClassName: [nginx"
    )
    lines = problem_lines(folder)
    assert len(lines) == 1
    assert lines[0].startswith("09-ingress.yaml: -: bad YAML: ")
    assert " at line " in lines[0]


@pytest.mark.parametrize("schema", [True, False], ids=["schema", "no-schema"])
def test_unknown_kind(tmp_path: Path, schema: bool) -> None:
    folder = broken_copy(
        tmp_path,
        "10-monitoring.yaml",
        "apiVersion: v1\nkind: ConfigMap\n",
        "apiVersion: v1\nkind: ConfigMapp\n",
    )
    assert problem_lines(folder, schema=schema) == [
        "10-monitoring.yaml: ConfigMapp/immich-monitoring-config: unknown kind ConfigMapp (v1)"
    ]


def test_latest_tag(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path, "03-redis.yaml", "valkey/valkey:8.1.3-bookworm", "valkey/valkey:latest"
    )
    assert problem_lines(folder) == [
        "03-redis.yaml: Deployment/immich-redis: container redis: image "
        "docker.io/valkey/valkey:latest uses the latest tag (pin a version)"
    ]


def test_image_without_tag(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path,
        "04-machine-learning.yaml",
        "immich-machine-learning:v2.7.5",
        "immich-machine-learning",
    )
    assert problem_lines(folder) == [
        "04-machine-learning.yaml: Deployment/immich-ml: container machine-learning: image "
        "ghcr.io/immich-app/immich-machine-learning has no tag (pin a version)"
    ]


def test_nodeport_out_of_range(tmp_path: Path) -> None:
    folder = broken_copy(tmp_path, "06-services.yaml", "nodePort: 31283", "nodePort: 40000")
    assert problem_lines(folder) == [
        "06-services.yaml: Service/immich-server-nodeport: port http: nodePort 40000 is outside "
        "30000-32767"
    ]


def test_probe_port_that_is_not_a_container_port(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path,
        "04-machine-learning.yaml",
        "livenessProbe:\n            httpGet:\n              path: /ping\n              port: 3003",
        "livenessProbe:\n            httpGet:\n              path: /ping\n              port: 3004",
    )
    assert problem_lines(folder) == [
        "04-machine-learning.yaml: Deployment/immich-ml: container machine-learning: "
        "livenessProbe httpGet port 3004 is not a container port (has 3003)"
    ]


def test_missing_persistent_volume_claim(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path, "05-immich-server.yaml", "claimName: immich-thumbs", "claimName: immich-thumb"
    )
    assert problem_lines(folder) == [
        "05-immich-server.yaml: Deployment/immich-server: volume thumbs: PersistentVolumeClaim "
        "immich-thumb does not exist"
    ]


def test_secret_that_is_not_a_documented_manual_secret(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path,
        "05-immich-server.yaml",
        "name: immich-server-secret\n                  key: jwt-secret",
        "name: immich-jwt\n                  key: jwt-secret",
    )
    assert problem_lines(folder) == [
        "05-immich-server.yaml: Deployment/immich-server: container immich-server: env JWT_SECRET: "
        "secret immich-jwt is not one of the documented manual secrets (immich-postgres-secret, "
        "immich-server-secret)"
    ]


def test_manual_secret_key_that_is_not_documented(tmp_path: Path) -> None:
    folder = broken_copy(tmp_path, "02-database.yaml", "key: password", "key: passwd")
    assert problem_lines(folder) == [
        "02-database.yaml: Deployment/immich-postgres: container postgres: env POSTGRES_PASSWORD: "
        "secret immich-postgres-secret has no key passwd (documented keys: username, password)"
    ]


def test_schema_violation_unknown_field(tmp_path: Path) -> None:
    folder = broken_copy(tmp_path, "03-redis.yaml", "  replicas: 1\n", "  replica: 1\n")
    assert problem_lines(folder, schema=True) == [
        "03-redis.yaml: Deployment/immich-redis: "
        f"schema (Kubernetes {DEFAULT_KUBERNETES_VERSION}): spec: "
        "Additional properties are not allowed ('replica' was unexpected)"
    ]


def test_secret_object_in_the_manifests(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path,
        "10-monitoring.yaml",
        "apiVersion: v1\nkind: ConfigMap\n",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leaked\n  namespace: immich\n"
        "stringData:\n  password: hunter2\n---\napiVersion: v1\nkind: ConfigMap\n",
    )
    assert problem_lines(folder) == [
        "10-monitoring.yaml: Secret/leaked: secrets must not be in the manifests: create them "
        "with kubectl create secret (manifests/README.md)"
    ]


def test_ingress_backend_port_the_service_lacks(tmp_path: Path) -> None:
    folder = broken_copy(tmp_path, "09-ingress.yaml", "number: 2283", "number: 3001")
    assert problem_lines(folder) == [
        "09-ingress.yaml: Ingress/immich-ingress: backend: Service immich-server has no port 3001 "
        "(it has 2283, 8081, 8082)"
    ]


def test_configmap_subpath_key_missing(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path, "02-database.yaml", "subPath: postgresql.conf", "subPath: postgres.conf"
    )
    assert problem_lines(folder) == [
        "02-database.yaml: Deployment/immich-postgres: container postgres: volumeMount "
        "/etc/postgresql/postgresql.override.conf: ConfigMap immich-postgres-config has no key "
        "postgres.conf"
    ]


def test_immich_config_json_must_parse(tmp_path: Path) -> None:
    folder = broken_copy(tmp_path, "05-immich-server.yaml", '"enabled": true,', '"enabled": true,,')
    lines = problem_lines(folder)
    assert len(lines) == 1
    assert lines[0].startswith(
        "05-immich-server.yaml: ConfigMap/immich-server-config: immich-config.json: not valid JSON:"
    )


def test_machine_learning_url_must_name_a_service_port(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path,
        "05-immich-server.yaml",
        "value: http://immich-ml:3003",
        "value: http://immich-ml:3033",
    )
    assert problem_lines(folder) == [
        "05-immich-server.yaml: Deployment/immich-server: container immich-server: env "
        "IMMICH_MACHINE_LEARNING_URL: Service immich-ml has no port 3033 (it has 3003)"
    ]


def test_pod_pinned_away_from_its_local_volume(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path,
        "03-redis.yaml",
        "kubernetes.io/hostname: node05",
        "kubernetes.io/hostname: node04",
    )
    assert problem_lines(folder) == [
        "03-redis.yaml: Deployment/immich-redis: volume data: claim immich-redis-data is bound "
        "to PersistentVolume immich-redis-nvme on node05, but the pod is pinned to node04"
    ]


def test_bench_job_template_is_checked_like_a_pod(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path, "11-immichcheck.yaml", "claimName: immich-uploads", "claimName: immich-upload"
    )
    assert problem_lines(folder) == [
        "11-immichcheck.yaml: ConfigMap/immichcheck-bench-job-template: job.yaml: volume uploads: "
        "PersistentVolumeClaim immich-upload does not exist"
    ]


def test_kustomization_must_list_every_file(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path, "kustomization.yaml", "  - 09-ingress.yaml\n", "  - 08-gone.yaml\n"
    )
    assert problem_lines(folder) == [
        "kustomization.yaml: -: resource 08-gone.yaml does not exist",
        "kustomization.yaml: -: 09-ingress.yaml is not listed in resources "
        "(kubectl apply -k would skip it)",
    ]


def test_node_port_used_twice(tmp_path: Path) -> None:
    folder = broken_copy(
        tmp_path,
        "06-services.yaml",
        "  type: ClusterIP\n  selector:\n    app: immich-ml\n  ports:\n    - name: http\n"
        "      port: 3003\n      targetPort: 3003\n",
        "  type: NodePort\n  selector:\n    app: immich-ml\n  ports:\n    - name: http\n"
        "      port: 3003\n      targetPort: 3003\n      nodePort: 31283\n",
    )
    assert problem_lines(folder) == [
        "06-services.yaml: Service/immich-server-nodeport: nodePort 31283 is also used by "
        "Service/immich-ml"
    ]


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    folder = broken_copy(tmp_path, "06-services.yaml", "nodePort: 31283", "nodePort: 40000")
    path = folder / "03-redis.yaml"
    path.write_text(path.read_text().replace("8.1.3-bookworm", "latest"))
    lines = problem_lines(folder)
    assert len(lines) == 2
    assert lines[0].startswith("03-redis.yaml: Deployment/immich-redis:")
    assert lines[1].startswith("06-services.yaml: Service/immich-server-nodeport:")


# --- the command line ------------------------------------------------------------------------


def test_cli_validate_exits_0_on_the_shipped_set(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["manifests", "validate"], capsys)
    assert code == 0
    assert out == ""
    assert "0 problems" in err


def test_cli_validate_exits_2_with_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = broken_copy(tmp_path, "06-services.yaml", "nodePort: 31283", "nodePort: 40000")
    code, out, err = run_cli(["manifests", "validate", "--manifests-dir", str(folder)], capsys)
    assert code == 2
    assert out.splitlines() == [
        "06-services.yaml: Service/immich-server-nodeport: port http: nodePort 40000 is outside "
        "30000-32767"
    ]
    assert "1 problem" in err


def test_cli_validate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = broken_copy(tmp_path, "03-redis.yaml", "8.1.3-bookworm", "latest")
    code, out, _err = run_cli(
        [
            "manifests",
            "validate",
            "--no-schema",
            "--format",
            "json",
            "--manifests-dir",
            str(folder),
        ],
        capsys,
    )
    assert code == 2
    payload = json.loads(out)
    assert payload["ok"] is False
    assert payload["kubernetes_version"] is None
    assert payload["problems"][0]["object"] == "Deployment/immich-redis"


def test_cli_validate_exits_3_when_it_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _out, err = run_cli(
        ["manifests", "validate", "--manifests-dir", str(tmp_path / "nowhere")], capsys
    )
    assert code == 3
    assert err.startswith("immichcheck: error: the manifests folder was not found")
    code, _out, err = run_cli(["manifests", "validate", "--kubernetes-version", "1.99"], capsys)
    assert code == 3
    assert "has no schemas for Kubernetes 1.99" in err
    # kubernetes-validate is a dev extra: without it, one line and exit 3.
    monkeypatch.setitem(sys.modules, "kubernetes_validate", None)
    code, _out, err = run_cli(["manifests", "validate"], capsys)
    assert code == 3
    assert err.strip().splitlines() == [
        "immichcheck: error: kubernetes-validate is not installed: pip install "
        "kubernetes-validate (or immichcheck[dev]), or run with --no-schema for the "
        "cross-reference checks only"
    ]
    code, _out, _err = run_cli(["manifests", "validate", "--no-schema"], capsys)
    assert code == 0


def test_cli_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run_cli(["manifests", "list"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["FILE", "KIND", "NAME", "NAMESPACE", "COMPONENT"]
    assert any(
        line.split()[1:] == ["Deployment", "immich-redis", "immich", "redis"] for line in lines
    )
    code, out, _err = run_cli(["manifests", "show", "Service/immich-server-nodeport"], capsys)
    assert code == 0
    service = yaml.safe_load(out)
    assert service["spec"]["ports"][0]["nodePort"] == 31283
    code, out, _err = run_cli(["manifests", "show", "immich-redis", "--format", "json"], capsys)
    assert {obj["kind"] for obj in json.loads(out)} == {"Deployment", "Service"}
    code, _out, err = run_cli(["manifests", "show", "immich-redi"], capsys)
    assert code == 3
    assert "did you mean immich-redis" in err


def test_console_script_exit_codes(tmp_path: Path) -> None:
    if not IMMICHCHECK.exists():
        pytest.skip("console script not installed next to the interpreter")
    clean = subprocess.run(
        [str(IMMICHCHECK), "manifests", "validate", "--no-schema"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert clean.returncode == 0, clean.stderr
    folder = broken_copy(tmp_path, "06-services.yaml", "targetPort: 5432", "targetPort: 5433")
    broken = subprocess.run(
        [str(IMMICHCHECK), "manifests", "validate", "--no-schema", "--manifests-dir", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert broken.returncode == 2
    assert broken.stdout.startswith("06-services.yaml: Service/immich-postgres: port postgres:")
