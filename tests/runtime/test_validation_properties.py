"""Whatever a workflow gets wrong, `compile_workflow` answers with the problems, never a crash.

Every check runs on what the checks before it found sound, so a broken part must
never reach a check that cannot take it.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.errors import Problem, WorkflowInvalid
from runtime.workflow._conditions import key
from runtime.workflow._definition import Decision, Node, Role, Route, Step, Workflow
from runtime.workflow._graph import compile_workflow
from runtime.workflow._policies import FailurePolicy, Goto, Halt, Retry

NAMES = ["a", "b", "c", "d", "e", "ghost"]
"""Node names; `ghost` is never defined, so anything pointing at it dangles."""
KEYS = ["k", "m", "n"]


@st.composite
def steps(draw: st.DrawFn, name: str) -> Step:
    policy: FailurePolicy | None = draw(
        st.one_of(
            st.none(),
            st.just(Halt()),
            st.builds(Goto, st.sampled_from(NAMES)),
            st.builds(lambda t: Retry(attempts=2, then=Goto(t)), st.sampled_from(NAMES)),
        )
    )
    return Step(
        name,
        role=draw(st.sampled_from(["worker", "ghost"])),
        reads=draw(st.lists(st.sampled_from(KEYS), max_size=2, unique=True)),
        writes=draw(st.lists(st.sampled_from(KEYS), max_size=2, unique=True)),
        on_failure=policy,
    )


@st.composite
def decisions(draw: st.DrawFn, name: str) -> Decision:
    routes = [
        Route(
            key(draw(st.sampled_from(KEYS))) == 1,
            draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2, unique=True)),
            limit=draw(st.one_of(st.none(), st.integers(0, 2))),
        )
        for _ in range(draw(st.integers(0, 2)))
    ]
    default = draw(st.lists(st.sampled_from(NAMES), max_size=1))
    return Decision(name, routes, default=default)


@st.composite
def workflows(draw: st.DrawFn) -> Workflow:
    names = draw(st.lists(st.sampled_from(NAMES[:-1]), min_size=1, max_size=5))
    nodes: list[Node] = [
        draw(decisions(name)) if draw(st.booleans()) else draw(steps(name)) for name in names
    ]
    edges = draw(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)), max_size=6))
    return Workflow(
        "wf",
        roles=[Role("worker")],
        steps=nodes,
        edges=edges,
        inputs=draw(st.lists(st.sampled_from(KEYS), max_size=1)),
        start=draw(st.sampled_from([names[0], "ghost"])),
    )


class TestBrokenWorkflows:
    """Refusals are the only way compiling a workflow fails."""

    @settings(max_examples=200, deadline=None)
    @given(workflows())
    def test_refused_or_compiled(self, workflow: Workflow) -> None:
        """A workflow compiles, or is refused with at least one problem naming what is wrong."""
        problems: tuple[Problem, ...] = ()
        try:
            graph = compile_workflow(workflow)
        except WorkflowInvalid as refused:
            problems = refused.problems
        else:
            assert graph.start == workflow.start
            return
        assert problems
        assert all(p.message for p in problems)
