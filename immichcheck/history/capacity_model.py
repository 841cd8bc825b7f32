"""The capacity answer as plain frozen data (base units: seconds, bytes), for every renderer.

Kept apart from `capacity.py` (the arithmetic) so `report_model.Report` can hold it without
an import cycle, and renderers read it without importing the model's logic.
"""

from __future__ import annotations

from dataclasses import dataclass

# Job keys: Immich's queue names for the server's jobs, plus the backup through uploads.
SMART_SEARCH = "smartSearch"
FACE_DETECTION = "faceDetection"
OCR = "ocr"
UPLOAD = "upload"
JOB_TITLES = {
    SMART_SEARCH: "smart search",
    FACE_DETECTION: "faces",
    OCR: "OCR",
    UPLOAD: "backup upload",
}


@dataclass(frozen=True)
class CapacityEstimate:
    """How long one job takes for the whole library on one node, or why it cannot be said."""

    node: str
    job: str  # SMART_SEARCH, FACE_DETECTION, OCR or UPLOAD
    seconds_p50: float | None  # every item at the measured median time
    seconds_p90: float | None  # every item at the measured p90 time
    basis: str  # which run, workload, image size and concurrency it is built from
    missing: str = ""  # when there is no estimate: why, and what to run
    run_id: str = ""

    @property
    def title(self) -> str:
        """The job's name for people."""
        return JOB_TITLES.get(self.job, self.job)


@dataclass(frozen=True)
class CapacitySection:
    """The capacity part of a report: the library, the estimates per node, the limits."""

    library: str  # what the library is and where the figure comes from
    settings: str  # where the job concurrency comes from
    estimates: tuple[CapacityEstimate, ...] = ()
    comparisons: tuple[str, ...] = ()  # "smart search: node05 3.2 h, node02 11 h"
    limits: tuple[str, ...] = ()
