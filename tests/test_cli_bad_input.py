"""Bad input through the real `immichcheck` executable: one clear line, a documented exit code.

Each case runs the installed CLI as a subprocess (as a user at 3 a.m. would) and asserts the
exit code, that no Python traceback reaches stderr, the key words of the message, and that no
secret appears anywhere in the output (a recognisable password sits in every DSN and URL, and
the fake cluster's secrets are random strings). Unreachable and silent services use short
timeouts, so a missing timeout shows up as a case taking seconds instead of a fraction.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from immichcheck.common.records import Status
from immichcheck.history.store import save_run
from tests.test_store_factories import check, run

PASSWORD = "Hunter2-Secret-Pw"
CLI = str(Path(sys.executable).with_name("immichcheck"))
# Generous for a busy 2-core machine, far below the 10 s a missing timeout used to cost.
QUICK_SECONDS = 6.0


@dataclass
class Outcome:
    """What one CLI run produced."""

    code: int
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        """Everything the user saw."""
        return self.out + self.err


def immichcheck(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 60.0
) -> Outcome:
    """Run the installed CLI with a clean environment (no kubeconfig, no IMMICHCHECK_*)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMMICHCHECK_")}
    clean["KUBECONFIG"] = str(cwd / "no-such-kubeconfig")
    clean.update(env or {})
    started = time.monotonic()
    done = subprocess.run(
        [CLI, *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=timeout
    )
    return Outcome(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def assert_clean(outcome: Outcome, secrets: tuple[str, ...] = (PASSWORD,)) -> None:
    """No traceback and no secret, whatever the command printed."""
    assert "Traceback" not in outcome.err, outcome.err
    assert "internal error" not in outcome.err, outcome.err
    for secret in secrets:
        assert secret not in outcome.text, f"secret leaked: {outcome.text[-500:]}"


def not_passing(outcome: Outcome) -> dict[str, str]:
    """code -> joined messages of verify's non-PASS, non-SKIP results (JSON output)."""
    record = json.loads(outcome.out)
    found: dict[str, list[str]] = {}
    for result in record["checks"]:
        if result["status"] not in (Status.PASS.value, Status.SKIP.value):
            found.setdefault(result["code"], []).append(f"{result['status']} {result['message']}")
    return {code: " | ".join(messages) for code, messages in found.items()}


# ------------------------------------------------------------------------------- the scene


@dataclass
class Scene:
    """Files and sockets shared by the cases: bad kubeconfigs, dumps, silent ports."""

    root: Path
    closed_port: int
    silent_port: int  # accepts connections (kernel backlog), never answers
    noise_port: int  # answers every connection with random bytes, then closes
    files: dict[str, Path] = field(default_factory=dict)

    def path(self, name: str) -> str:
        """A prepared file by name."""
        return str(self.files[name])


def _kubeconfig(server: str, *, context_cluster: str = "k", current: str = "c") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "k", "cluster": {"server": server, "insecure-skip-tls-verify": True}}
            ],
            "users": [{"name": "u", "user": {"token": PASSWORD}}],
            "contexts": [{"name": "c", "context": {"cluster": context_cluster, "user": "u"}}],
            "current-context": current,
        }
    )


def _serve_noise(listener: socket.socket) -> None:
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        # One thread per client: verify connects to PostgreSQL, Redis and HTTP at once.
        threading.Thread(target=_answer_noise, args=(connection,), daemon=True).start()


def _answer_noise(connection: socket.socket) -> None:
    with connection:
        try:
            connection.sendall(_NOISE)
            # Let the client read the noise before the socket goes: closing at once can
            # reset the connection first, which is a different (also valid) failure.
            connection.shutdown(socket.SHUT_WR)
            connection.settimeout(1.0)
            while connection.recv(4096):
                pass
        except OSError:
            return


# The same bytes every run, so each protocol's parser meets the same garbage: a first byte
# that is no PostgreSQL message type, no RESP type and no HTTP method or status line.
_NOISE = b"\x07" + random.Random(20261128).randbytes(255) + b"\r\n\r\n"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """Bad files and three kinds of useless ports, for every case of this module."""
    root = tmp_path_factory.mktemp("bad-input")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = int(probe.getsockname()[1])
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # never accept(): connects complete, nothing is ever sent back
    noise = socket.socket()
    noise.bind(("127.0.0.1", 0))
    noise.listen(64)
    threading.Thread(target=_serve_noise, args=(noise,), daemon=True).start()
    scene = Scene(root, closed_port, int(silent.getsockname()[1]), int(noise.getsockname()[1]))
    texts = {
        "not-yaml.kubeconfig": "clusters: [unclosed\n  : :\n",
        "no-contexts.kubeconfig": "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\n",
        "missing-cluster.kubeconfig": _kubeconfig("https://127.0.0.1:1", context_cluster="ghost"),
        "unreachable.kubeconfig": _kubeconfig(f"https://127.0.0.1:{closed_port}"),
        "not-json.dump": "NAME   READY   STATUS\nimmich-server-0   1/1   Running\n",
        "damaged.json": json.dumps({"kind": "List", "items": 5}),
        "bad-metadata.json": json.dumps([{"kind": "Pod", "metadata": "immich-server-0"}]),
        "plain-file": "not a folder\n",
        "broken.toml": "[verify\ntimeout = ",
        "unknown-section.toml": "[nosuch]\ntimeout = 1\n",
        "unknown-key.toml": "[verify]\ntime_out = 1\n",
        "bad-value.toml": '[verify]\ntimeout = "abc"\n',
        "manifests-dir.toml": f'manifests_dir = "{root / "no-manifests"}"\n',
        "one-string.toml": '[verify]\nonly = "server"\ntags = "nightly"\nno_save = true\n',
        "rules.yaml": "- just\n- a list\n",
    }
    for name, text in texts.items():
        scene.files[name] = root / name
        scene.files[name].write_text(text)
    # An archive that is not a support bundle, and a binary file, given to --from-dump.
    import tarfile

    scene.files["not-a-bundle.tar.gz"] = root / "not-a-bundle.tar.gz"
    with tarfile.open(scene.files["not-a-bundle.tar.gz"], "w:gz") as archive:
        archive.add(scene.files["plain-file"], arcname="bundle/notes.txt")
    scene.files["binary.dump"] = root / "binary.dump"
    scene.files["binary.dump"].write_bytes(b"\xff\xfe\x00binary\x80")
    bad_yaml = root / "bad-manifests"
    bad_yaml.mkdir()
    (bad_yaml / "01-broken.yaml").write_text("kind: ConfigMap\nmetadata: {name: x\n  bad: [\n")
    scene.files["bad-manifests"] = bad_yaml
    (root / "empty").mkdir()
    scene.files["empty"] = root / "empty"
    corrupt = root / "corrupt" / "runs" / "node05" / "2026-01-01"
    corrupt.mkdir(parents=True)
    (corrupt / "a.verify.json").write_text("{not json")
    (corrupt / "b.verify.json").write_bytes(b"\xff\xfe\x00garbage")
    scene.files["corrupt"] = root / "corrupt"
    stored = root / "stored"
    save_run(run(0, kind="verify", checks=[check("IC-RD-201", Status.PASS, "redis")]), stored)
    scene.files["stored"] = stored
    yield scene
    silent.close()
    noise.close()


# ------------------------------------------------------------- one line on stderr, exit 3


@dataclass(frozen=True)
class LineCase:
    """A command that must stop with one `immichcheck: error:` line (after any warnings)."""

    name: str
    args: Callable[[Scene], list[str]]
    words: tuple[str, ...]
    env: Callable[[Scene], dict[str, str]] = lambda scene: {}
    code: int = 3


def _dsn(port: int | str) -> str:
    return f"postgresql://immich:{PASSWORD}@127.0.0.1:{port}/immich"


LINE_CASES = [
    # kubeconfig
    LineCase(
        "kubeconfig-not-yaml",
        lambda s: ["verify", "--kubeconfig", s.path("not-yaml.kubeconfig")],
        ("not valid YAML",),
    ),
    LineCase(
        "kubeconfig-no-contexts",
        lambda s: ["verify", "--kubeconfig", s.path("no-contexts.kubeconfig")],
        ("no clusters or contexts",),
    ),
    LineCase(
        "kubeconfig-context-names-missing-cluster",
        lambda s: ["verify", "--kubeconfig", s.path("missing-cluster.kubeconfig")],
        ("context 'c'", "cluster 'ghost'", "not defined"),
    ),
    LineCase(
        "kubeconfig-path-missing",
        lambda s: ["verify", "--kubeconfig", str(s.root / "nope.kubeconfig")],
        ("nope.kubeconfig does not exist",),
    ),
    LineCase(
        "kubeconfig-context-missing",
        lambda s: ["verify", "--kubeconfig", s.path("unreachable.kubeconfig"), "--context", "x"],
        ("no context 'x'", "it has: c"),
    ),
    LineCase(
        "support-bundle-kubeconfig-not-yaml",
        lambda s: ["support-bundle", "--kubeconfig", s.path("not-yaml.kubeconfig")],
        ("not valid YAML",),
    ),
    # flags and values
    LineCase("format-bogus", lambda s: ["verify", "--format", "bogus"], ("--format", "bogus")),
    LineCase(
        "timeout-negative",
        lambda s: ["verify", "--timeout", "-1"],
        ("--timeout", "not in the range"),
    ),
    LineCase("wait-not-duration", lambda s: ["verify", "--wait", "abc"], ("not a duration",)),
    # click's FloatRange takes nan and inf: a timeout that never fires, a --wait that never ends.
    LineCase("timeout-nan", lambda s: ["verify", "--timeout", "nan"], ("not a finite number",)),
    LineCase("wait-infinite", lambda s: ["verify", "--wait", "inf"], ("not a finite duration",)),
    LineCase(
        "bench-node-timeout-infinite",
        lambda s: ["bench", "--node", "node05", "--timeout", "inf"],
        ("--timeout", "not a finite number"),
    ),
    LineCase(
        "export-timeout-infinite",
        lambda s: [
            "export",
            "--reports-dir",
            s.path("stored"),
            "--timeout",
            "inf",
            "--pushgateway",
            f"http://127.0.0.1:{s.silent_port}",
        ],
        ("--timeout", "not a finite number"),
    ),
    LineCase(
        "unknown-flag", lambda s: ["verify", "--bogus-flag"], ("No such option", "--bogus-flag")
    ),
    LineCase("unknown-command", lambda s: ["nosuch"], ("No such command",)),
    LineCase(
        "output-in-unwritable-folder",
        lambda s: [
            "verify",
            "--no-save",
            "--server-url",
            f"http://127.0.0.1:{s.closed_port}",
            "--timeout",
            "0.5",
            "--output",
            s.path("plain-file") + "/out.txt",
        ],
        ("cannot write", "Not a directory"),
    ),
    LineCase(
        "reports-dir-is-a-file",
        lambda s: ["verify", "--reports-dir", s.path("plain-file")],
        ("--reports-dir", "is a file"),
    ),
    LineCase(
        "reports-dir-under-a-file",
        lambda s: [
            "verify",
            "--server-url",
            f"http://127.0.0.1:{s.closed_port}",
            "--timeout",
            "0.5",
            "--format",
            "nagios",
            "--reports-dir",
            s.path("plain-file") + "/reports",
        ],
        ("cannot save the run", "Not a directory"),
    ),
    LineCase(
        "from-dump-not-json",
        lambda s: ["verify", "--no-save", "--from-dump", s.path("not-json.dump")],
        ("is not JSON", "kubectl get"),
    ),
    LineCase(
        "from-dump-damaged-list",
        lambda s: ["verify", "--no-save", "--from-dump", s.path("damaged.json")],
        ("holds no Kubernetes objects",),
    ),
    LineCase(
        "from-dump-archive-without-a-dump",
        lambda s: ["verify", "--no-save", "--from-dump", s.path("not-a-bundle.tar.gz")],
        ("holds no cluster/dump.json", "not a support bundle"),
    ),
    LineCase(
        "from-dump-binary",
        lambda s: ["verify", "--no-save", "--from-dump", s.path("binary.dump")],
        ("is not text", "kubectl get"),
    ),
    LineCase(
        "from-dump-metadata-not-a-mapping",
        lambda s: ["verify", "--no-save", "--from-dump", s.path("bad-metadata.json")],
        ("object 1 (Pod) has metadata that is not a mapping",),
    ),
    LineCase(
        "pg-dsn-port-out-of-range",
        lambda s: ["verify", "--pg-dsn", _dsn(99999)],
        ("--pg-dsn", "not a PostgreSQL DSN", "Port out of range", "immich:***@"),
    ),
    LineCase(
        "pg-dsn-not-a-url",
        lambda s: ["verify", "--pg-dsn", f"host=db password={PASSWORD}"],
        ("--pg-dsn", "the scheme must be postgresql://"),
    ),
    LineCase(
        "redis-url-wrong-scheme",
        lambda s: ["verify", "--redis-url", f"http://:{PASSWORD}@127.0.0.1:6379"],
        ("--redis-url", "not a Redis URL"),
    ),
    LineCase(
        "server-url-no-scheme",
        lambda s: ["verify", "--server-url", "10.0.0.5:2283"],
        ("--server-url", "not an http(s) URL"),
    ),
    LineCase(
        "ml-url-broken-ipv6", lambda s: ["verify", "--ml-url", "http://[::1"], ("Invalid IPv6",)
    ),
    LineCase("node-ip-bad-port", lambda s: ["verify", "--node-ip", "abc:def"], ("HOST[:PORT]",)),
    LineCase(
        "support-bundle-output-under-a-file",
        lambda s: [
            "support-bundle",
            "--server-url",
            f"http://127.0.0.1:{s.closed_port}",
            "--output",
            s.path("plain-file") + "/bundle.tar.gz",
        ],
        ("cannot write", "plain-file is a file, not a folder"),
    ),
    LineCase(
        "support-bundle-timeout-negative",
        lambda s: ["support-bundle", "--timeout", "-1"],
        ("--timeout", "not in the range"),
    ),
    LineCase(
        "support-bundle-since-garbage",
        lambda s: ["support-bundle", "--since", "abc"],
        ("--since", "not a duration"),
    ),
    # the top-level group: --config and IMMICHCHECK_*
    LineCase(
        "config-broken-toml",
        lambda s: ["--config", s.path("broken.toml"), "verify"],
        ("not valid TOML",),
    ),
    LineCase(
        "config-unknown-section",
        lambda s: ["--config", s.path("unknown-section.toml"), "verify"],
        ("unknown command(s): nosuch",),
    ),
    LineCase(
        "config-unknown-key",
        lambda s: ["--config", s.path("unknown-key.toml"), "verify"],
        ("unknown key 'time_out' in [verify]",),
    ),
    LineCase(
        "config-bad-value",
        lambda s: ["--config", s.path("bad-value.toml"), "verify"],
        ("--timeout", "from the --config file", "'abc' is not a number of seconds"),
    ),
    LineCase(
        # A top-level key reaches a group's subcommand (click reads only the subcommand's map).
        "config-top-level-key-reaches-manifests-list",
        lambda s: ["--config", s.path("manifests-dir.toml"), "manifests", "list"],
        ("no-manifests",),
    ),
    LineCase(
        "config-missing-file",
        lambda s: ["--config", str(s.root / "nope.toml"), "verify"],
        ("cannot read config file", "No such file"),
    ),
    LineCase(
        "env-bad-timeout",
        lambda s: ["verify"],
        ("--timeout", "from $IMMICHCHECK_VERIFY_TIMEOUT", "'abc'"),
        env=lambda s: {"IMMICHCHECK_VERIFY_TIMEOUT": "abc"},
    ),
    LineCase(
        "env-bad-format",
        lambda s: ["report"],
        ("--format", "from $IMMICHCHECK_FORMAT", "bogus"),
        env=lambda s: {"IMMICHCHECK_FORMAT": "bogus"},
    ),
    LineCase(
        "env-bad-pg-dsn",
        lambda s: ["verify"],
        ("--pg-dsn", "from $IMMICHCHECK_PG_DSN", "Port out of range"),
        env=lambda s: {"IMMICHCHECK_PG_DSN": _dsn(70000)},
    ),
    # report
    LineCase(
        "report-empty-folder",
        lambda s: ["report", "--reports-dir", s.path("empty")],
        ("no runs to report under",),
    ),
    LineCase(
        "report-corrupt-files",
        lambda s: ["report", "--reports-dir", s.path("corrupt")],
        ("a.verify.json", "not valid JSON", "b.verify.json", "no runs to report under"),
    ),
    LineCase(
        "report-rules-not-a-mapping",
        lambda s: ["report", "--reports-dir", s.path("stored"), "--rules", s.path("rules.yaml")],
        ("expected a mapping",),
    ),
    # export
    LineCase(
        "export-pushgateway-refused",
        lambda s: [
            "export",
            "--reports-dir",
            s.path("stored"),
            "--pushgateway",
            f"http://127.0.0.1:{s.closed_port}",
        ],
        ("cannot push metrics", "connection refused"),
    ),
    LineCase(
        "export-pushgateway-silent",
        lambda s: [
            "export",
            "--reports-dir",
            s.path("stored"),
            "--timeout",
            "0.5",
            "--pushgateway",
            f"http://127.0.0.1:{s.silent_port}",
        ],
        ("cannot push metrics", "no answer"),
    ),
    LineCase(
        "export-pushgateway-noise",
        lambda s: [
            "export",
            "--reports-dir",
            s.path("stored"),
            "--timeout",
            "0.5",
            "--pushgateway",
            f"http://127.0.0.1:{s.noise_port}",
        ],
        ("cannot push metrics",),
    ),
    LineCase(
        "export-pushgateway-not-a-url",
        lambda s: ["export", "--reports-dir", s.path("stored"), "--pushgateway", "gateway:9091"],
        ("--pushgateway", "not an http(s) URL"),
    ),
    LineCase(
        "export-nothing-stored",
        lambda s: ["export", "--reports-dir", s.path("empty"), "--prometheus", "x.prom"],
        ("no runs to export",),
    ),
    # manifests
    LineCase(
        "manifests-show-nonexistent",
        lambda s: ["manifests", "show", "nonexistent"],
        ("no object or file named 'nonexistent'",),
    ),
    LineCase(
        "manifests-list-bad-yaml",
        lambda s: ["manifests", "list", "--manifests-dir", s.path("bad-manifests")],
        ("01-broken.yaml", "bad YAML"),
    ),
    LineCase(
        "manifests-expected-missing-folder",
        lambda s: ["manifests", "expected", "--manifests-dir", str(s.root / "nope")],
        ("not found",),
    ),
]


@pytest.mark.parametrize("case", LINE_CASES, ids=[case.name for case in LINE_CASES])
def test_bad_input_is_one_line(case: LineCase, scene: Scene) -> None:
    outcome = immichcheck(case.args(scene), scene.root, case.env(scene))
    assert_clean(outcome)
    lines = outcome.err.splitlines()
    assert outcome.code == case.code, outcome.err
    assert lines and lines[-1].startswith("immichcheck: error: "), outcome.err
    # Anything before the error is a warning naming a skipped file, one line each.
    assert all(line.startswith("immichcheck: warning: ") for line in lines[:-1]), outcome.err
    for word in case.words:
        assert word in outcome.err, (word, outcome.err)
    assert outcome.out == ""
    assert outcome.seconds < QUICK_SECONDS


def test_manifests_validate_names_the_bad_yaml(scene: Scene) -> None:
    outcome = immichcheck(
        ["manifests", "validate", "--no-schema", "--manifests-dir", scene.path("bad-manifests")],
        scene.root,
    )
    assert_clean(outcome)
    assert outcome.code == 2  # problems found, as documented
    assert outcome.out.startswith("01-broken.yaml: -: bad YAML:")
    assert outcome.err.startswith("manifests: 0 objects in 1 files") and "1 problem" in outcome.err


# -------------------------------------------- verify: the table says what happened per check


def _verify_json(scene: Scene, *args: str) -> Outcome:
    outcome = immichcheck(
        ["verify", "--no-save", "--format", "json", "--timeout", "0.5", *args], scene.root
    )
    assert_clean(outcome)
    assert outcome.err == ""
    return outcome


def _services_at(port: int, *, ml: bool = True) -> list[str]:
    """verify's flags pointing PostgreSQL, Redis, the server (and the ML service) at one port."""
    flags = [
        "--pg-dsn", _dsn(port),
        "--redis-url", f"redis://:{PASSWORD}@127.0.0.1:{port}/0",
        "--server-url", f"http://127.0.0.1:{port}",
    ]  # fmt: skip
    return [*flags, "--ml-url", f"http://127.0.0.1:{port}"] if ml else flags


def test_closed_ports_are_connection_refused(scene: Scene) -> None:
    port = scene.closed_port
    outcome = _verify_json(scene, *_services_at(port), "--api-key", PASSWORD)
    assert outcome.code == 3
    found = not_passing(outcome)
    assert set(found) == {"IC-PG-101", "IC-RD-201", "IC-ML-301", "IC-SV-401"}
    assert all(m.startswith("ERROR") and "connection refused" in m for m in found.values())


def test_silent_ports_time_out_quickly(scene: Scene) -> None:
    port = scene.silent_port
    outcome = _verify_json(scene, *_services_at(port))
    assert outcome.code == 3
    found = not_passing(outcome)
    assert set(found) == {"IC-PG-101", "IC-RD-201", "IC-ML-301", "IC-SV-401"}
    assert all("no answer from" in m and "within 0.5 s" in m for m in found.values()), found
    # The CLIP inference no longer waits its own 10 s on a service that never answered /ping.
    assert outcome.seconds < QUICK_SECONDS


def test_noise_instead_of_a_protocol(scene: Scene) -> None:
    port = scene.noise_port
    outcome = _verify_json(scene, *_services_at(port, ml=False))
    assert outcome.code == 3
    found = not_passing(outcome)
    assert "does not answer in the PostgreSQL protocol" in found["IC-PG-101"]
    # Closed before or after the noise was read: either way one short line, not the bytes.
    assert found["IC-RD-201"].startswith("ERROR could not run: ")
    assert any(
        words in found["IC-RD-201"]
        for words in ("cannot connect to Redis", "does not answer in the Redis protocol")
    ), found["IC-RD-201"]
    assert all(len(message) < 200 for message in found.values()), found
    assert "broke the HTTP protocol" in found["IC-SV-401"]


@pytest.mark.parametrize("mode", ["garbage", "hang"])
def test_http_services_answering_garbage_or_hanging(
    mode: str, scene: Scene, fake_immich_server: Any, fake_ml_service: Any
) -> None:
    fake_immich_server.fail_mode = mode
    fake_ml_service.fail_mode = mode
    outcome = _verify_json(
        scene,
        "--server-url",
        fake_immich_server.url,
        "--ml-url",
        fake_ml_service.url,
        "--api-key",
        PASSWORD,
    )
    found = not_passing(outcome)
    assert set(found) == {"IC-ML-301", "IC-SV-401"}
    if mode == "garbage":  # it answered, wrongly: a failed check that shows what came back
        assert outcome.code == 2
        assert "502 Bad Gateway" in found["IC-SV-401"] and "not 'pong'" in found["IC-ML-301"]
    else:
        assert outcome.code == 3
        assert all("no answer from" in m for m in found.values())
    assert outcome.seconds < QUICK_SECONDS


def test_wrong_postgres_password(scene: Scene, postgres_server: Any) -> None:
    outcome = _verify_json(scene, "--pg-dsn", _dsn(postgres_server.port), "--only", "postgres")
    assert outcome.code == 3
    found = not_passing(outcome)
    assert list(found) == ["IC-PG-101"]
    assert "authentication failed" in found["IC-PG-101"]
    assert "check the password" in found["IC-PG-101"]


def test_table_says_what_happened(scene: Scene) -> None:
    outcome = immichcheck(
        [
            "verify",
            "--no-save",
            "--timeout",
            "0.5",
            "--server-url",
            f"http://127.0.0.1:{scene.closed_port}",
        ],
        scene.root,
    )
    assert_clean(outcome)
    assert outcome.code == 3
    row = next(line for line in outcome.out.splitlines() if line.split()[1:2] == ["IC-SV-401"])
    assert row.startswith("ERROR") and "connection refused" in row
    assert (
        outcome.out.rstrip().splitlines()[-1].startswith("UNKNOWN: 0 PASS, 0 WARN, 0 FAIL, 1 ERROR")
    )


# ------------------------------------------------------------------- the Kubernetes API side


def test_unreachable_api_server(scene: Scene) -> None:
    outcome = _verify_json(scene, "--kubeconfig", scene.path("unreachable.kubeconfig"))
    assert outcome.code == 3
    found = not_passing(outcome)
    assert list(found) == ["IC-CL-001"]
    assert "cannot connect to the Kubernetes API" in found["IC-CL-001"]


@pytest.mark.parametrize(
    ("mode", "words"),
    [("garbage", "answered with something that is not JSON"), ("hang", "did not answer in time")],
)
def test_api_server_answering_garbage_or_hanging(
    mode: str, words: str, scene: Scene, fake_cluster: Any
) -> None:
    fake_cluster.fail_mode = mode
    outcome = _verify_json(scene, "--kubeconfig", str(fake_cluster.kubeconfig_path))
    assert outcome.code == 3
    found = not_passing(outcome)
    assert list(found) == ["IC-CL-001"]
    assert words in found["IC-CL-001"]
    assert outcome.seconds < QUICK_SECONDS


def _cluster_secrets(cluster: Any) -> tuple[str, ...]:
    return tuple(
        value
        for values in cluster.secret_data.values()
        for key, value in values.items()
        if key != "username"
    )


def test_cluster_secrets_never_shown(
    scene: Scene, fake_cluster: Any, postgres_server: Any, tmp_path: Path
) -> None:
    # No password in the DSN: verify takes the secret's, which this server does not accept.
    dsn = f"postgresql://immich@127.0.0.1:{postgres_server.port}/immich"
    reports = tmp_path / "reports"
    outcome = immichcheck(
        [
            "verify",
            "--kubeconfig",
            str(fake_cluster.kubeconfig_path),
            "--pg-dsn",
            dsn,
            "--timeout",
            "0.5",
            "--format",
            "json",
            "--reports-dir",
            str(reports),
        ],
        scene.root,
    )
    secrets = (PASSWORD, *_cluster_secrets(fake_cluster))
    assert_clean(outcome, secrets)
    assert outcome.code == 3
    assert "authentication failed" in not_passing(outcome)["IC-PG-101"]
    saved = "".join(path.read_text() for path in reports.rglob("*.json"))
    assert saved and not any(secret in saved for secret in secrets)

    bundle = tmp_path / "bundle.tar.gz"
    outcome = immichcheck(
        [
            "support-bundle",
            "--kubeconfig",
            str(fake_cluster.kubeconfig_path),
            "--pg-dsn",
            _dsn(postgres_server.port),
            "--timeout",
            "0.5",
            "--output",
            str(bundle),
            "--reports-dir",
            str(reports),
        ],
        scene.root,
    )
    assert_clean(outcome, secrets)
    assert outcome.code == 0
    import tarfile

    with tarfile.open(bundle) as archive:
        for member in archive.getmembers():
            handle = archive.extractfile(member)
            text = handle.read().decode("utf-8", "replace") if handle else ""
            assert not any(secret in text for secret in secrets), member.name


def test_ctrl_c_exits_130_without_a_traceback(scene: Scene) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMMICHCHECK_")}
    clean["KUBECONFIG"] = str(scene.root / "no-such-kubeconfig")
    process = subprocess.Popen(
        [CLI, "verify", "--no-save", "--timeout", "30", "--server-url",
         f"http://127.0.0.1:{scene.silent_port}"],
        cwd=scene.root, env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(2.0)  # past start-up: the probe is waiting on the silent port
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 130
    assert err.strip() == "immichcheck: interrupted"
    assert "Traceback" not in err and out == ""


def test_config_string_for_a_repeatable_option(scene: Scene) -> None:
    outcome = immichcheck(
        ["--config", scene.path("one-string.toml"), "verify", "--format", "json",
         "--timeout", "0.5", "--server-url", f"http://127.0.0.1:{scene.closed_port}"],
        scene.root,
    )  # fmt: skip
    assert_clean(outcome)
    assert outcome.code == 3
    record = json.loads(outcome.out)
    assert {result["component"] for result in record["checks"]} == {"server"}
    assert record["tags"] == ["nightly"]


@pytest.mark.parametrize("args", [[], ["manifests"]], ids=["no-command", "group-alone"])
def test_no_command_prints_the_help(args: list[str], scene: Scene) -> None:
    outcome = immichcheck(args, scene.root)
    assert_clean(outcome)
    assert outcome.code == 3 and outcome.out == ""
    assert outcome.err.startswith("Usage: immichcheck") and "immichcheck: error" not in outcome.err
