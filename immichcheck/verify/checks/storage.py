"""Storage checks on the paths this run can reach: media (NFS) and data (NVMe) folders."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from immichcheck.verify.checks import (
    Facts,
    Verdict,
    check,
    errored,
    failed,
    passed,
    skipped,
    warned,
)

_PROBES = ("storage",)
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "ceph", "glusterfs")
# The README's prerequisites: 10 GB free on node05's NVMe, 100 GB on the NFS media volume.
DEFAULT_MIN_FREE = {"media": 100 * 10**9, "data": 10 * 10**9}
ROLE_NAMES = {"media": "media (NFS)", "data": "data (NVMe)"}


def _paths(facts: Facts) -> Iterator[tuple[str, str, Mapping[str, Any] | str]]:
    """(role, target, facts-or-error) for each storage path probed."""
    for role, answer in facts["storage"].items():
        path = answer.get("path", role) if isinstance(answer, Mapping) else role
        yield role, f"{ROLE_NAMES.get(role, role)} {path}", answer


@check("IC-ST-501", probes=_PROBES)
def mount_type(facts: Facts) -> list[Verdict]:
    """Media sits on a network filesystem and the data path on a local one, as designed."""
    verdicts = []
    for role, target, answer in _paths(facts):
        if isinstance(answer, str):
            verdicts.append(errored(answer, target))
            continue
        fstype = str(answer["fstype"])
        network = fstype in NETWORK_FILESYSTEMS
        described = f"{fstype} mounted at {answer['mountpoint']} from {answer['device']}"
        # The media volume is reported, not judged: a local disk is a valid choice there,
        # while database and queue files on a network filesystem are a real problem.
        if role == "data" and network:
            verdicts.append(warned(f"{described}: the database belongs on local NVMe", target))
        else:
            verdicts.append(passed(described, target, fstype=fstype))
    return verdicts


@check("IC-ST-502", probes=_PROBES)
def free_space(facts: Facts) -> list[Verdict]:
    """Free space is above the README's minimum for the path's role."""
    minimums = {**DEFAULT_MIN_FREE, **dict(facts.settings.get("min_free_bytes", {}))}
    verdicts = []
    for role, target, answer in _paths(facts):
        if isinstance(answer, str):
            verdicts.append(errored(answer, target))
            continue
        free, minimum = int(answer["free_bytes"]), int(minimums.get(role, 0))
        total = int(answer["total_bytes"])
        message = (
            f"{free / 10**9:.1f} GB free of {total / 10**9:.1f} GB (minimum {minimum / 10**9:g} GB)"
        )
        if free < minimum:
            verdicts.append(failed(message, target, free_bytes=free))
        else:
            verdicts.append(passed(message, target, free_bytes=free))
    return verdicts


@check("IC-ST-503", probes=_PROBES)
def write_read_delete(facts: Facts) -> list[Verdict]:
    """A small file can be written (fsync), read back identical and deleted."""
    verdicts = []
    for _role, target, answer in _paths(facts):
        if isinstance(answer, str):
            verdicts.append(errored(answer, target))
            continue
        trip = answer["round_trip"]
        if not trip["ok"]:
            verdicts.append(failed(f"{trip['step']} failed: {trip['error']}", target))
        else:
            verdicts.append(
                passed(f"write, read and delete in {trip['seconds'] * 1000:.1f} ms", target)
            )
    return verdicts


@check("IC-ST-504", probes=_PROBES)
def immich_markers(facts: Facts) -> list[Verdict]:
    """Each media folder holds a readable `.immich` marker (the server's boot-time mount check)."""
    verdicts = []
    for role, target, answer in _paths(facts):
        if role != "media":
            continue
        if isinstance(answer, str):
            verdicts.append(errored(answer, target))
            continue
        markers: Mapping[str, Mapping[str, bool]] = answer["markers"]
        folders = [name for name, m in markers.items() if m["folder"]]
        if not folders:
            verdicts.append(
                warned("no media folders yet: the server has not started on this volume", target)
            )
            continue
        missing = [name for name, m in markers.items() if not m["marker"]]
        unreadable = [name for name, m in markers.items() if m["marker"] and not m["readable"]]
        if missing or unreadable:
            parts = ([f"missing in {', '.join(missing)}"] if missing else []) + (
                [f"unreadable in {', '.join(unreadable)}"] if unreadable else []
            )
            verdicts.append(failed(".immich marker " + "; ".join(parts), target))
        else:
            verdicts.append(passed(f".immich present in all {len(markers)} folders", target))
    if not verdicts:
        verdicts.append(skipped("no media path given (--media-path)"))
    return verdicts


@check("IC-ST-505", probes=("immich.storage",), requires=("IC-SV-401",))
def server_disk_usage(facts: Facts) -> Verdict:
    """The media disk, as the server sees it, is below the warn and fail usage percentages."""
    from immichcheck.clients.immich_admin import SERVER_STORAGE
    from immichcheck.verify.checks.admin_answers import unusable

    data = facts["immich.storage"]
    target = f"{data['url']}{SERVER_STORAGE}"
    problem = unusable(data["answer"], SERVER_STORAGE, target)
    if problem:
        return problem
    body = data["answer"]["json"]
    if not isinstance(body, dict) or not isinstance(body.get("diskUsagePercentage"), int | float):
        return errored("could not run: the answer has no diskUsagePercentage", target)
    percent = float(body["diskUsagePercentage"])
    warn = float(facts.settings.get("storage_warn_percent", 80.0))
    fail = float(facts.settings.get("storage_fail_percent", 95.0))
    message = (
        f"{body.get('diskUse')} of {body.get('diskSize')} used ({percent:g}%), "
        f"{body.get('diskAvailable')} free (warn {warn:g}%, fail {fail:g}%)"
    )
    evidence = {"percent": percent, "size_bytes": body.get("diskSizeRaw")}
    if percent >= fail:
        return failed(message, target, **evidence)
    if percent >= warn:
        return warned(message, target, **evidence)
    return passed(message, target, **evidence)
