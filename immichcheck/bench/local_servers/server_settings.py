"""How the throwaway servers are configured: the deployment's ConfigMaps from `manifests/`,
or built-in equivalents, minus the settings the local stack decides itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Used only until immichcheck/deploy/expected_state.py can give the expected state: the same
# values the deployment's immich-postgres-config / immich-redis-config ConfigMaps carry.
BUILTIN_POSTGRES_SETTINGS: dict[str, str] = {
    "shared_buffers": "256MB",
    "effective_cache_size": "768MB",
    "work_mem": "4MB",
    "maintenance_work_mem": "64MB",
    "random_page_cost": "1.1",
    "effective_io_concurrency": "200",
    "wal_buffers": "16MB",
    "checkpoint_completion_target": "0.9",
    "max_wal_size": "1GB",
    "min_wal_size": "80MB",
    "log_min_duration_statement": "1000",
    "autovacuum_vacuum_scale_factor": "0.1",
    "autovacuum_analyze_scale_factor": "0.05",
}
BUILTIN_REDIS_SETTINGS: dict[str, str] = {
    "maxmemory": "400mb",
    "maxmemory-policy": "noeviction",
    "appendonly": "yes",
    "appendfsync": "everysec",
    "lazyfree-lazy-eviction": "yes",
    "lazyfree-lazy-expire": "yes",
    "lazyfree-lazy-server-del": "yes",
}
BUILTIN_DATABASE = "immich"

# Settings the local stack decides itself: where it listens and keeps files.
POSTGRES_OWN_SETTINGS = {
    "listen_addresses",
    "port",
    "unix_socket_directories",
    "data_directory",
    "hba_file",
    "ident_file",
    "config_file",
    "external_pid_file",
    "logging_collector",
    "log_directory",
    "log_filename",
    "ssl",
    "ssl_cert_file",
    "ssl_key_file",
    "ssl_ca_file",
    "archive_command",
    "archive_mode",
    "include",
    "include_dir",
    "include_if_exists",
}
REDIS_OWN_SETTINGS = {
    "port",
    "bind",
    "dir",
    "daemonize",
    "logfile",
    "pidfile",
    "unixsocket",
    "unixsocketperm",
    "supervised",
    "protected-mode",
    "include",
    "tls-port",
    "requirepass",
    "masterauth",
    "replicaof",
    "slaveof",
}


@dataclass(frozen=True)
class ServerSettings:
    """The configuration the throwaway servers get, and where it came from."""

    postgres: Mapping[str, str]
    redis: Mapping[str, str]
    database: str
    source: str  # "manifests/" or "built-in defaults"


def expected_server_settings(manifests_dir: str | Path | None = None) -> ServerSettings:
    """PostgreSQL/Redis settings from the manifests' ConfigMaps (built-in equivalents if absent)."""
    try:
        from immichcheck.deploy.expected_state import load_expected_state
    except ImportError:
        return ServerSettings(
            BUILTIN_POSTGRES_SETTINGS,
            BUILTIN_REDIS_SETTINGS,
            BUILTIN_DATABASE,
            "built-in defaults",
        )
    state = load_expected_state(manifests_dir)
    return ServerSettings(
        postgres=dict(state.postgres_settings),
        redis=dict(state.redis_settings),
        database=state.postgres_database or BUILTIN_DATABASE,
        source=str(state.directory),
    )
