"""Facts about the real Immich services that the manifests do not hold (REFERENCE.md).

The manifests say how this deployment is set up; these names come from Immich's own code, so
the probes, the fakes and the tests read them from here instead of typing them again.
"""

from __future__ import annotations

# BullMQ keeps every queue under this key prefix: immich_bull:<queue>:wait, ...
BULL_PREFIX = "immich_bull"
# The queues added in v2.7 (an older server has none of them).
QUEUES_ADDED_IN_V2_7: tuple[str, ...] = ("editor", "ocr", "workflow")
# Immich's BullMQ queue names, in the order of its QueueName enum.
QUEUE_NAMES: tuple[str, ...] = (
    "thumbnailGeneration",
    "metadataExtraction",
    "videoConversion",
    "faceDetection",
    "facialRecognition",
    "smartSearch",
    "duplicateDetection",
    "backgroundTask",
    "storageTemplateMigration",
    "migration",
    "search",
    "sidecar",
    "library",
    "notifications",
    "backupDatabase",
    *QUEUES_ADDED_IN_V2_7,
)
