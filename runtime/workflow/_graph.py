"""Static validation of a workflow, and the compiled graph the engine runs.

`compile_workflow` refuses a workflow with every problem it finds, each naming
the step and key. What it returns is everything the engine needs precomputed:
successors, the incoming edges a join waits for, which routes close a loop,
and each step's policy per failure kind.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from protocols import FailureKind
from runtime.errors import Problem, WorkflowInvalid
from runtime.workflow._checkpoints import CONSEQUENCES, Checkpoint
from runtime.workflow._conditions import Condition
from runtime.workflow._definition import Decision, Node, Role, Step, Workflow
from runtime.workflow._policies import (
    EscalateTo,
    FailurePolicy,
    Goto,
    ProceedWithFlag,
    Retry,
    policy_table,
)

MAX_PATH_COMBINATIONS = 65_536
"""Most combinations of decision routes the read check enumerates; more is refused."""


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

    @property
    def name(self) -> str:
        return self.workflow.name

    def step(self, name: str) -> Step:
        node = self.nodes[name]
        assert isinstance(node, Step)
        return node


def compile_workflow(workflow: Workflow) -> Graph:
    """Validate `workflow` and compile it, or raise `WorkflowInvalid` listing every problem."""
    problems: list[Problem] = []
    nodes = _index_nodes(workflow, problems)
    roles = _index_roles(workflow, problems)
    if not nodes:
        problems.append(Problem("empty", "the workflow has no steps"))
        raise WorkflowInvalid(workflow.name, problems)
    if workflow.start not in nodes:
        problems.append(
            Problem("dangling_start", f"start {workflow.start!r} is not a step", workflow.start)
        )
    successors = _check_edges(workflow, nodes, problems)
    gotos = _check_steps(workflow, nodes, roles, problems)
    checkpoints = _check_checkpoints(workflow, nodes, gotos, problems)
    if problems:
        raise WorkflowInvalid(workflow.name, problems)

    out_edges = {name: _out_targets(node, successors) for name, node in nodes.items()}
    reachable = _reachable(workflow.start, out_edges, gotos)
    problems.extend(
        Problem("unreachable", f"step {name!r} is unreachable from {workflow.start!r}", name)
        for name in nodes
        if name not in reachable
    )
    back_edges = _back_edges(nodes, out_edges)
    problems.extend(_check_loop_bounds(nodes, out_edges, back_edges))
    if problems:
        raise WorkflowInvalid(workflow.name, problems)

    forward = {
        name: tuple(t for t in targets if (name, t) not in back_edges)
        for name, targets in out_edges.items()
    }
    joins: dict[str, set[str]] = {name: set() for name in nodes}
    for name, targets in forward.items():
        for target in targets:
            joins[target].add(name)
    component = _components(out_edges)
    problems.extend(
        _check_reads(
            workflow,
            nodes=nodes,
            forward=forward,
            joins=joins,
            gotos=gotos,
            back_edges=back_edges,
        )
    )
    if problems:
        raise WorkflowInvalid(workflow.name, problems)

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
    )


def fingerprint(workflow: Workflow) -> str:
    """A stable hash of everything that shapes how runs of the workflow behave."""
    canonical = json.dumps(_canonical(workflow), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _canonical(value: Any) -> Any:
    if isinstance(value, Condition):
        return {"condition": value.describe()}
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if is_dataclass(value) and not isinstance(value, type):
        body = {f.name: _canonical(getattr(value, f.name)) for f in fields(value)}
        return {"kind": type(value).__name__, **body}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _index_nodes(workflow: Workflow, problems: list[Problem]) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    for node in workflow.nodes:
        if node.name in nodes:
            problems.append(
                Problem("duplicate_step", f"step name {node.name!r} is used twice", node.name)
            )
        nodes[node.name] = node
    return nodes


def _index_roles(workflow: Workflow, problems: list[Problem]) -> dict[str, Role]:
    roles: dict[str, Role] = {}
    for role in workflow.roles:
        if role.name in roles:
            problems.append(Problem("duplicate_role", f"role name {role.name!r} is used twice"))
        roles[role.name] = role
    return roles


def _check_edges(
    workflow: Workflow, nodes: Mapping[str, Node], problems: list[Problem]
) -> dict[str, tuple[str, ...]]:
    successors: dict[str, list[str]] = {
        n: [] for n, node in nodes.items() if isinstance(node, Step)
    }
    for source, target in workflow.edges:
        if source not in nodes:
            problems.append(
                Problem(
                    "dangling_edge",
                    f"edge {source} -> {target} starts at {source!r}, which is not a step",
                    source,
                )
            )
            continue
        if target not in nodes:
            problems.append(
                Problem(
                    "dangling_edge",
                    f"edge {source} -> {target} points to {target!r}, which is not a step",
                    source,
                )
            )
            continue
        if isinstance(nodes[source], Decision):
            problems.append(
                Problem(
                    "edge_from_decision",
                    f"edge {source} -> {target} leaves decision {source!r}: "
                    "a decision leaves by its routes",
                    source,
                )
            )
            continue
        if target in successors[source]:
            problems.append(
                Problem("duplicate_edge", f"edge {source} -> {target} is given twice", source)
            )
            continue
        successors[source].append(target)
    for node in nodes.values():
        if not isinstance(node, Decision):
            continue
        if not node.routes and not node.default:
            problems.append(
                Problem("empty_decision", f"decision {node.name!r} has no routes", node.name)
            )
        for route in node.all_routes():
            if route.limit is not None and route.limit < 1:
                problems.append(
                    Problem(
                        "bad_limit",
                        f"decision {node.name!r}: a route limit must be at least 1",
                        node.name,
                    )
                )
            problems.extend(
                Problem(
                    "dangling_edge",
                    f"decision {node.name!r} routes to {target!r}, which is not a step",
                    node.name,
                )
                for target in route.to
                if target not in nodes
            )
    return {name: tuple(targets) for name, targets in successors.items()}


def _check_steps(
    workflow: Workflow,
    nodes: Mapping[str, Node],
    roles: Mapping[str, Role],
    problems: list[Problem],
) -> dict[str, str]:
    """Check each step alone; return its Goto targets (failing step -> fallback)."""
    gotos: dict[str, str] = {}
    edge_ends = {name for edge in workflow.edges for name in edge}
    route_ends = {
        target for node in nodes.values() if isinstance(node, Decision) for target in node.targets()
    }
    for node in nodes.values():
        if not isinstance(node, Step):
            continue
        name = node.name
        role = roles.get(node.role)
        if role is None:
            problems.append(
                Problem(
                    "unknown_role", f"step {name!r} names role {node.role!r}, not declared", name
                )
            )
        else:
            problems.extend(
                Problem(
                    "tool_not_allowed",
                    f"step {name!r} uses tool {tool!r}, which role {role.name!r} may not use",
                    name,
                )
                for tool in node.tools
                if tool not in role.tools
            )
        if node.timeout <= 0:
            problems.append(
                Problem("bad_timeout", f"step {name!r}: timeout must be positive seconds", name)
            )
        for policy in _policies_of(node):
            if isinstance(policy, Retry) and policy.attempts < 1:
                problems.append(
                    Problem("bad_retry", f"step {name!r}: Retry needs at least 1 attempt", name)
                )
            inner = policy.then if isinstance(policy, Retry) else policy
            if isinstance(inner, ProceedWithFlag):
                problems.extend(
                    Problem(
                        "missing_default",
                        f"step {name!r} proceeds with a flag but gives no default for key {k!r}",
                        name,
                        k,
                    )
                    for k in node.writes
                    if k not in inner.defaults
                )
            if isinstance(inner, Goto):
                _check_goto(
                    name,
                    step=node,
                    target=inner.step,
                    nodes=nodes,
                    gotos=gotos,
                    linked=edge_ends | route_ends,
                    problems=problems,
                )
    _check_goto_cycles(gotos, problems)
    return gotos


def _check_checkpoints(
    workflow: Workflow, nodes: Mapping[str, Node], gotos: dict[str, str], problems: list[Problem]
) -> dict[str, Checkpoint]:
    """Each step's effective checkpoint; an irreversible step without one is refused unless it
    says why it goes unreviewed. A reject route to a step is checked as a fallback."""
    found: dict[str, Checkpoint] = {}
    for consequence in workflow.review:
        if consequence not in CONSEQUENCES:
            problems.append(
                Problem("bad_consequence", f"review names unknown consequence {consequence!r}")
            )
    edge_ends = {name for edge in workflow.edges for name in edge}
    route_ends = {
        target for node in nodes.values() if isinstance(node, Decision) for target in node.targets()
    }
    for node in nodes.values():
        if not isinstance(node, Step):
            continue
        name = node.name
        if node.consequence not in CONSEQUENCES:
            problems.append(
                Problem(
                    "bad_consequence",
                    f"step {name!r}: consequence must be one of {', '.join(CONSEQUENCES)}",
                    name,
                )
            )
        checkpoint = node.checkpoint or workflow.review.get(node.consequence)
        if checkpoint is None:
            if node.consequence == "irreversible" and not node.unreviewed:
                problems.append(
                    Problem(
                        "unreviewed_irreversible",
                        f"step {name!r} is irreversible and no checkpoint reviews it: give it "
                        "one, add a review rule for irreversible steps, or say why it needs "
                        "none with unreviewed=...",
                        name,
                    )
                )
            continue
        found[name] = checkpoint
        groups = [checkpoint.approvers]
        if isinstance(checkpoint.on_timeout, EscalateTo):
            groups.append(checkpoint.on_timeout.approvers)
        for approvers in groups:
            if not approvers or any(not g or ":" in g or len(g) > 64 for g in approvers):
                problems.append(
                    Problem(
                        "bad_approvers",
                        f"step {name!r}: a checkpoint needs approver groups, each a name "
                        "without ':'",
                        name,
                    )
                )
        limits = [checkpoint.timeout]
        if isinstance(checkpoint.on_timeout, EscalateTo):
            limits.append(checkpoint.on_timeout.timeout)
        if any(t is not None and t <= 0 for t in limits):
            problems.append(
                Problem("bad_timeout", f"step {name!r}: a checkpoint's timeout must be positive")
            )
        if checkpoint.when not in ("before", "after"):
            problems.append(
                Problem("bad_checkpoint", f"step {name!r}: when must be 'before' or 'after'", name)
            )
        if isinstance(checkpoint.on_reject, Goto):
            _check_goto(
                name,
                step=node,
                target=checkpoint.on_reject.step,
                nodes=nodes,
                gotos=gotos,
                linked=edge_ends | route_ends,
                problems=problems,
            )
    return found


def _check_goto(
    origin: str,
    *,
    step: Step,
    target: str,
    nodes: Mapping[str, Node],
    gotos: dict[str, str],
    linked: set[str],
    problems: list[Problem],
) -> None:
    fallback = nodes.get(target)
    if fallback is None:
        problems.append(
            Problem(
                "dangling_edge",
                f"step {origin!r} falls back to {target!r}, which is not a step",
                origin,
            )
        )
        return
    if not isinstance(fallback, Step):
        problems.append(
            Problem("bad_fallback", f"step {origin!r} falls back to decision {target!r}", origin)
        )
        return
    if gotos.get(origin, target) != target:
        problems.append(
            Problem("bad_fallback", f"step {origin!r} names two different fallbacks", origin)
        )
        return
    others = [o for o, t in gotos.items() if t == target and o != origin]
    if others:
        problems.append(
            Problem(
                "bad_fallback",
                f"steps {others[0]!r} and {origin!r} share fallback {target!r}: "
                "a fallback stands in for one step",
                target,
            )
        )
    if target in linked:
        problems.append(
            Problem(
                "bad_fallback",
                f"fallback {target!r} of step {origin!r} has edges of its own: "
                "a fallback runs only in place of its step",
                target,
            )
        )
    problems.extend(
        Problem(
            "missing_output",
            f"fallback {target!r} does not write key {k!r}, which step {origin!r} writes",
            target,
            k,
        )
        for k in step.writes
        if k not in fallback.writes
    )
    gotos[origin] = target


def _check_goto_cycles(gotos: Mapping[str, str], problems: list[Problem]) -> None:
    for origin in gotos:
        seen = [origin]
        current = gotos[origin]
        while current in gotos:
            if current in seen:
                problems.append(
                    Problem(
                        "fallback_cycle",
                        "fallbacks form a cycle: " + " -> ".join([*seen, current]),
                        origin,
                    )
                )
                return
            seen.append(current)
            current = gotos[current]


def _policies_of(step: Step) -> Iterator[FailurePolicy]:
    seen: set[int] = set()
    for policy in policy_table(step.on_failure).values():
        if id(policy) not in seen:
            seen.add(id(policy))
            yield policy


def _out_targets(node: Node, successors: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    return node.targets() if isinstance(node, Decision) else successors[node.name]


def _reachable(
    start: str, out_edges: Mapping[str, tuple[str, ...]], gotos: Mapping[str, str]
) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        name = stack.pop()
        nexts = list(out_edges[name])
        if name in gotos:
            nexts.append(gotos[name])
        for target in nexts:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _back_edges(
    nodes: Mapping[str, Node], out_edges: Mapping[str, tuple[str, ...]]
) -> set[tuple[str, str]]:
    """The routes that close a loop: limited decision routes whose target leads back.

    Chosen by what the routes are, not by the order edges were listed in, so
    the same graph always has the same loops.
    """
    closing: set[tuple[str, str]] = set()
    for name, node in nodes.items():
        if not isinstance(node, Decision):
            continue
        for route in node.all_routes():
            if route.limit is None:
                continue
            closing.update((name, t) for t in route.to if name in _reachable(t, out_edges, {}))
    return closing


def _find_cycle(
    nodes: Mapping[str, Node], forward: Mapping[str, tuple[str, ...]]
) -> list[str] | None:
    """A cycle left in the graph once the closing routes are removed, as a path, or None."""
    state: dict[str, int] = {}
    for root in nodes:
        if root in state:
            continue
        path = [root]
        state[root] = 1
        stack: list[Iterator[str]] = [iter(forward[root])]
        while stack:
            target = next(stack[-1], None)
            if target is None:
                stack.pop()
                state[path.pop()] = 2
            elif state.get(target) == 1:
                return [*path[path.index(target) :], target]
            elif target not in state:
                state[target] = 1
                path.append(target)
                stack.append(iter(forward[target]))
    return None


def _check_loop_bounds(
    nodes: Mapping[str, Node],
    out_edges: Mapping[str, tuple[str, ...]],
    back_edges: set[tuple[str, str]],
) -> Iterator[Problem]:
    forward = {
        name: tuple(t for t in targets if (name, t) not in back_edges)
        for name, targets in out_edges.items()
    }
    cycle = _find_cycle(nodes, forward)
    if cycle is not None:
        closer = cycle[-2]
        how = (
            f"give the route {closer} -> {cycle[-1]} a limit"
            if isinstance(nodes[closer], Decision)
            else "close it with a decision route that has a limit"
        )
        yield Problem("unbounded_cycle", f"cycle {' -> '.join(cycle)} has no bound: {how}", closer)
        return
    for source, target in sorted(back_edges):
        node = nodes[source]
        assert isinstance(node, Decision)
        if any(len(r.to) > 1 for r in node.all_routes() if target in r.to):
            yield Problem(
                "mixed_route",
                f"decision {source!r}: the route back to {target!r} must lead nowhere else",
                source,
            )
    component = _components(out_edges)
    for name, targets in sorted(out_edges.items()):
        if isinstance(nodes[name], Decision):
            continue
        members = [n for n in nodes if component[n] == component[name]]
        if len(members) < 2:
            continue
        for target in targets:
            if component[target] != component[name]:
                yield Problem(
                    "loop_exit",
                    f"step {name!r} is inside a loop but has an edge to {target!r} outside "
                    "it: a loop is left through its decision",
                    name,
                )


def _path(
    start: str,
    goal: str,
    out_edges: Mapping[str, tuple[str, ...]],
    back_edges: set[tuple[str, str]],
) -> list[str]:
    """A shortest forward path from start to goal, for messages."""
    previous: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        following: list[str] = []
        for name in frontier:
            for target in out_edges[name]:
                if (name, target) in back_edges or target in seen:
                    continue
                seen.add(target)
                previous[target] = name
                following.append(target)
        frontier = following
    path = [goal]
    while path[-1] != start and path[-1] in previous:
        path.append(previous[path[-1]])
    return list(reversed(path))


def _components(out_edges: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
    """Strongly connected components (Tarjan), numbered; a loop's nodes share a number."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    component: dict[str, int] = {}
    counter = itertools.count()

    for root in out_edges:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(out_edges[root]))]
        index[root] = low[root] = next(counter)
        stack.append(root)
        on_stack.add(root)
        while work:
            name, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = next(counter)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(out_edges[target])))
                elif target in on_stack:
                    low[name] = min(low[name], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[name])
            if low[name] == index[name]:
                number = len(set(component.values()))
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = number
                    if member == name:
                        break
    return component


def _check_reads(
    workflow: Workflow,
    *,
    nodes: Mapping[str, Node],
    forward: Mapping[str, tuple[str, ...]],
    joins: Mapping[str, set[str]],
    gotos: Mapping[str, str],
    back_edges: set[tuple[str, str]],
) -> Iterator[Problem]:
    """Every key a node reads is written on every path that reaches it.

    A node runs once each incoming edge has fired or been ruled out, so every
    ancestor has finished by then; the keys sure to exist are the inputs and
    the writes of the ancestors that ran. Which ancestors ran depends on the
    routes decisions took, so each combination of routes is checked.
    """
    order = _topological(nodes, forward)
    ancestors: dict[str, set[str]] = {}
    for name in order:
        found: set[str] = set()
        for pred in joins[name]:
            found |= ancestors[pred] | {pred}
        ancestors[name] = found
    decisions = [n for n in order if isinstance(nodes[n], Decision)]
    choices = {
        name: [
            route.to
            for route in _decision(nodes, name).all_routes()
            if not any((name, t) in back_edges for t in route.to)
        ]
        for name in decisions
    }
    combinations = 1
    for options in choices.values():
        combinations *= max(1, len(options))
    if combinations > MAX_PATH_COMBINATIONS:
        yield Problem(
            "too_many_paths",
            f"the decisions allow {combinations} combinations of routes, more than the "
            f"{MAX_PATH_COMBINATIONS} that can be checked: split the workflow",
        )
        return
    reported: set[tuple[str, str]] = set()
    inputs = set(workflow.inputs)
    alternatives: list[list[tuple[str, ...]]] = [choices[d] or [()] for d in decisions]
    for combo in itertools.product(*alternatives):
        picked = dict(zip(decisions, combo, strict=True))
        ran = _simulate(order, nodes, forward, joins, start=workflow.start, picked=picked)
        for name in order:
            if not ran[name]:
                continue
            known = set(inputs)
            for ancestor in ancestors[name]:
                if ran[ancestor]:
                    node = nodes[ancestor]
                    if isinstance(node, Step):
                        known |= set(node.writes)
            readers = [name]
            while readers[-1] in gotos and gotos[readers[-1]] not in readers:
                readers.append(gotos[readers[-1]])
            for reader in readers:
                for key in nodes[reader].reads:
                    if key in known or (reader, key) in reported:
                        continue
                    reported.add((reader, key))
                    yield Problem(
                        "read_before_write",
                        f"step {reader!r} reads key {key!r}, which is not written on every "
                        f"path reaching it{_describe_choice(picked, ran, ancestors[name])}",
                        reader,
                        key,
                    )


def _decision(nodes: Mapping[str, Node], name: str) -> Decision:
    node = nodes[name]
    assert isinstance(node, Decision)
    return node


def _simulate(
    order: list[str],
    nodes: Mapping[str, Node],
    forward: Mapping[str, tuple[str, ...]],
    joins: Mapping[str, set[str]],
    *,
    start: str,
    picked: Mapping[str, tuple[str, ...]],
) -> dict[str, bool]:
    fired: set[tuple[str, str]] = set()
    ran: dict[str, bool] = {}
    for name in order:
        ran[name] = name == start or any((p, name) in fired for p in joins[name])
        if not ran[name]:
            continue
        if isinstance(nodes[name], Decision):
            chosen = picked[name]
            fired.update((name, t) for t in chosen if t in forward[name])
        else:
            fired.update((name, t) for t in forward[name])
    return ran


def _describe_choice(
    picked: Mapping[str, tuple[str, ...]], ran: Mapping[str, bool], relevant: set[str]
) -> str:
    parts = [
        f"{decision} -> {'+'.join(targets)}"
        for decision, targets in picked.items()
        if decision in relevant and ran.get(decision) and targets
    ]
    return f" (when {', '.join(parts)})" if parts else ""


def _topological(nodes: Mapping[str, Node], forward: Mapping[str, tuple[str, ...]]) -> list[str]:
    indegree = dict.fromkeys(nodes, 0)
    for targets in forward.values():
        for target in targets:
            indegree[target] += 1
    ready = [n for n in nodes if indegree[n] == 0]
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for target in forward[name]:
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    return order
