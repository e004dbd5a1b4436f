"""A workflow defined in Python as data: roles, steps, decisions, edges.

Nothing here checks the graph; `runtime.compile_workflow` does, and refuses a
workflow with a precise message. Definitions are plain frozen values so they
can be compared, hashed into a fingerprint, and drawn.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.workflow._checkpoints import Checkpoint, Consequence
from runtime.workflow._conditions import Always, Condition
from runtime.workflow._policies import FailurePolicy, PolicyTable


@dataclass(frozen=True, slots=True)
class Role:
    """A kind of agent, and the tools this workflow lets it use."""

    name: str
    tools: tuple[str, ...] = ()
    description: str = ""

    def __init__(self, name: str, tools: Sequence[str] = (), description: str = "") -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "tools", tuple(tools))
        object.__setattr__(self, "description", description)


@dataclass(frozen=True, slots=True)
class Step:
    """Work done by one agent of `role`: reads keys, writes keys, may use tools.

    `writes` is a list of key names, or a map of key name to the type its
    value must have (checked with msgspec when the result arrives).
    `timeout` is in seconds per attempt. `on_failure` is one policy for every
    failure kind, or a map from kind (or `"*"`) to policy. A result whose
    confidence is under `min_confidence` fails with kind `low_confidence`.
    `consequence` says what an error of the step would cost; an `irreversible`
    step needs a checkpoint (its own, or from the workflow's `review` rule)
    unless `unreviewed` says why it may go without.
    """

    name: str
    role: str
    reads: tuple[str, ...] = ()
    writes: Mapping[str, Any] = field(default_factory=dict)
    tools: tuple[str, ...] = ()
    timeout: float = 60.0
    on_failure: FailurePolicy | PolicyTable | None = None
    min_confidence: float = 0.0
    description: str = ""
    consequence: Consequence = "reversible"
    checkpoint: Checkpoint | None = None
    unreviewed: str = ""

    def __init__(
        self,
        name: str,
        *,
        role: str,
        reads: Sequence[str] = (),
        writes: Sequence[str] | Mapping[str, Any] = (),
        tools: Sequence[str] = (),
        timeout: float = 60.0,
        on_failure: FailurePolicy | PolicyTable | None = None,
        min_confidence: float = 0.0,
        description: str = "",
        consequence: Consequence = "reversible",
        checkpoint: Checkpoint | None = None,
        unreviewed: str = "",
    ) -> None:
        typed = dict(writes) if isinstance(writes, Mapping) else dict.fromkeys(writes, object)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "reads", tuple(reads))
        object.__setattr__(self, "writes", typed)
        object.__setattr__(self, "tools", tuple(tools))
        object.__setattr__(self, "timeout", timeout)
        object.__setattr__(self, "on_failure", on_failure)
        object.__setattr__(self, "min_confidence", min_confidence)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "consequence", consequence)
        object.__setattr__(self, "checkpoint", checkpoint)
        object.__setattr__(self, "unreviewed", unreviewed)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a decision goes when `when` holds: one step, or several run in parallel.

    A route that closes a cycle needs a `limit`: the number of times it may be
    taken in one run. Once spent, the decision treats the route as not matching.
    """

    when: Condition
    to: tuple[str, ...]
    limit: int | None = None

    def __init__(self, when: Condition, to: str | Sequence[str], limit: int | None = None) -> None:
        object.__setattr__(self, "when", when)
        object.__setattr__(self, "to", (to,) if isinstance(to, str) else tuple(to))
        object.__setattr__(self, "limit", limit)


DEFAULT_ROUTE = "default"
"""The name of a decision's default route, wherever a route is named: the diagram, the history."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A branch on the record, taken by the runtime itself: no agent runs it.

    Routes are tried in order; the first that holds (and whose limit is not
    spent) is taken, else `default`. With no default and no match the run fails.
    """

    name: str
    routes: tuple[Route, ...]
    default: tuple[str, ...] = ()
    description: str = ""

    def __init__(
        self,
        name: str,
        routes: Sequence[Route],
        default: str | Sequence[str] = (),
        description: str = "",
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "routes", tuple(routes))
        object.__setattr__(
            self, "default", (default,) if isinstance(default, str) else tuple(default)
        )
        object.__setattr__(self, "description", description)

    @property
    def reads(self) -> tuple[str, ...]:
        keys: set[str] = set()
        for route in self.routes:
            keys |= route.when.keys()
        return tuple(sorted(keys))

    def targets(self) -> tuple[str, ...]:
        """Every step a route or the default may lead to, in order, once each."""
        seen: dict[str, None] = {}
        for route in self.routes:
            seen.update(dict.fromkeys(route.to))
        seen.update(dict.fromkeys(self.default))
        return tuple(seen)

    def all_routes(self) -> tuple[Route, ...]:
        """The routes followed by the default as an unconditional route."""
        if not self.default:
            return self.routes
        return (*self.routes, Route(Always(), self.default))

    def route_label(self, index: int) -> str:
        """How route `index` of `all_routes()` is named: by its condition, or as the default."""
        if index == len(self.routes):
            return DEFAULT_ROUTE
        return self.routes[index].when.describe()


Node = Step | Decision
"""A node of the graph."""


@dataclass(frozen=True, slots=True)
class Workflow:
    """An explicit workflow: the map that exists before the agents do.

    `inputs` are the keys a run starts with. `edges` are (from, to) pairs
    between steps; a step with several outgoing edges fans out, and a step
    with several incoming edges joins: it runs once every incoming edge has
    either fired or been ruled out by a decision. A decision's outgoing edges
    are its routes. `start` defaults to the first node. `review` gives every
    step of a consequence class that has no checkpoint of its own this one.
    """

    name: str
    version: str
    roles: tuple[Role, ...]
    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...] = ()
    inputs: tuple[str, ...] = ()
    start: str = ""
    description: str = ""
    review: Mapping[Consequence, Checkpoint] = field(default_factory=dict)

    def __init__(
        self,
        name: str,
        *,
        version: str = "1",
        roles: Sequence[Role],
        steps: Sequence[Node],
        edges: Sequence[tuple[str, str]] = (),
        inputs: Sequence[str] = (),
        start: str | None = None,
        description: str = "",
        review: Mapping[Consequence, Checkpoint] | None = None,
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "roles", tuple(roles))
        object.__setattr__(self, "nodes", tuple(steps))
        object.__setattr__(self, "edges", tuple((a, b) for a, b in edges))
        object.__setattr__(self, "inputs", tuple(inputs))
        object.__setattr__(
            self, "start", start if start is not None else (steps[0].name if steps else "")
        )
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "review", dict(review or {}))


def chain(*names: str) -> list[tuple[str, str]]:
    """Edges linking the named nodes one after another."""
    return list(itertools.pairwise(names))
