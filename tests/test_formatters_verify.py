"""verify's formatters: exact bytes users and tools read, from one small run record."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from immichcheck.common.records import CheckResult, HostFacts, RunRecord, Status
from immichcheck.verify.output.formats import VERIFY_FORMATS, render_verify
from immichcheck.verify.output.nagios import render_verify_nagios
from immichcheck.verify.output.table import cell_len, column_widths, render_verify_table

HOST = HostFacts("host", "cpu", 2, 2**30, "6.1", "linux", "3.11")


def _result(
    code: str, component: str, status: Status, message: str, remediation: str = ""
) -> CheckResult:
    return CheckResult(
        code=code,
        target=f"{component}-target",
        status=status,
        message=message,
        remediation=remediation,
        duration=0.01,
        component=component,
        title=f"title of {code}",
    )


def make_run(*, strict: bool = False) -> RunRecord:
    checks = (
        _result(
            "IC-RD-205", "redis", Status.FAIL, "maxmemory-policy is allkeys-lru", "Set noeviction."
        ),
        _result("IC-CL-001", "cluster", Status.PASS, "namespace immich exists"),
        _result(
            "IC-PG-101",
            "postgres",
            Status.ERROR,
            "could not run: connection refused",
            "Check the pod.",
        ),
        _result("IC-SV-402", "server", Status.WARN, "only the legacy | route answered", "Upgrade."),
        _result("IC-SV-406", "server", Status.SKIP, "skipped: no --node-ip given"),
    )
    return RunRecord(
        run_id="20261128T120000Z-abcdef",
        kind="verify",
        started_at=datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC),
        finished_at=datetime(2026, 11, 28, 12, 0, 0, 840000, tzinfo=UTC),
        node="node05",
        host=HOST,
        tool_version="0.1.0",
        service_versions={"immich": "v2.7.5"},
        checks=checks,
        settings={"strict": strict},
    )


def test_table_groups_by_component_with_remediation_under_problems() -> None:
    text = render_verify_table(make_run())
    assert "\x1b[" not in text  # no colour codes unless asked for
    positions = [text.index(title) for title in ("Cluster", "PostgreSQL", "Redis", "Immich server")]
    assert positions == sorted(positions)
    lines = text.splitlines()
    fail_line = next(i for i, line in enumerate(lines) if "IC-RD-205" in line)
    assert lines[fail_line + 1].strip() == "-> Set noeviction."
    pass_line = next(i for i, line in enumerate(lines) if "IC-CL-001" in line)
    assert "->" not in lines[pass_line + 1]
    assert lines[-1] == "CRITICAL: 1 PASS, 1 WARN, 1 FAIL, 1 ERROR, 1 SKIP in 0.84 s"


def test_table_colours_only_when_asked() -> None:
    text = render_verify_table(make_run(), color=True, width=120)
    assert "\x1b[1;31mFAIL\x1b[0m" in text and "\x1b[32mPASS\x1b[0m" in text
    assert "\x1b[3m-> Set noeviction.\x1b[0m" in text  # remediation in italics
    assert "\x1b[m" not in text  # plain cells carry no empty escape
    # The same layout as without colour once the escapes are taken out.
    assert re.sub(r"\x1b\[[0-9;]*m", "", text) == render_verify_table(make_run(), width=120)


def test_long_words_are_folded_onto_the_next_line_not_cut() -> None:
    image = "ghcr.io/immich-app/immich-machine-learning:v2.7.5@sha256:" + "ab" * 32
    drifted = _result("IC-CL-013", "cluster", Status.WARN, f"image {image} differs", "Pin it.")
    run = RunRecord.from_dict(make_run().to_dict() | {"checks": [drifted.to_dict()]})
    widths = column_widths([drifted], 80)
    result_column = sum(widths[:4]) + 2 * 4  # four columns and their two-space gaps before it
    lines = render_verify_table(run, width=80).splitlines()
    row = lines[2 : lines.index("")]  # the cluster table's rows, after its title and header
    pieces = [line[result_column:] for line in row if not line[result_column:].startswith("->")]
    assert "…" not in "".join(lines)
    assert "".join(pieces) == f"image{image}differs"  # every character kept, in order
    assert max(len(line) for line in lines) <= 80


def test_json_is_the_stored_record() -> None:
    run = make_run()
    assert RunRecord.from_json(render_verify(run, "json")) == run
    assert json.loads(render_verify(run, "json"))["schema_version"] == 1


def test_junit_keeps_fail_error_and_skip_apart() -> None:
    root = ET.fromstring(render_verify(make_run(), "junit").split("\n", 1)[1])
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "5",
        "1",
        "1",
        "1",
    )
    cases = {case.get("name", "").split()[0]: case for case in root.iter("testcase")}
    assert cases["IC-RD-205"].find("failure") is not None
    assert cases["IC-PG-101"].find("error") is not None
    assert cases["IC-SV-406"].find("skipped") is not None
    warn = cases["IC-SV-402"]
    assert warn.find("failure") is None and (warn.findtext("system-out") or "").startswith("WARN:")
    assert [suite.get("name") for suite in root.iter("testsuite")] == [
        "cluster",
        "postgres",
        "redis",
        "server",
    ]


def test_junit_strict_turns_warnings_into_failures() -> None:
    root = ET.fromstring(render_verify(make_run(strict=True), "junit").split("\n", 1)[1])
    assert root.get("failures") == "2"


def test_nagios_status_line_perfdata_and_long_output() -> None:
    lines = render_verify_nagios(make_run()).splitlines()
    status, _, perfdata = lines[0].partition(" | ")
    assert status.startswith(
        "IMMICH CRITICAL - 1 FAIL, 1 ERROR, 1 WARN: IC-RD-205 maxmemory-policy is allkeys-lru;"
    )
    assert "legacy / route" in status  # '|' would break the plugin protocol
    assert (
        perfdata
        == "'pass'=1;;;0 'warn'=1;;;0 'fail'=1;;;0 'error'=1;;;0 'skip'=1;;;0 'duration'=0.840s;;;0"
    )
    assert (
        lines[1]
        == "[FAIL] IC-RD-205 title of IC-RD-205 (redis-target): maxmemory-policy is allkeys-lru"
    )
    assert lines[2] == "    fix: Set noeviction."
    assert lines[1:].count("    fix: Check the pod.") == 1


def test_nagios_ok_and_strict() -> None:
    run = make_run()
    only_warn = RunRecord.from_dict(
        run.to_dict()
        | {"checks": [c.to_dict() for c in run.checks if c.status in (Status.PASS, Status.WARN)]}
    )
    assert render_verify_nagios(only_warn).startswith("IMMICH WARNING - 0 FAIL, 0 ERROR, 1 WARN")
    strict = RunRecord.from_dict(only_warn.to_dict() | {"settings": {"strict": True}})
    assert render_verify_nagios(strict).startswith("IMMICH CRITICAL - ")
    passing = RunRecord.from_dict(run.to_dict() | {"checks": [run.checks[1].to_dict()]})
    assert render_verify_nagios(passing).startswith("IMMICH OK - 1 checks pass (0 skipped) | ")


def test_markdown_tables_and_fixes() -> None:
    text = render_verify(make_run(), "markdown")
    assert text.startswith("# immichcheck verify: CRITICAL\n")
    assert (
        "| **FAIL** | IC-RD-205 | title of IC-RD-205 | redis-target "
        "| maxmemory-policy is allkeys-lru |" in text
    )
    assert "only the legacy \\| route answered" in text
    assert "- **IC-RD-205** Set noeviction." in text
    assert "Versions: immich v2.7.5." in text


def test_prometheus_uses_the_shared_renderer() -> None:
    text = render_verify(make_run(), "prometheus")
    assert 'immichcheck_check_status{code="IC-RD-205",component="redis",node="node05"} 2' in text
    assert 'immichcheck_check_status{code="IC-PG-101",component="postgres",node="node05"} 3' in text


@pytest.mark.parametrize("output_format", VERIFY_FORMATS)
def test_every_format_renders(output_format: str) -> None:
    assert render_verify(make_run(), output_format).endswith("\n")


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown verify format"):
        render_verify(make_run(), "yaml")


def test_table_fits_its_width_and_keeps_status_and_code_whole() -> None:
    run = make_run()
    for width in (60, 80, 120, 200):
        lines = render_verify_table(run, width=width).splitlines()
        assert max(len(line) for line in lines) <= width
        fail_line = next(line for line in lines if "IC-RD-205" in line)
        assert fail_line.startswith("FAIL") and "IC-RD-205" in fail_line


def test_wide_characters_count_two_columns() -> None:
    # A pod event or a host name may carry East Asian text: each such character takes two
    # columns on a terminal, so the table wraps by columns, not by characters.
    message = "イベント " * 12 + "Back-off restarting failed container"
    wide = _result("IC-CL-007", "cluster", Status.WARN, message, "Read the logs.")
    run = RunRecord.from_dict(make_run().to_dict() | {"checks": [wide.to_dict()]})
    lines = render_verify_table(run, width=80).splitlines()
    assert cell_len("イベント") == 8 and cell_len("abc") == 3
    assert max(cell_len(line) for line in lines) <= 80
    assert sum(line.count("イベント") for line in lines) == 12
