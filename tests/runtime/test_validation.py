"""Static validation: a workflow is refused with every problem, each naming its step and key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from runtime.errors import Problem, WorkflowInvalid
from runtime.workflow._conditions import key
from runtime.workflow._definition import Decision, Node, Role, Route, Step, Workflow, chain
from runtime.workflow._graph import compile_workflow
from runtime.workflow._policies import Goto, Halt, PolicyTable, ProceedWithFlag, Retry

ROLES = (Role("writer", tools=["search"]), Role("reader"))


def workflow(
    *nodes: Node,
    edges: Sequence[tuple[str, str]] = (),
    inputs: Sequence[str] = (),
    roles: Sequence[Role] = ROLES,
    start: str | None = None,
) -> Workflow:
    return Workflow("wf", roles=roles, steps=nodes, edges=edges, inputs=inputs, start=start)


def refusal(definition: Workflow) -> tuple[Problem, ...]:
    """The problems `compile_workflow` refuses the definition with."""
    with pytest.raises(WorkflowInvalid) as caught:
        compile_workflow(definition)
    assert caught.value.workflow == definition.name
    return caught.value.problems


def s(name: str, *, role: str = "writer", **options: Any) -> Step:
    """A step of role `writer` unless told otherwise."""
    return Step(name, role=role, **options)


class TestReachability:
    """Every step must be reachable from the start."""

    def test_unreachable_step(self) -> None:
        """A step no edge, route or fallback leads to is refused."""
        problems = refusal(workflow(s("a"), s("b"), s("island"), edges=chain("a", "b")))
        assert problems == (
            Problem("unreachable", "step 'island' is unreachable from 'a'", "island"),
        )

    def test_fallback_counts_as_reaching(self) -> None:
        """A step reached only as a fallback is reachable."""
        graph = compile_workflow(
            workflow(s("a", writes=["x"], on_failure=Goto("b")), s("b", writes=["x"]))
        )
        assert graph.replaces == {"b": "a"}

    def test_start_must_be_a_step(self) -> None:
        """A start naming no node is refused."""
        problems = refusal(workflow(s("a"), start="nowhere"))
        assert problems == (Problem("dangling_start", "start 'nowhere' is not a step", "nowhere"),)

    def test_empty_workflow(self) -> None:
        """A workflow without nodes is refused."""
        assert refusal(workflow()) == (Problem("empty", "the workflow has no steps"),)


class TestDanglingEdges:
    """An edge, route or fallback must point at a node of the workflow."""

    @pytest.mark.parametrize(
        ("definition", "expected"),
        [
            (
                workflow(s("a"), edges=[("a", "ghost")]),
                Problem(
                    "dangling_edge", "edge a -> ghost points to 'ghost', which is not a step", "a"
                ),
            ),
            (
                workflow(s("a"), edges=[("ghost", "a")]),
                Problem(
                    "dangling_edge",
                    "edge ghost -> a starts at 'ghost', which is not a step",
                    "ghost",
                ),
            ),
            (
                workflow(
                    s("a"),
                    Decision("d", [Route(key("x") == 1, "ghost")], default="b"),
                    s("b"),
                    edges=[("a", "d")],
                    inputs=["x"],
                ),
                Problem(
                    "dangling_edge", "decision 'd' routes to 'ghost', which is not a step", "d"
                ),
            ),
            (
                workflow(s("a", on_failure=Goto("ghost"))),
                Problem(
                    "dangling_edge", "step 'a' falls back to 'ghost', which is not a step", "a"
                ),
            ),
        ],
        ids=["edge-target", "edge-source", "route", "goto"],
    )
    def test_dangling(self, definition: Workflow, expected: Problem) -> None:
        """The edge is refused, naming the step it leaves."""
        assert refusal(definition) == (expected,)


class TestStructure:
    """Names are unique, edges are simple, decisions leave by their routes."""

    @pytest.mark.parametrize(
        ("definition", "expected"),
        [
            (
                workflow(s("a"), s("a")),
                Problem("duplicate_step", "step name 'a' is used twice", "a"),
            ),
            (
                workflow(s("a"), roles=[*ROLES, Role("reader")]),
                Problem("duplicate_role", "role name 'reader' is used twice"),
            ),
            (
                workflow(s("a"), s("b"), edges=[("a", "b"), ("a", "b")]),
                Problem("duplicate_edge", "edge a -> b is given twice", "a"),
            ),
            (
                workflow(
                    s("a"), Decision("d", [], default="b"), s("b"), edges=[("a", "d"), ("d", "b")]
                ),
                Problem(
                    "edge_from_decision",
                    "edge d -> b leaves decision 'd': a decision leaves by its routes",
                    "d",
                ),
            ),
            (
                workflow(s("a"), Decision("d", []), edges=[("a", "d")]),
                Problem("empty_decision", "decision 'd' has no routes", "d"),
            ),
            (
                workflow(s("a", role="ghost")),
                Problem("unknown_role", "step 'a' names role 'ghost', not declared", "a"),
            ),
            (
                workflow(s("a", timeout=0.0)),
                Problem("bad_timeout", "step 'a': timeout must be positive seconds", "a"),
            ),
            (
                workflow(s("a", on_failure=Retry(attempts=0))),
                Problem("bad_retry", "step 'a': Retry needs at least 1 attempt", "a"),
            ),
        ],
        ids=[
            "duplicate-step",
            "duplicate-role",
            "duplicate-edge",
            "edge-from-decision",
            "empty-decision",
            "unknown-role",
            "bad-timeout",
            "bad-retry",
        ],
    )
    def test_refused(self, definition: Workflow, expected: Problem) -> None:
        """The definition is refused with this one problem."""
        assert refusal(definition) == (expected,)

    def test_every_problem_is_listed(self) -> None:
        """Several problems are reported together, and the error message lists each."""
        with pytest.raises(WorkflowInvalid) as caught:
            compile_workflow(
                workflow(
                    s("a", role="ghost"),
                    s("b", timeout=-1.0),
                    edges=[("a", "b"), ("a", "ghost")],
                )
            )
        assert [p.code for p in caught.value.problems] == [
            "dangling_edge",
            "unknown_role",
            "bad_timeout",
        ]
        assert str(caught.value) == (
            "workflow 'wf' is invalid:\n"
            "  - edge a -> ghost points to 'ghost', which is not a step\n"
            "  - step 'a' names role 'ghost', not declared\n"
            "  - step 'b': timeout must be positive seconds"
        )


class TestOnePass:
    """Every problem is named in one refusal: later checks run on what earlier ones found sound."""

    def test_structural_and_dataflow_problems_together(self) -> None:
        """A step with an undeclared role and a read nothing writes are refused together."""
        problems = refusal(
            workflow(s("a", role="ghost", writes=["x"]), s("b", reads=["y"]), edges=chain("a", "b"))
        )
        assert problems == (
            Problem("unknown_role", "step 'a' names role 'ghost', not declared", "a"),
            Problem(
                "read_before_write",
                "step 'b' reads key 'y', which is not written on every path reaching it",
                "b",
                "y",
            ),
        )

    def test_dataflow_is_checked_past_a_dangling_route(self) -> None:
        """A route to no step is left out, and the reads along the other routes are checked."""
        problems = refusal(
            workflow(
                s("a", writes=["n"]),
                Decision("d", [Route(key("n") > 1, "ghost")], default="b"),
                s("b", reads=["missing"]),
                edges=[("a", "d")],
            )
        )
        assert problems == (
            Problem("dangling_edge", "decision 'd' routes to 'ghost', which is not a step", "d"),
            Problem(
                "read_before_write",
                "step 'b' reads key 'missing', which is not written on every path reaching it "
                "(when d -> b)",
                "b",
                "missing",
            ),
        )

    def test_dataflow_is_checked_past_an_unbounded_cycle(self) -> None:
        """A cycle without a bound is named, and a read after it is checked as if it had one."""
        problems = refusal(
            workflow(
                s("a", writes=["n"]),
                s("b"),
                s("c", reads=["m"]),
                edges=[("a", "b"), ("b", "a"), ("b", "c")],
            )
        )
        assert problems == (
            Problem(
                "unbounded_cycle",
                "cycle a -> b -> a has no bound: close it with a decision route that has a limit",
                "b",
            ),
            Problem(
                "read_before_write",
                "step 'c' reads key 'm', which is not written on every path reaching it",
                "c",
                "m",
            ),
        )

    def test_every_unbounded_cycle_is_named(self) -> None:
        """Two cycles without a bound are both refused, each at the edge that closes it."""
        problems = refusal(
            workflow(
                s("a"),
                s("b"),
                s("c"),
                s("d"),
                edges=[("a", "b"), ("b", "a"), ("b", "c"), ("c", "d"), ("d", "c")],
            )
        )
        assert problems == tuple(
            Problem(
                "unbounded_cycle",
                f"cycle {cycle} has no bound: close it with a decision route that has a limit",
                closer,
            )
            for cycle, closer in [("a -> b -> a", "b"), ("c -> d -> c", "d")]
        )

    def test_loops_are_checked_without_a_start(self) -> None:
        """A start naming no step does not hide a cycle without a bound."""
        problems = refusal(
            workflow(s("a"), s("b"), edges=[("a", "b"), ("b", "a")], start="nowhere")
        )
        assert [p.code for p in problems] == ["dangling_start", "unbounded_cycle"]


class TestReadsBeforeWrites:
    """A key a node reads must be written on every path that reaches it."""

    def test_branch_that_skips_the_writer(self) -> None:
        """A read after a join is refused when one decision branch skips the writer."""
        problems = refusal(
            workflow(
                s("assess", writes=["n"]),
                Decision("big?", [Route(key("n") > 1, "enrich")], default="plain"),
                s("enrich", writes=["extra"]),
                s("plain"),
                s("use", reads=["extra"]),
                edges=[("assess", "big?"), ("enrich", "use"), ("plain", "use")],
            )
        )
        assert problems == (
            Problem(
                "read_before_write",
                "step 'use' reads key 'extra', which is not written on every path reaching it "
                "(when big? -> plain)",
                "use",
                "extra",
            ),
        )

    def test_fan_out_join_with_both_branches_written(self) -> None:
        """A join reading one key from each parallel branch is accepted."""
        graph = compile_workflow(
            workflow(
                s("split"),
                s("left", writes=["l"]),
                s("right", writes=["r"]),
                s("join", reads=["l", "r"]),
                edges=[("split", "left"), ("split", "right"), ("left", "join"), ("right", "join")],
            )
        )
        assert graph.joins["join"] == frozenset({"left", "right"})

    @pytest.mark.parametrize(
        ("definition", "expected"),
        [
            (
                workflow(
                    s("draft", reads=["review"], writes=["text"]),
                    s("check", reads=["text"], writes=["review"]),
                    Decision(
                        "again?", [Route(key("review") == "bad", "draft", limit=2)], default="ship"
                    ),
                    s("ship"),
                    edges=[("draft", "check"), ("check", "again?")],
                ),
                Problem(
                    "read_before_write",
                    "step 'draft' reads key 'review', which is not written on every path "
                    "reaching it",
                    "draft",
                    "review",
                ),
            ),
            (
                workflow(
                    s("a"),
                    Decision("d", [Route(key("n") > 1, "b")], default="b"),
                    s("b"),
                    edges=[("a", "d")],
                ),
                Problem(
                    "read_before_write",
                    "step 'd' reads key 'n', which is not written on every path reaching it",
                    "d",
                    "n",
                ),
            ),
            (
                workflow(
                    s("a", writes=["x"], on_failure=Goto("backup")),
                    s("backup", reads=["x"], writes=["x"]),
                ),
                Problem(
                    "read_before_write",
                    "step 'backup' reads key 'x', which is not written on every path reaching it",
                    "backup",
                    "x",
                ),
            ),
        ],
        ids=["loop-body-reads-later-key", "decision-reads", "fallback-reads-failed-output"],
    )
    def test_refused(self, definition: Workflow, expected: Problem) -> None:
        """The read is refused, naming the reader and the key."""
        assert refusal(definition) == (expected,)

    def test_inputs_count_as_written(self) -> None:
        """A key the run starts with may be read anywhere."""
        graph = compile_workflow(workflow(s("a", reads=["given"]), inputs=["given"]))
        assert graph.start == "a"

    def test_fallback_of_a_fallback_reads_are_checked(self) -> None:
        """The fallback of a fallback may not read a key nothing writes."""
        problems = refusal(
            workflow(
                s("a", writes=["x"], on_failure=Goto("f1")),
                s("f1", writes=["x"], on_failure=Goto("f2")),
                s("f2", writes=["x"], reads=["never"]),
            )
        )
        assert problems == (
            Problem(
                "read_before_write",
                "step 'f2' reads key 'never', which is not written on every path reaching it",
                "f2",
                "never",
            ),
        )


class TestTools:
    """A step may only name tools its role is allowed."""

    @pytest.mark.parametrize(
        ("tools", "refused"),
        [(["mail"], ["mail"]), (["search", "mail", "shell"], ["mail", "shell"])],
    )
    def test_tool_outside_role_allowlist(self, tools: list[str], refused: list[str]) -> None:
        """Each tool outside the role's allowlist is refused on its own."""
        problems = refusal(workflow(s("a", tools=tools)))
        assert problems == tuple(
            Problem(
                "tool_not_allowed",
                f"step 'a' uses tool {tool!r}, which role 'writer' may not use",
                "a",
            )
            for tool in refused
        )

    def test_tool_in_allowlist(self) -> None:
        """A tool the role may use is accepted."""
        assert compile_workflow(workflow(s("a", tools=["search"]))).step("a").tools == ("search",)


class TestLoopBounds:
    """Every cycle closes through a decision route with a limit."""

    @pytest.mark.parametrize(
        ("definition", "expected"),
        [
            (
                workflow(s("a"), s("b"), s("c"), edges=[("a", "b"), ("b", "c"), ("c", "a")]),
                Problem(
                    "unbounded_cycle",
                    "cycle a -> b -> c -> a has no bound: "
                    "close it with a decision route that has a limit",
                    "c",
                ),
            ),
            (
                workflow(s("a"), edges=[("a", "a")]),
                Problem(
                    "unbounded_cycle",
                    "cycle a -> a has no bound: close it with a decision route that has a limit",
                    "a",
                ),
            ),
            (
                workflow(
                    s("a", writes=["ok"]),
                    Decision("d", [Route(key("ok") == 0, "a")], default="e"),
                    s("e"),
                    edges=[("a", "d")],
                ),
                Problem(
                    "unbounded_cycle",
                    "cycle a -> d -> a has no bound: give the route d -> a a limit",
                    "d",
                ),
            ),
            (
                workflow(
                    s("a", writes=["ok"]),
                    Decision("d", [Route(key("ok") == 0, ["a", "e"], limit=2)], default="e"),
                    s("e"),
                    edges=[("a", "d")],
                ),
                Problem(
                    "mixed_route",
                    "decision 'd': the route back to 'a' must lead nowhere else",
                    "d",
                ),
            ),
            (
                workflow(
                    s("a", writes=["ok"]),
                    Decision("d", [Route(key("ok") == 0, "a", limit=0)], default="e"),
                    s("e"),
                    edges=[("a", "d")],
                ),
                Problem("bad_limit", "decision 'd': a route limit must be at least 1", "d"),
            ),
        ],
        ids=["edge-cycle", "self-edge", "route-without-limit", "mixed-route", "zero-limit"],
    )
    def test_refused(self, definition: Workflow, expected: Problem) -> None:
        """The cycle is refused at the node that closes it."""
        assert refusal(definition) == (expected,)

    @pytest.mark.parametrize(
        "entries",
        [
            pytest.param([("s", "a"), ("s", "b")], id="a-first"),
            pytest.param([("s", "b"), ("s", "a")], id="b-first"),
        ],
    )
    def test_bound_does_not_depend_on_edge_order(self, entries: list[tuple[str, str]]) -> None:
        """A loop closed by a limited route is accepted whatever order its edges are listed in."""
        graph = compile_workflow(
            workflow(
                s("s"),
                s("a"),
                s("b", writes=["ok"]),
                Decision("d", [Route(key("ok") == 0, "a", limit=2)], default="e"),
                s("e"),
                edges=[*entries, ("a", "b"), ("b", "d")],
            )
        )
        assert graph.back_routes == frozenset({("d", "a")})


class TestFailurePolicies:
    """Policies are checked against the step: defaults cover its writes, fallbacks stand in."""

    @pytest.mark.parametrize(
        "policy",
        [
            ProceedWithFlag({"x": 1}),
            Retry(attempts=2, then=ProceedWithFlag({"x": 1})),
            {"timeout": ProceedWithFlag({"x": 1}), "*": Halt()},
        ],
        ids=["direct", "after-retry", "per-kind"],
    )
    def test_missing_default(self, policy: ProceedWithFlag | Retry | PolicyTable) -> None:
        """ProceedWithFlag must give a default for every key the step writes."""
        problems = refusal(workflow(s("a", writes=["x", "y"], on_failure=policy)))
        assert problems == (
            Problem(
                "missing_default",
                "step 'a' proceeds with a flag but gives no default for key 'y'",
                "a",
                "y",
            ),
        )

    @pytest.mark.parametrize(
        ("definition", "expected"),
        [
            (
                workflow(
                    s("a", writes=["x", "y"], on_failure={"timeout": Goto("fb")}),
                    s("fb", writes=["x"]),
                ),
                Problem(
                    "missing_output",
                    "fallback 'fb' does not write key 'y', which step 'a' writes",
                    "fb",
                    "y",
                ),
            ),
            (
                workflow(s("a", on_failure=Goto("d")), Decision("d", [], default="a")),
                Problem("bad_fallback", "step 'a' falls back to decision 'd'", "a"),
            ),
            (
                workflow(
                    s("a", on_failure={"timeout": Goto("f1"), "error": Goto("f2")}),
                    s("f1"),
                    s("f2"),
                ),
                Problem("bad_fallback", "step 'a' names two different fallbacks", "a"),
            ),
            (
                workflow(
                    s("a", on_failure=Goto("f")),
                    s("b", on_failure=Goto("f")),
                    s("f"),
                    edges=[("a", "b")],
                ),
                Problem(
                    "bad_fallback",
                    "steps 'a' and 'b' share fallback 'f': a fallback stands in for one step",
                    "f",
                ),
            ),
            (
                workflow(s("a", on_failure=Goto("b")), s("b"), edges=[("a", "b")]),
                Problem(
                    "bad_fallback",
                    "fallback 'b' of step 'a' has edges of its own: "
                    "a fallback runs only in place of its step",
                    "b",
                ),
            ),
            (
                workflow(s("a", on_failure=Goto("b")), s("b", on_failure=Goto("a"))),
                Problem("fallback_cycle", "fallbacks form a cycle: a -> b -> a", "a"),
            ),
        ],
        ids=[
            "fallback-misses-key",
            "fallback-is-decision",
            "two-fallbacks",
            "shared-fallback",
            "fallback-with-edges",
            "fallback-cycle",
        ],
    )
    def test_bad_fallback(self, definition: Workflow, expected: Problem) -> None:
        """The fallback is refused with a message naming it."""
        assert refusal(definition) == (expected,)


VALID = workflow(
    s("intake", reads=["amount"], writes={"score": int}, on_failure=Goto("guess")),
    s("guess", writes={"score": int}, role="reader"),
    Decision("big?", [Route(key("amount") > 100, ["left", "right"])], default="small"),
    s("left", writes=["l"], tools=["search"]),
    s("right", writes=["r"], on_failure=ProceedWithFlag({"r": None})),
    s("small", writes=["l", "r"]),
    s("merge", reads=["l", "r"], writes={"ok": bool}),
    Decision("again?", [Route(key("ok") == False, "intake", limit=3)], default="done"),  # noqa: E712
    s("done", reads=["score", "ok"]),
    edges=[
        ("intake", "big?"),
        ("left", "merge"),
        ("right", "merge"),
        ("small", "merge"),
        ("merge", "again?"),
    ],
    inputs=["amount"],
)


def valid(timeout: float = 60.0, policy: Retry | Halt | None = None) -> Workflow:
    """The valid workflow with one step's timeout and policy set."""
    nodes = [
        Step("done", role="writer", reads=["score", "ok"], timeout=timeout, on_failure=policy)
        if node.name == "done"
        else node
        for node in VALID.nodes
    ]
    return workflow(*nodes, edges=VALID.edges, inputs=VALID.inputs)


class TestValidWorkflow:
    """A workflow with a branch, a fan-out and join, a fallback and a bounded loop compiles."""

    def test_compiles(self) -> None:
        """Joins, loop routes and fallbacks are precomputed for the engine."""
        graph = compile_workflow(VALID)
        assert graph.start == "intake"
        assert graph.back_routes == frozenset({("again?", "intake")})
        assert graph.joins["merge"] == frozenset({"left", "right", "small"})
        assert graph.joins["intake"] == frozenset()
        assert graph.in_loop["merge"] == frozenset({"left", "right", "small"})
        assert graph.replaces == {"guess": "intake"}
        assert graph.successors["intake"] == ("big?",)
        assert graph.policies["right"]["timeout"] == ProceedWithFlag({"r": None})
        assert graph.policies["left"]["error"] == Retry(attempts=3, then=Halt())

    def test_fingerprint_is_stable(self) -> None:
        """Two identical definitions have the same fingerprint."""
        assert compile_workflow(valid()).fingerprint == compile_workflow(valid()).fingerprint

    @pytest.mark.parametrize(
        "changed",
        [valid(timeout=30.0), valid(policy=Halt()), valid(policy=Retry(attempts=5))],
        ids=["timeout", "policy", "retry-attempts"],
    )
    def test_fingerprint_changes_with_behaviour(self, changed: Workflow) -> None:
        """Changing a timeout or a policy changes the fingerprint."""
        assert compile_workflow(changed).fingerprint != compile_workflow(valid()).fingerprint
