"""The structural checks of a workflow: each part on its own and the names between them.

Names are unique, edges and routes point at nodes, decisions leave by their
routes, steps name a declared role and tools it may use, policies fit their
step, fallbacks stand in for exactly one step, and checkpoints are well formed.
Each check adds what it finds to `problems` and returns what is sound.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from runtime.errors import Problem
from runtime.workflow._checkpoints import CONSEQUENCES, Checkpoint
from runtime.workflow._definition import Decision, Node, Role, Step, Workflow
from runtime.workflow._policies import (
    EscalateTo,
    FailurePolicy,
    Goto,
    ProceedWithFlag,
    Retry,
    policy_table,
)


def index_nodes(workflow: Workflow, problems: list[Problem]) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    for node in workflow.nodes:
        if node.name in nodes:
            problems.append(
                Problem("duplicate_step", f"step name {node.name!r} is used twice", node.name)
            )
        nodes[node.name] = node
    return nodes


def index_roles(workflow: Workflow, problems: list[Problem]) -> dict[str, Role]:
    roles: dict[str, Role] = {}
    for role in workflow.roles:
        if role.name in roles:
            problems.append(Problem("duplicate_role", f"role name {role.name!r} is used twice"))
        roles[role.name] = role
    return roles


def check_edges(
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


def check_steps(
    workflow: Workflow,
    nodes: Mapping[str, Node],
    roles: Mapping[str, Role],
    problems: list[Problem],
) -> dict[str, str]:
    """Check each step alone; return its Goto targets (failing step -> fallback)."""
    gotos: dict[str, str] = {}
    linked = _linked(workflow, nodes)
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
                    linked=linked,
                    problems=problems,
                )
    _check_goto_cycles(gotos, problems)
    return gotos


def check_checkpoints(
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
    linked = _linked(workflow, nodes)
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
                linked=linked,
                problems=problems,
            )
    return found


def _linked(workflow: Workflow, nodes: Mapping[str, Node]) -> set[str]:
    """Every node an edge or a route touches: a fallback may be none of them."""
    ends = {name for edge in workflow.edges for name in edge}
    ends.update(t for node in nodes.values() if isinstance(node, Decision) for t in node.targets())
    return ends


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


def named_fallbacks(
    nodes: Mapping[str, Node], checkpoints: Mapping[str, Checkpoint]
) -> dict[str, set[str]]:
    """The nodes each step names to stand in for it, sound or not: where its author meant a
    failure or a rejection to lead, which the reachability check honours either way."""
    named: dict[str, set[str]] = {}
    for node in nodes.values():
        if not isinstance(node, Step):
            continue
        targets: set[str] = set()
        for policy in _policies_of(node):
            inner = policy.then if isinstance(policy, Retry) else policy
            if isinstance(inner, Goto):
                targets.add(inner.step)
        checkpoint = checkpoints.get(node.name)
        if checkpoint is not None and isinstance(checkpoint.on_reject, Goto):
            targets.add(checkpoint.on_reject.step)
        named[node.name] = targets & nodes.keys()
    return named
