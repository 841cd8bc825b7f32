"""verify asks Immich itself (issue 17): database backups, job queues, disk usage, ML settings.

Every test runs `immichcheck verify` in-process against the fake Immich server over real HTTP
(its admin side in tests/fakes/immich_admin.py), with the state a real server would show set
on the fake: backups of given ages and sizes, paused/failing/stalled/moving queues, a full
disk, an ML URL that is not ours, an older release without the endpoints.
"""

from __future__ import annotations

import gzip
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from immichcheck.common.records import RunRecord, Status
from immichcheck.verify.checks.backups import backup_time, cron_period
from tests.fakes.immich_admin import backup_filename
from tests.fixtures.cli import run_cli

BACKUPS = "IC-SV-421,IC-SV-422,IC-SV-423,IC-SV-424"
QUEUES = "IC-SV-425,IC-SV-426,IC-SV-427"
NEW_CODES = f"{BACKUPS},{QUEUES},IC-ST-505,IC-ML-304"


def verify(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, RunRecord]:
    """`immichcheck verify ARGS --format json --no-save`: exit code and the run record."""
    code, out, err = run_cli(["verify", *args, "--format", "json", "--no-save"], capsys)
    assert "Traceback" not in err, err
    return code, RunRecord.from_json(out)


def result(record: RunRecord, code: str) -> tuple[Status, str]:
    """(status, message) of the one result of `code`."""
    found = [(c.status, c.message) for c in record.checks if c.code == code]
    assert len(found) == 1, found
    return found[0]


def server_args(server: Any, only: str = NEW_CODES) -> list[str]:
    return ["--server-url", server.url, "--api-key", server.admin_api_key, "--only", only]


# Database backups through the API -----------------------------------------------------------


def test_fresh_backups_pass(fake_immich_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    for days in (1, 2, 3):
        fake_immich_server.admin.add_backup(timedelta(days=days, hours=2))
    code, record = verify(server_args(fake_immich_server, BACKUPS), capsys)
    assert code == 0
    assert result(record, "IC-SV-421") == (
        Status.PASS,
        "enabled: cron '0 02 * * *', keep the last 14",
    )
    status, text = result(record, "IC-SV-422")
    assert status == Status.PASS
    assert "is 2.0 h old; cron '0 02 * * *' runs every 1.0 days" in text
    assert result(record, "IC-SV-423")[0] == Status.PASS
    assert result(record, "IC-SV-424") == (Status.PASS, "4 backup(s) kept, keepLastAmount 14")


def test_no_backup_fails(fake_immich_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    fake_immich_server.admin.backups = []
    code, record = verify(server_args(fake_immich_server, BACKUPS), capsys)
    status, text = result(record, "IC-SV-422")
    assert status == Status.FAIL
    assert text.startswith("no database backup in http://127.0.0.1:")
    assert text.endswith("/api/admin/database-backups")
    assert result(record, "IC-SV-423") == (Status.SKIP, "skipped: no backup to measure")
    assert code == 2


def test_old_backup_fails_naming_time_and_file(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.admin.backups = []
    name = fake_immich_server.admin.add_backup(timedelta(days=3))
    code, record = verify(server_args(fake_immich_server, "IC-SV-422"), capsys)
    status, text = result(record, "IC-SV-422")
    taken = datetime.now(UTC) - timedelta(days=3)
    assert status == Status.FAIL
    assert f"newest backup {name} from {taken:%Y-%m-%d} " in text
    assert "is 3.0 days old; cron '0 02 * * *' runs every 1.0 days (limit 2.0 days)" in text
    assert code == 2


def test_weekly_schedule_accepts_a_five_day_old_backup(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.admin.config["backup"]["database"]["cronExpression"] = "0 02 * * 0"
    fake_immich_server.admin.backups = []
    fake_immich_server.admin.add_backup(timedelta(days=5))
    _, record = verify(server_args(fake_immich_server, "IC-SV-422"), capsys)
    assert result(record, "IC-SV-422")[0] == Status.PASS


def test_zero_byte_and_shrunk_backups(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = fake_immich_server.admin
    admin.backups = []
    admin.add_backup(timedelta(days=1, hours=2), size=30879)
    empty = admin.add_backup(timedelta(hours=2), size=0)
    code, record = verify(server_args(fake_immich_server, "IC-SV-423"), capsys)
    assert result(record, "IC-SV-423") == (
        Status.FAIL,
        f"{empty} is 0 bytes: the dump wrote nothing",
    )
    assert code == 2
    admin.backups = [b for b in admin.backups if b["filename"] != empty]
    small = admin.add_backup(timedelta(hours=1), size=9000)
    code, record = verify(server_args(fake_immich_server, "IC-SV-423"), capsys)
    status, text = result(record, "IC-SV-423")
    assert status == Status.WARN
    assert text.startswith(f"{small} is 8.8 KiB, under half the previous one's 30.2 KiB")
    assert code == 1


def test_disabled_backups_and_too_many_kept_warn(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.admin.config["backup"]["database"].update(enabled=False, keepLastAmount=2)
    for days in (1, 2, 3):
        fake_immich_server.admin.add_backup(timedelta(days=days))
    code, record = verify(server_args(fake_immich_server, "IC-SV-421,IC-SV-424"), capsys)
    assert result(record, "IC-SV-421") == (
        Status.WARN,
        "database backups are disabled: backup.database.enabled (Administration > Settings > "
        "Backup Settings) is false",
    )
    assert result(record, "IC-SV-424") == (
        Status.WARN,
        "4 backup(s) kept, keepLastAmount 2: old backups are not being removed",
    )
    assert code == 1


def test_server_before_v2_5_skips_backups_saying_which_version(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.version = (2, 4, 1)
    code, record = verify(server_args(fake_immich_server, BACKUPS), capsys)
    status, text = result(record, "IC-SV-422")
    assert status == Status.SKIP
    assert text.endswith(
        "GET /api/admin/database-backups answered 404: the server is older than v2.5.0, "
        "which added it"
    )
    assert result(record, "IC-SV-421")[0] == Status.PASS  # the config is older than that
    assert code == 0


# Database backups from the files --------------------------------------------------------------


def _dump(folder: Path, age: timedelta, size: int) -> str:
    name = backup_filename(datetime.now(UTC) - age, "2.7.5")
    payload = gzip.compress(os.urandom(size)) if size else b""
    (folder / name).write_bytes(payload)
    return name


@pytest.fixture
def media(tmp_path: Path) -> Path:
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / ".immich").write_text("1")
    return tmp_path


def test_backups_from_media_files(media: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = media / "backups"
    _dump(folder, timedelta(days=1, hours=1), 4000)
    newest = _dump(folder, timedelta(hours=1), 4000)
    code, record = verify(["--media-path", str(media), "--only", BACKUPS], capsys)
    assert result(record, "IC-SV-421") == (
        Status.SKIP,
        "skipped: the backup settings need --api-key (GET /api/system-config)",
    )
    status, text = result(record, "IC-SV-422")
    assert status == Status.PASS
    assert text.startswith(f"newest backup {newest} from ")
    assert text.endswith("(the server's settings need --api-key; Immich's defaults assumed)")
    assert result(record, "IC-SV-423")[0] == Status.PASS
    assert result(record, "IC-SV-424")[1] == (
        "2 backup(s) kept, keepLastAmount 14 (the server's settings need --api-key; "
        "Immich's defaults assumed)"
    )
    assert code == 0


def test_media_files_old_empty_missing_and_unfinished(
    media: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = media / "backups"
    args = ["--media-path", str(media), "--only", BACKUPS]
    _, record = verify(args, capsys)
    assert result(record, "IC-SV-422")[0] == Status.FAIL  # none at all
    old = _dump(folder, timedelta(days=4), 4000)
    _, record = verify(args, capsys)
    assert result(record, "IC-SV-422")[0] == Status.FAIL
    assert old in result(record, "IC-SV-422")[1]
    empty = _dump(folder, timedelta(hours=3), 0)
    (folder / (backup_filename(datetime.now(UTC), "2.7.5") + ".tmp")).write_bytes(b"x")
    code, record = verify(args, capsys)
    assert result(record, "IC-SV-422")[0] == Status.PASS
    assert result(record, "IC-SV-423") == (
        Status.FAIL,
        f"{empty} is 0 bytes: the dump wrote nothing",
    )
    status, text = result(record, "IC-SV-424")
    assert status == Status.WARN
    assert "1 unfinished dump(s) left as .tmp (a backup that failed)" in text
    assert code == 2


def test_old_server_falls_back_to_the_files(
    fake_immich_server: Any, media: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.version = (2, 4, 1)
    fake_immich_server.admin.config["backup"]["database"]["keepLastAmount"] = 7
    newest = _dump(media / "backups", timedelta(hours=5), 2000)
    args = [*server_args(fake_immich_server, BACKUPS), "--media-path", str(media)]
    code, record = verify(args, capsys)
    assert result(record, "IC-SV-422")[1].startswith(f"newest backup {newest}")
    assert result(record, "IC-SV-424") == (Status.PASS, "1 backup(s) kept, keepLastAmount 7")
    assert code == 0


# Queues ---------------------------------------------------------------------------------------


def test_paused_queue_warns_naming_it_and_how_to_resume(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.paused_queues = {"thumbnailGeneration"}
    fake_immich_server.queue_counts = {"thumbnailGeneration": {"waiting": 40}}
    code, record = verify(server_args(fake_immich_server, QUEUES), capsys)
    assert result(record, "IC-SV-425") == (
        Status.WARN,
        "paused: thumbnailGeneration (40 waiting); resume in Administration > Job Queues, "
        'or PUT /api/queues/thumbnailGeneration {"isPaused": false}',
    )
    assert result(record, "IC-SV-427")[0] == Status.PASS  # paused is not stalled
    assert code == 1


def test_failing_queue_warns_with_the_newest_reason(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.queue_counts = {"thumbnailGeneration": {"failed": 57}}
    fake_immich_server.admin.failed_reasons["thumbnailGeneration"] = [
        "Error: old reason",
        "Error: ENOENT: no such file or directory, open '/data/upload/a.jpg'",
    ]
    code, record = verify(
        [*server_args(fake_immich_server, "IC-SV-426"), "--failed-jobs-warn", "50"], capsys
    )
    assert result(record, "IC-SV-426") == (
        Status.WARN,
        "failed jobs over 50: thumbnailGeneration 57 (newest: Error: ENOENT: no such file or "
        "directory, open '/data/upload/a.jpg')",
    )
    assert code == 1
    _, record = verify(
        [*server_args(fake_immich_server, "IC-SV-426"), "--failed-jobs-warn", "60"], capsys
    )
    assert result(record, "IC-SV-426")[0] == Status.PASS


def test_stalled_queue_fails_and_moving_queue_passes(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.queue_counts = {"smartSearch": {"waiting": 120}}
    started = time.perf_counter()
    code, record = verify([*server_args(fake_immich_server, QUEUES), "--timeout", "1"], capsys)
    assert result(record, "IC-SV-427") == (
        Status.FAIL,
        "stalled: smartSearch (120 waiting): none active and no change in 0.5 s",
    )
    assert code == 2
    assert time.perf_counter() - started < 5  # the second reading is bounded by --timeout
    fake_immich_server.admin.moving_queues = {"smartSearch": 7}
    code, record = verify([*server_args(fake_immich_server, QUEUES), "--timeout", "1"], capsys)
    assert result(record, "IC-SV-427") == (
        Status.PASS,
        "moving: smartSearch (waiting 113 -> 106)",
    )
    # A busy queue (jobs active) is never a stall candidate.
    fake_immich_server.admin.moving_queues = {}
    fake_immich_server.queue_counts = {"smartSearch": {"waiting": 120, "active": 2}}
    code, record = verify(server_args(fake_immich_server, QUEUES), capsys)
    assert result(record, "IC-SV-427")[0] == Status.PASS
    assert code == 0


def test_server_before_v2_3_is_read_through_the_legacy_jobs_route(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.version = (2, 2, 0)
    fake_immich_server.paused_queues = {"smartSearch"}
    code, record = verify(server_args(fake_immich_server, QUEUES), capsys)
    assert result(record, "IC-SV-425")[0] == Status.WARN
    assert result(record, "IC-SV-425") and record.checks[0].target.endswith("/api/jobs")
    assert code == 1


def test_queues_compared_with_redis(
    fake_immich_server: Any, redis_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import redis

    url = redis_server.url.rsplit("/", 1)[0] + "/5"
    client = redis.Redis.from_url(url)
    client.flushdb()
    args = [*server_args(fake_immich_server, "IC-SV-428"), "--redis-url", url]
    fake_immich_server.queue_counts = {"thumbnailGeneration": {"failed": 3}}
    code, record = verify(args, capsys)
    status, text = result(record, "IC-SV-428")
    assert status == Status.WARN
    assert "thumbnailGeneration failed 3 vs failed 0" in text
    assert text.endswith("holds no Immich queue keys: the server uses another Redis")
    assert code == 1
    client.hset("immich_bull:thumbnailGeneration:meta", "opts.maxLenEvents", "10000")
    client.zadd("immich_bull:thumbnailGeneration:failed", {"1": 1, "2": 2, "3": 3})
    _, record = verify(args, capsys)
    assert result(record, "IC-SV-428")[0] == Status.PASS
    client.flushdb()


# Storage and ML as the server sees them -------------------------------------------------------


@pytest.mark.parametrize(("percent", "status"), [(50, "PASS"), (80, "WARN"), (95, "FAIL")])
def test_server_disk_usage(
    percent: int, status: str, fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.admin.set_disk_percent(percent)
    _, record = verify(server_args(fake_immich_server, "IC-ST-505"), capsys)
    found, text = result(record, "IC-ST-505")
    assert found == Status(status)
    assert f"of 252.0 GiB used ({percent:g}%)" in text
    assert text.endswith("free (warn 80%, fail 95%)")


def test_storage_thresholds_are_configurable(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.admin.set_disk_percent(85)
    args = [*server_args(fake_immich_server, "IC-ST-505"), "--storage-warn-percent", "90"]
    _, record = verify(args, capsys)
    assert result(record, "IC-ST-505")[0] == Status.PASS
    code, _out, err = run_cli(
        ["verify", *args, "--storage-fail-percent", "85", "--no-save"], capsys
    )
    assert code == 3
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith("--storage-warn-percent must not be above --storage-fail-percent")
    )


def test_ml_url_that_is_not_ours_warns(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Immich's own default URL is not this deployment's Service (manifests/ name it immich-ml
    # and set it in immich-config.json): a server started without that file calls nothing.
    code, record = verify(server_args(fake_immich_server, "IC-ML-304"), capsys)
    assert result(record, "IC-ML-304") == (
        Status.WARN,
        "the server calls http://immich-machine-learning:3003, not the ML service verified "
        "here (immich-ml:3003)",
    )
    assert code == 1
    ml = fake_immich_server.admin.config["machineLearning"]
    ml["urls"] = ["http://gpu-box:3003", "http://immich-ml.immich.svc.cluster.local:3003"]
    code, record = verify(server_args(fake_immich_server, "IC-ML-304"), capsys)
    assert result(record, "IC-ML-304") == (
        Status.PASS,
        "the server calls http://immich-ml.immich.svc.cluster.local:3003 (features on: clip, "
        "facialRecognition, duplicateDetection, ocr)",
    )
    assert code == 0
    ml["urls"] = ["http://gpu-box:3003"]
    args = [*server_args(fake_immich_server, "IC-ML-304"), "--ml-url", "http://gpu-box:3003/"]
    _, record = verify(args, capsys)
    assert result(record, "IC-ML-304")[0] == Status.PASS
    ml["enabled"] = False
    _, record = verify(args, capsys)
    assert result(record, "IC-ML-304") == (
        Status.WARN,
        "machine learning is disabled in the server's config",
    )


def test_inference_uses_the_server_models(
    fake_immich_server: Any, fake_ml_service: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ml = fake_immich_server.admin.config["machineLearning"]
    ml["clip"]["modelName"] = "ViT-B-16-SigLIP__webli"
    ml["facialRecognition"]["modelName"] = "antelopev2"
    args = [
        *server_args(fake_immich_server, "IC-ML-302,IC-ML-305"),
        "--ml-url",
        fake_ml_service.url,
    ]
    code, record = verify(args, capsys)
    assert [c.target for c in record.checks] == [
        f"{fake_ml_service.url} ViT-B-16-SigLIP__webli",
        f"{fake_ml_service.url} antelopev2",
    ]
    assert result(record, "IC-ML-305")[1].endswith("(1 face(s) in the probe image)")
    tasks = [task for entry in fake_ml_service.requests for task in entry.get("tasks", [])]
    assert "facial-recognition/detection/antelopev2" in tasks
    assert code == 0
    ml["facialRecognition"]["enabled"] = False
    _, record = verify(args, capsys)
    assert result(record, "IC-ML-305") == (
        Status.SKIP,
        "skipped: facial recognition is disabled in the server's config",
    )


def test_face_model_that_fails_to_load(
    fake_immich_server: Any, fake_ml_service: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.admin.config["machineLearning"]["facialRecognition"]["modelName"] = "nope"
    fake_ml_service.broken_models = {"nope"}
    args = [*server_args(fake_immich_server, "IC-ML-305"), "--ml-url", fake_ml_service.url]
    code, record = verify(args, capsys)
    status, text = result(record, "IC-ML-305")
    assert status == Status.FAIL
    assert text.startswith("/predict failed: HTTP 500")
    assert code == 2


# Keys, permissions, versions ------------------------------------------------------------------


def test_no_api_key_skips_with_the_reason(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, record = verify(
        ["--server-url", fake_immich_server.url, "--only", f"{NEW_CODES},IC-ML-305"], capsys
    )
    assert {c.status for c in record.checks} == {Status.SKIP}
    assert result(record, "IC-SV-425")[1] == (
        "skipped: no --api-key given (an admin's key: see README, 'API key permissions')"
    )
    assert result(record, "IC-SV-422")[1] == (
        "skipped: no --api-key (GET /api/admin/database-backups) and no --media-path "
        "(<media>/backups/)"
    )
    assert code == 0


def test_key_without_permissions_is_error_naming_the_permission(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = next(u for u in fake_immich_server.users.values() if u.is_admin)
    key = fake_immich_server.create_api_key(admin, "narrow", ("server.about",)).secret
    code, record = verify(
        ["--server-url", fake_immich_server.url, "--api-key", key, "--only", "IC-SV-422,IC-SV-425"],
        capsys,
    )
    assert result(record, "IC-SV-422") == (
        Status.ERROR,
        "could not run: GET /api/admin/database-backups: the API key lacks the maintenance "
        "permission or is not an admin's (HTTP 403)",
    )
    assert "lacks the queue.read permission" in result(record, "IC-SV-425")[1]
    assert code == 3


def test_older_server_gives_skips_not_errors(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.version = (1, 140, 0)  # no database-backups, no /api/queues
    fake_immich_server.admin.config["machineLearning"]["urls"] = ["http://immich-ml:3003"]
    code, record = verify(server_args(fake_immich_server), capsys)
    statuses = {c.code: c.status for c in record.checks}
    assert Status.ERROR not in statuses.values()
    assert statuses["IC-SV-422"] == Status.SKIP
    assert statuses["IC-SV-425"] == Status.PASS  # through /api/jobs
    assert code == 0


def test_backup_names_and_schedules() -> None:
    assert backup_time("immich-db-backup-20261204T134927-v2.7.5-pg15.20.sql.gz") == datetime(
        2026, 12, 4, 13, 49, 27, tzinfo=UTC
    )
    assert backup_time(
        "immich-db-backup-20261204T134927-v2.7.5-pg15.20.sql.gz", "Europe/Berlin"
    ) == datetime(2026, 12, 4, 12, 49, 27, tzinfo=UTC)
    assert backup_time("immich-db-backup-1738144800006.sql.gz") == datetime(
        2025, 1, 29, 10, 0, 0, 6000, tzinfo=UTC
    )
    assert backup_time("uploaded-immich-db-backup-20261204T134927-v2.7.5-pg15.20.sql.gz") is None
    assert cron_period("0 02 * * *") == timedelta(days=1)
    assert cron_period("0 */6 * * *") == timedelta(hours=6)
    assert cron_period("0 0 2 * * *") == timedelta(days=1)  # NestJS seconds field
    assert cron_period("0 2 * * 1,4") == timedelta(days=3.5)
    assert cron_period("0 3 1 * *") == timedelta(days=31)
    assert cron_period("not a cron") is None


def test_read_system_config_for_other_checks(fake_immich_server: Any) -> None:
    import asyncio

    from immichcheck.clients import ProbeError
    from immichcheck.clients.immich_admin import read_system_config

    url, key = fake_immich_server.url, fake_immich_server.admin_api_key
    config = asyncio.run(read_system_config(url, key, 2.0))
    assert config["job"]["thumbnailGeneration"] == {"concurrency": 3}
    assert config["job"]["videoConversion"] == {"concurrency": 1}
    assert config["backup"]["database"]["keepLastAmount"] == 14
    with pytest.raises(ProbeError, match="the API key was rejected"):
        asyncio.run(read_system_config(url, "not-a-key", 2.0))


def test_table_with_every_problem_set(
    fake_immich_server: Any,
    fake_ml_service: Any,
    redis_server: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The verify table of the issue's closing note: each problem set on one fake server."""
    import re

    admin = fake_immich_server.admin
    admin.backups = []
    admin.add_backup(timedelta(days=4, hours=2), size=30879)
    admin.add_backup(timedelta(days=3, hours=2), size=0)
    admin.config["machineLearning"]["urls"] = ["http://gpu-box:3003"]
    admin.config["machineLearning"]["facialRecognition"]["modelName"] = "antelopev2"
    fake_ml_service.broken_models = {"antelopev2"}
    admin.set_disk_percent(96.4)
    fake_immich_server.paused_queues = {"thumbnailGeneration"}
    fake_immich_server.queue_counts = {
        "thumbnailGeneration": {"waiting": 40, "failed": 57},
        "smartSearch": {"waiting": 120},
        "metadataExtraction": {"waiting": 300},
    }
    admin.moving_queues = {"metadataExtraction": 25}
    admin.failed_reasons["thumbnailGeneration"] = ["Error: ENOENT: no such file or directory"]
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/6"
    args = [
        *server_args(fake_immich_server, f"{NEW_CODES},IC-SV-428,IC-ML-302,IC-ML-305"),
        *("--ml-url", fake_ml_service.url, "--redis-url", redis_url, "--timeout", "2"),
    ]
    code, out, _err = run_cli(["verify", *args, "--format", "table", "--no-save"], capsys)
    rows = dict(
        (match.group(2), match.group(1))
        for match in re.finditer(r"^(PASS|WARN|FAIL|ERROR|SKIP)\s+(IC-\S+)", out, re.M)
    )
    assert rows == {
        "IC-ML-302": "PASS",
        "IC-ML-304": "WARN",
        "IC-ML-305": "FAIL",
        "IC-SV-421": "PASS",
        "IC-SV-422": "FAIL",
        "IC-SV-423": "FAIL",
        "IC-SV-424": "PASS",
        "IC-SV-425": "WARN",
        "IC-SV-426": "WARN",
        "IC-SV-427": "FAIL",
        "IC-SV-428": "WARN",
        "IC-ST-505": "FAIL",
    }
    assert "CRITICAL: 3 PASS, 4 WARN, 5 FAIL, 0 ERROR, 0 SKIP" in out
    assert code == 2
