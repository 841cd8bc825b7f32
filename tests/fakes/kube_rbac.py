"""Authorization for the fake Kubernetes API: explicit denials and the shipped RBAC.

`forbid()` denies one verb on one resource; `enforce_rbac()` evaluates the Roles and
ClusterRoles bound to a service account, as the real authorizer does (resourceNames
included). SelfSubjectAccessReviews are answered from the same rules, in JSON or in the
protobuf envelope `kubectl auth can-i` sends.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from tests.fakes.http_base import Request, Response
from tests.fakes.kube_cluster_state import KubeClusterState, status_response
from tests.fakes.kube_selectors import SelectorError, parse_field_selector
from tests.fakes.kube_store import RESOURCE_TYPES, ResourceType


class RoleBasedAccess(KubeClusterState):
    """Who may do what: denials, RBAC rules and access reviews."""

    def enforce_rbac(self, service_account: str | None = "immichcheck") -> None:
        """Authorize requests with the Roles/ClusterRoles bound to this service account."""
        self.rbac_service_account = service_account

    def forbid(
        self, verb: str, resource: str, *, namespace: str | None = None, name: str | None = None
    ) -> None:
        """Answer 403 Forbidden for a verb on a resource (`pods`, `pods/log`, `secrets`...)."""
        self.denials.append((verb, resource, namespace, name))

    @staticmethod
    def _verb(request: Request, name: str | None) -> str:
        if request.method == "GET":
            if request.query_value("watch") in ("true", "1"):
                return "watch"
            return "get" if name else "list"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(request.method, request.method.lower())

    def _account(self) -> str | None:
        """The service account RBAC is evaluated for: impersonated, enforced, or none."""
        impersonated: str | None = getattr(self._request_context, "account", None)
        return impersonated if impersonated is not None else self.rbac_service_account

    def subject(self) -> str:
        """The user name requests are made as."""
        impersonated: str | None = getattr(self._request_context, "user", None)
        if impersonated:
            return impersonated
        if self.rbac_service_account:
            return f"system:serviceaccount:{self.expected.namespace}:{self.rbac_service_account}"
        return self.user

    def allowed(
        self,
        verb: str,
        resource: ResourceType,
        subresource: str | None,
        namespace: str | None,
        name: str | None,
    ) -> bool:
        """Whether the current subject may do this (explicit denials, then RBAC if enforced)."""
        full = f"{resource.plural}/{subresource}" if subresource else resource.plural
        for d_verb, d_resource, d_namespace, d_name in self.denials:
            if (
                d_verb in (verb, "*")
                and d_resource in (full, "*")
                and d_namespace in (None, namespace)
                and d_name in (None, name)
            ):
                return False
        if resource.plural == "selfsubjectaccessreviews":
            return True
        if self._account() is None:
            return True
        return self._rbac_allows(verb, resource.group, full, namespace, name)

    def _rbac_allows(
        self, verb: str, group: str, resource: str, namespace: str | None, name: str | None
    ) -> bool:
        account = self._account()
        home = self.expected.namespace

        def binds(binding: Mapping[str, Any]) -> bool:
            return any(
                s.get("kind") == "ServiceAccount"
                and s.get("name") == account
                and s.get("namespace", binding["metadata"].get("namespace")) == home
                for s in binding.get("subjects") or []
            )

        rules: builtins.list[Mapping[str, Any]] = []
        for binding in self.list("clusterrolebindings"):
            if binds(binding):
                role = self.state.find("ClusterRole", None, binding["roleRef"]["name"])
                rules.extend((role or {}).get("rules") or [])
        if namespace is not None:
            for binding in self.list("rolebindings", namespace):
                if binds(binding):
                    ref = binding["roleRef"]
                    role = (
                        self.state.find("ClusterRole", None, ref["name"])
                        if ref.get("kind") == "ClusterRole"
                        else self.state.get(self.resource("roles"), namespace, ref["name"])
                    )
                    rules.extend((role or {}).get("rules") or [])
        for rule in rules:
            if (
                (group in (rule.get("apiGroups") or []) or "*" in (rule.get("apiGroups") or []))
                and (
                    resource in (rule.get("resources") or [])
                    or "*" in (rule.get("resources") or [])
                )
                and (verb in (rule.get("verbs") or []) or "*" in (rule.get("verbs") or []))
                and (
                    not rule.get("resourceNames")
                    or (name is not None and name in rule["resourceNames"])
                )
            ):
                return True
        return False

    def _authorize(
        self,
        verb: str,
        resource: ResourceType,
        subresource: str | None,
        namespace: str | None,
        name: str | None,
    ) -> Response | None:
        if self.allowed(verb, resource, subresource, namespace, name):
            return None
        full = f"{resource.plural}/{subresource}" if subresource else resource.plural
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        what = f'{resource.qualified} "{name}"' if name else resource.qualified
        message = (
            f'{what} is forbidden: User "{self.subject()}" cannot {verb} resource "{full}" '
            f'in API group "{resource.group}" {scope}'
        )
        details: dict[str, Any] = {"kind": resource.plural}
        if name:
            details["name"] = name
        if resource.group:
            details["group"] = resource.group
        return status_response(403, "Forbidden", message, details)

    def _access_review(self, body: dict[str, Any]) -> Response:
        attributes = (body.get("spec") or {}).get("resourceAttributes") or {}
        group = attributes.get("group", "")
        plural = attributes.get("resource", "")
        target = next((r for r in RESOURCE_TYPES if r.group == group and r.plural == plural), None)
        allowed = target is not None and self.allowed(
            attributes.get("verb", "get"),
            target,
            attributes.get("subresource") or None,
            attributes.get("namespace") or None,
            attributes.get("name") or None,
        )
        body["status"] = {"allowed": allowed}
        if allowed and self._account():
            body["status"]["reason"] = "RBAC: allowed by RoleBinding"
        body.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        body["apiVersion"] = "authorization.k8s.io/v1"
        body["kind"] = "SelfSubjectAccessReview"
        return Response.json(201, body)


def _protobuf_fields(data: bytes) -> dict[int, bytes | int]:
    """Top-level fields of a protobuf message (length-delimited as bytes, varints as int)."""
    fields: dict[int, bytes | int] = {}
    position = 0

    def varint() -> int:
        nonlocal position
        value = shift = 0
        while True:
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while position < len(data):
        key = varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields[number] = varint()
        elif wire_type == 2:
            length = varint()
            fields[number] = data[position : position + length]
            position += length
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
    return fields


ACCESS_REVIEW_ATTRIBUTES = (
    "namespace",
    "verb",
    "group",
    "version",
    "resource",
    "subresource",
    "name",
)


def decode_access_review(raw: bytes) -> dict[str, Any]:
    """A SelfSubjectAccessReview from Kubernetes' protobuf envelope ("k8s\\0" + Unknown)."""
    if not raw.startswith(b"k8s\x00"):
        raise ValueError("missing k8s protobuf envelope")
    unknown = _protobuf_fields(raw[4:])
    review = _protobuf_fields(bytes(unknown.get(2, b"")))  # Unknown.raw
    spec = _protobuf_fields(bytes(review.get(2, b"")))  # SelfSubjectAccessReview.spec
    resource = _protobuf_fields(bytes(spec.get(1, b"")))  # spec.resourceAttributes
    attributes = {
        name: bytes(resource[index + 1]).decode()
        for index, name in enumerate(ACCESS_REVIEW_ATTRIBUTES)
        if isinstance(resource.get(index + 1), bytes)
    }
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {"resourceAttributes": attributes},
    }


def exact_name(field_selector: str | None) -> str | None:
    """The name a field selector pins with metadata.name=<x>, if it does."""
    try:
        requirements = parse_field_selector(field_selector, "")
    except SelectorError:
        return None
    for requirement in requirements:
        if requirement.field == "metadata.name" and not requirement.negate:
            return requirement.value
    return None
