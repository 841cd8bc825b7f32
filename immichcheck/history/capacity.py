"""Capacity: how long the library takes on a node, from measured runs (pure functions).

The model is Little's law applied to Immich's job queues. A queue runs `concurrency` jobs at
once, each sending one request to the ML service; the ml suite timed those requests at that
concurrency, so the whole library takes

    assets x (per-request time at concurrency C) / C

The range runs from every asset taking the measured median (p50) to every asset taking the
p90; a library's total lands near the p50 end when its photos resemble the bench images.
Uploads follow the same arithmetic in bytes: library bytes x (per-upload time) / (concurrency
x bytes per upload). Nothing here does I/O: the library size and job settings come from a
stored run (`bench` with an admin key saves them) or from the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from immichcheck.common.records import BenchmarkResult, RunRecord
from immichcheck.history.capacity_model import (
    FACE_DETECTION,
    JOB_TITLES,
    OCR,
    SMART_SEARCH,
    UPLOAD,
    CapacityEstimate,
    CapacitySection,
)
from immichcheck.history.report_model import Report

# Where `bench` keeps what the server said (immichcheck.clients.immich_library) in a run.
FACTS_SETTING = "library_facts"
# Immich's defaults (server/src/config.ts): job concurrency per queue and the preview size.
DEFAULT_CONCURRENCY: Mapping[str, int] = {SMART_SEARCH: 2, FACE_DETECTION: 2, OCR: 1}
DEFAULT_PREVIEW_SIZE = 1440
DEFAULT_FACES_PER_PHOTO = 1.0
DEFAULT_FACES_SOURCE = (
    "immichcheck's assumption, not a measured figure; set --faces-per-photo from your own library"
)
# (job, ml suite workload, enabled flag, the system-config setting that holds it)
ML_JOBS = (
    (SMART_SEARCH, "ml.clip_visual", "clip_enabled", "machineLearning.clip.enabled"),
    (
        FACE_DETECTION,
        "ml.facial_recognition",
        "faces_enabled",
        "machineLearning.facialRecognition.enabled",
    ),
    (OCR, "ml.ocr", "ocr_enabled", "machineLearning.ocr.enabled"),
)
# Workloads timed on the preview image, as Immich sends it; faces use the bench portrait.
PREVIEW_JOBS = (SMART_SEARCH, OCR)
RUN_ML = "immichcheck bench --suite ml --ml-url URL (or bench --node NODE)"
RUN_UPLOAD = "immichcheck bench --suite upload --server-url URL --api-key KEY"
GIVE_LIBRARY = (
    "give --assets N or --library-bytes SIZE, or run bench with --server-url and an admin "
    "--api-key so GET /api/server/statistics is read and stored with the run"
)
LIMITS = (
    "Not measured: thumbnail generation, metadata extraction and video transcoding run in the "
    "server, before and beside these jobs, on the same CPUs.",
    "Each job is estimated alone; smart search, faces and OCR share one ML service, so when "
    "its CPU is the limit they together take about the sum.",
    "The range runs from every asset taking the measured median (p50) time to every asset "
    "taking the p90; real photos vary more than the bench's generated images.",
)


@dataclass(frozen=True)
class LibrarySize:
    """How big the library is and where that figure comes from."""

    assets: int | None  # photos + videos: one smart-search and one face job each
    size_bytes: int | None
    source: str
    photos: int | None = None
    videos: int | None = None


@dataclass(frozen=True)
class JobSettings:
    """The server's job settings that decide how fast the queues drain."""

    concurrency: Mapping[str, int]
    enabled: Mapping[str, bool | None]  # clip_enabled, faces_enabled, ocr_enabled, ...
    preview_size: int
    source: str
    problem: str = ""  # why the server's own settings could not be read


@dataclass(frozen=True)
class CapacityInputs:
    """Everything the estimates need besides the benchmark runs."""

    library: LibrarySize | None
    settings: JobSettings
    faces_per_photo: float = DEFAULT_FACES_PER_PHOTO
    faces_source: str = DEFAULT_FACES_SOURCE
    library_problem: str = ""


def format_duration(seconds: float) -> str:
    """Seconds as people say them: 42 s, 12 min, 3.2 h, 2.5 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def format_estimate(estimate: CapacityEstimate) -> str:
    """`3.2 h (p50) to 4.1 h (p90)`, each end scaled on its own, or the missing sentence."""
    if estimate.seconds_p50 is None or estimate.seconds_p90 is None:
        return estimate.missing
    low, high = format_duration(estimate.seconds_p50), format_duration(estimate.seconds_p90)
    return f"{low} (p50) to {high} (p90)"


def _gigabytes(size: int) -> str:
    return f"{size / 1e9:.1f} GB"


def _library_from_facts(facts: Mapping[str, Any]) -> LibrarySize | None:
    statistics = facts.get("statistics")
    if not isinstance(statistics, dict):
        return None
    photos, videos = int(statistics["photos"]), int(statistics["videos"])
    when = f" at {facts['read_at']}" if facts.get("read_at") else ""
    return LibrarySize(
        assets=photos + videos,
        size_bytes=int(statistics["usage"]),
        source=f"GET /api/server/statistics on {facts.get('server', 'the server')}{when}",
        photos=photos,
        videos=videos,
    )


def _settings_from_facts(facts: Mapping[str, Any] | None) -> JobSettings:
    read = facts.get("settings") if facts else None
    if not isinstance(read, dict):
        problem = (facts or {}).get("settings_problem", "") or (
            "no admin key was given to read GET /api/system-config"
        )
        return JobSettings(
            concurrency=dict(DEFAULT_CONCURRENCY),
            enabled={},
            preview_size=DEFAULT_PREVIEW_SIZE,
            source="Immich's defaults (server/src/config.ts)",
            problem=str(problem),
        )
    concurrency = {**DEFAULT_CONCURRENCY, **read.get("job_concurrency", {})}
    enabled = {key: read.get(key) for key in ("clip_enabled", "faces_enabled", "ocr_enabled")}
    if read.get("machine_learning_enabled") is False:
        enabled = {key: False for key in enabled}
    return JobSettings(
        concurrency=concurrency,
        enabled=enabled,
        preview_size=int(read.get("preview_size") or DEFAULT_PREVIEW_SIZE),
        source=f"GET /api/system-config on {facts.get('server', 'the server')}" if facts else "",
    )


def inputs_from_runs(
    runs: Sequence[RunRecord],
    *,
    assets: int | None = None,
    library_bytes: int | None = None,
    faces_per_photo: float | None = None,
) -> CapacityInputs:
    """Library and settings from the newest run that stored them, overridden by the flags."""
    facts: Mapping[str, Any] | None = None
    for run in sorted(runs, key=lambda r: (r.started_at, r.run_id)):
        stored = run.settings.get(FACTS_SETTING)
        if isinstance(stored, dict):
            facts = stored
    library = _library_from_facts(facts) if facts else None
    problem = str((facts or {}).get("statistics_problem", ""))
    if assets is not None or library_bytes is not None:
        flags = " and ".join(
            text
            for text in (
                f"--assets {assets}" if assets is not None else "",
                f"--library-bytes {library_bytes}" if library_bytes is not None else "",
            )
            if text
        )
        library = LibrarySize(
            assets=assets if assets is not None else (library.assets if library else None),
            size_bytes=library_bytes
            if library_bytes is not None
            else (library.size_bytes if library else None),
            source=flags + (f" (the rest from {library.source})" if library else ""),
        )
    return CapacityInputs(
        library=library,
        settings=_settings_from_facts(facts),
        faces_per_photo=DEFAULT_FACES_PER_PHOTO if faces_per_photo is None else faces_per_photo,
        faces_source="--faces-per-photo" if faces_per_photo is not None else DEFAULT_FACES_SOURCE,
        library_problem=problem,
    )


def _latest_with(runs: Sequence[RunRecord], node: str, workload: str) -> RunRecord | None:
    found = None
    for run in runs:  # oldest first: the last one wins
        if run.node == node and any(b.workload == workload and b.count for b in run.benchmarks):
            found = run
    return found


def _pick_level(
    results: Sequence[BenchmarkResult], wanted: int
) -> tuple[BenchmarkResult | None, str]:
    """The result at the configured concurrency, else the nearest measured level and why."""
    by_level = {int(r.parameters.get("concurrency", 1)): r for r in results if r.count}
    if not by_level:
        return None, ""
    if wanted in by_level:
        return by_level[wanted], ""
    below = [level for level in by_level if level < wanted]
    if below:
        level = max(below)
        return by_level[level], (
            f"; {wanted} was not measured, so this uses {level} and assumes no gain above it"
        )
    level = min(by_level)
    return by_level[level], f"; {wanted} was not measured, {level} was: an optimistic figure"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _ml_estimate(
    node: str, runs: Sequence[RunRecord], job: str, workload: str, inputs: CapacityInputs
) -> CapacityEstimate:
    settings = inputs.settings
    wanted = settings.concurrency.get(job, DEFAULT_CONCURRENCY[job])
    run = _latest_with(runs, node, workload)
    if run is None:
        return CapacityEstimate(node, job, None, None, "", f"no {workload} result: run {RUN_ML}")
    candidates = [
        b
        for b in run.benchmarks
        if b.workload == workload
        and (job not in PREVIEW_JOBS or b.parameters.get("image") == "preview")
    ]
    result, level_note = _pick_level(candidates, wanted)
    if result is None:
        return CapacityEstimate(
            node,
            job,
            None,
            None,
            "",
            f"run {run.run_id} has no {workload} result on the preview image: run {RUN_ML} "
            "with 'preview' in the profile's ml.clip_images",
            run.run_id,
        )
    if inputs.library is None or inputs.library.assets is None:
        return CapacityEstimate(
            node, job, None, None, "", f"library size unknown: {GIVE_LIBRARY}", run.run_id
        )
    level = int(result.parameters.get("concurrency", 1))
    origin = "the server's" if not settings.problem else "Immich's default"
    image = (
        f"the {result.parameters.get('width', '?')} px {result.parameters.get('image', 'image')}"
    )
    # What the request found: "faces found per image: 1", "no face found ...", "texts found ...".
    found = ("faces found", "no face found", "texts found")
    found_note = next((n for n in result.notes if n.startswith(found)), "")
    basis = (
        f"run {run.run_id}: {workload} {result.parameters.get('model', '')} on {image} at "
        f"concurrency {level} ({origin} job.{job}.concurrency is {wanted}{level_note}); "
        f"per request p50 {_ms(result.p50)}, p90 {_ms(result.p90)} over {result.count} requests"
    )
    if found_note:
        basis += f"; {found_note}"
    if result.errors:
        basis += f"; {result.errors} request(s) failed and are not counted"
    if settings.preview_size != result.parameters.get("width"):
        # Immich sends the preview to the ML service; the bench's image was another size.
        basis += f"; the server sends its {settings.preview_size} px previews"
    assets = inputs.library.assets
    return CapacityEstimate(
        node,
        job,
        assets * result.p50 / level,
        assets * result.p90 / level,
        basis,
        run_id=run.run_id,
    )


def _upload_estimate(
    node: str, runs: Sequence[RunRecord], inputs: CapacityInputs
) -> CapacityEstimate:
    run = _latest_with(runs, node, "upload.photo")
    if run is None:
        return CapacityEstimate(node, UPLOAD, None, None, "", f"no upload run: run {RUN_UPLOAD}")
    result, _ = _pick_level([b for b in run.benchmarks if b.workload == "upload.photo"], 1)
    assert result is not None  # _latest_with found a result with samples
    file_bytes = int(result.parameters.get("file_bytes") or 0)
    library = inputs.library
    if library is None or file_bytes <= 0:
        return CapacityEstimate(
            node, UPLOAD, None, None, "", f"library size unknown: {GIVE_LIBRARY}", run.run_id
        )
    if library.size_bytes is not None:
        size, how = library.size_bytes, f"{_gigabytes(library.size_bytes)}"
    elif library.assets is not None:
        size = library.assets * file_bytes
        how = f"{library.assets:,} assets x {file_bytes / 1e6:.1f} MB (the bench photo's size)"
    else:
        return CapacityEstimate(
            node, UPLOAD, None, None, "", f"library size unknown: {GIVE_LIBRARY}", run.run_id
        )
    level = int(result.parameters.get("concurrency", 1))
    per_byte = 1.0 / (level * file_bytes)
    basis = (
        f"run {run.run_id}: upload.photo at concurrency {level}, {file_bytes / 1e6:.1f} MB "
        f"photos, per upload p50 {_ms(result.p50)}, p90 {_ms(result.p90)} over "
        f"{result.count} uploads; {how} through that path"
    )
    return CapacityEstimate(
        node, UPLOAD, size * result.p50 * per_byte, size * result.p90 * per_byte, basis,
        run_id=run.run_id,
    )  # fmt: skip


def _disabled(node: str, job: str, setting: str) -> CapacityEstimate:
    return CapacityEstimate(
        node, job, None, None, "",
        f"{JOB_TITLES[job]} is disabled on the server ({setting}): nothing to process",
    )  # fmt: skip


def estimate_capacity(runs: Sequence[RunRecord], inputs: CapacityInputs) -> CapacitySection:
    """Per node with ML or upload runs: each job's time for the library, or what is missing."""
    ordered = sorted((r for r in runs if r.benchmarks), key=lambda r: (r.started_at, r.run_id))
    nodes = sorted(
        {
            r.node
            for r in ordered
            if any(b.workload.startswith(("ml.", "upload.")) for b in r.benchmarks)
        }
    )
    estimates: list[CapacityEstimate] = []
    for node in nodes:
        for job, workload, flag, setting in ML_JOBS:
            if inputs.settings.enabled.get(flag) is False:
                estimates.append(_disabled(node, job, setting))
            else:
                estimates.append(_ml_estimate(node, ordered, job, workload, inputs))
        estimates.append(_upload_estimate(node, ordered, inputs))
    if not nodes:
        missing = f"no ML benchmark run stored: run {RUN_ML}"
        estimates.append(CapacityEstimate("-", SMART_SEARCH, None, None, "", missing))
    return CapacitySection(
        library=_library_text(inputs),
        settings=_settings_text(inputs.settings),
        estimates=tuple(estimates),
        comparisons=tuple(_comparisons(estimates)),
        limits=(*LIMITS, _faces_limit(inputs)),
    )


def _library_text(inputs: CapacityInputs) -> str:
    library = inputs.library
    if library is None:
        problem = f" ({inputs.library_problem})" if inputs.library_problem else ""
        return f"unknown{problem}: {GIVE_LIBRARY}"
    parts = []
    if library.assets is not None:
        split = (
            f" ({library.photos:,} photos, {library.videos:,} videos)"
            if library.photos is not None and library.videos is not None
            else ""
        )
        parts.append(f"{library.assets:,} assets{split}")
    if library.size_bytes is not None:
        parts.append(_gigabytes(library.size_bytes))
    return f"{', '.join(parts)}, from {library.source}"


def _settings_text(settings: JobSettings) -> str:
    queues = ", ".join(
        f"{q} {settings.concurrency[q]}" for q in (SMART_SEARCH, FACE_DETECTION, OCR)
    )
    text = f"job concurrency {queues}, previews {settings.preview_size} px, from {settings.source}"
    return text + (f" ({settings.problem})" if settings.problem else "")


def _faces_limit(inputs: CapacityInputs) -> str:
    count = ""
    if inputs.library is not None and inputs.library.assets is not None:
        faces = round(inputs.library.assets * inputs.faces_per_photo)
        count = f": about {faces:,} faces for the facialRecognition queue to cluster"
    return (
        f"Faces: {inputs.faces_per_photo:g} per photo assumed ({inputs.faces_source}){count}. "
        "Clustering runs in the server and database and is not measured; the face request "
        "embeds every face it finds, so photos with more faces than the bench portrait take "
        "longer than its p90."
    )


def _comparisons(estimates: Sequence[CapacityEstimate]) -> list[str]:
    """`smart search: node05 3.2 h, node02 11 h` for each job measured on two or more nodes."""
    lines = []
    for job, title in JOB_TITLES.items():
        done = [e for e in estimates if e.job == job and e.seconds_p50 is not None]
        if len(done) >= 2:
            ranked = sorted(done, key=lambda e: e.seconds_p50 or 0.0)
            shown = ", ".join(f"{e.node} {format_duration(e.seconds_p50 or 0.0)}" for e in ranked)
            lines.append(f"{title}: {shown} (p50)")
    return lines


def with_capacity(report: Report, runs: Sequence[RunRecord], inputs: CapacityInputs) -> Report:
    """The report with its capacity section filled in from the same runs."""
    if nodes := {info.node for info in report.latest}:
        runs = [r for r in runs if r.node in nodes]
    return dataclasses.replace(report, capacity=estimate_capacity(runs, inputs))


def capacity_paragraph(section: CapacitySection, node: str, width: int = 100) -> str:
    """One paragraph answering 'how long on this node' for the end of a bench run."""
    import textwrap

    mine = [e for e in section.estimates if e.node == node]
    if not mine:
        return ""
    done = [f"{e.title} {format_estimate(e)}" for e in mine if e.seconds_p50 is not None]
    missing = [f"{e.title}: {e.missing}" for e in mine if e.seconds_p50 is None]
    text = (
        f"Capacity on {node}: {'; '.join(done + missing)}. "
        f"Library: {section.library}. Settings: {section.settings}. Built from: "
        + "; ".join(f"{e.title}: {e.basis}" for e in mine if e.basis)
        + ". "
        + " ".join(section.limits)
    )
    return textwrap.fill(text, width=width, break_long_words=False, break_on_hyphens=False) + "\n"
