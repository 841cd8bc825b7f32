"""Fakes that stand in where no real service can run here: Kubernetes API, Immich, Immich ML.

Each is real HTTP on 127.0.0.1 and follows the real API contract closely enough that the
project's own client code (httpx, kr8s) and kubectl run against it unchanged.
"""

from tests.fakes.immich_server import FakeImmichServer
from tests.fakes.kube_api import FakeKubeCluster
from tests.fakes.ml_service import FakeMLService

__all__ = ["FakeImmichServer", "FakeKubeCluster", "FakeMLService"]
