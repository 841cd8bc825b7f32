"""Resource requests of the fake Kubernetes API: list, get, create, replace, patch, delete.

Lists honour label and field selectors, `limit`/`continue` and server-side Tables;
creates run the registered controllers; deletes garbage-collect dependents by owner
reference with the propagation policy the real API server applies; patches take JSON
merge, strategic merge (maps) and JSON patch bodies.
"""

from __future__ import annotations

import base64
import builtins
import copy
import json
import secrets
from datetime import UTC, datetime
from typing import Any

import yaml

from tests.fakes.http_base import Request, Response
from tests.fakes.kube_cluster_state import status_response
from tests.fakes.kube_derived import DerivedObjects
from tests.fakes.kube_objects import safe_suffix
from tests.fakes.kube_rbac import RoleBasedAccess, decode_access_review
from tests.fakes.kube_selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from tests.fakes.kube_store import ResourceType, timestamp, type_for_object
from tests.fakes.kube_tables import to_table


class ResourceCrud(RoleBasedAccess, DerivedObjects):
    """The verbs on stored objects."""

    def _list(self, request: Request, resource: ResourceType, namespace: str | None) -> Response:
        try:
            labels = parse_label_selector(request.query_value("labelSelector"))
            fields = parse_field_selector(request.query_value("fieldSelector"), resource.plural)
        except SelectorError as exc:
            return status_response(400, "BadRequest", str(exc))
        items = [
            obj
            for obj in self.state.items(resource, namespace)
            if labels_match(labels, obj) and fields_match(fields, obj)
        ]
        offset = 0
        token = request.query_value("continue")
        if token:
            try:
                offset = int(base64.b64decode(token).decode())
            except ValueError:
                return status_response(400, "BadRequest", "continue key is not valid")
        limit_text = request.query_value("limit")
        limit = (
            int(limit_text) if limit_text and limit_text.isdigit() and int(limit_text) > 0 else None
        )
        page = items[offset : offset + limit] if limit else items[offset:]
        next_token = None
        if limit and offset + limit < len(items):
            next_token = base64.b64encode(str(offset + limit).encode()).decode()
        resource_version = str(self.state.resource_version)
        if "as=Table" in request.headers.get("accept", ""):
            table = to_table(
                resource,
                copy.deepcopy(page),
                include_object=request.query_value("includeObject", "Metadata") or "Metadata",
                resource_version=resource_version,
                continue_token=next_token,
            )
            return Response.json(200, table, {"Content-Type": "application/json"})
        metadata: dict[str, Any] = {"resourceVersion": resource_version}
        if next_token:
            metadata["continue"] = next_token
            metadata["remainingItemCount"] = len(items) - offset - len(page)
        body: dict[str, Any] = {
            "kind": resource.list_kind,
            "apiVersion": resource.group_version,
            "metadata": metadata,
            "items": [copy.deepcopy(obj) for obj in page],
        }
        for item in body["items"]:
            # The API server omits kind/apiVersion on list items; clients fill them in.
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return Response.json(200, body)

    def _get(self, resource: ResourceType, namespace: str | None, name: str) -> Response:
        obj = self.state.get(resource, namespace, name)
        if obj is None:
            return self._not_found(resource, name)
        return Response.json(200, self._with_kind(resource, obj))

    def _body(self, request: Request) -> dict[str, Any] | Response:
        content_type = request.headers.get("content-type", "")
        if "protobuf" in content_type and request.path.endswith("/selfsubjectaccessreviews"):
            # `kubectl auth can-i` posts its review as protobuf.
            try:
                return decode_access_review(request.body())
            except (ValueError, IndexError) as exc:
                return status_response(400, "BadRequest", f"cannot decode protobuf: {exc}")
        if "protobuf" in content_type or "cbor" in content_type:
            request.drain()
            return status_response(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json, application/yaml",
            )
        try:
            raw = request.body()
            body = yaml.safe_load(raw) if "yaml" in content_type else json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            return status_response(
                400, "BadRequest", f"the body of the request could not be decoded: {exc}"
            )
        if not isinstance(body, dict):
            return status_response(400, "BadRequest", "the body of the request must be an object")
        return body

    def _create(self, request: Request, resource: ResourceType, namespace: str | None) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        if resource.plural == "selfsubjectaccessreviews":
            return self._access_review(body)
        metadata = body.setdefault("metadata", {})
        body_namespace = metadata.get("namespace")
        if resource.namespaced:
            if body_namespace and namespace and body_namespace != namespace:
                return status_response(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request",
                )
            metadata["namespace"] = namespace
        if not metadata.get("name"):
            if not metadata.get("generateName"):
                return status_response(
                    422,
                    "Invalid",
                    f'{resource.kind} "" is invalid: metadata.name: Required value: '
                    "name or generateName is required",
                )
            metadata["name"] = metadata["generateName"] + safe_suffix(secrets.token_hex(8), 5)
        if body.get("kind") not in (None, resource.kind):
            return status_response(
                400, "BadRequest", f"the kind {body.get('kind')} does not match {resource.kind}"
            )
        body["kind"] = resource.kind
        body["apiVersion"] = resource.group_version
        if self.state.get(resource, namespace, metadata["name"]) is not None:
            return status_response(
                409,
                "AlreadyExists",
                f'{resource.qualified} "{metadata["name"]}" already exists',
                {
                    "name": metadata["name"],
                    "kind": resource.plural,
                    **({"group": resource.group} if resource.group else {}),
                },
            )
        for key in ("uid", "resourceVersion", "creationTimestamp"):
            metadata.pop(key, None)
        metadata["generation"] = 1
        stored = self.state.put(body)
        controller = self.controllers.get((resource.group, resource.plural))
        if controller is not None:
            controller(self, stored)
        self.refresh()
        return Response.json(201, self._with_kind(resource, stored))

    def _dependents(self, uid: str) -> builtins.list[dict[str, Any]]:
        with self.state.lock:
            return [
                obj
                for obj in list(self.state.objects.values())
                if any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences") or [])
            ]

    def _delete(
        self, request: Request, resource: ResourceType, namespace: str | None, name: str
    ) -> Response:
        options: dict[str, Any] = {}
        if request.content_length:
            parsed = self._body(request)
            if isinstance(parsed, Response):
                return parsed
            options = parsed
        obj = self.state.get(resource, namespace, name)
        if obj is None:
            return self._not_found(resource, name)
        # Jobs (and other batch/v1 objects) orphan their pods unless told otherwise: a
        # real API server quirk that leaves benchmark pods behind after a plain DELETE.
        default_policy = "Orphan" if resource.group == "batch" else "Background"
        policy = (
            request.query_value("propagationPolicy")
            or options.get("propagationPolicy")
            or default_policy
        )
        if policy not in ("Orphan", "Background", "Foreground"):
            return status_response(
                400, "BadRequest", f"propagationPolicy {policy} is not supported"
            )
        self.state.delete(resource, namespace, name)
        pending = [obj]
        while pending:
            current = pending.pop()
            for dependent in self._dependents(current["metadata"]["uid"]):
                if policy == "Orphan":
                    dependent["metadata"]["ownerReferences"] = [
                        o
                        for o in dependent["metadata"]["ownerReferences"]
                        if o.get("uid") != current["metadata"]["uid"]
                    ]
                    self.state.put(dependent)
                else:
                    self.state.delete(
                        type_for_object(dependent),
                        dependent["metadata"].get("namespace"),
                        dependent["metadata"]["name"],
                    )
                    pending.append(dependent)
        self.refresh()
        deleted = self._with_kind(resource, obj)
        deleted["metadata"]["deletionTimestamp"] = timestamp(datetime.now(UTC))
        return Response.json(200, deleted)

    def _patch(
        self, request: Request, resource: ResourceType, namespace: str | None, name: str
    ) -> Response:
        obj = self.state.get(resource, namespace, name)
        if obj is None:
            request.drain()
            return self._not_found(resource, name)
        content_type = request.headers.get("content-type", "")
        if "json-patch+json" in content_type:
            try:
                operations = json.loads(request.body())
                patched = apply_json_patch(copy.deepcopy(obj), operations)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                return status_response(422, "Invalid", f"the patch could not be applied: {exc}")
        else:
            patch = self._body(request)
            if isinstance(patch, Response):
                return patch
            patched = merge_patch(copy.deepcopy(obj), patch)
        patched["metadata"]["name"] = name
        if resource.namespaced:
            patched["metadata"]["namespace"] = namespace
        if patched.get("spec") != obj.get("spec"):
            patched["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1
        stored = self.state.put(patched)
        self.refresh()
        return Response.json(200, self._with_kind(resource, stored))

    def _replace(
        self, request: Request, resource: ResourceType, namespace: str | None, name: str
    ) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        obj = self.state.get(resource, namespace, name)
        if obj is None:
            return self._not_found(resource, name)
        given = (body.get("metadata") or {}).get("resourceVersion")
        if given and given != obj["metadata"]["resourceVersion"]:
            return status_response(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again",
            )
        body["metadata"]["name"] = name
        if resource.namespaced:
            body["metadata"]["namespace"] = namespace
        body["metadata"].pop("resourceVersion", None)
        body["kind"] = resource.kind
        body["apiVersion"] = resource.group_version
        stored = self.state.put(body)
        self.refresh()
        return Response.json(200, self._with_kind(resource, stored))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic merge patches of maps)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_json_patch(document: Any, operations: list[dict[str, Any]]) -> Any:
    """RFC 6902 JSON patch: add, replace, remove, test (the operations clients send)."""
    for operation in operations:
        path = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
        parent = document
        for part in path[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = path[-1] if path else ""
        op = operation["op"]
        if op == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent[last]
            if current != operation["value"]:
                raise ValueError(f"test failed at {operation['path']}")
        elif op in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(operation["value"])
                elif op == "add":
                    parent.insert(int(last), operation["value"])
                else:
                    parent[int(last)] = operation["value"]
            else:
                if op == "replace" and last not in parent:
                    raise KeyError(last)
                parent[last] = operation["value"]
        elif op == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                del parent[last]
        else:
            raise ValueError(f"unsupported op {op}")
    return document
