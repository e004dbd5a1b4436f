"""One invalid workflow per refusal that `baton validate` must explain."""

from __future__ import annotations

from runtime import Decision, Role, Route, Step, Workflow, key

ROLES = [Role("worker", tools=["lookup"])]

unreachable = Workflow(
    "unreachable",
    roles=ROLES,
    steps=[Step("a", role="worker", writes=["x"]), Step("island", role="worker")],
)

dangling_edge = Workflow(
    "dangling_edge",
    roles=ROLES,
    steps=[Step("a", role="worker", writes=["x"])],
    edges=[("a", "nowhere")],
)

duplicate_name = Workflow(
    "duplicate_name",
    roles=ROLES,
    steps=[Step("a", role="worker"), Step("a", role="worker")],
)

read_not_written = Workflow(
    "read_not_written",
    roles=ROLES,
    inputs=["kind"],
    steps=[
        Decision("route", routes=[Route(key("kind") == "big", to="measure")], default="report"),
        Step("measure", role="worker", writes=["size"]),
        Step("report", role="worker", reads=["size"], writes=["summary"]),
    ],
    edges=[("measure", "report")],
)

tool_not_allowed = Workflow(
    "tool_not_allowed",
    roles=ROLES,
    steps=[Step("a", role="worker", tools=["lookup", "delete_everything"])],
)

unbounded_cycle = Workflow(
    "unbounded_cycle",
    roles=ROLES,
    steps=[Step("a", role="worker"), Step("b", role="worker")],
    edges=[("a", "b"), ("b", "a")],
)

structure_and_dataflow = Workflow(
    "structure_and_dataflow",
    roles=ROLES,
    inputs=["n"],
    steps=[
        Step("a", role="writer", reads=["n"], writes=["x"]),
        Step("b", role="worker", reads=["size"], writes=["y"]),
    ],
    edges=[("a", "b")],
)

valid = Workflow(
    "valid",
    roles=ROLES,
    inputs=["n"],
    steps=[
        Step("a", role="worker", reads=["n"], writes=["x"], tools=["lookup"]),
        Step("b", role="worker", reads=["x"], writes=["y"]),
    ],
    edges=[("a", "b")],
)

versioned = Workflow(
    "versioned",
    roles=ROLES,
    version="a2.1",
    steps=[Step("a", role="worker", writes=["x"])],
)
"""Valid, with a version that is not a bare number."""
