"""verify as JUnit XML for CI: a testsuite per component, a testcase per result.

FAIL is a <failure>, ERROR an <error> (CI tools keep them apart too), SKIP <skipped>;
WARN passes with the warning in <system-out> (with --strict it is a <failure>).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from immichcheck.common.records import RunRecord, Status
from immichcheck.verify.output.common import counts, grouped


def render_verify_junit(run: RunRecord) -> str:
    """The run as a JUnit XML document."""
    strict = bool(run.settings.get("strict"))
    total = counts(run.checks)
    failures = total[Status.FAIL] + (total[Status.WARN] if strict else 0)
    seconds = (run.finished_at - run.started_at).total_seconds()
    root = ET.Element(
        "testsuites",
        name="immichcheck verify",
        tests=str(len(run.checks)),
        failures=str(failures),
        errors=str(total[Status.ERROR]),
        skipped=str(total[Status.SKIP]),
        time=f"{seconds:.3f}",
    )
    for component, results in grouped(run.checks):
        tally = counts(results)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=component,
            tests=str(len(results)),
            failures=str(tally[Status.FAIL] + (tally[Status.WARN] if strict else 0)),
            errors=str(tally[Status.ERROR]),
            skipped=str(tally[Status.SKIP]),
            timestamp=run.started_at.isoformat(),
        )
        for result in results:
            name = f"{result.code} {result.title}" + (
                f" [{result.target}]" if result.target else ""
            )
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"immichcheck.{component}",
                name=name,
                time=f"{result.duration:.3f}",
            )
            detail = result.message + (
                f"\nRemediation: {result.remediation}" if result.remediation else ""
            )
            if result.status == Status.FAIL or (result.status == Status.WARN and strict):
                element = ET.SubElement(
                    case, "failure", message=result.message, type=result.status.value
                )
                element.text = detail
            elif result.status == Status.ERROR:
                element = ET.SubElement(case, "error", message=result.message, type="ERROR")
                element.text = detail
            elif result.status == Status.SKIP:
                ET.SubElement(case, "skipped", message=result.message)
            elif result.status == Status.WARN:
                ET.SubElement(case, "system-out").text = f"WARN: {detail}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
