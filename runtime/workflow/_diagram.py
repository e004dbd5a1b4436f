"""A compiled workflow as a diagram: the map before the agents.

`diagram` builds the one model of that map, which `mermaid` renders as a
Mermaid flowchart and the control plane sends to pages that draw it: steps
with their name, role, tools and notes (consequence, checkpoint, failure
policy); decisions; routes with their condition, loop-closing routes with
their limit, and Goto fallbacks hanging off their step. In the Mermaid text,
steps are rectangles, decisions rhombi, and loop-closing routes and fallbacks
dashed. Nodes and edges keep definition order (Mermaid node ids are `n0`,
`n1`, ...), so the same graph always gives the same diagram.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

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

EdgeKind = Literal["next", "route", "back", "fallback"]

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


@dataclass(frozen=True, slots=True)
class DiagramNode:
    """A step (its role, tools, and the notes under its name) or a decision (a name only)."""

    name: str
    kind: Literal["step", "decision"]
    role: str = ""
    tools: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """Consequence (unless reversible), checkpoint, failure policy: those that apply."""


@dataclass(frozen=True, slots=True)
class DiagramEdge:
    """An arrow: `next` (unlabelled), a decision's `route` or a loop-closing route (`back`,
    its limit in the label), or a Goto `fallback` (the failure kinds it covers)."""

    source: str
    target: str
    label: str = ""
    kind: EdgeKind = "next"


@dataclass(frozen=True, slots=True)
class Diagram:
    nodes: tuple[DiagramNode, ...]
    edges: tuple[DiagramEdge, ...]


def diagram(graph: Graph) -> Diagram:
    """The graph's nodes and edges, as every drawing of it shows them."""
    nodes: list[DiagramNode] = []
    edges: list[DiagramEdge] = []
    for name, node in graph.nodes.items():
        if isinstance(node, Decision):
            nodes.append(DiagramNode(name, "decision"))
            edges.extend(_route_edges(node, graph.back_routes))
        else:
            notes = _step_notes(node, graph.policies[name], graph.checkpoints.get(name))
            nodes.append(DiagramNode(name, "step", node.role, tuple(node.tools), notes))
            edges.extend(DiagramEdge(name, target) for target in graph.successors[name])
            edges.extend(_fallback_edges(name, graph.policies[name]))
    return Diagram(tuple(nodes), tuple(edges))


def mermaid(graph: Graph) -> str:
    """The graph as Mermaid `flowchart TD` text."""
    return render_mermaid(diagram(graph))


def render_mermaid(drawn: Diagram) -> str:
    """A diagram as Mermaid `flowchart TD` text."""
    ids = {node.name: f"n{index}" for index, node in enumerate(drawn.nodes)}
    lines = ["flowchart TD"]
    for node in drawn.nodes:
        if node.kind == "decision":
            lines.append(f'    {ids[node.name]}{{"{_escape(node.name)}"}}')
            continue
        parts = [f"<b>{_escape(node.name)}</b>", f"role: {_escape(node.role)}"]
        if node.tools:
            parts.append("tools: " + _escape(", ".join(node.tools)))
        parts.extend(_escape(note) for note in node.notes)
        lines.append(f'    {ids[node.name]}["{"<br/>".join(parts)}"]')
    for edge in drawn.edges:
        match edge.kind:
            case "next":
                arrow = "-->"
            case "route":
                arrow = f'-->|"{_escape(edge.label)}"|'
            case "back" | "fallback":
                arrow = f'-.->|"{_escape(edge.label)}"|'
        lines.append(f"    {ids[edge.source]} {arrow} {ids[edge.target]}")
    return "\n".join(lines) + "\n"


def _step_notes(
    step: Step, policies: Mapping[FailureKind, FailurePolicy], checkpoint: Checkpoint | None
) -> tuple[str, ...]:
    notes: list[str] = []
    if step.consequence != "reversible":
        notes.append(f"consequence: {step.consequence}")
    if checkpoint is not None:
        condition = checkpoint.condition.describe()
        when = "" if condition == "always" else f" if {condition}"
        groups = ", ".join(checkpoint.approvers)
        notes.append(f"checkpoint {checkpoint.when}{when}: {groups}")
    if step.on_failure is not None:
        notes.append(_policy_summary(policies))
    return tuple(notes)


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


def _route_edges(node: Decision, back_routes: frozenset[tuple[str, str]]) -> list[DiagramEdge]:
    edges: list[DiagramEdge] = []
    for index, route in enumerate(node.all_routes()):
        label = node.route_label(index)
        for target in route.to:
            if (node.name, target) in back_routes:
                bound = f" (max {route.limit})" if route.limit is not None else ""
                edges.append(DiagramEdge(node.name, target, label + bound, "back"))
            else:
                edges.append(DiagramEdge(node.name, target, label, "route"))
    return edges


def _fallback_edges(name: str, policies: Mapping[FailureKind, FailurePolicy]) -> list[DiagramEdge]:
    kinds_by_target: dict[str, list[str]] = {}
    for kind in FAILURE_KINDS:
        policy = policies[kind]
        inner = policy.then if isinstance(policy, Retry) else policy
        if isinstance(inner, Goto):
            kinds_by_target.setdefault(inner.step, []).append(kind)
    edges: list[DiagramEdge] = []
    for target, kinds in kinds_by_target.items():
        which = "any" if len(kinds) == len(FAILURE_KINDS) else ", ".join(kinds)
        edges.append(DiagramEdge(name, target, f"on {which}: fallback", "fallback"))
    return edges


def _escape(text: str) -> str:
    """Text safe inside a quoted Mermaid label."""
    for raw, code in _ESCAPES:
        text = text.replace(raw, code)
    return text
