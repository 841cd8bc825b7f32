"""Which credentials reach the API server: the kubeconfig files kubectl reads, or the pod's.

kr8s loads and merges the kubeconfig files itself (`KUBECONFIG=a:b`, as kubectl does). This
module only reads them first, for two reasons: what kubectl would refuse (a file that is not
YAML, an unknown context, a context naming a user or cluster no file defines) must be one
clear line before anything connects, not a bare ValueError from inside the client in every
cluster check; and where kr8s and kubectl read the same files differently, immichcheck must
talk to the cluster kubectl would, or say why it cannot (see `_same_everywhere`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from immichcheck.common.errors import ImmichcheckError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = "~/.kube/config"


def service_account_dir() -> Path:
    """Where the pod's service account is mounted; IMMICHCHECK_SERVICE_ACCOUNT_DIR for tests."""
    return Path(os.environ.get("IMMICHCHECK_SERVICE_ACCOUNT_DIR") or SERVICE_ACCOUNT_DIR)


def in_cluster() -> bool:
    """True inside a pod: the service account token is mounted and the API host is set."""
    return (
        bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        and (service_account_dir() / "token").is_file()
    )


@dataclass(frozen=True)
class KubeAccess:
    """How to reach the API server: kubeconfig files (with a context) or the service account."""

    kubeconfig: tuple[Path, ...]
    context: str | None  # as asked for (--context); None: the files' current-context
    service_account: bool
    active_context: str = ""  # the context kubectl would use, passed to the client
    exec_command: str = ""  # the user's exec credential plugin, named when it fails

    @property
    def description(self) -> str:
        """Where the credentials come from, for messages."""
        if self.service_account:
            return "in-cluster service account"
        files = ", ".join(str(path) for path in self.kubeconfig)
        return f"kubeconfig {files}" + (f" (context {self.context})" if self.context else "")


def kubeconfig_candidates(explicit: str | None) -> list[Path]:
    """The kubeconfig files kubectl reads: --kubeconfig, else $KUBECONFIG, else ~/.kube/config."""
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path(DEFAULT_KUBECONFIG).expanduser()]


def find_kube_access(explicit: str | None, context: str | None) -> KubeAccess | None:
    """The kubeconfig files (checked as kubectl would), else the pod's service account, else None.

    As kubectl: an explicit --kubeconfig must exist, while files of $KUBECONFIG that do not
    exist are skipped.
    """
    candidates = kubeconfig_candidates(explicit)
    if explicit and not candidates[0].is_file():
        raise ImmichcheckError(f"kubeconfig {explicit} does not exist")
    existing = list(dict.fromkeys(path for path in candidates if path.is_file()))
    if existing:
        return check_kubeconfig(existing, context)
    if in_cluster():
        return KubeAccess(kubeconfig=(), context=None, service_account=True)
    return None


def check_kubeconfig(paths: Sequence[Path], context: str | None = None) -> KubeAccess:
    """Read the files as kubectl merges them; one-line ImmichcheckError for what it would refuse."""
    documents = [(path, _read(path)) for path in paths]
    used = tuple(path for path, data in documents if data)  # an empty file adds nothing
    where = _where(paths)
    contexts = _entries(documents, "contexts")
    if not used or not contexts or not _entries(documents, "clusters"):
        raise ImmichcheckError(f"kubeconfig {where} has no clusters or contexts")
    known = ", ".join(sorted(contexts)) or "none"
    # kubectl: --context, else the first file that sets a current-context.
    name = context or next(
        (str(data["current-context"]) for _, data in documents if data.get("current-context")),
        "",
    )
    if not name:
        raise ImmichcheckError(
            f"kubeconfig {where} sets no current-context: pass --context (one of: {known})"
        )
    if name not in contexts:
        raise ImmichcheckError(f"kubeconfig {where} has no context {name!r} (it has: {known})")
    _same_everywhere("context", name, contexts[name])
    context_path, chosen = contexts[name][0]
    chosen = chosen if isinstance(chosen, dict) else {}
    found: dict[str, dict[str, Any]] = {}
    for kind, plural in (("cluster", "clusters"), ("user", "users")):
        wanted = chosen.get(kind)
        defined = _entries(documents, plural)
        if not wanted or str(wanted) not in defined:
            what = f"{kind} {str(wanted)!r}, which is not defined in {where}" if wanted else ""
            raise ImmichcheckError(
                f"context {name!r} in kubeconfig {context_path} names "
                + (what or f"no {kind} (immichcheck's Kubernetes client needs one)")
            )
        _same_everywhere(kind, str(wanted), defined[str(wanted)])
        entry = defined[str(wanted)][0][1]
        found[kind] = entry if isinstance(entry, dict) else {}
    if not found["cluster"].get("server"):
        raise ImmichcheckError(
            f"cluster {chosen['cluster']!r} in kubeconfig {where} has no server address"
        )
    plugin = found["user"].get("exec")
    if len(used) > 1 and os.name == "nt":
        # kr8s merges several files on POSIX only (it splits the path on ':').
        raise ImmichcheckError("several kubeconfig files are not supported on Windows")
    return KubeAccess(
        kubeconfig=used,
        context=context,
        service_account=False,
        active_context=name,
        exec_command=str(plugin.get("command", "")) if isinstance(plugin, dict) else "",
    )


def _where(paths: Sequence[Path]) -> str:
    return str(paths[0]) if len(paths) == 1 else "files " + ", ".join(str(p) for p in paths)


def _read(path: Path) -> dict[str, Any]:
    """One kubeconfig file as a mapping ({} when empty, as kubectl takes it)."""
    import yaml

    from immichcheck.common import yaml_text

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ImmichcheckError(f"cannot read kubeconfig {path}: {reason or exc}") from exc
    try:
        data = yaml_text.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ImmichcheckError(f"kubeconfig {path} is not valid YAML{line}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ImmichcheckError(f"kubeconfig {path} is not a kubeconfig (not a mapping)")
    for key in ("clusters", "contexts", "users"):
        if not isinstance(data.get(key) or [], list):
            raise ImmichcheckError(f"kubeconfig {path}: {key} is not a list")
    return data


Definitions = list[tuple[Path, Any]]
Documents = Sequence[tuple[Path, dict[str, Any]]]


def _entries(documents: Documents, plural: str) -> dict[str, Definitions]:
    """name -> every (file, body) defining it, in file order (kubectl takes the first)."""
    singular = plural[:-1]
    found: dict[str, Definitions] = {}
    for path, data in documents:
        for entry in data.get(plural) or []:
            if isinstance(entry, dict) and entry.get("name") is not None:
                found.setdefault(str(entry["name"]), []).append((path, entry.get(singular)))
    return found


def _same_everywhere(kind: str, name: str, definitions: Definitions) -> None:
    """Refuse a name defined differently in two files.

    kubectl keeps the first definition; kr8s's merge keeps the last. Rather than verify a
    cluster other than the one kubectl would reach, say so.
    """
    first_path, first = definitions[0]
    for path, body in definitions[1:]:
        if body != first:
            raise ImmichcheckError(
                f"{kind} {name!r} is defined differently in kubeconfig {first_path} and {path}; "
                "kubectl uses the first, immichcheck's Kubernetes client would use the last: "
                "give one of them another name"
            )
