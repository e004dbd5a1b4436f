"""What an actor that registers again still runs, and back-pressure from a full actor: the
agent plane driven through its frames, without sockets."""

from __future__ import annotations

from typing import Any

from protocols import (
    Assign,
    Cancel,
    Error,
    Heartbeat,
    StepResult,
    TaskRef,
    ToolCall,
    ToolReply,
)
from runtime.workflow._definition import Role, Step, Workflow
from runtime.workflow._graph import compile_workflow
from tests.runtime.fuzz.world import AGENT, TINY, Peers

TWO_ROLES = compile_workflow(
    Workflow(
        "two_roles",
        roles=[Role("worker"), Role("checker")],
        steps=[Step("a", role="worker", writes=["x"]), Step("b", role="checker", reads=["x"])],
        edges=[("a", "b")],
    )
)


def decoded(frames: list[bytes]) -> list[object]:
    return [AGENT.decode(frame) for frame in frames]


def sent_to(peers: Peers, identity: bytes, kind: type[Any]) -> list[Any]:
    """Every message of `kind` queued for `identity` so far."""
    found = [AGENT.decode(frame) for peer, frame in peers.world.agent_out if peer == identity]
    return [message for message in found if isinstance(message, kind)]


def calling_agent(peers: Peers) -> tuple[str, Assign]:
    """A run whose first step is held by agent `agent`, which may call `search`."""
    peers.register(b"agent", "a", tools=["search"], capacity=4)
    run_id = peers.start()
    (task,) = peers.assigned(b"agent")
    return run_id, task


def call(task: Assign, call_id: int, key: str = "0") -> ToolCall:
    return ToolCall(
        call_id=call_id, run_id=task.run_id, step=task.step, attempt=task.attempt,
        tool="search", args={"q": "tides"}, idempotency_key=key,
    )  # fmt: skip


class TestAgentRegisteringAgain:
    def test_a_queued_attempt_the_agent_still_runs_stays_with_it(self) -> None:
        """The attempt is taken up without a second `Assign`, and its result is accepted."""
        peers = Peers(TINY)
        run_id = peers.start()
        ref = TaskRef(run_id=run_id, step="a", attempt=1)
        replies = decoded(peers.register(b"agent", "a", tasks=[ref]))
        assert not [m for m in replies if isinstance(m, Assign | Cancel)]
        state = peers.world.runs[run_id].steps["a"]
        assert (state.status, state.attempts[-1].agent) == ("running", "a")
        result = StepResult(run_id=run_id, step="a", attempt=1, outputs={"x": 1})
        peers.agent(b"agent", result)
        assert peers.world.runs[run_id].steps["a"].status == "completed"

    def test_an_attempt_of_another_role_is_not_taken_up(self) -> None:
        """An agent cannot claim a step of a role it does not hold by saying it runs it."""
        peers = Peers(TWO_ROLES)
        run_id = peers.start()
        ref = TaskRef(run_id=run_id, step="a", attempt=1)
        replies = decoded(peers.register(b"agent", "c", role="checker", tasks=[ref]))
        assert [(m.run_id, m.step) for m in replies if isinstance(m, Cancel)] == [(run_id, "a")]
        assert peers.world.runs[run_id].steps["a"].status == "queued"

    def test_an_attempt_no_longer_wanted_is_cancelled_and_takes_room_until_reported(
        self,
    ) -> None:
        """A task of a run the runtime does not know is cancelled; the agent (capacity 1)
        gets no work until its heartbeat says the task stopped."""
        peers = Peers(TINY)
        ghost = TaskRef(run_id="gone", step="a", attempt=3)
        replies = decoded(peers.register(b"agent", "a", tasks=[ghost], capacity=1))
        (cancel,) = [m for m in replies if isinstance(m, Cancel)]
        assert (cancel.run_id, cancel.step, cancel.attempt) == ("gone", "a", 3)
        run_id = peers.start()
        assert peers.assigned(b"agent") == []
        peers.agent(b"agent", Heartbeat(in_flight=0))
        assert [t.run_id for t in peers.assigned(b"agent")] == [run_id]


class TestBackPressure:
    def test_an_agent_without_room_defers_the_attempt_to_another_agent(self) -> None:
        """`overloaded` puts the attempt back in the queue under the same attempt number, and
        the next agent of the role takes it: no failure, no attempt spent."""
        peers = Peers(TINY)
        peers.register(b"full", "full", capacity=2)
        run_id = peers.start()
        (task,) = peers.assigned(b"full")
        peers.register(b"free", "free")
        ref = f"{run_id}/{task.step}/{task.attempt}"
        peers.agent(b"full", Error(code="overloaded", message="capacity 2", ref=ref))
        (moved,) = peers.assigned(b"free")
        assert (moved.step, moved.attempt) == (task.step, task.attempt)
        state = peers.world.runs[run_id].steps["a"]
        assert [a.outcome for a in state.attempts] == ["running"]
        assert "step_requeued" in [h.event for h in peers.world.runs[run_id].history]

    def test_a_host_without_room_gets_the_call_again_when_it_has_room(self) -> None:
        """An `overloaded` reply is not the agent's answer: the call waits, and goes to the
        host again once the host reports room."""
        peers = Peers(TINY)
        peers.register(b"host", "host", kind="tool_host", tools=["search"], capacity=1)
        _, task = calling_agent(peers)
        peers.agent(b"agent", call(task, 7))
        (forwarded,) = sent_to(peers, b"host", ToolCall)
        sent = len(peers.world.agent_out)
        peers.agent(b"host", ToolReply(call_id=forwarded.call_id, ok=False, error="overloaded"))
        assert [p for p, _ in peers.world.agent_out[sent:]] == []
        peers.agent(b"host", Heartbeat(in_flight=0))
        again = sent_to(peers, b"host", ToolCall)
        assert [m.idempotency_key for m in again] == [forwarded.idempotency_key] * 2
        peers.agent(b"host", ToolReply(call_id=again[-1].call_id, ok=True, result="high"))
        (answer,) = sent_to(peers, b"agent", ToolReply)
        assert (answer.call_id, answer.ok, answer.result) == (7, True, "high")


class TestHostRegisteringAgain:
    def test_a_repeat_of_a_call_the_host_still_runs_goes_to_it_though_it_is_full(self) -> None:
        """The host said it runs the key: the agent's repeat goes to it, needing no room."""
        peers = Peers(TINY)
        run_id, task = calling_agent(peers)
        key = f"{run_id}:a:1:0"
        peers.register(b"host", "host", kind="tool_host", tools=["search"], capacity=1, calls=[key])
        peers.agent(b"agent", call(task, 7))
        (repeat,) = sent_to(peers, b"host", ToolCall)
        assert repeat.idempotency_key == key
        peers.agent(b"host", ToolReply(call_id=repeat.call_id, ok=True, result="high"))
        (answer,) = sent_to(peers, b"agent", ToolReply)
        assert (answer.call_id, answer.result) == (7, "high")

    def test_a_host_gets_no_call_of_a_tool_it_does_not_serve_by_naming_its_key(self) -> None:
        """The keys a host declares are its word alone: a call of another tool under one of
        them goes to a host serving that tool."""
        peers = Peers(TINY)
        run_id, task = calling_agent(peers)
        key = f"{run_id}:a:1:0"
        peers.register(b"liar", "liar", kind="tool_host", tools=["fetch"], calls=[key])
        peers.register(b"host", "host", kind="tool_host", tools=["search"])
        peers.agent(b"agent", call(task, 7))
        assert sent_to(peers, b"liar", ToolCall) == []
        assert [m.idempotency_key for m in sent_to(peers, b"host", ToolCall)] == [key]
