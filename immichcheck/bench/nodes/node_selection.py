"""Which nodes can take a benchmark Job: Ready and not cordoned, named or all of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from immichcheck.common.errors import ImmichcheckError


@dataclass(frozen=True)
class NodeState:
    """What matters about a node for scheduling a benchmark on it."""

    name: str
    ready: bool
    schedulable: bool
    problem: str = ""  # why it cannot take the Job, empty when it can

    @property
    def usable(self) -> bool:
        """Ready and not cordoned."""
        return self.ready and self.schedulable

    def label(self) -> str:
        """`node02 (cordoned)` for lists in messages."""
        return f"{self.name} ({self.problem or 'Ready'})"


def node_state(node: Mapping[str, Any]) -> NodeState:
    """Ready/cordoned state of a Node object."""
    name = str((node.get("metadata") or {}).get("name", ""))
    conditions = (node.get("status") or {}).get("conditions") or []
    ready_condition = next((c for c in conditions if c.get("type") == "Ready"), None)
    ready = bool(ready_condition and ready_condition.get("status") == "True")
    schedulable = not (node.get("spec") or {}).get("unschedulable")
    problems = []
    if not ready:
        detail = ""
        if ready_condition:
            detail = ": " + " ".join(
                str(part)
                for part in (ready_condition.get("reason"), ready_condition.get("message"))
                if part
            )
        problems.append(f"NotReady{detail}")
    if not schedulable:
        problems.append("cordoned")
    return NodeState(name, ready, schedulable, ", ".join(problems))


def describe_nodes(states: Sequence[NodeState]) -> str:
    """`node01 (Ready), node02 (cordoned)`."""
    return ", ".join(state.label() for state in states) or "none"


def parse_node_list(text: str | None) -> tuple[str, ...]:
    """`node01, node05` -> ('node01', 'node05'); one error line for an empty entry."""
    if text is None:
        return ()
    names = tuple(part.strip() for part in text.split(","))
    if not names or any(not name for name in names):
        raise ImmichcheckError(f"--nodes {text!r}: expected comma-separated node names")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ImmichcheckError(f"--nodes names {', '.join(duplicates)} more than once")
    return names


def choose_nodes(
    requested: Sequence[str], all_nodes: bool, states: Sequence[NodeState]
) -> tuple[list[str], dict[str, str]]:
    """The nodes to run on, and (for --all-nodes) the ones skipped with the reason.

    A node asked for by name that cannot take the Job is an error naming every node, so the
    user sees the right spelling or which nodes are usable.
    """
    by_name = {state.name: state for state in states}
    if all_nodes:
        chosen = [state.name for state in states if state.usable]
        skipped = {state.name: state.problem for state in states if not state.usable}
        if not chosen:
            raise ImmichcheckError(
                f"no node can take a benchmark Job; nodes: {describe_nodes(states)}"
            )
        return chosen, skipped
    for name in requested:
        state = by_name.get(name)
        if state is None:
            raise ImmichcheckError(f"node {name} does not exist; nodes: {describe_nodes(states)}")
        if not state.usable:
            raise ImmichcheckError(
                f"node {name} cannot take a benchmark Job ({state.problem}); "
                f"nodes: {describe_nodes(states)}"
            )
    return list(requested), {}
