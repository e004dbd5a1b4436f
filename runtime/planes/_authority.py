"""Whether a person's decision on an open checkpoint or escalation may be journaled.

Authority comes from the authenticated key alone: its principal must hold
`approver:GROUP` for a group the decision names, and under separation of
duties must not be the principal who started the run. The decision must
quote the digest of the version it was shown, so a decision made on what is
no longer open (decided already, escalated, withdrawn) is refused as stale.
Edited values are checked against what is under review and the step's types; those
given for a fork, against the keys the workflow knows and their types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from protocols import Decide, ErrorCode
from runtime.engine._events import DecisionMade
from runtime.engine._run import OpenDecision, Run
from runtime.security._principals import APPROVER_PREFIX, Principal
from runtime.workflow._definition import Step
from runtime.workflow._graph import Graph


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a decision is not taken: a stable code and a sentence for the person."""

    code: ErrorCode
    message: str


def may_see(principal: Principal | None, waiting: OpenDecision) -> bool:
    """Whether `principal` sees this decision in its inbox: readers see all, approvers theirs
    (None: an insecure runtime, where everyone sees everything)."""
    if principal is None or principal.may_read():
        return True
    return any(principal.may_approve(group) for group in waiting.approvers)


def may_list(principal: Principal) -> bool:
    """Whether `principal` may ask for an inbox at all: readers and approvers."""
    if principal.may_read():
        return True
    return any(role.startswith(APPROVER_PREFIX) for role in principal.roles)


def check_decision(
    run: Run, principal: Principal | None, request: Decide
) -> DecisionMade | Refusal:
    """The event to journal for `request`, or why it is refused.

    `principal` is None only on an insecure runtime, where nobody is
    authenticated and so neither authority nor separation of duties holds.
    """
    who = "" if principal is None else principal.name
    waiting = run.decisions.get(request.step)
    if waiting is None:
        return Refusal(
            "wrong_state",
            f"run {run.run_id!r} waits for no decision on step {request.step!r} "
            f"(it is {run.status})",
        )
    if principal is not None:
        if not any(principal.may_approve(group) for group in waiting.approvers):
            groups = ", ".join(f"approver:{g}" for g in waiting.approvers)
            return Refusal(
                "unauthorized",
                f"principal {who!r} may not decide step {request.step!r}: it needs {groups}",
            )
        if waiting.separate_duties and who == run.started_by:
            return Refusal(
                "unauthorized",
                f"principal {who!r} started run {run.run_id!r} and so may not approve it "
                "(separation of duties)",
            )
    if request.attempt != waiting.attempt or request.digest != waiting.digest:
        return Refusal(
            "stale",
            f"the decision on step {request.step!r} is no longer the one shown (it is at "
            f"attempt {waiting.attempt}, digest {waiting.digest}); look again and decide",
        )
    if request.decision not in waiting.choices:
        return Refusal(
            "invalid_input",
            f"step {request.step!r} waits for one of: {', '.join(waiting.choices)}",
        )
    problem = _values_problem(run, waiting, request)
    if problem is not None:
        return Refusal("invalid_input", problem)
    return DecisionMade(
        run_id=run.run_id,
        step=request.step,
        attempt=request.attempt,
        decision=request.decision,
        principal=who,
        digest=request.digest,
        comment=request.comment,
        values=dict(request.values),
    )


def _values_problem(run: Run, waiting: OpenDecision, request: Decide) -> str | None:
    values = request.values
    step = run.graph.step(request.step)
    if request.decision not in ("approve", "skip"):
        return f"{request.decision} takes no values" if values else None
    if request.decision == "skip":
        missing = sorted(set(step.writes) - values.keys())
        if missing:
            return f"skipping step {step.name!r} needs a value for each output: {missing}"
        allowed: set[str] = set(step.writes)
    elif waiting.when == "before":
        allowed = set(waiting.reviewed)
    else:
        allowed = set(step.writes)
    extra = sorted(values.keys() - allowed)
    if extra:
        return f"{extra[0]!r} is not among the values under review: {sorted(allowed)}"
    for key, value in values.items():
        expected: Any = step.writes.get(key, object)
        if expected is object:
            continue
        try:
            msgspec.convert(value, expected)
        except msgspec.ValidationError as exc:
            return f"value for {key!r}: {exc}"
    return None


def fork_values_problem(graph: Graph, values: dict[str, Any]) -> str | None:
    """Why `values` may not be written over the data of a fork of a run of `graph`, or None.

    Each key must be an input of the workflow or an output of one of its steps, and a
    value must have the type every step writing that key declares.
    """
    writers: dict[str, list[Step]] = {}
    for node in graph.nodes.values():
        if isinstance(node, Step):
            for key in node.writes:
                writers.setdefault(key, []).append(node)
    known = set(graph.workflow.inputs) | writers.keys()
    for key in sorted(values):
        if key not in known:
            return (
                f"{key!r} is neither an input nor a step's output of workflow {graph.name!r} "
                f"(its keys: {', '.join(sorted(known)) or 'none'})"
            )
        for step in writers.get(key, []):
            expected: Any = step.writes[key]
            if expected is object:
                continue
            try:
                msgspec.convert(values[key], expected)
            except msgspec.ValidationError as exc:
                return f"value for {key!r}: {exc}"
    return None
