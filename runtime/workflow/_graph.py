"""The compiled graph the engine runs, and `compile_workflow`, which checks a workflow and
compiles it.

`compile_workflow` refuses a workflow with every problem it finds, each naming
the step and key. What it returns is everything the engine needs precomputed:
successors, the incoming edges a join waits for, which routes close a loop,
and each step's policy per failure kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocols import FailureKind, OutputType
from runtime.errors import Problem, WorkflowInvalid
from runtime.workflow._checkpoints import Checkpoint
from runtime.workflow._dataflow import check_reads
from runtime.workflow._definition import Decision, Node, Role, Route, Step, Workflow
from runtime.workflow._fingerprint import fingerprint
from runtime.workflow._policies import FailurePolicy, policy_table
from runtime.workflow._structure import (
    check_checkpoints,
    check_edges,
    check_steps,
    index_nodes,
    index_roles,
    named_fallbacks,
)
from runtime.workflow._topology import (
    check_loop_bounds,
    closing_routes,
    out_targets,
    reachable_from,
    strong_components,
)


@dataclass(frozen=True, slots=True)
class Graph:
    """A validated workflow, ready to run."""

    workflow: Workflow
    fingerprint: str
    start: str
    nodes: Mapping[str, Node]
    roles: Mapping[str, Role]
    successors: Mapping[str, tuple[str, ...]]
    """Edge targets of each step; a decision's targets come from the route it takes."""
    joins: Mapping[str, frozenset[str]]
    """The incoming edges a node waits for (loop-closing routes excluded)."""
    in_loop: Mapping[str, frozenset[str]]
    """Of those, the ones from the same loop: forgotten each time the node resolves."""
    back_routes: frozenset[tuple[str, str]]
    """(decision, target) pairs that close a loop."""
    policies: Mapping[str, Mapping[FailureKind, FailurePolicy]]
    replaces: Mapping[str, str]
    """Fallback step -> the step it stands in for."""
    checkpoints: Mapping[str, Checkpoint]
    """Each step's checkpoint: its own, else the `review` rule's for its consequence."""
    routes: Mapping[str, tuple[tuple[Route, str], ...]]
    """Each decision's routes in the order they are tried, the default last, with the name
    each goes by; made once here, since the engine takes a route on every visit."""
    outputs: Mapping[str, dict[str, OutputType]]
    """Each step's declared outputs and their types, as its assignments tell a model; made
    once here, since every dispatch carries them."""

    @property
    def name(self) -> str:
        return self.workflow.name

    def step(self, name: str) -> Step:
        node = self.nodes[name]
        assert isinstance(node, Step)
        return node


def compile_workflow(workflow: Workflow) -> Graph:
    """Validate `workflow` and compile it, or raise `WorkflowInvalid` listing every problem.

    Every check runs, each on the part of the graph the checks before it found sound, so
    that one refusal names every problem: a dangling edge or route is left out, a cycle
    without a bound is seen as bounded where it closes, and without a start nothing can
    be reached, so reachability and dataflow are not checked.
    """
    problems: list[Problem] = []
    nodes = index_nodes(workflow, problems)
    roles = index_roles(workflow, problems)
    if not nodes:
        problems.append(Problem("empty", "the workflow has no steps"))
        raise WorkflowInvalid(workflow.name, problems)
    has_start = workflow.start in nodes
    if not has_start:
        problems.append(
            Problem("dangling_start", f"start {workflow.start!r} is not a step", workflow.start)
        )
    successors = check_edges(workflow, nodes, problems)
    gotos = check_steps(workflow, nodes, roles, problems)
    checkpoints = check_checkpoints(workflow, nodes, gotos, problems)

    out_edges = {name: out_targets(node, successors, nodes) for name, node in nodes.items()}
    if has_start:
        reached = reachable_from(workflow.start, out_edges, named_fallbacks(nodes, checkpoints))
        problems.extend(
            Problem("unreachable", f"step {name!r} is unreachable from {workflow.start!r}", name)
            for name in nodes
            if name not in reached
        )
    back_edges = closing_routes(nodes, out_edges)
    unbounded = check_loop_bounds(nodes, out_edges, back_edges, problems)

    cut = back_edges | unbounded
    forward = {
        name: tuple(t for t in targets if (name, t) not in cut)
        for name, targets in out_edges.items()
    }
    joins: dict[str, set[str]] = {name: set() for name in nodes}
    for name, targets in forward.items():
        for target in targets:
            joins[target].add(name)
    if has_start:
        problems.extend(
            check_reads(
                workflow,
                nodes=nodes,
                forward=forward,
                joins=joins,
                gotos=gotos,
                back_edges=cut,
            )
        )
    if problems:
        raise WorkflowInvalid(workflow.name, problems)

    component = strong_components(out_edges)
    return Graph(
        workflow=workflow,
        fingerprint=fingerprint(workflow),
        start=workflow.start,
        nodes=nodes,
        roles=roles,
        successors=successors,
        joins={name: frozenset(preds) for name, preds in joins.items()},
        in_loop={
            name: frozenset(p for p in preds if component[p] == component[name])
            for name, preds in joins.items()
        },
        back_routes=frozenset(back_edges),
        policies={
            name: policy_table(node.on_failure)
            for name, node in nodes.items()
            if isinstance(node, Step)
        },
        replaces={target: origin for origin, target in gotos.items()},
        checkpoints=checkpoints,
        routes={
            name: tuple(
                (route, node.route_label(index)) for index, route in enumerate(node.all_routes())
            )
            for name, node in nodes.items()
            if isinstance(node, Decision)
        },
        outputs={
            name: {key: output_type(kind) for key, kind in node.writes.items()}
            for name, node in nodes.items()
            if isinstance(node, Step)
        },
    )


_OUTPUT_TYPES: Mapping[Any, OutputType] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    list: "list",
    dict: "dict",
}


def output_type(kind: Any) -> OutputType:
    """The name a step output's declared type goes by on the wire: "any" for an output
    declared without a type, and for any type but the plain ones a model is told of."""
    try:
        return _OUTPUT_TYPES.get(kind, "any")
    except TypeError:
        # An unhashable annotation is no plain type either.
        return "any"
