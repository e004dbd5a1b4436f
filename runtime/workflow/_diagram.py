"""A compiled workflow drawn as a Mermaid flowchart: the map before the agents.

Steps are rectangles labelled with their name, role, tools and failure policy;
decisions are rhombi; routes carry their condition, loop-closing routes are
dashed with their limit, and Goto fallbacks hang off their step as dashed
edges. Node ids are `n0`, `n1`, ... in definition order, so the same graph
always gives the same text.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocols import FailureKind
from runtime.workflow._checkpoints import Checkpoint
from runtime.workflow._definition import Decision, Step
from runtime.workflow._graph import Graph
from runtime.workflow._policies import (
    FAILURE_KINDS,
    Escalate,
    FailurePolicy,
    Goto,
    Halt,
    ProceedWithFlag,
    Retry,
)

_ESCAPES = (
    ("#", "#35;"),
    ("&", "#amp;"),
    ('"', "#quot;"),
    ("<", "#lt;"),
    (">", "#gt;"),
    ("|", "#124;"),
    ("`", "#96;"),
    ("\n", " "),
)


def mermaid(graph: Graph) -> str:
    """The graph as Mermaid `flowchart TD` text."""
    ids = {name: f"n{index}" for index, name in enumerate(graph.nodes)}
    lines = ["flowchart TD"]
    for name, node in graph.nodes.items():
        if isinstance(node, Decision):
            lines.append(f'    {ids[name]}{{"{_escape(name)}"}}')
        else:
            label = _step_label(node, graph.policies[name], graph.checkpoints.get(name))
            lines.append(f'    {ids[name]}["{label}"]')
    for name, node in graph.nodes.items():
        if isinstance(node, Decision):
            lines.extend(_route_edges(node, ids, graph.back_routes))
        else:
            lines.extend(f"    {ids[name]} --> {ids[t]}" for t in graph.successors[name])
            lines.extend(_fallback_edges(name, graph.policies[name], ids))
    return "\n".join(lines) + "\n"


def _step_label(
    step: Step, policies: Mapping[FailureKind, FailurePolicy], checkpoint: Checkpoint | None
) -> str:
    parts = [f"<b>{_escape(step.name)}</b>", f"role: {_escape(step.role)}"]
    if step.tools:
        parts.append("tools: " + _escape(", ".join(step.tools)))
    if step.consequence != "reversible":
        parts.append(f"consequence: {step.consequence}")
    if checkpoint is not None:
        condition = checkpoint.condition.describe()
        when = "" if condition == "always" else f" if {condition}"
        groups = ", ".join(checkpoint.approvers)
        parts.append(_escape(f"checkpoint {checkpoint.when}{when}: {groups}"))
    if step.on_failure is not None:
        parts.append(_escape(_policy_summary(policies)))
    return "<br/>".join(parts)


def _policy_summary(policies: Mapping[FailureKind, FailurePolicy]) -> str:
    """One short phrase per distinct policy; the one covering most kinds, if several, is `other`."""
    grouped: dict[str, list[str]] = {}
    for kind in FAILURE_KINDS:
        grouped.setdefault(_short(policies[kind]), []).append(kind)
    if len(grouped) == 1:
        return f"on failure: {next(iter(grouped))}"
    widest = max(grouped, key=lambda text: len(grouped[text]))
    if len(grouped[widest]) == 1:
        widest = ""
    named = [f"{', '.join(kinds)}: {text}" for text, kinds in grouped.items() if text != widest]
    return "; ".join([*named, f"other: {widest}"] if widest else named)


def _short(policy: FailurePolicy) -> str:
    match policy:
        case Retry():
            return f"retry x{policy.attempts} then {_short(policy.then)}"
        case Halt():
            return "halt"
        case ProceedWithFlag():
            return "flag"
        case Goto():
            return f"goto {policy.step}"
        case Escalate():
            return f"ask {'/'.join(policy.approvers)}"


def _route_edges(
    node: Decision, ids: Mapping[str, str], back_routes: frozenset[tuple[str, str]]
) -> list[str]:
    lines: list[str] = []
    for index, route in enumerate(node.all_routes()):
        label = node.route_label(index)
        for target in route.to:
            if (node.name, target) in back_routes:
                bound = f" (max {route.limit})" if route.limit is not None else ""
                arrow = f'-.->|"{_escape(label + bound)}"|'
            else:
                arrow = f'-->|"{_escape(label)}"|'
            lines.append(f"    {ids[node.name]} {arrow} {ids[target]}")
    return lines


def _fallback_edges(
    name: str, policies: Mapping[FailureKind, FailurePolicy], ids: Mapping[str, str]
) -> list[str]:
    kinds_by_target: dict[str, list[str]] = {}
    for kind in FAILURE_KINDS:
        policy = policies[kind]
        inner = policy.then if isinstance(policy, Retry) else policy
        if isinstance(inner, Goto):
            kinds_by_target.setdefault(inner.step, []).append(kind)
    lines: list[str] = []
    for target, kinds in kinds_by_target.items():
        which = "any" if len(kinds) == len(FAILURE_KINDS) else ", ".join(kinds)
        label = _escape(f"on {which}: fallback")
        lines.append(f'    {ids[name]} -.->|"{label}"| {ids[target]}')
    return lines


def _escape(text: str) -> str:
    """Text safe inside a quoted Mermaid label."""
    for raw, code in _ESCAPES:
        text = text.replace(raw, code)
    return text
