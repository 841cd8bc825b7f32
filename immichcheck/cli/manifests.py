"""`immichcheck manifests list|show|validate`: the shipped deployment and its validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from immichcheck.cli.options import manifests_option, option, output_options, write_output
from immichcheck.common.errors import ExitCode, ImmichcheckError


def _write(text: str, output: str) -> None:
    """Write text, ending in a newline, to a file or to standard output for '-'."""
    write_output(text if text.endswith("\n") else text + "\n", output)


@click.group("manifests")
def manifests() -> None:
    """The Kubernetes manifests immichcheck ships and verifies against.

    \b
    immichcheck manifests list                 every object, file by file
    immichcheck manifests show immich-redis    the objects of that name, as YAML
    immichcheck manifests validate             schemas and cross-references
    immichcheck manifests expected             what verify compares the cluster against

    Apply them with `kubectl apply -k manifests/` after creating the two secrets
    (manifests/README.md).
    """


@manifests.command("list")
@manifests_option
@output_options(("table", "json"), "table")
def list_command(manifests_dir: str | None, output_format: str, output: str) -> None:
    """List every object in the manifests: file, kind, name, namespace, component."""
    from immichcheck.deploy.expected_state import COMPONENT_ANNOTATION, load_manifest_documents

    rows = []
    for doc in load_manifest_documents(manifests_dir):
        metadata = doc.body.get("metadata") or {}
        rows.append(
            {
                "file": doc.file.name,
                "kind": doc.kind,
                "name": doc.name,
                "namespace": str(metadata.get("namespace") or ""),
                "component": str((metadata.get("annotations") or {}).get(COMPONENT_ANNOTATION, "")),
            }
        )
    if output_format == "json":
        _write(json.dumps(rows, indent=2), output)
        return
    columns = ("file", "kind", "name", "namespace", "component")
    widths = {c: max([len(c), *(len(row[c]) for row in rows)]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    lines += ["  ".join(row[c].ljust(widths[c]) for c in columns).rstrip() for row in rows]
    _write("\n".join(lines), output)


def _component_of(doc: Any) -> str:
    from immichcheck.deploy.expected_state import COMPONENT_ANNOTATION

    metadata = doc.body.get("metadata") or {}
    return str((metadata.get("annotations") or {}).get(COMPONENT_ANNOTATION, ""))


@manifests.command("show")
@click.argument("name")
@manifests_option
@output_options(("yaml", "json"), "yaml")
def show_command(name: str, manifests_dir: str | None, output_format: str, output: str) -> None:
    """Print the objects called NAME, as YAML or JSON.

    NAME is an object name (every kind of that name), Kind/name, a file name such as
    03-redis.yaml, or a component: postgres, redis, ml, server.
    """
    import difflib

    import yaml

    from immichcheck.deploy.expected_state import load_manifest_documents

    documents = load_manifest_documents(manifests_dir)
    kind, _, bare = name.rpartition("/")
    matches = [
        doc
        for doc in documents
        if doc.file.name == name
        or (doc.name == bare and (not kind or doc.kind.lower() == kind.lower()))
        # A component key (postgres, redis, ml, server) names its workload.
        or (not kind and _component_of(doc) == name)
    ]
    if not matches:
        known = sorted({doc.name for doc in documents} | {doc.file.name for doc in documents})
        close = difflib.get_close_matches(bare, known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ImmichcheckError(f"no object or file named {name!r} in the manifests{hint}")
    bodies: list[dict[str, Any]] = [doc.body for doc in matches]
    if output_format == "json":
        _write(json.dumps(bodies[0] if len(bodies) == 1 else bodies, indent=2), output)
        return
    text = yaml.safe_dump_all(bodies, sort_keys=False, default_flow_style=False, width=100)
    _write(text, output)


@manifests.command("validate")
@manifests_option
@option(
    "--kubernetes-version",
    default=None,
    help="Kubernetes version whose schemas to check against "
    "(default: a current release kubernetes-validate ships, see --help output).",
)
@option(
    "--no-schema",
    is_flag=True,
    help="Skip the schema pass (no kubernetes-validate needed); cross-references still run.",
)
@output_options(("text", "json"), "text")
@click.pass_context
def validate_command(
    ctx: click.Context,
    manifests_dir: str | None,
    kubernetes_version: str | None,
    no_schema: bool,
    output_format: str,
    output: str,
) -> None:
    """Check the manifests: YAML, Kubernetes schemas, and references between objects.

    \b
    One line per problem: FILE: Kind/name: reason. Checked: every referenced ConfigMap,
    Secret (or one of the two documented manual secrets) and claim exists; Service
    selectors match a workload's pods and targetPorts its container ports; probe ports
    are container ports; NodePorts are in 30000-32767; images are pinned (no latest);
    Ingress backends and Immich's service URLs point at existing Services and ports.

    Exit codes: 0 no problems, 2 problems found, 3 could not run (missing folder,
    kubernetes-validate missing or without schemas for the version).
    """
    from immichcheck.deploy.validation import DEFAULT_KUBERNETES_VERSION, validate_manifests

    report = validate_manifests(
        manifests_dir,
        kubernetes_version=kubernetes_version or DEFAULT_KUBERNETES_VERSION,
        schema=not no_schema,
    )
    checked = (
        f"Kubernetes {report.kubernetes_version} schemas and cross-references"
        if report.kubernetes_version
        else "cross-references only (schemas skipped)"
    )
    summary = (
        f"{report.objects} objects in {report.files} files, {checked}: "
        f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}"
    )
    if output_format == "json":
        payload = {
            "directory": str(report.directory),
            "files": report.files,
            "objects": report.objects,
            "kubernetes_version": report.kubernetes_version,
            "ok": report.ok,
            "problems": [
                {"file": p.file, "object": p.obj, "reason": p.reason} for p in report.problems
            ],
        }
        _write(json.dumps(payload, indent=2), output)
    elif report.problems or output != "-":
        _write("\n".join(problem.line() for problem in report.problems), output)
    # The summary goes to stderr so standard output holds only the problem lines.
    click.echo(f"manifests: {summary}", err=True)
    ctx.exit(int(ExitCode.OK if report.ok else ExitCode.FAILURE))


@manifests.command("expected")
@manifests_option
@output_options(("json", "yaml"), "json")
def expected_command(manifests_dir: str | None, output_format: str, output: str) -> None:
    """Print the expected state verify derives from the manifests (names, ports, settings)."""
    import dataclasses

    import yaml

    from immichcheck.deploy.expected_state import load_expected_state

    state = load_expected_state(manifests_dir)
    fields = {
        item.name: getattr(state, item.name)
        for item in dataclasses.fields(state)
        if item.name != "objects"  # the raw objects: see `manifests show`
    }
    payload = json.loads(json.dumps(_plain(fields), default=str))
    if output_format == "yaml":
        _write(yaml.safe_dump(payload, sort_keys=False, width=100), output)
    else:
        _write(json.dumps(payload, indent=2), output)


def _plain(value: Any) -> Any:
    """Dataclasses, mappings and tuples as JSON-ready dicts and lists."""
    import dataclasses
    from collections.abc import Mapping

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
