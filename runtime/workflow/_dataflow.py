"""The dataflow check: every key a node reads is written on every path that reaches it.

Which nodes ran before a reader depends on the routes its decisions took, so
each combination of routes is simulated on the graph without its loop-closing
routes; the run's inputs count as written everywhere.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping

from runtime.errors import Problem
from runtime.workflow._definition import Decision, Node, Step, Workflow
from runtime.workflow._topology import topological

MAX_PATH_COMBINATIONS = 65_536
"""Most combinations of decision routes the read check enumerates; more is refused."""


def check_reads(
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
    order = topological(nodes, forward)
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
