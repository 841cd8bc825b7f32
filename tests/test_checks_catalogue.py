"""The catalogue and the registered checks agree one to one; selection and runner rules."""

from __future__ import annotations

import asyncio
import re

import pytest

from immichcheck.clients import ProbeError, ProbeSkipped
from immichcheck.common.errors import ExitCode, ImmichcheckError
from immichcheck.common.records import CheckResult, Status
from immichcheck.verify.checks import (
    COMPONENTS,
    Facts,
    failed,
    load_catalogue,
    passed,
    registered_checks,
    select_codes,
)
from immichcheck.verify.engine import (
    ProbeOutcome,
    RegisteredCheck,
    evaluate,
    exit_code_for,
    required_closure,
    run_probe,
)

CODE = re.compile(r"^IC-(CL|PG|RD|ML|SV|ST|AC|ND)-\d{3}$")
PREFIX = {
    "CL": "cluster",
    "PG": "postgres",
    "RD": "redis",
    "ML": "ml",
    "SV": "server",
    "ST": "storage",
    "AC": "access",
    "ND": "nodes",
}


def test_every_registered_check_has_a_catalogue_entry_and_vice_versa() -> None:
    catalogue, registry = load_catalogue(), registered_checks()
    assert set(catalogue) == set(registry)


def test_catalogue_entries_are_well_formed() -> None:
    for code, entry in load_catalogue().items():
        assert CODE.match(code), code
        assert entry.component == PREFIX[code.split("-")[1]], code
        assert entry.component in COMPONENTS
        assert entry.severity in (Status.FAIL, Status.WARN), code
        assert entry.title and entry.remediation, code


def test_every_check_has_a_docstring_and_known_prerequisites() -> None:
    registry = registered_checks()
    order = list(load_catalogue())
    for code, check in registry.items():
        assert check.function.__doc__, code
        for requirement in check.requires:
            # Prerequisites come earlier in the catalogue, so reading it top-down makes sense.
            assert order.index(requirement) < order.index(code), (code, requirement)


def test_select_by_code_glob_and_component() -> None:
    catalogue = load_catalogue()
    assert select_codes(catalogue, ["IC-RD-205"]) == ["IC-RD-205"]
    assert select_codes(catalogue, ["ic-pg-10*"]) == [
        c for c in catalogue if c.startswith("IC-PG-10")
    ]
    redis = select_codes(catalogue, ["redis"])
    assert redis and all(c.startswith("IC-RD") for c in redis)
    without = select_codes(catalogue, [], ["cluster,storage"])
    assert not any(c.startswith(("IC-CL", "IC-ST")) for c in without)


def test_select_rejects_unknown_patterns() -> None:
    with pytest.raises(ImmichcheckError, match="matches no check code or component"):
        select_codes(load_catalogue(), ["IC-XX-999"])
    with pytest.raises(ImmichcheckError, match="left no checks"):
        select_codes(load_catalogue(), ["redis"], ["redis"])


def test_prerequisites_are_evaluated_but_only_selected_codes_reported() -> None:
    registry = registered_checks()
    assert required_closure(["IC-RD-203"], registry) == ["IC-RD-201", "IC-RD-202", "IC-RD-203"]
    outcome = ProbeOutcome("redis", error="connection refused at 127.0.0.1:1/0")
    results = evaluate(["IC-RD-203"], {"redis": outcome}, expected=None)
    assert [(r.code, r.status) for r in results] == [("IC-RD-203", Status.SKIP)]
    assert results[0].message == "skipped: prerequisite IC-RD-202 (AOF persistence enabled) is SKIP"


def _fake_registry() -> tuple[dict[str, RegisteredCheck], dict[str, object]]:
    catalogue = load_catalogue()

    def crashes(facts: Facts) -> object:
        raise KeyError("boom")

    def fails(facts: Facts) -> object:
        return failed("not as shipped")

    def ok(facts: Facts) -> object:
        return passed("fine")

    registry = {
        "IC-RD-201": RegisteredCheck("IC-RD-201", ok, ("redis",), ()),  # type: ignore[arg-type]
        "IC-RD-204": RegisteredCheck("IC-RD-204", fails, ("redis",), ()),  # type: ignore[arg-type]
        "IC-RD-205": RegisteredCheck("IC-RD-205", crashes, ("redis",), ()),  # type: ignore[arg-type]
    }
    return registry, dict(catalogue)


def test_warn_severity_caps_fail_and_a_crashing_check_is_error() -> None:
    registry, catalogue = _fake_registry()
    outcomes = {"redis": ProbeOutcome("redis", data={})}
    results = evaluate(
        ["IC-RD-201", "IC-RD-204", "IC-RD-205"],
        outcomes,
        None,
        registry=registry,
        catalogue=catalogue,  # type: ignore[arg-type]
    )
    statuses = {r.code: r.status for r in results}
    assert statuses == {
        "IC-RD-201": Status.PASS,
        "IC-RD-204": Status.WARN,
        "IC-RD-205": Status.ERROR,
    }
    crashed = next(r for r in results if r.code == "IC-RD-205")
    assert crashed.message == "check failed to evaluate: KeyError: 'boom'"
    assert next(r for r in results if r.code == "IC-RD-201").remediation == ""
    assert next(r for r in results if r.code == "IC-RD-204").remediation


def _result(status: Status) -> CheckResult:
    return CheckResult(code="IC-RD-201", target="t", status=status, message="m")


@pytest.mark.parametrize(
    ("statuses", "strict", "code"),
    [
        ([Status.PASS, Status.SKIP], False, ExitCode.OK),
        ([Status.PASS, Status.WARN], False, ExitCode.WARNING),
        ([Status.PASS, Status.WARN], True, ExitCode.FAILURE),
        ([Status.ERROR, Status.WARN], False, ExitCode.UNKNOWN),
        ([Status.ERROR, Status.FAIL], False, ExitCode.FAILURE),
    ],
)
def test_exit_codes_follow_nagios(statuses: list[Status], strict: bool, code: ExitCode) -> None:
    assert exit_code_for([_result(s) for s in statuses], strict) == code


def test_run_probe_turns_failures_into_reasons() -> None:
    async def skip() -> None:
        raise ProbeSkipped("no --node-ip given")

    async def broken() -> None:
        raise ProbeError("connection refused at x")

    async def hangs() -> None:
        await asyncio.sleep(5)

    async def buggy() -> None:
        raise ZeroDivisionError("division by zero")

    async def main() -> list[ProbeOutcome]:
        return list(
            await asyncio.gather(
                run_probe("a", skip, 1),
                run_probe("b", broken, 1),
                run_probe("c", hangs, 0.05),
                run_probe("d", buggy, 1),
            )
        )

    a, b, c, d = asyncio.run(main())
    assert a.skipped == "no --node-ip given" and not a.error
    assert b.error == "connection refused at x"
    assert c.error == "no answer within 0.05 s"
    assert d.error == "ZeroDivisionError: division by zero"
