"""The fake Kubernetes API's resource catalogue and its generic object store.

Objects are kept as plain dicts keyed by (group, version, plural, namespace, name), with
namespace '' for cluster-scoped objects, so any resource type in the catalogue gets list,
get, create, replace, merge-patch and delete without code of its own.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

StoreKey = tuple[str, str, str, str, str]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One REST resource of the API: where it lives and what it is called."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        """`v1` for the core group, `apps/v1` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        """`PodList` for Pod."""
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        """`deployments.apps`, `pods` for core: how error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def discovery(self) -> list[dict[str, Any]]:
        """APIResource entries for discovery: the resource and its subresources."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entries = [entry]
        for sub in self.subresources:
            verbs = {"log": ["get"], "portforward": ["create", "get"], "exec": ["create", "get"]}
            entries.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": "PodLogOptions" if sub == "log" else self.kind,
                    "verbs": verbs.get(sub, ["get", "patch", "update"]),
                }
            )
        return entries


RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",),
                 ("create", "delete", "get", "list", "patch", "update", "watch"), ("status",)),
    ResourceType("", "v1", "Node", "nodes", "node", False, ("no",), subresources=("status",)),
    ResourceType("", "v1", "Pod", "pods", "pod", True, ("po",),
                 subresources=("log", "status", "portforward", "exec"), categories=("all",)),
    ResourceType("", "v1", "Service", "services", "service", True, ("svc",),
                 subresources=("status",), categories=("all",)),
    ResourceType("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",)),
    ResourceType("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims",
                 "persistentvolumeclaim", True, ("pvc",), subresources=("status",)),
    ResourceType("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", False,
                 ("pv",), subresources=("status",)),
    ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
    ResourceType("", "v1", "Secret", "secrets", "secret", True),
    ResourceType("", "v1", "Event", "events", "event", True, ("ev",)),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",)),
    ResourceType("apps", "v1", "Deployment", "deployments", "deployment", True, ("deploy",),
                 subresources=("status", "scale"), categories=("all",)),
    ResourceType("apps", "v1", "StatefulSet", "statefulsets", "statefulset", True, ("sts",),
                 subresources=("status", "scale"), categories=("all",)),
    ResourceType("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ("rs",),
                 subresources=("status", "scale"), categories=("all",)),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, ("ds",),
                 subresources=("status",), categories=("all",)),
    ResourceType("batch", "v1", "Job", "jobs", "job", True, subresources=("status",),
                 categories=("all",)),
    ResourceType("batch", "v1", "CronJob", "cronjobs", "cronjob", True, ("cj",),
                 subresources=("status",), categories=("all",)),
    ResourceType("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", True, ("ing",),
                 subresources=("status",)),
    ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice",
                 True),
    ResourceType("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", False,
                 ("sc",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding",
                 True),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole",
                 False),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings",
                 "clusterrolebinding", False),
    ResourceType("authorization.k8s.io", "v1", "SelfSubjectAccessReview",
                 "selfsubjectaccessreviews", "selfsubjectaccessreview", False, verbs=("create",)),
)  # fmt: skip


def group_versions() -> list[tuple[str, str]]:
    """(group, version) pairs in catalogue order, core group first."""
    seen: list[tuple[str, str]] = []
    for resource in RESOURCE_TYPES:
        pair = (resource.group, resource.version)
        if pair not in seen:
            seen.append(pair)
    return seen


def find_type(group: str, version: str, plural: str) -> ResourceType | None:
    """The resource type served at /<group>/<version>/<plural>, if any."""
    for resource in RESOURCE_TYPES:
        if (resource.group, resource.version, resource.plural) == (group, version, plural):
            return resource
    return None


def type_for_object(obj: dict[str, Any]) -> ResourceType:
    """The resource type of an object from its apiVersion and kind."""
    api_version = str(obj.get("apiVersion") or "")
    group, _, version = api_version.rpartition("/")
    for resource in RESOURCE_TYPES:
        if (resource.group, resource.version, resource.kind) == (group, version, obj.get("kind")):
            return resource
    raise KeyError(f"no resource type for {api_version} {obj.get('kind')}")


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, second precision, as the API server writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ResourceStore:
    """Every object of the fake cluster, with a cluster-wide resourceVersion counter."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[StoreKey, dict[str, Any]] = {}
        self.resource_version = 1000

    @staticmethod
    def key_of(resource: ResourceType, namespace: str | None, name: str) -> StoreKey:
        """The store key of an object."""
        namespace = (namespace or "") if resource.namespaced else ""
        return (resource.group, resource.version, resource.plural, namespace, name)

    def next_version(self) -> str:
        """Bump and return the cluster resourceVersion."""
        with self.lock:
            self.resource_version += 1
            return str(self.resource_version)

    def put(self, obj: dict[str, Any], *, created: datetime | None = None) -> dict[str, Any]:
        """Insert or replace an object, filling uid, timestamps and resourceVersion."""
        resource = type_for_object(obj)
        metadata = obj.setdefault("metadata", {})
        if not resource.namespaced:
            metadata.pop("namespace", None)
        key = self.key_of(resource, metadata.get("namespace"), metadata["name"])
        with self.lock:
            previous = self.objects.get(key)
            if previous is not None:
                metadata.setdefault("uid", previous["metadata"]["uid"])
                metadata.setdefault("creationTimestamp", previous["metadata"]["creationTimestamp"])
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp", timestamp(created or datetime.now(UTC)))
            metadata["resourceVersion"] = self.next_version()
            self.objects[key] = obj
            return obj

    def get(
        self, resource: ResourceType, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The stored object (not a copy), or None."""
        with self.lock:
            return self.objects.get(self.key_of(resource, namespace, name))

    def find(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object of a kind by name (any API group), or None."""
        with self.lock:
            for obj in self.objects.values():
                metadata = obj["metadata"]
                if (
                    obj.get("kind") == kind
                    and metadata["name"] == name
                    and metadata.get("namespace", "")
                    == (namespace or metadata.get("namespace", ""))
                ):
                    return obj
        return None

    def items(self, resource: ResourceType, namespace: str | None = None) -> list[dict[str, Any]]:
        """Stored objects of a type (all namespaces when namespace is None), sorted by name."""
        with self.lock:
            selected = [
                obj
                for (group, version, plural, obj_namespace, _), obj in self.objects.items()
                if (group, version, plural) == (resource.group, resource.version, resource.plural)
                and (namespace is None or obj_namespace == namespace)
            ]
        return sorted(
            selected,
            key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]),
        )

    def of_kind(self, kind: str) -> Iterator[dict[str, Any]]:
        """All stored objects of a kind, any group."""
        with self.lock:
            selected = [obj for obj in self.objects.values() if obj.get("kind") == kind]
        yield from selected

    def delete(
        self, resource: ResourceType, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """Remove and return an object, or None when absent."""
        with self.lock:
            return self.objects.pop(self.key_of(resource, namespace, name), None)

    def snapshot(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A deep copy safe to serialise outside the lock."""
        with self.lock:
            return copy.deepcopy(obj)
