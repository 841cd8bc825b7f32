"""Kubeconfig the way kubectl reads it: several KUBECONFIG files merged, --context across them.

Every case runs a real command against the fake Kubernetes API (kr8s over HTTPS, bearer
token checked), so a passing cluster check means the credentials from the merged files are
the ones that reached the server. What kubectl would refuse is one line and exit 3.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from immichcheck.cli.main import main
from immichcheck.common.records import Status
from immichcheck.history.store import load_runs
from tests.fakes.kube_api import FakeKubeCluster
from tests.fakes.kube_jobs import FakeJobs
from tests.test_bench_node import jobs as jobs  # the fake cluster's Job controller
from tests.test_support_bundle import _bundle, _members
from tests.test_verify_integration import run_cli, run_json

CLUSTER = ["--only", "cluster", "--no-save"]


def write_split_kubeconfig(cluster: FakeKubeCluster, folder: Path) -> dict[str, Path]:
    """The fake cluster's kubeconfig cut in three files: contexts, clusters, users.

    The context file names a cluster and a user that only the other two define, as when a
    team shares `clusters.yaml` and each person keeps their own credentials.
    """
    folder.mkdir(parents=True, exist_ok=True)
    whole = yaml.safe_load(
        cluster.write_kubeconfig(folder / "whole", token=cluster.token).read_text()
    )
    (folder / "whole").unlink()
    parts = {
        "contexts": {"contexts": whole["contexts"], "current-context": whole["current-context"]},
        "clusters": {"clusters": whole["clusters"]},
        "users": {"users": whole["users"]},
    }
    paths = {}
    for name, body in parts.items():
        paths[name] = folder / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", **body}))
    return paths


def kubeconfig_env(*paths: Path) -> str:
    """A KUBECONFIG value: the files joined as kubectl splits them."""
    return os.pathsep.join(str(path) for path in paths)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def elsewhere_kubeconfig(path: Path, *, current: bool = True) -> Path:
    """A kubeconfig whose context `elsewhere` points at a closed port (and is current)."""
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "nowhere", "cluster": {"server": f"https://127.0.0.1:{closed_port()}"}}
        ],
        "users": [{"name": "someone", "user": {"token": "NotTheFakesToken"}}],
        "contexts": [{"name": "elsewhere", "context": {"cluster": "nowhere", "user": "someone"}}],
    }
    if current:
        config["current-context"] = "elsewhere"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def split(fake_cluster: FakeKubeCluster, tmp_path: Path) -> Iterator[dict[str, Path]]:
    """The split kubeconfig of the fake cluster, no other kubeconfig and not in a pod."""
    yield write_split_kubeconfig(fake_cluster, tmp_path / "kube")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ~/.kube/config, no pod, no IMMICHCHECK_* from the developer's shell."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for name in list(os.environ):
        if name.startswith("IMMICHCHECK_"):
            monkeypatch.delenv(name)


def cluster_statuses(record: Any) -> set[Status]:
    """Every status of the cluster checks."""
    return {c.status for c in record.checks if c.component == "cluster"}


# verify ---------------------------------------------------------------------------------------


def test_verify_reads_a_split_kubeconfig(
    split: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "KUBECONFIG", kubeconfig_env(split["contexts"], split["clusters"], split["users"])
    )
    code, record = run_json(CLUSTER, capsys)
    assert cluster_statuses(record) == {Status.PASS}
    assert code == 0
    reached = record.settings["reached"]["kubernetes"]
    assert reached == "kubeconfig " + ", ".join(
        str(split[name]) for name in ("contexts", "clusters", "users")
    )


def test_context_flag_picks_a_context_from_a_later_file(
    split: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = elsewhere_kubeconfig(tmp_path / "first.yaml")
    monkeypatch.setenv(
        "KUBECONFIG", kubeconfig_env(first, split["contexts"], split["clusters"], split["users"])
    )
    # kubectl's current-context is the first file's: the closed port, so cannot connect.
    code, record = run_json(CLUSTER, capsys)
    first_check = record.checks[0]
    assert (first_check.code, first_check.status) == ("IC-CL-001", Status.ERROR)
    assert "cannot connect to the Kubernetes API" in first_check.message
    assert code == 3
    # --context names the fake cluster's context, defined in the second file.
    code, record = run_json([*CLUSTER, "--context", "fake"], capsys)
    assert cluster_statuses(record) == {Status.PASS}
    assert code == 0


def test_current_context_set_only_in_a_later_file_is_used(
    split: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = elsewhere_kubeconfig(tmp_path / "first.yaml", current=False)
    monkeypatch.setenv(
        "KUBECONFIG", kubeconfig_env(first, split["contexts"], split["clusters"], split["users"])
    )
    code, record = run_json(CLUSTER, capsys)
    assert cluster_statuses(record) == {Status.PASS}
    assert code == 0


def test_missing_files_in_kubeconfig_are_skipped(
    split: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "not-there.yaml"
    monkeypatch.setenv(
        "KUBECONFIG",
        kubeconfig_env(missing, split["contexts"], split["clusters"], missing, split["users"]),
    )
    code, record = run_json(CLUSTER, capsys)
    assert cluster_statuses(record) == {Status.PASS}
    assert code == 0


def test_explicit_kubeconfig_reads_only_that_file(
    split: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As kubectl: --kubeconfig is one file, and $KUBECONFIG is then not read."""
    monkeypatch.setenv("KUBECONFIG", kubeconfig_env(split["clusters"], split["users"]))
    code, out, err = run_cli(["--kubeconfig", str(split["contexts"]), *CLUSTER], capsys)
    assert code == 3
    assert out == ""
    assert (
        err == f"immichcheck: error: kubeconfig {split['contexts']} has no clusters or contexts\n"
    )


# What kubectl would refuse: one line, exit 3 --------------------------------------------------


def test_user_defined_in_no_file_is_one_line(
    split: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", kubeconfig_env(split["contexts"], split["clusters"]))
    code, out, err = run_cli(CLUSTER, capsys)
    assert code == 3
    assert out == ""
    assert err == (
        f"immichcheck: error: context 'fake' in kubeconfig {split['contexts']} names user "
        f"'fake-user', which is not defined in files {split['contexts']}, {split['clusters']}\n"
    )


def test_context_in_no_file_is_one_line(
    split: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    files = (split["contexts"], split["clusters"], split["users"])
    monkeypatch.setenv("KUBECONFIG", kubeconfig_env(*files))
    code, out, err = run_cli([*CLUSTER, "--context", "staging"], capsys)
    assert code == 3
    assert out == ""
    where = ", ".join(str(path) for path in files)
    assert err == (
        f"immichcheck: error: kubeconfig files {where} has no context 'staging' (it has: fake)\n"
    )


def test_a_file_that_is_not_yaml_among_several_is_one_line(
    split: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("users: [\n  - name: x\n")
    monkeypatch.setenv("KUBECONFIG", kubeconfig_env(split["contexts"], broken, split["users"]))
    code, out, err = run_cli(CLUSTER, capsys)
    assert code == 3
    assert out == ""
    assert err == f"immichcheck: error: kubeconfig {broken} is not valid YAML (line 2)\n"


def test_a_name_defined_differently_in_two_files_is_refused(
    split: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """kubectl takes the first definition, kr8s's merge the last: never a silent other user."""
    other_users = tmp_path / "other-users.yaml"
    other_users.write_text(
        yaml.safe_dump({"users": [{"name": "fake-user", "user": {"token": "SomeoneElses"}}]})
    )
    monkeypatch.setenv(
        "KUBECONFIG",
        kubeconfig_env(split["contexts"], split["clusters"], split["users"], other_users),
    )
    code, out, err = run_cli(CLUSTER, capsys)
    assert code == 3
    assert out == ""
    assert err == (
        f"immichcheck: error: user 'fake-user' is defined differently in kubeconfig "
        f"{split['users']} and {other_users}; kubectl uses the first, immichcheck's Kubernetes "
        "client would use the last: give one of them another name\n"
    )
    assert "SomeoneElses" not in err


# Exec credential plugins ----------------------------------------------------------------------


def _with_exec_user(split: dict[str, Path], tmp_path: Path, script: str) -> Path:
    """Replace the users file by one whose user runs `script` as its credential plugin."""
    plugin = tmp_path / "get-token"
    plugin.write_text("#!/bin/sh\n" + script)
    plugin.chmod(0o755)
    exec_user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin),
            "args": ["--cluster", "fake"],
            "interactiveMode": "Never",
        }
    }
    split["users"].write_text(yaml.safe_dump({"users": [{"name": "fake-user", "user": exec_user}]}))
    return plugin


def test_exec_credential_plugin_that_answers_is_used(
    split: dict[str, Path],
    fake_cluster: FakeKubeCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    credential = (
        '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
        f'"status":{{"token":"{fake_cluster.token}"}}}}'
    )
    _with_exec_user(split, tmp_path, f"echo '{credential}'\n")
    monkeypatch.setenv(
        "KUBECONFIG", kubeconfig_env(split["contexts"], split["clusters"], split["users"])
    )
    code, record = run_json(CLUSTER, capsys)
    assert cluster_statuses(record) == {Status.PASS}
    assert code == 0


def test_exec_credential_plugin_that_fails_is_one_line(
    split: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plugin = _with_exec_user(
        split, tmp_path, "echo 'error: token expired, run sso login' >&2\necho detail >&2\nexit 4\n"
    )
    monkeypatch.setenv(
        "KUBECONFIG", kubeconfig_env(split["contexts"], split["clusters"], split["users"])
    )
    code, record = run_json(CLUSTER, capsys)
    first = record.checks[0]
    assert (first.code, first.status) == ("IC-CL-001", Status.ERROR)
    assert first.message.startswith(
        f"could not run: the kubeconfig's credential plugin '{plugin}' failed (exit 4): "
        "error: token expired, run sso login ("
    )
    assert "\n" not in first.message
    assert code == 3


def test_exec_credential_plugin_not_installed_is_one_line(
    split: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plugin = _with_exec_user(split, tmp_path, "exit 0\n")
    plugin.unlink()
    monkeypatch.setenv(
        "KUBECONFIG", kubeconfig_env(split["contexts"], split["clusters"], split["users"])
    )
    code, record = run_json(CLUSTER, capsys)
    first = record.checks[0]
    assert (first.code, first.status) == ("IC-CL-001", Status.ERROR)
    assert f"the kubeconfig's credential plugin '{plugin}' was not found" in first.message
    assert code == 3


# In a pod -------------------------------------------------------------------------------------


def test_in_cluster_when_no_kubeconfig_file_exists(
    fake_cluster: FakeKubeCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """KUBECONFIG naming only missing files falls back to the service account, as kubectl."""
    for name, value in fake_cluster.service_account_env(tmp_path / "serviceaccount").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none.yaml"))
    code, record = run_json(CLUSTER, capsys)
    assert record.settings["reached"]["kubernetes"] == "in-cluster service account"
    assert cluster_statuses(record) == {Status.PASS}
    assert code == 0


# bench --node and support-bundle --------------------------------------------------------------


def test_bench_node_with_a_split_kubeconfig_and_context_across_files(
    jobs: FakeJobs,
    split: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = elsewhere_kubeconfig(tmp_path / "first.yaml")
    monkeypatch.setenv(
        "KUBECONFIG", kubeconfig_env(first, split["contexts"], split["clusters"], split["users"])
    )
    reports = tmp_path / "reports"
    argv = ["bench", "--node", "node05", "--suite", "storage", "--context", "fake",
            "--reports-dir", str(reports), "--poll-interval", "0.05"]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert int(exited.value.code or 0) == 0, err
    assert "[node05] | storage: nvme sequential write" in err
    assert [r.node for r in load_runs(reports).runs] == ["node05"]
    assert jobs.jobs() == [] and jobs.job_pods() == []


def test_bench_node_with_a_user_in_no_file_is_one_line(
    split: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KUBECONFIG", kubeconfig_env(split["contexts"], split["clusters"]))
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--node", "node05", "--reports-dir", str(tmp_path / "reports")])
    _out, err = capsys.readouterr()
    assert exited.value.code == 3
    assert err.count("\n") == 1
    assert "names user 'fake-user', which is not defined in files" in err


def test_support_bundle_with_a_split_kubeconfig(
    split: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = elsewhere_kubeconfig(tmp_path / "first.yaml")
    monkeypatch.setenv(
        "KUBECONFIG", kubeconfig_env(first, split["contexts"], split["clusters"], split["users"])
    )
    target = tmp_path / "bundle.tar.gz"
    code, printed = _bundle(
        capsys,
        ["--context", "fake", "--no-inference", "--output", str(target),
         "--reports-dir", str(tmp_path / "none")],
    )  # fmt: skip
    assert code == 0
    not_collected = printed.partition("not collected:")[2]
    assert "cluster" not in not_collected  # every part of the cluster was read
    members = _members(target)
    assert {"cluster/pods.yaml", "cluster/events.txt", "cluster/drift.diff"} <= set(members)
    assert yaml.safe_load(members["cluster/pods.yaml"])
