"""The shape of a workflow's graph: what reaches what, which routes close a loop, whether
every loop is bounded, and an order in which every node comes after its predecessors.

Graphs here are maps from a node to the nodes its edges and routes lead to.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator, Mapping

from runtime.errors import Problem
from runtime.workflow._definition import Decision, Node


def out_targets(
    node: Node, successors: Mapping[str, tuple[str, ...]], nodes: Collection[str]
) -> tuple[str, ...]:
    """Where a node's edges lead among `nodes`: a step's edge targets, or every target of a
    decision (a route to a name that is no node leads nowhere)."""
    if isinstance(node, Decision):
        return tuple(t for t in node.targets() if t in nodes)
    return successors[node.name]


def reachable_from(
    start: str,
    out_edges: Mapping[str, tuple[str, ...]],
    fallbacks: Mapping[str, Collection[str]],
) -> set[str]:
    """Every node reached from `start` by edges, routes and the steps' `fallbacks`."""
    seen = {start}
    stack = [start]
    while stack:
        name = stack.pop()
        for target in itertools.chain(out_edges[name], fallbacks.get(name, ())):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def closing_routes(
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
            closing.update(
                (name, t)
                for t in route.to
                if t in out_edges and name in reachable_from(t, out_edges, {})
            )
    return closing


def find_cycle(
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


def check_loop_bounds(
    nodes: Mapping[str, Node],
    out_edges: Mapping[str, tuple[str, ...]],
    back_edges: set[tuple[str, str]],
    problems: list[Problem],
) -> set[tuple[str, str]]:
    """Every cycle closes through a limited route, which leads nowhere else, and a loop is
    left only through its decision.

    Returns the edge that closes each cycle without a bound, so that the checks after
    this one can see the graph as if those cycles were bounded there.
    """
    forward = {
        name: tuple(t for t in targets if (name, t) not in back_edges)
        for name, targets in out_edges.items()
    }
    unbounded: set[tuple[str, str]] = set()
    while (cycle := find_cycle(nodes, forward)) is not None:
        closer, reopened = cycle[-2], cycle[-1]
        how = (
            f"give the route {closer} -> {reopened} a limit"
            if isinstance(nodes[closer], Decision)
            else "close it with a decision route that has a limit"
        )
        problems.append(
            Problem("unbounded_cycle", f"cycle {' -> '.join(cycle)} has no bound: {how}", closer)
        )
        unbounded.add((closer, reopened))
        forward[closer] = tuple(t for t in forward[closer] if t != reopened)
    for source, target in sorted(back_edges):
        node = nodes[source]
        assert isinstance(node, Decision)
        if any(len(r.to) > 1 for r in node.all_routes() if target in r.to):
            problems.append(
                Problem(
                    "mixed_route",
                    f"decision {source!r}: the route back to {target!r} must lead nowhere else",
                    source,
                )
            )
    # A cycle without a bound is not a loop yet: what leaves it is judged once it has one.
    bounded = {
        name: tuple(t for t in targets if (name, t) not in unbounded)
        for name, targets in out_edges.items()
    }
    component = strong_components(bounded)
    for name, targets in sorted(bounded.items()):
        if isinstance(nodes[name], Decision):
            continue
        members = [n for n in nodes if component[n] == component[name]]
        if len(members) < 2:
            continue
        problems.extend(
            Problem(
                "loop_exit",
                f"step {name!r} is inside a loop but has an edge to {target!r} outside "
                "it: a loop is left through its decision",
                name,
            )
            for target in targets
            if component[target] != component[name]
        )
    return unbounded


def strong_components(out_edges: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
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


def topological(nodes: Mapping[str, Node], forward: Mapping[str, tuple[str, ...]]) -> list[str]:
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
