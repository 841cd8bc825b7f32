"""What the shipped deployment promises: RBAC, CronJob, bench Job, monitoring, Immich config."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from immichcheck import __version__
from immichcheck.cli.main import main
from immichcheck.clients.immich_queues import QUEUE_NAMES
from immichcheck.deploy.bench_job import render_bench_job
from immichcheck.deploy.expected_state import load_expected_state, pod_spec

# The job queues a v2.7 server accepts in immich-config.json: every queue but backupDatabase
# (REFERENCE.md, Immich config.ts).
IMMICH_QUEUES = set(QUEUE_NAMES) - {"backupDatabase"}


def one(kind: str, name: str) -> dict[str, Any]:
    """The shipped object of that kind and name."""
    matches = [
        obj
        for obj in load_expected_state().objects
        if obj["kind"] == kind and obj["metadata"]["name"] == name
    ]
    assert len(matches) == 1, (kind, name)
    return matches[0]


def test_role_is_least_privilege() -> None:
    rules = one("Role", "immichcheck")["rules"]
    verbs = {verb for rule in rules for verb in rule["verbs"]}
    assert "*" not in verbs and "watch" not in verbs and "update" not in verbs
    assert all("*" not in rule["resources"] for rule in rules)
    secret_rules = [rule for rule in rules if "secrets" in rule["resources"]]
    assert secret_rules == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["immich-postgres-secret", "immich-server-secret"],
            "verbs": ["get"],
        }
    ]
    writes = {
        (resource, verb)
        for rule in rules
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if verb not in ("get", "list")
    }
    assert writes == {("jobs", "create"), ("jobs", "delete"), ("pods/portforward", "create")}
    cluster_rules = one("ClusterRole", "immichcheck-cluster-read")["rules"]
    assert cluster_rules == [
        {"apiGroups": [""], "resources": ["nodes", "persistentvolumes"], "verbs": ["get", "list"]}
    ]
    for binding_kind, name in (
        ("RoleBinding", "immichcheck"),
        ("ClusterRoleBinding", "immichcheck-cluster-read"),
    ):
        subjects = one(binding_kind, name)["subjects"]
        assert subjects == [
            {"kind": "ServiceAccount", "name": "immichcheck", "namespace": "immich"}
        ]


def test_nightly_cronjob() -> None:
    cronjob = one("CronJob", "immichcheck-nightly")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    pod = pod_spec(cronjob)
    assert pod["serviceAccountName"] == "immichcheck"
    container = pod["containers"][0]
    assert container["image"].endswith(f"/immichcheck:{__version__}")
    script = container["args"][0]
    for step in (
        "immichcheck verify",
        "immichcheck bench",
        "immichcheck report",
        "export --prometheus",
    ):
        assert step in script
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    reports = mounts["/reports"]
    assert reports["subPath"] == "immichcheck"
    assert volumes[reports["name"]]["persistentVolumeClaim"]["claimName"] == "immich-backups"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_bench_job_template_runs_pinned_non_root_and_cleans_up() -> None:
    job = render_bench_job("node02", "immichcheck-bench-node02")
    spec, pod = job["spec"], pod_spec(job)
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] > 0
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "node02"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["image"].endswith(f"/immichcheck:{__version__}")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert mounts["/bench/nvme"]["hostPath"]["path"] == "/opt/immich/temp"
    assert mounts["/bench/nfs"]["persistentVolumeClaim"]["claimName"] == "immich-uploads"
    assert "emptyDir" in mounts["/tmp"]


def test_monitoring_rules_cover_immichcheck_metrics() -> None:
    data = load_expected_state().configmaps["immich-monitoring-config"]
    scrape = yaml.safe_load(data["prometheus-scrape.yaml"])
    assert scrape["scrape_configs"][0]["job_name"] == "immich-server"
    rules = yaml.safe_load(data["immich-alerts.yaml"])
    expressions = " ".join(rule["expr"] for group in rules["groups"] for rule in group["rules"])
    # Every metric an alert uses must be one the exporter really writes.
    exported = set(re.findall(r"^# TYPE (immichcheck_\w+) ", _sample_exposition(), re.M))
    used = set(re.findall(r"immichcheck_\w+", expressions))
    assert used, "the alert rules use no immichcheck metric"
    assert used <= exported, f"alerts use metrics the exporter never writes: {used - exported}"
    for metric in (
        "immichcheck_check_status",
        "immichcheck_last_success_timestamp_seconds",
        "immichcheck_target_met",
        "immichcheck_report_regressions",
    ):
        assert metric in used
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
            assert rule["labels"]["severity"] in ("critical", "warning", "info")


def test_immich_config_json_tunes_jobs_ffmpeg_and_machine_learning() -> None:
    state = load_expected_state()
    server = state.component("server")
    mounted_at = server.env["IMMICH_CONFIG_FILE"]
    assert mounted_at.endswith("/immich-config.json")
    config = json.loads(state.configmaps["immich-server-config"]["immich-config.json"])
    assert set(config["job"]) <= IMMICH_QUEUES
    assert all(1 <= queue["concurrency"] <= 2 for queue in config["job"].values())
    assert (config["ffmpeg"]["targetVideoCodec"], config["ffmpeg"]["preset"]) == (
        "h264",
        "ultrafast",
    )
    ml = config["machineLearning"]
    assert ml["enabled"] and ml["clip"]["enabled"] and ml["facialRecognition"]["enabled"]
    assert ml["duplicateDetection"]["enabled"]
    assert ml["urls"] == [server.env["IMMICH_MACHINE_LEARNING_URL"]]


def test_immich_images_share_one_pinned_version() -> None:
    state = load_expected_state()
    tags = {state.component(key).image.rsplit(":", 1)[1] for key in ("server", "ml")}
    assert len(tags) == 1
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tags.pop())


def test_immichcheck_image_tag_must_match_the_package_version(tmp_path: Any) -> None:
    from tests.test_manifests_validation import broken_copy, problem_lines

    folder = broken_copy(
        tmp_path, "11-immichcheck.yaml", f"immichcheck:{__version__}\n", "immichcheck:9.9.9\n"
    )
    assert problem_lines(folder) == [
        "11-immichcheck.yaml: CronJob/immichcheck-nightly: container immichcheck: image "
        "ghcr.io/immichcheck/immichcheck:9.9.9: the tag must be immichcheck's version "
        f"{__version__}"
    ]


def test_cli_expected_and_show_component(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["manifests", "expected"])
    assert exit_info.value.code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["nodeport"] == 31283
    assert payload["components"]["redis"]["service"] == "immich-redis"
    assert "objects" not in payload
    with pytest.raises(SystemExit) as exit_info:
        main(["manifests", "show", "ml"])
    assert exit_info.value.code == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert (shown["kind"], shown["metadata"]["name"]) == ("Deployment", "immich-ml")


def _sample_exposition() -> str:
    """The exporter's output for one verify and one bench run."""
    from datetime import timedelta

    from immichcheck.common.host_facts import host_facts
    from immichcheck.common.records import CheckResult, RunRecord, Status, utc_now
    from immichcheck.common.statistics import LatencyRecorder, summarize
    from immichcheck.history.compare import ReportOptions, build_report
    from immichcheck.history.prometheus import render_prometheus
    from immichcheck.history.regression_rules import load_rules
    from immichcheck.history.thresholds import load_targets

    recorder = LatencyRecorder()
    recorder.record_seconds(0.001)
    now = utc_now()
    host = host_facts()
    check = CheckResult("IC-RD-204", "redis", Status.PASS, "ok", component="redis")
    verify = RunRecord("v1", "verify", now, now, "node05", host, "0.1.0", checks=(check,))
    bench_result = summarize("storage.fdatasync", {"path": "nvme"}, recorder, 1.0)
    bench = RunRecord("b1", "bench", now, now, "node05", host, "0.1.0", benchmarks=(bench_result,))
    # A night earlier, so the report has a baseline and exports its regression count.
    before = now - timedelta(days=1)
    baseline = RunRecord(
        "b0", "bench", before, before, "node05", host, "0.1.0", benchmarks=(bench_result,)
    )
    runs = [verify, baseline, bench]
    options = ReportOptions(rules=load_rules(None), targets=load_targets(None), trend=0)
    return render_prometheus(runs, report=build_report(runs, [], options))
