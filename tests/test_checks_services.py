"""PostgreSQL, Redis, ML, server and storage checks on small hand-made facts, plus redaction."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from immichcheck.clients.storage import storage_facts
from immichcheck.common.records import CheckResult, Status
from immichcheck.common.redaction import MASK, Redactor, redact
from immichcheck.deploy.expected_state import load_expected_state
from immichcheck.verify.checks.postgres import setting_value, version_tuple
from immichcheck.verify.checks.postgres_settings import said_in_one_unit
from immichcheck.verify.checks.redis import redis_bytes
from immichcheck.verify.engine import ProbeOutcome, evaluate, with_default_port

EXPECTED = load_expected_state()


def pg_facts(**overrides: Any) -> dict[str, Any]:
    """A healthy, migrated PostgreSQL as the probe reports it."""
    settings = {
        "random_page_cost": {
            "setting": "1.1",
            "unit": None,
            "pending_restart": False,
            "source": "f",
        },
        "shared_buffers": {
            "setting": "32768",
            "unit": "8kB",
            "pending_restart": False,
            "source": "f",
        },
        "work_mem": {"setting": "8192", "unit": "kB", "pending_restart": False, "source": "f"},
        "log_min_duration_statement": {
            "setting": "250",
            "unit": "ms",
            "pending_restart": False,
            "source": "f",
        },
        "max_connections": {"setting": "50", "unit": None, "pending_restart": False, "source": "f"},
        "superuser_reserved_connections": {
            "setting": "3",
            "unit": None,
            "pending_restart": False,
            "source": "d",
        },
        "shared_preload_libraries": {
            "setting": "vchord.so",
            "unit": None,
            "pending_restart": False,
            "source": "f",
        },
    }
    facts: dict[str, Any] = {
        "location": "db:5432/immich",
        "version_num": 150010,
        "version": "15.10",
        "database": "immich",
        "extensions": {
            "vchord": "0.4.3",
            "cube": "1.5",
            "earthdistance": "1.1",
            "pg_trgm": "1.6",
            "unaccent": "1.1",
            "uuid-ossp": "1.1",
        },
        "available_extensions": {"vchord": "0.4.3", "vector": "0.8.0"},
        "settings": settings,
        "connections": 10,
        "database_size": 50 * 2**20,
        "tables": [
            "asset",
            "asset_exif",
            "asset_face",
            "user",
            "smart_search",
            "face_search",
            "album",
        ],
        "indexes": {
            "clip_index": {
                "table": "smart_search",
                "definition": "CREATE INDEX clip_index ON smart_search USING vchordrq (embedding)",
            },
            "face_index": {
                "table": "face_search",
                "definition": "CREATE INDEX face_index ON face_search USING vchordrq (embedding)",
            },
        },
        "slow_statements": {
            "available": True,
            "top": [{"query": "SELECT 1", "calls": 9, "mean_seconds": 0.002}],
        },
    }
    facts.update(overrides)
    return facts


def run(
    codes: list[str], probe: str, data: Any, settings: dict[str, Any] | None = None
) -> dict[str, CheckResult]:
    results = evaluate(codes, {probe: ProbeOutcome(probe, data=data)}, EXPECTED, settings)
    return {r.code: r for r in results}


PG_CODES = [f"IC-PG-{n}" for n in range(101, 111)]


def test_healthy_postgres_passes() -> None:
    results = run(PG_CODES, "postgres", pg_facts())
    assert {code: r.status for code, r in results.items()} == dict.fromkeys(PG_CODES, Status.PASS)
    assert results["IC-PG-103"].message == "vchord 0.4.3"
    assert results["IC-PG-109"].message == "clip_index and face_index present (vchordrq)"


@pytest.mark.parametrize(
    ("extensions", "available", "preload", "status", "text"),
    [
        ({"vector": "0.4.1"}, {}, "", Status.FAIL, "vector 0.4.1 is older than 0.5"),
        ({"vectors": "0.2.0"}, {}, "", Status.PASS, "vectors 0.2.0"),
        ({"vectors": "0.3.0"}, {}, "", Status.WARN, "vectors 0.3.0 is newer than the tested range"),
        (
            {"vchord": "0.4.3"},
            {},
            "",
            Status.FAIL,
            "vchord is installed but not in shared_preload_libraries",
        ),
        ({}, {"vchord": "0.4.3"}, "vchord.so", Status.WARN, "vchord available but not created yet"),
        ({}, {}, "", Status.FAIL, "no vector extension"),
    ],
)
def test_vector_extension_range(
    extensions: dict[str, str], available: dict[str, str], preload: str, status: Status, text: str
) -> None:
    facts = pg_facts(extensions=extensions, available_extensions=available)
    facts["settings"]["shared_preload_libraries"]["setting"] = preload
    result = run(["IC-PG-103"], "postgres", facts)["IC-PG-103"]
    assert result.status == status
    assert text in result.message


def test_missing_contrib_extensions_warn_on_fresh_fail_when_migrated() -> None:
    available = {
        name: "1" for name in ("cube", "earthdistance", "pg_trgm", "unaccent", "uuid-ossp")
    }
    fresh = pg_facts(extensions={"vchord": "0.4.3"}, available_extensions=available, tables=[])
    assert run(["IC-PG-104"], "postgres", fresh)["IC-PG-104"].status == Status.WARN
    migrated = pg_facts(extensions={"vchord": "0.4.3"}, available_extensions=available)
    result = run(["IC-PG-104"], "postgres", migrated)["IC-PG-104"]
    assert result.status == Status.FAIL
    assert "although Immich's tables exist" in result.message


def test_settings_not_in_effect_are_named() -> None:
    facts = pg_facts()
    facts["settings"]["random_page_cost"]["setting"] = "4"
    facts["settings"]["shared_buffers"]["setting"] = "16384"
    result = run(["IC-PG-105"], "postgres", facts)["IC-PG-105"]
    assert result.status == Status.WARN
    assert result.message == (
        "random_page_cost is 4, ConfigMap says 1.1; shared_buffers is 128MB, ConfigMap says 256MB"
    )


def test_setting_mismatches_are_said_in_one_unit() -> None:
    # The issue's case: 524288 x 8kB is 4 GiB, against 640MB in the ConfigMap.
    facts = pg_facts()
    facts["settings"]["effective_cache_size"] = {
        "setting": "524288",
        "unit": "8kB",
        "pending_restart": False,
    }
    facts["settings"]["log_min_duration_statement"] = {
        "setting": "250",
        "unit": "ms",
        "pending_restart": False,
    }
    shipped = {
        **EXPECTED.postgres_settings,
        "effective_cache_size": "640MB",
        "log_min_duration_statement": "2s",
    }
    expected = dataclasses.replace(EXPECTED, postgres_settings=shipped)
    outcomes = {"postgres": ProbeOutcome("postgres", data=facts)}
    (result,) = evaluate(["IC-PG-105"], outcomes, expected)
    assert result.status == Status.WARN
    assert "effective_cache_size is 4096MB, ConfigMap says 640MB" in result.message
    assert "log_min_duration_statement is 250ms, ConfigMap says 2000ms" in result.message
    assert "8kB" not in result.message


@pytest.mark.parametrize(
    ("live", "shipped", "unit", "said"),
    [
        ("524288", "640MB", "8kB", ("4096MB", "640MB")),
        ("1048576", "4GB", "8kB", ("8GB", "4GB")),
        ("4096", "64MB", "kB", ("4MB", "64MB")),
        ("100", "1min", "s", ("100s", "60s")),
        ("2", "1h", "min", ("2min", "60min")),
        ("1.1", "4", None, ("1.1", "4")),
        ("on", "off", None, ("on", "off")),
    ],
)
def test_said_in_one_unit(live: str, shipped: str, unit: str | None, said: tuple[str, str]) -> None:
    assert said_in_one_unit(live, shipped, unit) == said


def test_connection_headroom_and_plural_schema_and_missing_index() -> None:
    crowded = run(["IC-PG-106"], "postgres", pg_facts(connections=46))["IC-PG-106"]
    assert crowded.status == Status.FAIL and crowded.message.startswith(
        "46 of 47 usable connections"
    )
    plural = pg_facts(
        tables=["assets", "exif", "asset_faces", "users", "smart_search", "face_search"], indexes={}
    )
    results = run(["IC-PG-108", "IC-PG-109"], "postgres", plural)
    assert results["IC-PG-108"].message == "6 tables, plural names (core tables present)"
    assert results["IC-PG-109"].status == Status.WARN
    assert results["IC-PG-109"].message == "missing vector index(es): clip_index, face_index"


def test_slow_statements_use_mean_exec_time() -> None:
    slow = pg_facts(
        slow_statements={
            "available": True,
            "top": [{"query": "SELECT * FROM asset", "calls": 40, "mean_seconds": 1.25}],
        }
    )
    result = run(["IC-PG-110"], "postgres", slow)["IC-PG-110"]
    assert result.status == Status.WARN
    assert "worst 1250 ms over 40 calls: SELECT * FROM asset" in result.message


def test_setting_units() -> None:
    assert setting_value("256MB", "8kB") == 256 * 2**20
    assert setting_value("32768", "8kB") == 256 * 2**20
    assert setting_value("250", "ms") == pytest.approx(0.25)
    assert setting_value("30s", "s") == 30
    assert setting_value("1.1", None) == pytest.approx(1.1)
    assert setting_value("'on'", None) == "on"
    assert version_tuple("0.4.3") == (0, 4, 3)


def redis_facts(**overrides: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "location": "redis:6379/0",
        "ping": True,
        "ping_seconds": 0.0004,
        "version": "8.1.3",
        "server_name": "valkey",
        "aof_enabled": True,
        "aof_last_write_status": "ok",
        "aof_last_bgrewrite_status": "ok",
        "aof_rewrite_in_progress": False,
        "used_memory": 20 * 2**20,
        "maxmemory": 400 * 2**20,
        "maxmemory_policy": "noeviction",
        "evicted_keys": 0,
        "config": {"appendfsync": "everysec", "maxmemory": str(400 * 2**20)},
        "queues": {
            "thumbnailGeneration": {"wait": 0, "active": 0, "failed": 0, "delayed": 0, "meta": 1}
        },
    }
    facts.update(overrides)
    return facts


RD_CODES = [f"IC-RD-{n}" for n in range(201, 209)]


def test_healthy_redis_passes() -> None:
    results = run(RD_CODES, "redis", redis_facts())
    assert {r.status for r in results.values()} == {Status.PASS}
    assert results["IC-RD-201"].message == "PONG in 0.4 ms (valkey 8.1.3)"


def test_redis_failures() -> None:
    results = run(
        RD_CODES,
        "redis",
        redis_facts(
            aof_last_write_status="err",
            maxmemory=100 * 2**20,
            used_memory=99 * 2**20,
            maxmemory_policy="volatile-lru",
            evicted_keys=12,
            config={"appendfsync": "always"},
            queues={
                "smartSearch": {"wait": 12000, "active": 1, "failed": 3, "delayed": 0, "meta": 1}
            },
        ),
    )
    status = {code: r.status for code, r in results.items()}
    assert status == {
        "IC-RD-201": Status.PASS,
        "IC-RD-202": Status.PASS,
        "IC-RD-203": Status.FAIL,
        "IC-RD-204": Status.WARN,
        "IC-RD-205": Status.FAIL,
        "IC-RD-206": Status.FAIL,
        "IC-RD-207": Status.WARN,
        "IC-RD-208": Status.WARN,
    }
    assert results["IC-RD-203"].message == "aof_last_write_status is err"
    assert "12 key(s) evicted so far" in results["IC-RD-205"].message
    assert "appendfsync is always, shipped everysec" in results["IC-RD-204"].message
    assert (
        results["IC-RD-207"].message
        == "large backlog in smartSearch: smartSearch wait 12000/active 1"
    )


def test_redis_units() -> None:
    assert redis_bytes("400mb") == 400 * 2**20
    assert redis_bytes("1g") == 10**9
    assert redis_bytes("1048576") == 2**20
    with pytest.raises(ValueError):
        redis_bytes("lots")


def server_answer(**overrides: Any) -> dict[str, Any]:
    def ok(body: Any) -> dict[str, Any]:
        return {"status": 200, "json": body, "text": str(body), "seconds": 0.01}

    answer = {
        "url": "http://immich-server:2283",
        "route": "/api/server/ping",
        "ping": ok({"res": "pong"}),
        "version": ok({"major": 2, "minor": 6, "patch": 0}),
        "features": ok({"smartSearch": True, "facialRecognition": False, "map": True}),
        "config": ok({"isInitialized": False}),
        "about": {
            "status": 401,
            "json": {"message": "Invalid API key"},
            "text": "",
            "seconds": 0.01,
        },
        "statistics": {"status": 401, "json": None, "text": "", "seconds": 0.01},
    }
    answer.update(overrides)
    return answer


def test_server_checks_on_a_drifted_uninitialised_server() -> None:
    codes = ["IC-SV-401", "IC-SV-403", "IC-SV-404", "IC-SV-405", "IC-SV-408", "IC-SV-409"]
    results = run(codes, "server", server_answer())
    assert results["IC-SV-401"].status == Status.PASS
    assert (results["IC-SV-403"].status, results["IC-SV-403"].message) == (
        Status.WARN,
        "server reports v2.6.0, manifests/ pin v2.7.5",
    )
    assert results["IC-SV-404"].message == "disabled: facialRecognition"
    assert results["IC-SV-405"].status == Status.WARN
    assert (results["IC-SV-408"].status, results["IC-SV-408"].message) == (
        Status.FAIL,
        "the API key was rejected (HTTP 401)",
    )
    assert results["IC-SV-409"].status == Status.SKIP


def test_ml_checks() -> None:
    ping = {"url": "http://ml:3003", "status": 200, "json": None, "text": "pong", "seconds": 0.002}
    predict = {
        "url": "http://ml:3003",
        "model": "ViT-B-32__openai",
        "status": 200,
        "text": "",
        "seconds": 2.5,
        "dimension": 512,
        "problem": "",
    }
    results = evaluate(
        ["IC-ML-301", "IC-ML-302", "IC-ML-303"],
        {
            "ml.ping": ProbeOutcome("ml.ping", data=ping),
            "ml.predict": ProbeOutcome("ml.predict", data=predict),
        },
        EXPECTED,
        {"slow_inference_seconds": 1.0},
    )
    assert [r.status for r in results] == [Status.PASS, Status.PASS, Status.WARN]
    assert results[2].message.startswith("CLIP text inference took 2.50 s (over 1 s)")


async def test_storage_probe_round_trip_and_markers(tmp_path: Path) -> None:
    (tmp_path / "upload").mkdir()
    facts = await storage_facts(str(tmp_path), "media", 2.0)
    assert facts["round_trip"]["ok"] is True
    assert facts["markers"]["upload"] == {"folder": True, "marker": False, "readable": False}
    assert list(tmp_path.iterdir()) == [tmp_path / "upload"]  # the probe file is gone
    results = evaluate(
        ["IC-ST-502", "IC-ST-504"],
        {
            "storage": ProbeOutcome(
                "storage", data={"media": facts, "data": "/nvme did not answer within 2 s"}
            )
        },
        EXPECTED,
        {"min_free_bytes": {"media": 1}},
    )
    by_target = {(r.code, r.target.split()[0]): r for r in results}
    assert by_target[("IC-ST-502", "media")].status == Status.PASS
    assert by_target[("IC-ST-502", "data")].status == Status.ERROR
    assert by_target[("IC-ST-504", "media")].status == Status.FAIL


def test_redaction_by_value_and_by_shape() -> None:
    redactor = Redactor(["k3yV4lue-SECRET"])
    text = redactor.text(
        "dsn postgresql://immich:hunter2hunter2@db:5432/immich key k3yV4lue-SECRET "
        "b64 azN5VjRsdWUtU0VDUkVU password=abc token: xyz123 Authorization: Bearer abc.def.ghi-123"
    )
    assert "hunter2hunter2" not in text and "k3yV4lue-SECRET" not in text
    assert "azN5VjRsdWUtU0VDUkVU" not in text and "abc.def.ghi-123" not in text
    assert "password=***" in text and "token: ***" in text
    assert "postgresql://immich:***@db:5432/immich" in text
    assert redactor.data({"a": ["k3yV4lue-SECRET", 3]}) == {"a": [MASK, 3]}
    assert redact("nothing secret here, immich") == "nothing secret here, immich"
    short = Redactor(["abc"])
    # Too short to search for inside text: "abcdef" stays, the value itself is masked as one.
    assert short.text("abcdef abc") == "abcdef abc"
    assert short.data({"password": "abc", "name": "abcdef"}) == {"password": MASK, "name": "abcdef"}


@pytest.mark.parametrize("password", ["immich", "postgres", "password"])
def test_common_passwords_leave_messages_whole_and_are_masked_as_values(password: str) -> None:
    redactor = Redactor([password])
    messages = [
        "immich-postgres-secret has weak values: password has 6 characters (fewer than 16)",
        "secret immich-postgres-secret in namespace immich, user immich, database immich",
        "immich-postgres runs postgres 15 on node05; password authentication is scram-sha-256",
        "ingress immich.home routes /api to immich-server:2283",
    ]
    for text in messages:
        assert redactor.text(text) == text
    # Where the value really appears as a value, it is masked.
    dsn = f"postgresql://immich:{password}@immich-postgres:5432/immich"
    assert redactor.text(dsn) == "postgresql://immich:***@immich-postgres:5432/immich"
    assert redactor.text(f"requirepass {password}\nappendonly yes") == (
        "requirepass ***\nappendonly yes"
    )
    assert redactor.text(f"DB_PASSWORD={password} DB_USERNAME=immich") == (
        "DB_PASSWORD=*** DB_USERNAME=immich"
    )
    env = [
        {"name": "DB_USERNAME", "value": "immich"},
        {"name": "DB_PASSWORD", "value": password},
        {"name": "DB_DATABASE_NAME", "value": "immich"},
    ]
    assert redactor.data({"env": env, "namespace": "immich"}) == {
        "env": [
            {"name": "DB_USERNAME", "value": "immich"},
            {"name": "DB_PASSWORD", "value": MASK},
            {"name": "DB_DATABASE_NAME", "value": "immich"},
        ],
        "namespace": "immich",
    }
    # Kubernetes' base64 form, as a whole token only: the base64 of a longer name that
    # starts with the same bytes is left alone.
    encoded = base64.b64encode(password.encode()).decode()
    longer = base64.b64encode(f"{password}-postgres-secret".encode()).decode()
    assert redactor.text(f"password: {encoded}") == "password: ***"
    assert redactor.values(f'"data": {{"password": "{encoded}"}}') == '"data": {"password": "***"}'
    assert redactor.values(f"name: {longer}") == f"name: {longer}"


@pytest.mark.parametrize("strong", ["Xq7pZ2rT9wL4vN8k", "Xk9pQ2zT7", "a1B2c3"])
def test_a_strong_secret_is_masked_wherever_it_appears(strong: str) -> None:
    # Short random passwords too: only values that could be ordinary words escape the search.
    redactor = Redactor([strong])
    assert redactor.text(f"log: connecting with {strong}xyz and prefix{strong}") == (
        "log: connecting with ***xyz and prefix***"
    )
    assert redactor.data({"note": f"key {strong}"}) == {"note": "key ***"}


def test_default_ports() -> None:
    assert with_default_port("10.0.0.5", 31283) == "10.0.0.5:31283"
    assert with_default_port("10.0.0.5:8080", 31283) == "10.0.0.5:8080"


def test_database_path_on_a_network_filesystem_warns() -> None:
    def facts(path: str, fstype: str) -> dict[str, Any]:
        return {
            "path": path,
            "fstype": fstype,
            "mountpoint": path,
            "device": "nas:/export",
            "total_bytes": 10**12,
            "free_bytes": 5 * 10**11,
            "round_trip": {"ok": True, "step": "", "error": "", "seconds": 0.01},
        }

    data = {"media": facts("/data", "nfs4"), "data": facts("/opt/immich", "nfs4")}
    results = evaluate(["IC-ST-501"], {"storage": ProbeOutcome("storage", data=data)}, EXPECTED)
    by_role = {r.target.split()[0]: r for r in results}
    assert by_role["media"].status == Status.PASS
    assert by_role["media"].message == "nfs4 mounted at /data from nas:/export"
    assert by_role["data"].status == Status.WARN
    assert by_role["data"].message.endswith("the database belongs on local NVMe")
