"""Running one check function: its verdicts, or why it gave none.

Kept apart from the engine's scheduling because of one rule: a check that read data its
facts do not hold (a kind missing from a `--from-dump` file) is SKIP naming what to add,
whatever it concluded from the gap.
"""

from __future__ import annotations

from immichcheck.common.records import Status
from immichcheck.verify.checks import Facts, RegisteredCheck, Verdict


def run_check(check: RegisteredCheck, facts: Facts) -> list[Verdict]:
    """Run one check; SKIP when it read data its facts lack (a kind missing from a dump).

    A snapshot from a dump records which kinds a check reads (`begin_reads`/`absent_reads`):
    an empty list of a kind the dump never held would otherwise read as "none exist" and
    turn into a FAIL about the cluster, when it is only a gap in the file.
    """
    trackers = [
        data for data in (facts.get(name) for name in check.probes) if hasattr(data, "absent_reads")
    ]
    for tracker in trackers:
        tracker.begin_reads()
    try:
        produced = check.function(facts)
        verdicts = [produced] if isinstance(produced, Verdict) else list(produced)
    except Exception as exc:  # a check bug must not pass for a verdict on the system
        verdicts = [Verdict(Status.ERROR, f"check failed to evaluate: {type(exc).__name__}: {exc}")]
    hints = [hint for tracker in trackers for hint in tracker.absent_reads().values()]
    if hints:
        return [Verdict(Status.SKIP, "skipped: " + "; ".join(dict.fromkeys(hints)))]
    return verdicts or [Verdict(Status.SKIP, "skipped: nothing to check here")]
