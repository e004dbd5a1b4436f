"""One actor serving several supervisors: a connection each, peers learned from them, and
the tool calls running shared between the connections."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import structlog

from actors import RegistrationRefused, ToolHost, tool
from actors._cluster import ClusterWorker
from actors._ledger import Ledger
from protocols import (
    Assign,
    Bye,
    Error,
    Heartbeat,
    Peers,
    Register,
    StepResult,
    ToolCall,
    ToolReply,
)
from tests.actors.conftest import WAIT, fake_runtimes, serving
from tests.actors.sample import CallingAgent, EchoAgent

pytestmark = pytest.mark.anyio

KEY = "r1:s1:1:0"
"""The idempotency key the runtime makes of a step's first call."""


class Till(ToolHost):
    """Charges once per call it really runs, holding each until released."""

    name = "till"

    def __init__(self) -> None:
        self.charges: list[int] = []
        self.started = anyio.Event()
        self.release = anyio.Event()

    @tool
    async def charge(self, amount: int) -> str:
        """Take money, once the test lets it go through."""
        self.charges.append(amount)
        self.started.set()
        await self.release.wait()
        return f"receipt for {amount}"

    @tool(read_only=True)
    async def balance(self) -> int:
        """Answers at once: a probe that the frames before it were handled."""
        return 100


def charge(call_id: int, amount: int = 5, key: str = KEY) -> ToolCall:
    return ToolCall(
        call_id=call_id, run_id="r1", step="s1", attempt=1, tool="charge",
        args={"amount": amount}, idempotency_key=key,
    )  # fmt: skip


def probe(call_id: int) -> ToolCall:
    return ToolCall(call_id=call_id, run_id="r1", step="s1", attempt=1, tool="balance")


def assign(step: str = "s1", inputs: Any = None) -> Assign:
    return Assign(run_id="r1", step=step, attempt=1, inputs=inputs or {"step": step})


class TestServingSeveral:
    async def test_each_supervisor_gets_a_registration_with_the_whole_capacity(self) -> None:
        """Capacity is per supervisor: each registers the actor's concurrency."""
        async with fake_runtimes(2) as (a, b), serving(EchoAgent(), a, b, concurrency=3) as actor:
            _, to_a = await a.accept()
            _, to_b = await b.accept()
            assert (to_a.capacity, to_b.capacity) == (3, 3)
            assert to_a == to_b
            assert actor.endpoints == (a.endpoint, b.endpoint)
            assert actor.statistics().supervisors == 2

    async def test_a_steps_calls_and_result_go_to_the_supervisor_that_sent_it(self) -> None:
        """A task's tool calls and result leave on the connection its `Assign` came in on."""
        async with (
            fake_runtimes(2) as (a, b),
            serving(CallingAgent(), a, b, concurrency=2) as actor,
        ):
            at_a, _ = await a.accept()
            at_b, _ = await b.accept()
            for runtime, identity, n in ((a, at_a, 1), (b, at_b, 2)):
                calls = {"calls": [{"tool": "add", "args": {"a": n}}]}
                await runtime.send(identity, assign(inputs=calls))
                sender, call = await runtime.expect(ToolCall)
                assert (sender, call.args) == (identity, {"a": n})
                await runtime.send(identity, ToolReply(call_id=call.call_id, ok=True, result=n))
            sent_a, result_a = await a.expect(StepResult)
            sent_b, result_b = await b.expect(StepResult)
            assert (sent_a, result_a.outputs["results"]) == (at_a, [1])
            assert (sent_b, result_b.outputs["results"]) == (at_b, [2])
            assert actor.statistics().tasks_succeeded == 2

    async def test_a_silent_supervisor_is_reconnected_to_while_the_other_serves_on(self) -> None:
        """Losing one supervisor costs the others nothing: their sessions go on."""
        async with fake_runtimes(2) as (a, b), serving(EchoAgent(), a, b) as actor:
            old, _ = await a.accept(heartbeat_ms=20)
            at_b, _ = await b.accept()
            new, _ = await a.expect(Register)
            assert new != old
            await b.send(at_b, assign())
            sender, _ = await b.expect(StepResult)
            assert sender == at_b
            assert actor.statistics().reconnects == 1

    async def test_a_refusal_by_one_supervisor_stops_the_actor_saying_bye_to_the_rest(
        self,
    ) -> None:
        """A registration refused for good by one supervisor ends the actor, as with one."""
        async with fake_runtimes(2) as (a, b):
            actor = ClusterWorker(EchoAgent(), endpoints=[a.endpoint, b.endpoint])

            async def welcome_then_refuse() -> None:
                at_a, _ = await a.accept(heartbeat_ms=20)
                await a.expect(Heartbeat)  # welcomed: A's session is live
                at_b, _ = await b.expect(Register)
                await b.send(at_b, Error(code="role_refused", message="not here"))
                sender, _ = await a.expect(Bye)
                assert sender == at_a

            async with anyio.create_task_group() as tg:
                tg.start_soon(welcome_then_refuse)
                with anyio.fail_after(WAIT), pytest.raises(RegistrationRefused) as refused:
                    await actor.run()
        assert (refused.value.code, refused.value.message) == ("role_refused", "not here")


class TestPeers:
    async def test_a_welcome_naming_peers_makes_the_actor_serve_them(self) -> None:
        """Given one supervisor, the actor registers with the peers its welcome names."""
        async with fake_runtimes(2) as (a, b), serving(EchoAgent(), a) as actor:
            with structlog.testing.capture_logs() as logs:
                await a.accept(peers=[b.endpoint, a.endpoint])
                at_b, _ = await b.accept(peers=[a.endpoint])
            await b.send(at_b, assign())
            sender, _ = await b.expect(StepResult)
            assert sender == at_b
            assert actor.endpoints == (a.endpoint, b.endpoint)
        learned = [
            (e["endpoint"], e["named_by"]) for e in logs if e["event"] == "actor.peer_learned"
        ]
        assert learned == [(b.endpoint, a.endpoint)]

    async def test_peers_announced_later_are_served_too(self) -> None:
        """A `Peers` naming a supervisor not served yet adds a connection to it."""
        async with fake_runtimes(3) as (a, b, c), serving(EchoAgent(), a, b) as actor:
            at_a, _ = await a.accept()
            await b.accept()
            await a.send(at_a, Peers(endpoints=[b.endpoint, c.endpoint]))
            at_c, register = await c.accept()
            assert register.role == "echo"
            await c.send(at_c, assign())
            sender, _ = await c.expect(StepResult)
            assert sender == at_c
            assert actor.endpoints == (a.endpoint, b.endpoint, c.endpoint)
            assert actor.statistics().supervisors == 3

    async def test_without_keys_a_peer_off_this_machine_is_ignored_once(self) -> None:
        """Plain text stays on loopback: a remote peer is logged once and never connected to."""
        remote = "tcp://10.1.2.3:7710"
        with structlog.testing.capture_logs() as logs:
            async with fake_runtimes(1) as (a,), serving(EchoAgent(), a) as actor:
                at_a, _ = await a.accept(peers=[remote])
                await a.send(at_a, Peers(endpoints=[remote]))
                await a.send(at_a, assign())
                await a.expect(StepResult)
                assert actor.endpoints == (a.endpoint,)
        ignored = [e for e in logs if e["event"] == "actor.peer_ignored"]
        assert [(e["endpoint"], e["reason"]) for e in ignored] == [
            (remote, "without keys an actor connects only to loopback or ipc:// endpoints")
        ]

    async def test_a_peer_zeromq_cannot_use_is_passed_over(self) -> None:
        """An endpoint ZeroMQ refuses is logged and dropped; the actor serves on."""
        unusable = "tcp://127.0.0.1"
        with structlog.testing.capture_logs() as logs:
            async with fake_runtimes(1) as (a,), serving(EchoAgent(), a) as actor:
                at_a, _ = await a.accept(peers=[unusable])
                for again in (Peers(endpoints=[unusable]), None):
                    await a.send(at_a, assign())
                    await a.expect(StepResult)  # the welcome, or the peers, were handled
                    await anyio.wait_all_tasks_blocked()
                    if again is not None:
                        await a.send(at_a, again)
                assert actor.endpoints == (a.endpoint,)
                assert actor.statistics().supervisors == 1
        refused = [e["endpoint"] for e in logs if e["event"] == "actor.endpoint_refused"]
        assert refused == [unusable]


class TestCallsRunningAcrossSupervisors:
    async def test_a_call_asked_again_on_another_connection_waits_for_the_running_one(
        self,
    ) -> None:
        """The run's owner died mid-call and another supervisor asks the call again: the repeat
        gets the running call's reply on its own connection, and the effect happens once."""
        host = Till()
        ledger = Ledger(None)
        async with fake_runtimes(2) as (a, b), serving(host, a, b, ledger=ledger):
            at_a, _ = await a.accept()
            at_b, _ = await b.accept()
            await a.send(at_a, charge(call_id=1))
            with anyio.fail_after(WAIT):
                await host.started.wait()
            a.socket.close(linger=0)  # the owner of the run dies while the call runs
            with structlog.testing.capture_logs() as logs:
                await b.send(at_b, charge(call_id=70))
                await b.send(at_b, probe(call_id=71))
                _, answered = await b.expect(ToolReply)
                assert answered.call_id == 71
                host.release.set()
                sender, reply = await b.expect(ToolReply)
        assert sender == at_b
        assert reply == ToolReply(call_id=70, ok=True, result="receipt for 5")
        assert host.charges == [5]
        assert ledger.keys() == {KEY: True}
        attached = [e for e in logs if e["event"] == "tool.repeat_attached"]
        assert [e["idempotency_key"] for e in attached] == [KEY]

    async def test_both_askers_get_the_reply_when_both_still_listen(self) -> None:
        """A supervisor that still waits for the call gets it too, under its own call id."""
        host = Till()
        async with fake_runtimes(2) as (a, b), serving(host, a, b, ledger=Ledger(None)):
            at_a, _ = await a.accept()
            at_b, _ = await b.accept()
            await a.send(at_a, charge(call_id=1))
            with anyio.fail_after(WAIT):
                await host.started.wait()
            await b.send(at_b, charge(call_id=70))
            await b.send(at_b, probe(call_id=71))
            await b.expect(ToolReply)
            host.release.set()
            to_a, reply_a = await a.expect(ToolReply)
            to_b, reply_b = await b.expect(ToolReply)
        assert (to_a, reply_a.call_id, reply_a.result) == (at_a, 1, "receipt for 5")
        assert (to_b, reply_b.call_id, reply_b.result) == (at_b, 70, "receipt for 5")
        assert host.charges == [5]

    async def test_a_repeat_with_other_arguments_is_a_conflict(self) -> None:
        """Under the key of a running call, other arguments are refused at once, never run."""
        host = Till()
        ledger = Ledger(None)
        async with fake_runtimes(2) as (a, b), serving(host, a, b, ledger=ledger):
            at_a, _ = await a.accept()
            at_b, _ = await b.accept()
            await a.send(at_a, charge(call_id=1))
            with anyio.fail_after(WAIT):
                await host.started.wait()
            await b.send(at_b, charge(call_id=70, amount=6))
            sender, refusal = await b.expect(ToolReply)
            host.release.set()
            _, reply = await a.expect(ToolReply)
        assert sender == at_b
        assert (refusal.call_id, refusal.ok, refusal.error) == (70, False, "idempotency_conflict")
        assert refusal.message == (
            f"a call with key {KEY!r} and other arguments is running; "
            "a reply never answers a different call"
        )
        assert (reply.call_id, reply.result) == (1, "receipt for 5")
        assert host.charges == [5]
        assert ledger.keys() == {KEY: True}

    async def test_a_new_session_declares_the_calls_its_supervisor_waits_for(self) -> None:
        """On registering again, a connection names the running calls it asked for, its own
        or repeats of another's, and not those only another supervisor asked."""
        host = Till()
        async with fake_runtimes(3) as (a, b, c), serving(host, a, b, c, ledger=Ledger(None)):
            at_a, _ = await a.accept()
            at_b, _ = await b.accept()
            at_c, _ = await c.accept()
            await a.send(at_a, charge(call_id=1))
            with anyio.fail_after(WAIT):
                await host.started.wait()
            await b.send(at_b, charge(call_id=70))
            await b.send(at_b, probe(call_id=71))
            await b.expect(ToolReply)
            for runtime, identity in ((b, at_b), (c, at_c)):
                await runtime.send(identity, Error(code="not_registered", message="again"))
            _, again_b = await b.expect(Register)
            _, again_c = await c.expect(Register)
            host.release.set()
        assert (again_b.calls, again_c.calls) == ([KEY], [])
